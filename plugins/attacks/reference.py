"""`reference`: the loss relative to a reference model's loss on the same text (Carlini et al., 2021).

Text that any model of this kind finds easy is not evidence of membership; text this model finds
much easier than a reference trained without it is. The reference must never have seen the
members: the harness hands every role the student-size model before fine-tuning (the family's
released weights, or the pretraining stage's checkpoint for a family without them), as
calibrated attacks do (Carlini et al., 2021; Zhang et al.'s code), unless `--reference` names
another model.
"""

from harness import Attack, Evidence, hookimpl


def reference_score(evidence: Evidence, args: dict):
    return evidence.reference.loss - evidence.loss


@hookimpl
def register_attacks(register):
    register(Attack(name="reference", description="reference model's loss minus this model's loss",
                    score=reference_score, needs_reference=True, paper="Carlini et al., 2021, arXiv:2012.07805"))
