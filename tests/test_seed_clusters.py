"""Pooled shares over seeds that share one member sample: the design effect and where it is applied."""

from __future__ import annotations

import math

import numpy as np
import pytest

from harness.measure.dp_bound import check
from harness.measure.seed_clusters import design, member_totals, overlap_sets
from harness.measure.stats import Z95, crossed_design_effect, design_effect, rate_ratio, wilson
from harness.protocol.reproduce import FINDINGS, aggregate
from harness.store import connection
from tests.conftest import ROOT

BY_NAME = {f.name: f for f in FINDINGS}


def test_independent_seeds_have_no_design_effect_and_identical_ones_the_number_of_seeds():
    rng = np.random.default_rng(0)
    independent = rng.random((4000, 3)) < 0.1  # member x seed verdicts drawn independently
    assert 1.0 <= design_effect(independent.sum(1).tolist(), [3] * 4000) < 1.15
    identical = np.repeat(rng.random((4000, 1)) < 0.1, 3, axis=1)  # a member memorized at every seed or none
    assert design_effect(identical.sum(1).tolist(), [3] * 4000) == 3.0  # the most 3 seeds can add
    assert design_effect([0] * 50, [3] * 50) == 3.0  # nothing memorized: no variance to estimate, the largest


def test_nothing_memorized_rests_on_the_members_not_the_pooled_tests():
    _, lo, hi = wilson(0, 1536, design([0] * 512, [3] * 512, 0, 1536, 3, [0, 0, 0]))
    assert lo == 0.0 and hi == pytest.approx(wilson(0, 512)[2]) and 0.0074 < hi < 0.0075  # 512 clusters, not 1,536
    assert crossed_design_effect([0, 0, 0], [0] * 512) == 3.0 and design_effect([3] * 20, [3] * 20) == 3.0


def test_the_crossed_design_effect_is_the_two_way_anova_of_the_verdicts():
    """From the counts by seed and by member alone, it is the ANOVA moment estimate on the whole 0/1 table."""
    rng = np.random.default_rng(4)
    y = (rng.random((3, 400)) < rng.beta(0.3, 2.0, 400) * rng.uniform(0.3, 1.7, (3, 1))).astype(float)
    s, n = y.shape
    grand, by_seed, by_member = y.mean(), y.mean(1), y.mean(0)
    ms_seed = n * ((by_seed - grand) ** 2).sum() / (s - 1)
    ms_member = s * ((by_member - grand) ** 2).sum() / (n - 1)
    ms_resid = ((y - by_seed[:, None] - by_member + grand) ** 2).sum() / ((s - 1) * (n - 1))
    var = (ms_seed + ms_member - ms_resid) / (s * n)
    assert var > ms_member / (s * n)  # the seeds' variance is there, above the floor
    deff = crossed_design_effect(y.sum(1).tolist(), y.sum(0).tolist())
    assert deff == pytest.approx(var / (grand * (1 - grand) / (s * n)))
    assert deff > 1.5 * design_effect(y.sum(0).tolist(), [s] * n)  # Kish holds the seeds fixed


def test_the_crossed_variance_is_that_of_a_fresh_draw_of_members_and_seeds():
    rng = np.random.default_rng(3)
    boards, s, n = 2000, 3, 512
    p = np.minimum(1, rng.beta(0.3, 2.0, (boards, 1, n)) * rng.uniform(0.5, 1.5, (boards, s, 1)))
    y = rng.random((boards, s, n)) < p
    rate = y.mean((1, 2))
    estimated = [crossed_design_effect(v.sum(1).tolist(), v.sum(0).tolist()) * r * (1 - r) / (s * n)
                 for v, r in zip(y, rate)]
    assert np.mean(estimated) == pytest.approx(np.var(rate, ddof=1), rel=0.1)  # unbiased but for its floors


