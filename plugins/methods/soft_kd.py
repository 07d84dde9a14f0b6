"""`soft-kd`: Hinton et al. (2015), "Distilling the Knowledge in a Neural Network".

The student matches the teacher's temperature-softened next-token distribution, token by
token: forward KL(teacher || student) at temperature T, scaled by T^2 so that its gradients
keep the same size as T changes, optionally mixed with cross-entropy on the true tokens.

Training: the preset's student recipe. Hinton et al. give none for language models; the
word-level KD baseline of Gu et al.'s code (LMOps `kd_base.sh`) trains with its SFT recipe (lr 5e-4
for GPT-2), as the preset's student recipe is the baseline's here.
"""

from __future__ import annotations

from harness import F, KDMethod, LogitBatch, Param, forward_kl, hookimpl


def soft_kd_loss(batch: LogitBatch, args: dict):
    t = args["temperature"]
    kd = forward_kl(batch.student_logits, batch.teacher_logits, temperature=t) * t * t
    w = args["ce_weight"]
    if w == 0:
        return kd
    ce = F.cross_entropy(batch.student_logits.flatten(0, 1).float(), batch.labels.flatten())
    return (1 - w) * kd + w * ce


@hookimpl
def register_kd_methods(register):
    register(KDMethod(
        name="soft-kd",
        description="forward KL(teacher || student) on temperature-softened logits, scaled by T^2",
        teacher_access="logits",
        params=(
            Param("temperature", float, 2.0, "softmax temperature T", min=0.05, max=100.0),
            Param("ce_weight", float, 0.0, "weight of cross-entropy on the true tokens", min=0.0, max=1.0),
        ),
        loss=soft_kd_loss,
        paper="Hinton et al., 2015, arXiv:1503.02531",
    ))
