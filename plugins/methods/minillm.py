"""`minillm`: sequence-level reverse KL by policy gradient (Gu et al., 2024, "MiniLLM").

The student q is a policy and the teacher p scores what it writes: the objective is
KL(q || p) over whole continuations, whose gradient is
  -E_{y ~ q} sum_t R_t grad log q(y_t | y_<t),  with reward r_t = log p(y_t | .) - log q(y_t | .).
MiniLLM's three fixes are all here:
  single-step decomposition  the term of step t itself is taken exactly, as the token-level
                             reverse KL over the whole vocabulary, leaving the policy gradient
                             only the future rewards R_{t+1};
  length normalisation       R_{t+1} is the mean of the future rewards, not their sum;
  teacher-mixed sampling     tokens are drawn from (1 - teacher_mix) q + teacher_mix p, with
                             importance weights q / mix clipped to [1 - 0.2, 1 + 0.2].
A language-modelling term on the *pretraining* corpus keeps the student fluent, as in Gu et al.'s
code (LMOps `minillm/losses.py`, `pt_loss`, on OpenWebText with `--lm-data-dir`):
  loss = policy + single-step + lm_coef * [(1 - kd_ratio) * CE + kd_ratio * KD] on corpus rows,
where KD is the token-level forward KL to the teacher (its soft cross-entropy) on the same rows.
kd_ratio 0.5 and lm_coef 1 are the published scripts' settings. The members appear only as the
prompts the student continues; `lm_data=members` is the harness's earlier departure (the LM term
on the members), there to measure what it changes, never the default.

The published recipe (LMOps `minillm/scripts/gpt2/minillm/train_base_xl.sh`; Zhang et al. 2025's
`minillm.sh` is the same) against what runs here:
  advantages      rewards divided by 0.5 (`--reward-scaling`), clipped to +-100 (`--cliprange-reward`)
                  and whitened over the batch: followed (`whiten=True`). Without them (the harness's
                  earlier loss) the student's loss rose through training, to validation perplexity
                  4,694 on the embedded default against the baseline's 14.8.
                  Departure: the published code's advantage also counts the token's own reward
                  beside the exact single-step term; here R_{t+1}, as the paper's gradient has it.
  sampling        top-k 0, top-p 1, temperature 1, teacher mix 0.2: followed.
  learning rate   5e-6, constant after 100 warm-up iterations of 5,000: departure, the preset's
                  student rate and schedule. 5e-6 is 1/100 of the SFT rate (5e-4), for polishing an
                  SFT student; here the student starts from the pretrained checkpoint (next).
  start           an SFT checkpoint of the student on the same data: departure. The SFT student is
                  the baseline itself (cross-entropy on the members), whose memorization the student
                  would then carry; every student here starts from the pretrained checkpoint, so the
                  figures measure what distillation passes on.
  steps           5,000 iterations of 64 sequences: departure, twice the preset's epochs
                  (`training={"epochs": 12}`: 12 x 58 = 696 steps of 32 on the embedded default),
                  towards the published length at a cost two students' training can bear.
  what was tried  on the embedded default, seed 0 (baseline's validation perplexity 14.8; "learned"
                  is within 1.5x, 22.2): the preset's 6 epochs, cosine, 27.8; constant after 2%
                  warm-up, as published, 29.8; 12 epochs, cosine, 25.0. None reaches 1.5x, so the
                  board lists it as not converged (harness/leaderboard/ranking.py).
  PPO epochs      4 passes over a buffer of rollouts, with PPO's clipped ratio: departure. Each batch's
                  rollouts make one gradient step, so the PPO ratio is 1 and only the teacher-mix
                  importance weight is clipped, to [0.8, 1.2].
"""

from __future__ import annotations

from harness import F, KDMethod, Param, Step, hookimpl, reverse_kl, torch

CLIP = 0.2
REWARD_SCALING = 0.5  # rewards divided by it (LMOps --reward-scaling 0.5) ...
REWARD_CLIP = 100.0  # ... then clipped to [-100, 100] (--cliprange-reward 100)


