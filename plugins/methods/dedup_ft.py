"""`dedup-ft`: the teacher-free baseline's fine-tuning with each member seen once per epoch.

Deduplicating the training data is the classic mitigation of verbatim memorization: a sequence
repeated in the training set is memorized far more often than one seen once, and removing the
copies cuts what can be extracted (Lee et al., 2022, "Deduplicating Training Data Makes Language
Models Better"; Kandpal et al., 2022, "Deduplicating Training Data Mitigates Privacy Risks in
Language Models"). Here the student-size model is fine-tuned by cross-entropy on the members, as
the baseline is, but on each distinct member once per epoch whatever its repeat count
(`deduplicate=True`), so the board sets a KD method's reduction beside the one deduplication buys.

The recipe is the preset's student recipe; with the repeats gone an epoch is shorter, so the
student takes fewer steps than the baseline (as deduplicating a corpus at a fixed number of epochs
does). `dp-ft` is the same loss under DP-SGD, whose per-member records are in effect deduplicated
too: the two together tell the noise's effect from the deduplication's.
"""

from __future__ import annotations

from harness import F, KDMethod, LogitBatch, hookimpl


def dedup_ft_loss(batch: LogitBatch, args: dict):
    return F.cross_entropy(batch.student_logits.flatten(0, 1).float(), batch.labels.flatten())


@hookimpl
def register_kd_methods(register):
    register(KDMethod(
        name="dedup-ft",
        description="the baseline's fine-tuning (cross-entropy on the members), each member once per epoch; no teacher",
        teacher_access="none",
        loss=dedup_ft_loss,
        deduplicate=True,
        paper="Lee et al., 2022, arXiv:2107.06499; Kandpal et al., 2022, arXiv:2202.06539",
    ))
