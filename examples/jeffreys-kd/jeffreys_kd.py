"""`jeffreys-kd`: the student matches the teacher by Jeffreys divergence, J = KL(p || q) + KL(q || p).

Forward KL (soft KD) makes the student cover everything the teacher allows; reverse KL lets it
seek the teacher's main modes. Their sum asks for both, and is symmetric in teacher and student.
"""

from harness import KDMethod, LogitBatch, Param, forward_kl, hookimpl, reverse_kl


def jeffreys_loss(batch: LogitBatch, args: dict):
    t = args["temperature"]
    s_logits, t_logits = batch.student_logits, batch.teacher_logits
    return (forward_kl(s_logits, t_logits, temperature=t) + reverse_kl(s_logits, t_logits, temperature=t)) * t * t


@hookimpl
def register_kd_methods(register):
    register(KDMethod(
        name="jeffreys-kd",
        description="Jeffreys divergence KL(p || q) + KL(q || p) on softened logits, scaled by T^2",
        teacher_access="logits",  # logits | top-k logits | hidden states | text | none
        params=(Param("temperature", float, 1.0, "softmax temperature T", min=0.05, max=100.0),),
        loss=jeffreys_loss,
        paper="Jeffreys, 1946",
    ))
