"""Methods compared on the same teacher, members and seeds: paired intervals and rank intervals.

Two methods run on one member sample at the same seeds differ far less than their own intervals
suggest, since a member's memorability and a seed's luck are shared. The two-way (pigeonhole)
bootstrap resamples seeds and members independently, each draw the same for every method (Owen,
2007, "The pigeonhole bootstrap"), so differences keep their pairing. Torch-free: numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Comparison:
    """Each method's measure (higher = leaks more) and 95% intervals; ranks run from 1, leaks least."""
    estimate: np.ndarray  # (M,) the mean over seeds and members (less the non-members' mean)
    lo: np.ndarray  # (M,) 95% percentile interval
    hi: np.ndarray
    rank_lo: np.ndarray  # (M,) int: the 95% rank interval
    rank_hi: np.ndarray
    separated: np.ndarray  # (M, M) bool: the 95% interval of estimate[i] - estimate[j] excludes 0
    draws: int


def compare(members: np.ndarray, nonmembers: np.ndarray | None = None, *, draws: int = 2000,
            seed: int = 0) -> Comparison:
    """`members` (M methods, S seeds, N members) of per-member values -> each method's mean and its
    paired comparisons; with `nonmembers` (M, S, K), the mean over members less that over non-members
    (the membership gap, e.g. of -suffix loss), the non-members resampled apart from the members.

    Each draw weights seeds and members by multinomial counts, one seed draw and one member draw for
    all methods, the weights multiplied (Owen, 2007). Intervals are percentile ones. The rank interval
    follows from the pairwise ones, so it never contradicts them: rank_lo = 1 + the methods separated
    below i, rank_hi = M - those separated above i; two methods share a rank ("=N") exactly where
    their rank intervals overlap."""
    x = _checked(members, "members")
    m, s, _ = x.shape
    y = None if nonmembers is None else _checked(nonmembers, "nonmembers")
    if y is not None and y.shape[:2] != (m, s):
        raise ValueError(f"nonmembers are {y.shape[0]} methods x {y.shape[1]} seeds, members {m} x {s}")
    rng = np.random.default_rng(seed)
    w = rng.multinomial(s, np.full(s, 1 / s), size=draws) / s  # (B, S), each row sums to 1
    estimate, boot = _weighted(x, w, rng)
    if y is not None:
        gap, boot_y = _weighted(y, w, rng)  # the same seeds: a seed is one run, members and non-members alike
        estimate, boot = estimate - gap, boot - boot_y
    lo, hi = np.quantile(boot, [0.025, 0.975], axis=0)
    diff = boot[:, :, None] - boot[:, None, :]  # (B, M, M): i less j at each draw
    d_lo, d_hi = np.quantile(diff, [0.025, 0.975], axis=0)
    below, above = d_lo > 0, d_hi < 0  # j leaks less than i, or more
    return Comparison(estimate=estimate, lo=lo, hi=hi, rank_lo=1 + below.sum(1), rank_hi=m - above.sum(1),
                      separated=below | above, draws=draws)


def _checked(a: np.ndarray, name: str) -> np.ndarray:
    a = np.asarray(a, dtype=float)
    if a.ndim != 3 or 0 in a.shape:
        raise ValueError(f"{name} must be (methods, seeds, items), none empty; got shape {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} hold NaN or infinite values: a method without a value for some member cannot be paired")
    return a


def _weighted(a: np.ndarray, seed_weights: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(M,) means of `a` (M, S, N), and (B, M) their resampled values: the given seed weights times fresh
    multinomial item weights, one draw for every method."""
    m, s, n = a.shape
    b = len(seed_weights)
    picks = rng.integers(0, n, (b, n)) + n * np.arange(b)[:, None]  # N items drawn with replacement per draw
    u = np.bincount(picks.ravel(), minlength=b * n).reshape(b, n) / n  # (B, N), multinomial counts / N
    per_seed = (u @ a.reshape(m * s, n).T).reshape(b, m, s)
    return a.mean(axis=(1, 2)), np.einsum("bms,bs->bm", per_seed, seed_weights)