def future_mean(rewards: torch.Tensor) -> torch.Tensor:
    """R_{t+1}: the mean of rewards[:, t+1:], and 0 after the last token."""
    n = rewards.shape[1]
    after = rewards.flip(1).cumsum(1).flip(1) - rewards  # sum over t' > t
    count = torch.arange(n - 1, -1, -1, device=rewards.device, dtype=rewards.dtype)
    return after / count.clamp_min(1)


def whiten(values: torch.Tensor) -> torch.Tensor:
    """Mean 0 and variance 1 over the batch, as LMOps `whiten` normalises the advantages."""
    return (values - values.mean()) * torch.rsqrt(values.var() + 1e-8)


def advantages(rewards: torch.Tensor, normalise: bool) -> torch.Tensor:
    """R_{t+1} of the scaled, clipped rewards; whitened over the positions that have a future
    (the last token's stays 0: its whole term is the exact single-step one)."""
    future = future_mean((rewards / REWARD_SCALING).clamp(-REWARD_CLIP, REWARD_CLIP))
    if normalise and future.shape[1] > 1:
        future = torch.cat([whiten(future[:, :-1]), future[:, -1:]], dim=1)
    return future


def minillm_step(step: Step, args: dict):
    p_len = step.prefix_len
    drawn = step.sample(step.rows[:, :p_len], step.rows.shape[1] - p_len, teacher_mix=args["teacher_mix"])
    tokens = drawn.ids[:, p_len:]
    student = step.student(drawn.ids).logits[:, p_len - 1 :]  # the positions that predict `tokens`
    teacher = step.teacher(drawn.ids).logits[:, p_len - 1 :]
    log_q = F.log_softmax(student.float(), -1).gather(-1, tokens[..., None]).squeeze(-1)
    log_p = F.log_softmax(teacher, -1).gather(-1, tokens[..., None]).squeeze(-1)
    weight = (log_q.detach() - drawn.log_probs).exp().clamp(1 - CLIP, 1 + CLIP)
    future = advantages((log_p - log_q).detach(), args["whiten"])
    policy = -(weight * future * log_q).mean()
    single = reverse_kl(student, teacher, mask=weight)  # weighted mean of the exact per-token term
    lm_rows = step.rows if args["lm_data"] == "members" else step.pretraining(len(step.rows))
    logits = step.student(lm_rows).logits.float()
    lm = F.cross_entropy(logits.flatten(0, 1), lm_rows[:, 1:].flatten())
    if args["kd_ratio"] > 0:
        with torch.no_grad():
            teacher_probs = F.softmax(step.teacher(lm_rows).logits.float(), -1)
        kd = -(teacher_probs * F.log_softmax(logits, -1)).sum(-1).mean()
        lm = (1 - args["kd_ratio"]) * lm + args["kd_ratio"] * kd
    return policy + single + args["lm_coef"] * lm


@hookimpl
def register_kd_methods(register):
    register(KDMethod(
        name="minillm",
        description="on-policy: sequence-level reverse KL by policy gradient, teacher-mixed sampling, "
                    "LM loss on the pretraining corpus",
        teacher_access="logits",
        params=(
            Param("teacher_mix", float, 0.2, "share of the teacher in the sampling mixture", min=0.0, max=1.0),
            Param("kd_ratio", float, 0.5, "share of the teacher's soft cross-entropy (against plain cross-entropy) "
                  "in the language-modelling term", min=0.0, max=1.0),
            Param("lm_coef", float, 1.0, "weight of the language-modelling term against the policy loss",
                  min=0.0, max=100.0),
            Param("lm_data", str, "pretraining", "what the language-modelling term reads: the pretraining "
                  "corpus, or the members (not as published)", choices=("pretraining", "members")),
            Param("whiten", bool, True, "normalise the advantages to mean 0, variance 1 per batch, as published "
                  "(false: the raw rewards)"),
        ),
        step=minillm_step,
        on_policy=True,
        training={"epochs": 12},  # towards the published 5,000 steps (see above)
        paper="Gu et al., 2024, arXiv:2306.08543",
    ))
