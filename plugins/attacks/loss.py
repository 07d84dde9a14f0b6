"""`loss`: a member is text the model predicts well (Yeom et al., 2018).

The simplest attack and the baseline every other one must beat: the score is the negative
mean next-token loss over the whole example.
"""

from harness import Attack, Evidence, hookimpl


def loss_score(evidence: Evidence, args: dict):
    return -evidence.loss


@hookimpl
def register_attacks(register):
    register(Attack(name="loss", description="negative mean token loss", score=loss_score,
                    paper="Yeom et al., 2018, arXiv:1709.01604"))
