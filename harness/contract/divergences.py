"""Token-level divergences between the teacher's and the student's next-token distributions.

Every KD method that compares distributions uses one of these, so each formula is written (and
tested against a hand-worked value) once. All take logits of shape (..., vocab), an optional
boolean `mask` of shape (...) choosing the positions that count, and a softmax `temperature`,
and return the mean over the counted positions. p is the teacher, q the student.
"""

from __future__ import annotations

import math

from harness.lazy import F, torch


def masked_mean(per_position: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    if mask is None:
        return per_position.mean()
    weights = mask.to(per_position.dtype)
    return (per_position * weights).sum() / weights.sum().clamp_min(1.0)


def _log_probs(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    return F.log_softmax(logits.float() / temperature, dim=-1)


def _kl(log_a: torch.Tensor, log_b: torch.Tensor) -> torch.Tensor:
    """KL(a || b) per position, from log-probabilities."""
    return (log_a.exp() * (log_a - log_b)).sum(-1)


def forward_kl(student_logits, teacher_logits, mask=None, temperature: float = 1.0) -> torch.Tensor:
    """KL(p || q): mode-covering; the student spreads mass over everything the teacher allows."""
    return masked_mean(_kl(_log_probs(teacher_logits, temperature), _log_probs(student_logits, temperature)), mask)


def reverse_kl(student_logits, teacher_logits, mask=None, temperature: float = 1.0) -> torch.Tensor:
    """KL(q || p): mode-seeking; the student may drop teacher modes it cannot fit."""
    return masked_mean(_kl(_log_probs(student_logits, temperature), _log_probs(teacher_logits, temperature)), mask)


def generalized_jsd(student_logits, teacher_logits, beta: float, mask=None, temperature: float = 1.0) -> torch.Tensor:
    """JSD(beta) = beta KL(p || m) + (1 - beta) KL(q || m), m = beta p + (1 - beta) q.

    As in GKD (Agarwal et al., 2024) and its TRL implementation, beta = 0 and beta = 1 are
    taken as the limits that keep a gradient: forward KL(p || q) and reverse KL(q || p).
    """
    if beta == 0:
        return forward_kl(student_logits, teacher_logits, mask, temperature)
    if beta == 1:
        return reverse_kl(student_logits, teacher_logits, mask, temperature)
    log_p, log_q = _log_probs(teacher_logits, temperature), _log_probs(student_logits, temperature)
    log_m = torch.logsumexp(torch.stack([log_p + math.log(beta), log_q + math.log(1 - beta)]), dim=0)
    return masked_mean(beta * _kl(log_p, log_m) + (1 - beta) * _kl(log_q, log_m), mask)


def total_variation(student_logits, teacher_logits, mask=None, temperature: float = 1.0) -> torch.Tensor:
    """TVD = 1/2 sum_v |p_v - q_v|: bounded, symmetric, and blind to how small a probability is."""
    p = _log_probs(teacher_logits, temperature).exp()
    q = _log_probs(student_logits, temperature).exp()
    return masked_mean(0.5 * (p - q).abs().sum(-1), mask)


def skew_kl(student_logits, teacher_logits, alpha: float, mask=None, temperature: float = 1.0) -> torch.Tensor:
    """DistiLLM's skew KL: KL(p || alpha p + (1 - alpha) q), finite even where q is near zero."""
    log_p, log_q = _log_probs(teacher_logits, temperature), _log_probs(student_logits, temperature)
    log_mix = torch.logsumexp(torch.stack([log_p + math.log(alpha), log_q + math.log(1 - alpha)]), dim=0) \
        if alpha > 0 else log_q
    return masked_mean(_kl(log_p, log_mix), mask)


def skew_reverse_kl(student_logits, teacher_logits, alpha: float, mask=None, temperature: float = 1.0) -> torch.Tensor:
    """DistiLLM's skew reverse KL: KL(q || alpha q + (1 - alpha) p)."""
    log_p, log_q = _log_probs(teacher_logits, temperature), _log_probs(student_logits, temperature)
    log_mix = torch.logsumexp(torch.stack([log_q + math.log(alpha), log_p + math.log(1 - alpha)]), dim=0) \
        if alpha > 0 else log_p
    return masked_mean(_kl(log_q, log_mix), mask)


def top_k_kl(student_logits, teacher_values, teacher_indices, mask=None, temperature: float = 1.0) -> torch.Tensor:
    """KL from the teacher renormalised over its top K tokens to the student, over those K tokens.

    sum_{v in K} p_K(v) (log p_K(v) - log q(v)), with q over the whole vocabulary: zero only when
    the student puts all its mass on the K tokens in the teacher's proportions, and equal to
    forward KL when K is the whole vocabulary.
    """
    log_p = F.log_softmax(teacher_values.float() / temperature, dim=-1)
    log_q = _log_probs(student_logits, temperature).gather(-1, teacher_indices)
    return masked_mean((log_p.exp() * (log_p - log_q)).sum(-1), mask)
