"""The DP bound check (harness.measure.dp_bound): the bound, its inverse, the threshold, and two mechanisms.

Randomized response is exactly epsilon-DP and its best test sits on the bound, so the check must
never call it violated; an attack that separates members perfectly must break any small epsilon.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from harness.measure.dp_bound import check, epsilon_shown, fpr_upper, max_tpr, true_positives


def test_the_bound_by_hand():
    assert max_tpr(0.0, 0.0, 0.2) == pytest.approx(0.2)  # no privacy loss: no test beats a coin
    assert max_tpr(1.0, 0.0, 0.01) == pytest.approx(math.e * 0.01)
    assert max_tpr(1.0, 1e-5, 0.5) == pytest.approx(1 - math.exp(-1) * (0.5 - 1e-5))  # the upper branch
    assert max_tpr(math.inf, 0.0, 0.01) == 1.0


@pytest.mark.parametrize("eps,delta,fpr", [(1.0, 0.0, 0.01), (4.0, 1e-4, 0.001), (0.5, 1e-3, 0.3), (8.0, 1e-5, 1e-4)])
def test_epsilon_shown_inverts_the_bound(eps, delta, fpr):
    assert epsilon_shown(max_tpr(eps, delta, fpr), fpr, delta) == pytest.approx(eps, rel=1e-9)


def test_the_threshold_never_lets_more_false_positives_through():
    nonmembers = np.arange(100.0)
    members = np.array([94.0, 94.5, 95.0, 200.0])
    assert true_positives(members, nonmembers, 0.05) == 3  # 5 non-members (95..99) above 94; 94 itself is not
    tied = np.full(100, 1.0)
    assert true_positives(np.array([1.0, 2.0]), tied, 0.05) == 1  # a tie at the threshold is not above it


def test_too_few_false_positives_are_left_out():
    runs = [(np.zeros(100), np.zeros(100))]
    assert [c.fpr for c in check(runs, 1.0, 0.0, (0.01, 0.1))] == [0.1]


def test_randomized_response_sits_on_the_bound_and_is_never_violated():
    eps = 1.0
    keep = math.exp(eps) / (1 + math.exp(eps))
    rng = np.random.default_rng(0)
    runs = []
    for _ in range(3):  # three "seeds", each 20,000 members and non-members
        members = (rng.random(20_000) < keep).astype(float)  # says "member" truthfully with prob keep
        nonmembers = (rng.random(20_000) >= keep).astype(float)
        runs.append((members + rng.random(20_000) * 1e-6, nonmembers + rng.random(20_000) * 1e-6))
    fpr = 1 - keep
    [c] = check(runs, eps, 0.0, (round(fpr, 4),))
    assert c.tpr == pytest.approx(keep, abs=0.01)
    assert round(fpr, 4) < c.fpr_hi < round(fpr, 4) + 0.01  # 60,000 non-members: the FPR is nearly exact
    assert c.bound == pytest.approx(max_tpr(eps, 0.0, c.fpr_hi))
    assert c.verdict != "violated"
    assert c.shown == pytest.approx(eps, abs=0.1)  # the attack shows the whole epsilon: the bound is tight


def test_a_perfect_attack_violates_a_small_epsilon_and_not_infinity():
    runs = [(np.full(500, 10.0) + np.arange(500) * 1e-3, np.arange(500) * 1e-3)]
    [c] = check(runs, 0.5, 1e-5, (0.1,))
    assert c.tpr == 1.0 and c.verdict == "violated" and c.shown > 3
    [c] = check(runs, math.inf, 0.0, (0.1,))
    assert c.bound == 1.0 and c.verdict == "holds"


def test_the_bound_is_taken_at_the_fprs_upper_end():
    # 5 false positives of 512 non-members: the population FPR may be up to 2.26% (Clopper-Pearson), not 1%
    assert fpr_upper(0.01, [512]) == pytest.approx(0.02264, abs=1e-5)
    assert fpr_upper(0.01, [2048, 512]) == fpr_upper(0.01, [512])  # the widest seed's
    # an attack whose TPR interval clears the bound at exactly 1% but not at 2.26%: not a violation
    rng = np.random.default_rng(1)
    nonmembers = rng.normal(size=1024)  # 10 false positives at 1%: the fewest the check takes
    members = np.concatenate([np.full(42, 10.0), rng.normal(size=982) - 5])  # 42 of 1,024 above every non-member
    [c] = check([(members, nonmembers)], 1.0, 0.0, (0.01,))
    assert c.fpr == 0.01 and c.fpr_hi == pytest.approx(fpr_upper(0.01, [1024])) and 0.017 < c.fpr_hi < 0.019
    assert c.tpr_lo > max_tpr(1.0, 0.0, 0.01) and c.tpr_lo < c.bound == max_tpr(1.0, 0.0, c.fpr_hi)
    assert c.verdict != "violated"
    assert c.shown == pytest.approx(epsilon_shown(c.tpr_lo, c.fpr_hi, 0.0))
    assert c.shown < epsilon_shown(c.tpr_lo, 0.01, 0.0)  # the exact-FPR reading overstates what it shows