def test_seeds_that_disagree_widen_the_interval_and_only_where_every_seed_tests_every_member():
    num = [2, 2, 2, 1, 1, 1] + [0] * 506  # 6, 0 and 3 memorized by seed: 3 members at two seeds, 3 at one
    kish = design(num, [3] * 512, 9, 1536, 3)
    both = design(num, [3] * 512, 9, 1536, 3, [6, 0, 3])
    assert kish == design_effect(num, [3] * 512) < 2 and both == crossed_design_effect([6, 0, 3], num) > 3.5
    assert wilson(9, 1536, both)[2] > 0.019 > 0.0133 > wilson(9, 1536, kish)[2]  # a bootstrap gives 1.56%
    assert design(num, [3] * 512, 9, 1536, 3, [3, 3, 3]) == pytest.approx(kish)  # steady seeds add nothing
    assert design(num, [3] * 511 + [2], 9, 1535, 3, [6, 0, 3]) == design_effect(num, [3] * 511 + [2])  # unbalanced
    assert design(num, [3] * 512, 9, 1536, 3, [6, 0, 2]) == kish  # counts that disagree with the totals
    assert crossed_design_effect([512, 0, 0], [1] * 512) == 512  # at most the members: n / deff never below S


def test_an_interval_on_few_effective_counts_reaches_down_to_the_exact_one():
    from scipy.stats import beta

    for k, deff in ((1, 1.0), (2, 1.0), (9, 1.66), (20, 3.0)):
        x, n = k / deff, 1536 / deff
        assert wilson(k, 1536, deff)[1] == pytest.approx(min(wilson(x, n)[1], beta.ppf(0.025, x, n - x + 1)))
    assert wilson(1, 1536)[1] < 0.1 / 1536  # Wilson's own, 0.18 / 1536, misses an expected 0.1 whenever 1 turns up
    p, lo, hi = wilson(228, 1536, 2.5)  # 91 effective: Wilson's
    assert lo == pytest.approx((p + Z95**2 / (2 * 614.4) - Z95 * math.sqrt(p * (1 - p) / 614.4 + Z95**2 / 614.4**2 / 4))
                               / (1 + Z95**2 / 614.4))


def test_the_design_effect_is_the_variance_of_resampled_members():
    """The pooled share's variance when the members are drawn again (a bootstrap over members) is
    the binomial variance times the design effect: what the widened interval is for."""
    rng = np.random.default_rng(1)
    n, seeds = 1500, 3
    propensity = rng.beta(0.3, 2.0, n)  # members differ in how memorable they are, as repeats make them
    y = (rng.random((n, seeds)) < propensity[:, None]).sum(1)
    p = y.sum() / (n * seeds)
    boot = [y[idx].sum() / (n * seeds) for idx in rng.integers(0, n, (3000, n))]
    deff = design_effect(y.tolist(), [seeds] * n)
    assert 1.5 < deff < 3.0
    assert np.var(boot) == pytest.approx(deff * p * (1 - p) / (n * seeds), rel=0.12)


def test_a_designed_interval_is_wilson_on_the_effective_counts():
    p, lo, hi = wilson(228, 1536, 2.5)
    assert p == pytest.approx(228 / 1536)
    assert (lo, hi) == pytest.approx(wilson(228 / 2.5, 1536 / 2.5)[1:])
    assert hi - lo > (wilson(228, 1536)[2] - wilson(228, 1536)[1]) * 1.5
    assert wilson(0, 1536, 3.0)[1] == 0.0 and wilson(20, 20, 3.0)[2] == 1.0
    r, rlo, rhi = rate_ratio(228, 1536, 30, 1536, 2.6, 1.0)
    assert r == pytest.approx(7.6) and math.log(rhi / rlo) > math.log(rate_ratio(228, 1536, 30, 1536)[2]
                                                                       / rate_ratio(228, 1536, 30, 1536)[1])


