"""`reverse-kl`: token-level reverse KL(student || teacher), as studied by Gu et al. (MiniLLM, 2024)
and Wen et al. (f-divergence minimization for sequence-level KD, 2023).

Forward KL makes the student cover every mode of the teacher; reverse KL lets it seek the
teacher's main modes and ignore the tail it cannot fit, which for a small student trades
recall of rare continuations for precision.

Training: the preset's student recipe; neither paper gives a separate one for the token-level
loss that transfers to this scale.
"""

from harness import KDMethod, LogitBatch, Param, hookimpl, reverse_kl


def reverse_kl_loss(batch: LogitBatch, args: dict):
    t = args["temperature"]
    return reverse_kl(batch.student_logits, batch.teacher_logits, temperature=t) * t * t


@hookimpl
def register_kd_methods(register):
    register(KDMethod(
        name="reverse-kl",
        description="reverse KL(student || teacher) on the token distributions, scaled by T^2",
        teacher_access="logits",
        params=(Param("temperature", float, 1.0, "softmax temperature T", min=0.05, max=100.0),),
        loss=reverse_kl_loss,
        paper="Gu et al., 2024, arXiv:2306.08543; Wen et al., 2023, arXiv:2307.15190",
    ))
