"""`tvd`: total variation distance between the token distributions (Wen et al., 2023).

TVD = 1/2 sum_v |p_v - q_v| is bounded and symmetric: unlike either KL it does not blow up
where one model gives a token almost no probability, so rare teacher tokens weigh no more than
their probability mass.

Training: the preset's student recipe; the paper gives no separate one that transfers.
"""

from harness import KDMethod, LogitBatch, hookimpl, total_variation


def tvd_loss(batch: LogitBatch, args: dict):
    return total_variation(batch.student_logits, batch.teacher_logits)


@hookimpl
def register_kd_methods(register):
    register(KDMethod(
        name="tvd",
        description="total variation distance between teacher and student token distributions",
        teacher_access="logits",
        loss=tvd_loss,
        paper="Wen et al., 2023, arXiv:2307.15190",
    ))
