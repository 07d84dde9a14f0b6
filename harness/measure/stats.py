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


def wilson(k: float, n: float) -> tuple[float, float, float]:
    """A share k / n and its 95% Wilson score interval (Wilson, 1927): never outside [0, 1], and
    honest at k = 0 or k = n, where the normal interval has zero width."""
    if not n:
        return math.nan, math.nan, math.nan
    p = k / n
    denom = 1 + Z95**2 / n
    centre = (p + Z95**2 / (2 * n)) / denom
    half = Z95 * math.sqrt(p * (1 - p) / n + Z95**2 / (4 * n * n)) / denom
    return p, 0.0 if k == 0 else max(0.0, centre - half), 1.0 if k == n else min(1.0, centre + half)


def rate_ratio(k1: float, n1: float, k2: float, n2: float) -> tuple[float, float, float]:
    """(k1 / n1) / (k2 / n2) with its 95% interval on the log scale (Katz et al., 1978), from pooled
    counts; NaN when either count is below MIN_COUNT."""
    if not (enough(k1) and enough(k2)) or not n1 or not n2:
        return math.nan, math.nan, math.nan
    r = (k1 / n1) / (k2 / n2)
    se = math.sqrt(max(0.0, 1 / k1 - 1 / n1 + 1 / k2 - 1 / n2))
    return r, r * math.exp(-Z95 * se), r * math.exp(Z95 * se)
