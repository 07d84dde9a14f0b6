"""`dp-kd` and `dp-ft`: the formal-privacy baselines, trained with DP-SGD (Abadi et al., 2016).

`dp-kd` is `soft-kd`'s loss (forward KL at temperature T, times T^2) with the student trained by
DP-SGD; `dp-ft` is the teacher-free baseline's fine-tuning (cross-entropy on the members) by
DP-SGD, the usual DP fine-tuning of a language model (Li et al., 2022, "Large Language Models Can
Be Strong Differentially Private Learners"). Both train in `harness.training.private`: Poisson
sampling, per-record clipping to `max_grad_norm`, Gaussian noise, and Opacus's accountant for the
(epsilon, delta) spent, which the run stores (`dp_epsilon`) and the board shows. The teacher
stays non-private: the threat is the private fine-tuning set the teacher saw, and the student's
access to it (docs/protocol.md, "What the DP guarantee covers").

The whole student is trained: Opacus computes per-record gradients for every layer of the
GPT-NeoX models (embeddings, layer norms, attention and MLP projections). Training: the preset's
student recipe (lr, epochs, batch as the expected Poisson batch); Li et al. tune a larger batch and
learning rate for DP, which the harness does not.
"""

from __future__ import annotations

from harness import DP_PARAMS, F, KDMethod, LogitBatch, Param, forward_kl, hookimpl


def dp_kd_loss(batch: LogitBatch, args: dict):
    t = args["temperature"]
    return forward_kl(batch.student_logits, batch.teacher_logits, temperature=t) * t * t


def dp_ft_loss(batch: LogitBatch, args: dict):
    return F.cross_entropy(batch.student_logits.flatten(0, 1).float(), batch.labels.flatten())


@hookimpl
def register_kd_methods(register):
    register(KDMethod(
        name="dp-kd",
        description="soft-kd's forward KL, the student trained with DP-SGD (per-member clipping, Gaussian noise)",
        teacher_access="logits",
        params=(Param("temperature", float, 2.0, "softmax temperature T", min=0.05, max=100.0), *DP_PARAMS),
        loss=dp_kd_loss,
        private=True,
        paper="Abadi et al., 2016, arXiv:1607.00133",
    ))
    register(KDMethod(
        name="dp-ft",
        description="the baseline's fine-tuning (cross-entropy on the members) with DP-SGD; no teacher",
        teacher_access="none",
        params=DP_PARAMS,
        loss=dp_ft_loss,
        private=True,
        paper="Abadi et al., 2016, arXiv:1607.00133; Li et al., 2022, arXiv:2110.05679",
    ))