def test_member_totals_sum_each_count_over_the_runs():
    rows = [("r1", "a", "teacher", True), ("r1", "a", "baseline", False), ("r1", "a", "student", True),
            ("r1", "b", "teacher", True), ("r1", "b", "baseline", True), ("r1", "b", "student", True),
            ("r2", "a", "teacher", True), ("r2", "a", "baseline", False), ("r2", "a", "student", False),
            ("r2", "b", "teacher", False), ("r2", "b", "baseline", True), ("r2", "b", "student", False)]
    t = member_totals(rows)
    assert t["n_members"] == [2, 2] and t["memorized_teacher"] == [2, 1] and t["memorized_student"] == [1, 1]
    assert t["teacher_exclusive"] == [2, 0] and t["inherited"] == [1, 0] and t["easy"] == [0, 1]
    assert overlap_sets({"teacher": {1, 2}, "baseline": {2}, "student": {1}})["inherited"] == {1}
    assert design(t["inherited"], t["teacher_exclusive"], 1, 2, 2) == design_effect([1, 0], [2, 0])
    assert design(t["inherited"], t["teacher_exclusive"], 5, 9, 2) == 2.0  # totals that disagree: the bound


def test_reproduce_pools_with_the_members_design_effect_or_the_number_of_seeds():
    f = BY_NAME["hard-KD reduction"]  # baseline / hard-KD student
    seeds = [(79, 512, 76, 512), (75, 512, 78, 512), (74, 512, 73, 512)]
    # without the members' totals, each rate's design effect is the number of seeds, its largest
    assert aggregate(f, seeds).lo == pytest.approx(rate_ratio(228, 1536, 227, 1536, 3.0, 3.0)[1])
    base = [3] * 76 + [0] * 436  # 76 members memorized at every seed (228), as duplicates are
    student = [3] * 75 + [2] + [0] * 436  # 227
    tested = [3] * 512
    row = aggregate(f, seeds, [base, tested, student, tested])
    assert (row.lo, row.hi) == pytest.approx(rate_ratio(228, 1536, 227, 1536, design_effect(base, tested),
                                                        design_effect(student, tested))[1:])
    assert design_effect(student, tested) < 3.0  # one member memorized at 2 seeds of 3


def test_the_shipped_boards_intervals_carry_the_seeds_design_effect():
    from harness.leaderboard import standings
    from harness.store.read import member_verdicts

    snapshot = ROOT / "leaderboards" / "default.duckdb"
    with connection.reading(snapshot) as con:
        rows = standings.board(con)
        soft = rows[rows["method"] == "soft-kd"].iloc[0]
        base = rows[rows["reference"]].iloc[0]
        ids = standings.run_ids(soft["run_id"])
        verdicts = member_verdicts(con, ids)
    t = member_totals(verdicts)
    # the teacher memorizes the 16x members at every seed: its seeds agree, and their design effect is near 3
    assert 2.0 < design_effect(t["memorized_teacher"], t["n_members"]) <= 3.0
    # the baseline's interval carries its own design effect (it memorizes 1 member over the seeds now)
    deff = design_effect(t["memorized_baseline"], t["n_members"])
    k = sum(t["memorized_baseline"])
    assert (base["mem_rate_baseline_lo"], base["mem_rate_baseline_hi"]) == pytest.approx(wilson(k, 1536, deff)[1:])


def test_the_bound_checks_tpr_counts_seeds_that_flag_the_same_members_once():
    rng = np.random.default_rng(2)
    nonmembers = rng.normal(0.0, 1.0, 1000)
    members = rng.normal(0.5, 1.0, 1000)
    [same] = check([(members, nonmembers)] * 3, math.inf, 0.0, (0.05,))  # three identical seeds
    k = 3 * int((members > np.sort(nonmembers)[::-1][50]).sum())
    assert (same.tpr, same.tpr_lo, same.tpr_hi) == pytest.approx(wilson(k, 3000, 3.0))
    [fresh] = check([(rng.normal(0.5, 1.0, 1000), nonmembers) for _ in range(3)], math.inf, 0.0, (0.05,))
    assert fresh.tpr_hi - fresh.tpr_lo < 0.7 * (same.tpr_hi - same.tpr_lo)  # independent seeds: 3,000 tests
