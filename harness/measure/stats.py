"""Summaries over seeds, kept free of torch so the leaderboard app loads quickly."""

from __future__ import annotations

import math
from collections.abc import Sequence


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
