"""Each divergence and each method's loss against values worked out by hand on two tokens.

The worked point: teacher p = (1/4, 3/4) (logits 0, ln 3), student q = (1/2, 1/2) (logits 0, 0).
"""

from __future__ import annotations

import math

import pytest
import torch

from harness.contract import divergences as d

P = (0.25, 0.75)
Q = (0.5, 0.5)


def kl(a, b):
    return sum(x * math.log(x / y) for x, y in zip(a, b))


def mix(w, a, b):
    return tuple(w * x + (1 - w) * y for x, y in zip(a, b))


def logits(*values):
    return torch.tensor([[list(values)]], dtype=torch.float32)  # (batch 1, position 1, vocab)


TEACHER = logits(0.0, math.log(3))
STUDENT = logits(0.0, 0.0)

# name -> (function of (student, teacher), the value by hand)
BY_HAND = {
    "forward KL": (lambda s, t: d.forward_kl(s, t), 0.25 * math.log(0.25 / 0.5) + 0.75 * math.log(0.75 / 0.5)),
    "reverse KL": (lambda s, t: d.reverse_kl(s, t), 0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)),
    "TVD": (lambda s, t: d.total_variation(s, t), 0.5 * (0.25 + 0.25)),
    "JSD(0.5)": (lambda s, t: d.generalized_jsd(s, t, 0.5), 0.5 * kl(P, mix(0.5, P, Q)) + 0.5 * kl(Q, mix(0.5, P, Q))),
    "JSD(0.9)": (lambda s, t: d.generalized_jsd(s, t, 0.9), 0.9 * kl(P, mix(0.9, P, Q)) + 0.1 * kl(Q, mix(0.9, P, Q))),
    "JSD(0)": (lambda s, t: d.generalized_jsd(s, t, 0.0), kl(P, Q)),
    "JSD(1)": (lambda s, t: d.generalized_jsd(s, t, 1.0), kl(Q, P)),
    "skew KL(0.1)": (lambda s, t: d.skew_kl(s, t, 0.1), kl(P, mix(0.1, P, Q))),
    "skew reverse KL(0.1)": (lambda s, t: d.skew_reverse_kl(s, t, 0.1), kl(Q, mix(0.1, Q, P))),
    "skew KL(0)": (lambda s, t: d.skew_kl(s, t, 0.0), kl(P, Q)),
}


def test_the_hand_values_are_what_they_claim():
    assert kl(P, Q) == pytest.approx(0.130812, abs=1e-6)
    assert kl(Q, P) == pytest.approx(0.143841, abs=1e-6)


@pytest.mark.parametrize("name", BY_HAND)
def test_divergence_equals_the_value_by_hand(name):
    fn, expected = BY_HAND[name]
    assert fn(STUDENT, TEACHER).item() == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("name", BY_HAND)
def test_divergence_is_zero_when_the_student_is_the_teacher(name):
    fn, _ = BY_HAND[name]
    assert fn(TEACHER.clone(), TEACHER).item() == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("name", BY_HAND)
def test_gradient_moves_the_student_towards_the_teacher(name):
    """The teacher prefers token 1: one gradient step must raise the student's logit of token 1."""
    fn, _ = BY_HAND[name]
    student = STUDENT.clone().requires_grad_()
    fn(student, TEACHER).backward()
    grad = student.grad[0, 0]
    assert grad[1] < 0 < grad[0]


def test_forward_kl_gradient_is_q_minus_p():
    student = STUDENT.clone().requires_grad_()
    d.forward_kl(student, TEACHER).backward()
    assert student.grad[0, 0].tolist() == pytest.approx([0.5 - 0.25, 0.5 - 0.75], abs=1e-6)


def test_temperature_divides_the_logits():
    # At T = 2 the teacher's logits (0, ln 3) become (0, ln 3 / 2): p = (1, sqrt 3) / (1 + sqrt 3).
    r3 = math.sqrt(3)
    p2 = (1 / (1 + r3), r3 / (1 + r3))
    assert d.forward_kl(STUDENT, TEACHER, temperature=2.0).item() == pytest.approx(kl(p2, Q), rel=1e-5)


def test_mask_leaves_out_positions_and_weights_them():
    student = torch.cat([STUDENT, TEACHER], dim=1)  # position 0 differs from the teacher, position 1 equals it
    teacher = torch.cat([TEACHER, TEACHER], dim=1)
    assert d.forward_kl(student, teacher).item() == pytest.approx(kl(P, Q) / 2, rel=1e-5)
    assert d.forward_kl(student, teacher, mask=torch.tensor([[True, False]])).item() == pytest.approx(kl(P, Q), rel=1e-5)
    assert d.forward_kl(student, teacher, mask=torch.tensor([[False, True]])).item() == pytest.approx(0.0, abs=1e-6)
    weights = torch.tensor([[3.0, 1.0]])
    assert d.forward_kl(student, teacher, mask=weights).item() == pytest.approx(0.75 * kl(P, Q), rel=1e-5)


def test_top_k_kl_by_hand():
    # Teacher over 3 tokens: p = (0.5, 0.3, 0.2); top 2 renormalised: (5/8, 3/8). Student uniform.
    teacher = logits(math.log(0.5), math.log(0.3), math.log(0.2))
    values, indices = teacher.topk(2, dim=-1)
    expected = 5 / 8 * math.log((5 / 8) / (1 / 3)) + 3 / 8 * math.log((3 / 8) / (1 / 3))
    assert d.top_k_kl(logits(0.0, 0.0, 0.0), values, indices).item() == pytest.approx(expected, rel=1e-5)


def test_top_k_kl_over_the_whole_vocabulary_is_forward_kl():
    torch.manual_seed(0)
    student, teacher = torch.randn(2, 5, 11), torch.randn(2, 5, 11)
    values, indices = teacher.topk(11, dim=-1)
    assert d.top_k_kl(student, values, indices, temperature=2.0).item() == pytest.approx(
        d.forward_kl(student, teacher, temperature=2.0).item(), rel=1e-5)


def test_divergences_agree_with_a_direct_formula_on_random_distributions():
    """An independent check on many positions: torch.distributions' KL and plain sums."""
    torch.manual_seed(1)
    student, teacher = torch.randn(3, 4, 7), torch.randn(3, 4, 7)
    p, q = torch.distributions.Categorical(logits=teacher), torch.distributions.Categorical(logits=student)
    kl = torch.distributions.kl_divergence
    assert d.forward_kl(student, teacher).item() == pytest.approx(kl(p, q).mean().item(), rel=1e-5)
    assert d.reverse_kl(student, teacher).item() == pytest.approx(kl(q, p).mean().item(), rel=1e-5)
    tvd = 0.5 * (p.probs - q.probs).abs().sum(-1).mean()
    assert d.total_variation(student, teacher).item() == pytest.approx(tvd.item(), rel=1e-5)
