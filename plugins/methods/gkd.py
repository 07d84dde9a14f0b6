"""`gkd`: Generalized Knowledge Distillation (Agarwal et al., 2024), on-policy.

A student trained only on fixed sequences meets its own mistakes for the first time at
inference. GKD trains on a mix: with probability lambda a batch is replaced by the student's
own continuations of the members' prefixes (sampled at temperature 1), which the teacher then
scores token by token; otherwise the batch is the members themselves. Either way the loss is
the generalized JSD(beta) between teacher and student next-token distributions.

Training: the preset's student recipe; the paper's recipes are for its T5 tasks and are not
transcribed here.
"""

from __future__ import annotations

from harness import KDMethod, Param, Step, generalized_jsd, hookimpl, torch


def gkd_step(step: Step, args: dict):
    rows = step.rows
    if torch.rand((), generator=step.generator, device=step.generator.device) < args["lmbda"]:
        prompts = rows[:, : step.prefix_len]
        rows = step.sample(prompts, rows.shape[1] - step.prefix_len).ids
        teacher = step.teacher(rows)
    else:
        teacher = step.teacher()  # the members: the teacher's logits are computed once and reused
    return generalized_jsd(step.student(rows).logits, teacher.logits, args["beta"])


@hookimpl
def register_kd_methods(register):
    register(KDMethod(
        name="gkd",
        description="on-policy: a share lambda of batches are student samples scored by the teacher, JSD(beta)",
        teacher_access="logits",
        params=(
            Param("lmbda", float, 0.5, "share of batches made of the student's own samples", min=0.0, max=1.0),
            Param("beta", float, 0.5, "JSD weight: 0 forward KL, 1 reverse KL", min=0.0, max=1.0),
        ),
        step=gkd_step,
        on_policy=True,
        paper="Agarwal et al., 2024, arXiv:2306.13649",
    ))
