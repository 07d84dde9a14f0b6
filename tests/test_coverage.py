"""The board's intervals cover what they claim, on simulated boards whose truth is known.

The truth is the rate (or mean) of the generating process: what a fresh draw of members and seeds
would give on average, since a board's members are one sample of what a dataset plants and its seeds
one sample of the training randomness. Run with -s to see the coverage figures.
"""

from __future__ import annotations

import numpy as np
import pytest

from harness.measure.paired import compare
from harness.measure.seed_clusters import design
from harness.measure.stats import wilson

N, S = 512, 3  # members, seeds: the default board's
REPEAT_RATE = 0.95  # a planted repeat's propensity: Beta(19, 1), near-certain at every seed
ONCE = (0.3, 3.0)  # a once-seen member's propensity, c x Beta(0.3, 3): most near 0, a long tail
SEED_SD = 0.3  # a seed's multiplier on the once-seen members' propensities: mean 1, sd 0.3, in [0.48, 1.52]


def simulated_rates(rng: np.random.Generator, expected: float, repeats: float, boards: int) -> tuple[np.ndarray, float]:
    """(boards, S, N) verdicts and the true rate: a share `repeats` of members planted as repeats, the
    rest once-seen, scaled so that a board's expected pooled count is `expected` of N x S."""
    a, b = ONCE
    c = (expected / (N * S) - repeats * REPEAT_RATE) / ((1 - repeats) * a / (a + b))
    repeat = rng.random((boards, N)) < repeats
    propensity = np.where(repeat, rng.beta(19, 1, (boards, N)), c * rng.beta(a, b, (boards, N)))
    seed = 1 + SEED_SD * np.sqrt(3) * rng.uniform(-1, 1, (boards, S))  # c x 1.52 < 1: no propensity is capped
    p = np.where(repeat[:, None, :], propensity[:, None, :], propensity[:, None, :] * seed[:, :, None])
    return rng.random((boards, S, N)) < p, expected / (N * S)


# Wilson's own lower bound misses 1 of 1,536 at an expected 0.1 (90% coverage) and near 1 (92%): `wilson`'s exact floor
@pytest.mark.parametrize("expected, repeats", [(0.1, 0.0), (1, 0.0), (3, 0.001), (10, 0.003), (100, 0.04)])
def test_a_pooled_rates_interval_covers_the_rate_of_a_fresh_draw_of_members_and_seeds(expected, repeats):
    rng = np.random.default_rng(7)
    verdicts, truth = simulated_rates(rng, expected, repeats, boards=1000)
    covered = {"board": 0, "kish": 0, "binomial": 0}
    for y in verdicts:
        num, per_seed = y.sum(0).tolist(), y.sum(1).tolist()
        k, n = sum(per_seed), N * S
        for name, deff in (("board", design(num, [S] * N, k, n, S, per_seed)),  # as the board computes it
                           ("kish", design(num, [S] * N, k, n, S)), ("binomial", 1.0)):
            _, lo, hi = wilson(k, n, deff)
            covered[name] += lo <= truth <= hi
    share = {name: c / len(verdicts) for name, c in covered.items()}
    print(f"\nexpected {expected} of {N * S}: mean count {verdicts.sum((1, 2)).mean():.2f}, coverage "
          + ", ".join(f"{name} {v:.1%}" for name, v in share.items()))
    assert share["board"] >= 0.93
    if expected >= 10:  # the members' clusters are there to be caught: the binomial interval misses them
        assert share["binomial"] < 0.93


MEANS = np.array([0.0, 0.03, 0.06, 0.15, 0.4])  # per method; the SE of a paired difference is about 0.04


def test_paired_intervals_and_rank_intervals_cover_the_methods_means_and_ranks():
    rng = np.random.default_rng(3)
    boards, m = 250, len(MEANS)
    true_rank = np.argsort(np.argsort(MEANS)) + 1
    covered, ranked, separated = np.zeros(m), np.zeros(m), 0
    for b in range(boards):
        member = rng.normal(0, 1, N)  # a member's memorability, shared by every method: the pairing
        seed = rng.normal(0, 0.05, S)  # a seed's luck, shared too
        x = (MEANS[:, None, None] + member + seed[:, None] + rng.normal(0, 0.02, (m, S, 1))
             + rng.normal(0, 1, (m, S, N)))
        c = compare(x, draws=300, seed=b)
        covered += (c.lo <= MEANS) & (MEANS <= c.hi)
        ranked += (c.rank_lo <= true_rank) & (true_rank <= c.rank_hi)
        separated += c.separated.sum() // 2
    covered, ranked = covered / boards, ranked / boards
    print(f"\nmeans covered {np.round(covered, 3)}, ranks covered {np.round(ranked, 3)}, "
          f"{separated / boards:.1f} of {m * (m - 1) // 2} pairs separated on average")
    assert (covered >= 0.93).all() and (ranked >= 0.93).all()
    assert separated / boards >= 5  # the intervals are not so wide that they say nothing


def test_identical_methods_are_never_separated():
    x = np.random.default_rng(0).normal(size=(1, S, N))
    c = compare(np.repeat(x, 4, axis=0), draws=200)
    assert not c.separated.any()
    assert (c.rank_lo == 1).all() and (c.rank_hi == 4).all()
    assert (c.lo < c.estimate).all() and (c.estimate < c.hi).all()


def test_a_method_shifted_far_up_is_separated_and_ranked_last():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4, S, N))
    x[2] += 10.0
    c = compare(x, draws=200)
    assert c.separated[2].sum() == 3 and c.separated[:, 2].sum() == 3
    assert c.rank_lo[2] == c.rank_hi[2] == 4
    assert (np.delete(c.rank_hi, 2) == 3).all() and (np.delete(c.rank_lo, 2) == 1).all()


def test_a_small_shift_is_separated_when_paired_though_the_intervals_overlap():
    member = np.random.default_rng(2).normal(0, 1, (1, S, N))
    c = compare(np.concatenate([member, member + 0.05]), draws=500)
    assert c.hi[0] > c.lo[1]  # each mean alone is uncertain to about +-0.09 ...
    assert c.separated[0, 1] and list(c.rank_lo) == list(c.rank_hi) == [1, 2]  # ... their difference is exact


def test_the_membership_gap_subtracts_the_nonmembers_resampled_on_their_own():
    rng = np.random.default_rng(4)
    members, nonmembers = rng.normal(1.0, 1.0, (3, S, N)), rng.normal(0.0, 1.0, (3, S, 200))
    c = compare(members, nonmembers, draws=300)
    assert c.estimate == pytest.approx(members.mean(axis=(1, 2)) - nonmembers.mean(axis=(1, 2)))
    shifted = compare(members, nonmembers + 1.0, draws=300)  # the same draws: every resample moves by 1
    assert shifted.lo == pytest.approx(c.lo - 1.0) and shifted.hi == pytest.approx(c.hi - 1.0)
    alone = compare(members, draws=300)
    assert (c.hi - c.lo > alone.hi - alone.lo).all()  # the non-members' sampling adds its own


def test_one_seed_resamples_the_members_alone():
    c = compare(np.random.default_rng(5).normal(size=(2, 1, N)), draws=300)
    assert (c.hi - c.lo > 0.1).all() and c.draws == 300


def test_nan_and_mismatched_shapes_are_refused():
    x = np.zeros((2, S, N))
    x[1, 0, 5] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        compare(x)
    with pytest.raises(ValueError, match="methods"):
        compare(np.zeros((2, S, N)), np.zeros((3, S, 10)))
    with pytest.raises(ValueError, match="shape"):
        compare(np.zeros((S, N)))
