"""Summaries over seeds and counts, kept free of torch so the leaderboard app loads quickly."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

# The fewest memorized members a ratio or share may rest on. With 10, a Wilson interval on a share
# is at most about +-30 points wide and a ratio's log-scale interval under a factor of 2.5 either
# way; below it (2 of 2 members is "100%") the figure says nothing, and the harness prints n/a.
MIN_COUNT = 10
# The fewest false positives an FPR must allow among the non-members for a TPR at it to mean
# anything: at 0.1% FPR 512 non-members allow none, and at 1% five, so both are n/a there.
MIN_FALSE_POSITIVES = 10

Z95 = 1.959963984540054


def enough(count: float | None) -> bool:
    """Whether a count of memorized members is large enough for a ratio to rest on."""
    return count is not None and not math.isnan(count) and count >= MIN_COUNT


def stored_count(figures: Mapping[str, float | None], name: str) -> float:
    """A run's count `name` (`memorized_<role>`, `easy`) as stored; for a run stored before the counts
    were, recovered from its rate (rate x `n_members`; the easy share x the student's count). NaN
    when neither is there."""
    v = figures.get(name)
    if v is not None and not math.isnan(v):
        return float(v)
    if name.startswith("memorized_"):
        return count_from_rate(figures.get("mem_rate_" + name[len("memorized_"):]), figures.get("n_members"))
    if name == "easy":
        return count_from_rate(figures.get("easy_share"), stored_count(figures, "memorized_student"))
    return math.nan


def count_from_rate(rate: float | None, n: float | None) -> float:
    """round(rate x n): a count recovered from a stored rate; NaN without one."""
    if rate is None or n is None or math.isnan(rate) or math.isnan(n):
        return math.nan
    return float(round(rate * n))


def interval(values: Sequence[float]) -> tuple[float, float, float]:
    """Mean and 95% t-interval over seeds; one seed gives a zero-width interval."""
    vals = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not vals:
        return math.nan, math.nan, math.nan
    mean = sum(vals) / len(vals)
    if len(vals) < 2:
        return mean, mean, mean
    from scipy import stats

    sd = (sum((v - mean) ** 2 for v in vals) / (len(vals) - 1)) ** 0.5
    half = stats.t.ppf(0.975, len(vals) - 1) * sd / math.sqrt(len(vals))
    return mean, mean - half, mean + half


def design_effect(num: Sequence[float], den: Sequence[float]) -> float:
    """Kish's (1965) design effect of a share pooled over seeds that test one sample of members.

    `num[i]` and `den[i]` are member i's counts summed over the seeds (memorized, and tested: the
    seeds for a rate, or e.g. the student's memorized count for the easy share). A member's verdicts
    at the seeds agree far more than independent draws would (a 16x member is memorized at every
    seed), so the pooled tests are clusters, not independent trials: the deff is the ratio estimator's
    variance over the binomial one, truncated below at 1 and above at the largest cluster (what
    the seeds can add at most), as Korn and Graubard (1998) do for small counts. Where no variance
    can be estimated (a share of 0 or 1, one member) it is that largest cluster, the conservative
    value: 0 of 512 members x 3 seeds rests on 512 clusters, not 1,536 trials."""
    total = float(sum(den))
    n = len(den)
    if total <= 0:
        return 1.0
    largest = float(max(den))
    r = float(sum(num)) / total
    if n < 2 or r <= 0.0 or r >= 1.0:
        return max(largest, 1.0)
    spread = sum((y - r * x) ** 2 for y, x in zip(num, den)) * n / (n - 1)
    return min(max(spread / (total * r * (1 - r)), 1.0), largest)


def crossed_design_effect(per_seed: Sequence[float], per_member: Sequence[float]) -> float:
    """The design effect of a rate pooled over S seeds that each test the same N members, carrying the
    seeds' variance as well as the members': Kish's deff (`design_effect`) treats the seeds as fixed,
    so counts of 6, 0 and 3 by seed get the interval of 3 steady ones.

    The verdicts y_sm follow the two-way crossed random-effects model mu + a_s + b_m + e_sm (Owen, 2007,
    "The pigeonhole bootstrap"); the unbiased ANOVA moment estimator of the grand mean's variance is
    (MS_seed + MS_member - MS_resid) / (S N) (Searle, Casella and McCulloch, 1992, ch. 4). For 0/1 verdicts
    in a balanced table the mean squares need only the counts by seed (`per_seed`) and the totals by member
    (`per_member`). The variance is floored at the one-way (members only) one, Kish's, and the deff
    bounded by [1, N]: the effective count n / deff never falls below S, as if each seed were one
    all-or-nothing trial, the most a seed's rate in [0, 1] can vary (p(1 - p)). S where the rate is 0 or 1."""
    s, m = len(per_seed), len(per_member)
    n = s * m
    k = float(sum(per_seed))
    if not s or m < 2 or k <= 0 or k >= n:
        return float(max(s, 1))
    p, c = k / n, k * k / n
    ss_member = sum(y * y for y in per_member) / s - c
    var = ss_member / (m - 1) / n  # MS_member / (S N): the members' clusters alone
    if s > 1:
        ss_seed = sum(x * x for x in per_seed) / m - c
        ss_resid = k - c - ss_seed - ss_member  # for 0/1 verdicts the total sum of squares is k - k^2 / n
        var = max(var, (ss_seed / (s - 1) + ss_member / (m - 1) - ss_resid / ((s - 1) * (m - 1))) / n)
    return min(max(var * n / (p * (1 - p)), 1.0), float(m))


def _counts(k: float, n: float) -> bool:
    """Whether k of n is a share at all: finite, 0 <= k <= n. A results file is read by value, and a count
    it holds (NaN, -inf, more memorized than tested) must give no figure, never a math domain error."""
    try:
        return math.isfinite(k) and math.isfinite(n) and 0 <= k <= n
    except TypeError:
        return False


def wilson(k: float, n: float, design: float = 1.0) -> tuple[float, float, float]:
    """A share k / n and its 95% Wilson score interval (Wilson, 1927): never outside [0, 1], and
    honest at k = 0 or k = n, where the normal interval has zero width. With a design effect
    (`design_effect`) the interval is taken on the effective counts k / design of n / design
    (Korn and Graubard, 1998); the share itself is unchanged. Under MIN_COUNT effective successes the
    lower bound is no higher than the exact (Clopper and Pearson, 1934) one on those counts: Wilson's
    own covers as little as 84% there, at an expected count near 0.2 (Brown, Cai and DasGupta, 2001,
    modify it alike)."""
    if not _counts(k, n) or not n or not (math.isfinite(design) and design > 0):
        return math.nan, math.nan, math.nan  # no share: no count, or counts no harness writes (a file read by value)
    p, whole = k / n, k == n
    x, n = k / design, n / design
    denom = 1 + Z95**2 / n
    centre = (p + Z95**2 / (2 * n)) / denom
    half = Z95 * math.sqrt(p * (1 - p) / n + Z95**2 / (4 * n * n)) / denom
    lo = 0.0 if k == 0 else max(0.0, centre - half)
    if 0 < x < MIN_COUNT:
        lo = min(lo, clopper_pearson(x, n)[1])
    return p, lo, 1.0 if whole else min(1.0, centre + half)


def clopper_pearson(k: float, n: float, level: float = 0.95) -> tuple[float, float, float]:
    """A share k / n and its exact two-sided interval (Clopper and Pearson, 1934): the beta quantiles
    that bound every binomial share consistent with k; never narrower than its level. NaN with no count."""
    if not _counts(k, n) or not n:
        return math.nan, math.nan, math.nan
    from scipy.special import betaincinv

    tail = (1 - level) / 2
    lo = 0.0 if k == 0 else float(betaincinv(k, n - k + 1, tail))
    hi = 1.0 if k == n else float(betaincinv(k + 1, n - k, 1 - tail))
    return k / n, lo, hi


def rate_ratio(k1: float, n1: float, k2: float, n2: float,
               design1: float = 1.0, design2: float = 1.0) -> tuple[float, float, float]:
    """(k1 / n1) / (k2 / n2) with its 95% interval on the log scale (Katz et al., 1978), from pooled
    counts, each rate's variance scaled by its design effect; NaN when either count is below MIN_COUNT.
    Both rates are on the same members, whose positive covariance the interval leaves out: wider, not narrower."""
    if not (enough(k1) and enough(k2)) or not n1 or not n2 or not (_counts(k1, n1) and _counts(k2, n2)):
        return math.nan, math.nan, math.nan
    if not all(math.isfinite(d) and d > 0 for d in (design1, design2)):
        return math.nan, math.nan, math.nan
    r = (k1 / n1) / (k2 / n2)
    se = math.sqrt(max(0.0, design1 * (1 / k1 - 1 / n1) + design2 * (1 / k2 - 1 / n2)))
    return r, r * math.exp(-Z95 * se), r * math.exp(Z95 * se)
