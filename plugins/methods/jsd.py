"""`jsd`: the generalized Jensen-Shannon divergence of GKD (Agarwal et al., 2024), on the data.

JSD(beta) = beta KL(p || m) + (1 - beta) KL(q || m) with the mixture m = beta p + (1 - beta) q,
p the teacher and q the student; beta = 0 is forward KL and beta = 1 reverse KL (the limits
GKD uses), and values between interpolate. Off-policy: the student sees only the members.

Training: the preset's student recipe; the paper's recipes are for its T5 tasks and are not
transcribed here.
"""

from harness import KDMethod, LogitBatch, Param, generalized_jsd, hookimpl


def jsd_loss(batch: LogitBatch, args: dict):
    return generalized_jsd(batch.student_logits, batch.teacher_logits, args["beta"])


@hookimpl
def register_kd_methods(register):
    register(KDMethod(
        name="jsd",
        description="generalized Jensen-Shannon divergence JSD(beta) between teacher and student tokens",
        teacher_access="logits",
        params=(Param("beta", float, 0.5, "weight of the teacher in the mixture: 0 forward KL, 1 reverse KL",
                      min=0.0, max=1.0),),
        loss=jsd_loss,
        paper="Agarwal et al., 2024, arXiv:2306.13649",
    ))
