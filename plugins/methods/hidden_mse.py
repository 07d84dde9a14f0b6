"""`hidden-mse`: soft KD plus matching of hidden states (FitNets, Romero et al., 2015; TinyBERT).

Besides the teacher's softened next-token distribution, the student learns the teacher's
intermediate representations: each student layer of the family's layer map is sent through a
learned linear projection to the teacher's width and pulled towards the matched teacher layer
by mean squared error. The projections are trained with the student and then discarded.
  loss = forward KL(p || q) at temperature T, times T^2,  +  weight * mean over pairs of MSE

Training: the preset's student recipe; neither paper's (image classifiers, BERT) transfers.
"""

from __future__ import annotations

from harness import F, KDMethod, Param, Step, forward_kl, hookimpl, torch


def projections(student, teacher, layer_map, args) -> torch.nn.Module:
    width_in, width_out = student.config.hidden_size, teacher.config.hidden_size
    return torch.nn.ModuleList(torch.nn.Linear(width_in, width_out) for _ in layer_map)


def hidden_mse_step(step: Step, args: dict):
    t = args["temperature"]
    student = step.student(step.rows, hidden=True)
    teacher = step.teacher(step.rows, hidden=True)
    kd = forward_kl(student.logits, teacher.logits, temperature=t) * t * t
    mse = torch.stack([F.mse_loss(project(student.hidden[s]), teacher.hidden[k].float())
                       for project, (s, k) in zip(step.modules, step.layer_map)]).mean()
    return kd + args["weight"] * mse


@hookimpl
def register_kd_methods(register):
    register(KDMethod(
        name="hidden-mse",
        description="soft KD plus MSE between projected student and teacher hidden states (family's layer map)",
        teacher_access="hidden states",
        params=(
            Param("weight", float, 1.0, "weight of the hidden-state MSE", min=0.0, max=1000.0),
            Param("temperature", float, 2.0, "softmax temperature T of the soft-KD term", min=0.05, max=100.0),
        ),
        step=hidden_mse_step,
        modules=projections,
        paper="Romero et al., 2015, arXiv:1412.6550; Jiao et al., 2020, arXiv:1909.10351",
    ))
