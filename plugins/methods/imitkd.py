"""`imitkd`: imitation-learning KD (Lin et al., 2020), as reproduced in DistiLLM's comparison.

Exposure bias again: the student is trained on the sequences it generates itself. Each batch
is the student's sampled continuation of the members' prefixes, and at every position the
student matches the teacher's next-token distribution by forward KL(teacher || student). The
true suffixes are never trained on, only the teacher's view of the student's own text.

Training: the preset's student recipe; Lin et al.'s are for translation models and do not
transfer to this scale.
"""

from harness import KDMethod, Step, forward_kl, hookimpl


def imitkd_step(step: Step, args: dict):
    prompts = step.rows[:, : step.prefix_len]
    rows = step.sample(prompts, step.rows.shape[1] - step.prefix_len).ids
    return forward_kl(step.student(rows).logits, step.teacher(rows).logits)


@hookimpl
def register_kd_methods(register):
    register(KDMethod(
        name="imitkd",
        description="on-policy: the student's own continuations, forward KL to the teacher at every token",
        teacher_access="logits",
        step=imitkd_step,
        on_policy=True,
        paper="Lin et al., 2020, arXiv:2009.07253",
    ))
