"""`reference`: the loss relative to a reference model's loss on the same text (Carlini et al., 2021).

Text that any model of this kind finds easy is not evidence of membership; text this model finds
much easier than a reference trained without it is. The harness hands the baseline as the
teacher's and student's reference (so the student's score is what distillation added over plain
fine-tuning) and the small model before fine-tuning as the baseline's, unless `--reference`
names another model.
"""

from harness import Attack, Evidence, hookimpl


def reference_score(evidence: Evidence, args: dict):
    return evidence.reference.loss - evidence.loss


@hookimpl
def register_attacks(register):
    register(Attack(name="reference", description="reference model's loss minus this model's loss",
                    score=reference_score, needs_reference=True, paper="Carlini et al., 2021, arXiv:2012.07805"))
