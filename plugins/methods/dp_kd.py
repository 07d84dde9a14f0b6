"""`dp-kd` and `dp-ft`: the formal-privacy baselines, trained with DP-SGD (Abadi et al., 2016).

`dp-kd` is `soft-kd`'s loss (forward KL at temperature T, times T^2) with the student trained by
DP-SGD; `dp-ft` is the teacher-free baseline's fine-tuning (cross-entropy on the members) by
DP-SGD, the usual DP fine-tuning of a language model (Li et al., 2022, "Large Language Models Can
Be Strong Differentially Private Learners"). Both train in `harness.training.private`: Poisson
sampling, per-record clipping to `max_grad_norm`, Gaussian noise, and Opacus's accountant for the
(epsilon, delta) spent, which the run stores (`dp_epsilon`) and the board shows. The teacher
stays non-private: the threat is the private fine-tuning set the teacher saw, and the student's
access to it (docs/protocol.md, "What the DP guarantee covers").

A record is a member with all its repeats (`unit=member`), clipped to one norm, so a member's
repeats pull about as hard as one copy: these students are in effect deduplicated, and train on a
recipe of their own (below). A run records both in `runs.own_recipe`; `dedup-ft` is the
non-private fine-tuning deduplicated alike, which tells the noise's effect from the deduplication's.

The whole student is trained: Opacus computes per-record gradients for every layer of the
GPT-NeoX models (embeddings, layer norms, attention and MLP projections).

Training follows Li et al.'s DP recipe (their private-transformers code, E2E): each record's
gradient clipped to 0.1 (`max_grad_norm`'s default), learning rate 2e-3, constant, no warm-up, 10
epochs (`training=LI_ET_AL`). Their batch is 1,024 of about 42,000 records, a sampling rate of
0.024; the embedded default has 512 records, so the preset's batch of 32 (rate 0.0625) is kept, the
nearest rate a batch of the preset's size gives. Tried on the embedded default at epsilon 8, seed 0
(student validation perplexity; the baseline's is 14.8): the preset's recipe (6 epochs, lr 3e-3,
cosine, clipping 1.0) 127 (2 seeds); Li et al.'s with a batch of 128 (rate 0.25) 104, in 182 s;
with 32, 76, in 35 s.
"""

from __future__ import annotations

from harness import DP_PARAMS, F, KDMethod, LogitBatch, Param, forward_kl, hookimpl

# Li et al.'s DP fine-tuning recipe (private-transformers, examples/table2text/run.sh, E2E): 10
# epochs at a constant learning rate of 2e-3 with no warm-up; the batch stays the preset's (above).
LI_ET_AL = {"epochs": 10, "lr": 2e-3, "schedule": "constant", "warmup_ratio": 0.0,
            "patience": 0}  # DP-SGD spends its budget over the steps it plans: no early stopping


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
        training=LI_ET_AL,
        private=True,
        paper="Abadi et al., 2016, arXiv:1607.00133",
    ))
    register(KDMethod(
        name="dp-ft",
        description="the baseline's fine-tuning (cross-entropy on the members) with DP-SGD; no teacher",
        teacher_access="none",
        params=DP_PARAMS,
        loss=dp_ft_loss,
        training=LI_ET_AL,
        private=True,
        paper="Abadi et al., 2016, arXiv:1607.00133; Li et al., 2022, arXiv:2110.05679",
    ))
