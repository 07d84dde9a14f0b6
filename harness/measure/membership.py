"""Membership-inference figures from attack scores: higher means "more likely a member".

Members are the positives. Point estimates come from scikit-learn; the bootstrap intervals from
vectorized re-implementations (`batch_auc`, `batch_tpr`) that agree with it on every resample,
because a Python loop over 1000 resamples is too slow for the 15+ attacks of a run.
"""

from __future__ import annotations

import zlib

import numpy as np
from scipy.stats import rankdata
from sklearn.metrics import roc_auc_score, roc_curve

from harness.measure.stats import MIN_FALSE_POSITIVES

FPRS = (0.01, 0.001)  # TPR is reported at these false-positive rates
LOW_FPR = 0.01  # below this the log-axis ROC plot needs every point


def zlib_entropy(text: str) -> float:
    """Bits of the zlib-compressed UTF-8 text: how compressible (repetitive, boilerplate) it is."""
    return 8.0 * len(zlib.compress(text.encode("utf-8")))


def fpr_name(fpr: float) -> str:
    """The key suffix of an FPR: its percentage, so 0.01 -> "1" and 0.001 -> "0.1"."""
    return f"{100 * fpr:g}"


def attack_figures(members: np.ndarray, nonmembers: np.ndarray, *, n_boot: int = 1000,
                   seed: int = 0) -> dict[str, float]:
    """AUC and TPR at each FPR in FPRS, each with a stratified bootstrap 95% percentile interval.

    TPR at FPR a is the largest TPR over all thresholds whose FPR is <= a (Carlini et al., "Membership
    inference attacks from first principles"). Where the non-members allow fewer than
    MIN_FALSE_POSITIVES false positives at a (a * n_nonmembers < 10), the TPR rests on a handful of
    non-members and is NaN (n/a), with its interval.
    Keys: "auc", "auc_lo", "auc_hi", then "tpr_1", "tpr_1_lo", "tpr_1_hi", "tpr_0.1", ... .
    """
    pos, neg = _scores(members, nonmembers)
    y = np.r_[np.ones(len(pos)), np.zeros(len(neg))]
    fpr, tpr, _ = roc_curve(y, np.r_[pos, neg], drop_intermediate=False)  # every threshold counts
    rng = np.random.default_rng(seed)
    boot_pos = pos[rng.integers(0, len(pos), (n_boot, len(pos)))]
    boot_neg = neg[rng.integers(0, len(neg), (n_boot, len(neg)))]
    out = _with_interval("auc", float(roc_auc_score(y, np.r_[pos, neg])), batch_auc(boot_pos, boot_neg))
    for a in FPRS:
        if a * len(neg) < MIN_FALSE_POSITIVES:
            out |= {f"tpr_{fpr_name(a)}{end}": float("nan") for end in ("", "_lo", "_hi")}
            continue
        point = float(tpr[fpr <= a].max())
        out |= _with_interval(f"tpr_{fpr_name(a)}", point, batch_tpr(boot_pos, boot_neg, a))
    return out


def roc_points(members: np.ndarray, nonmembers: np.ndarray,
               max_points: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """(fpr, tpr) of the ROC curve, thinned to at most max_points for storage.

    The first and last points are always kept, then every point with FPR <= 1% (the region a
    log-axis plot shows) as far as the budget goes, then the rest evenly by index. Should the low
    region alone exceed the budget, it is thinned evenly too.
    """
    if max_points < 2:
        raise ValueError(f"max_points must be at least 2 (the ends of the curve), got {max_points}")
    pos, neg = _scores(members, nonmembers)
    fpr, tpr, _ = roc_curve(np.r_[np.ones(len(pos)), np.zeros(len(neg))], np.r_[pos, neg])
    if len(fpr) <= max_points:
        return fpr, tpr
    inner = np.arange(1, len(fpr) - 1)
    low, high = inner[fpr[inner] <= LOW_FPR], inner[fpr[inner] > LOW_FPR]
    budget = max_points - 2
    low = _evenly(low, budget)
    keep = np.r_[0, low, _evenly(high, budget - len(low)), len(fpr) - 1]
    keep = np.unique(keep)
    return fpr[keep], tpr[keep]


def batch_auc(members: np.ndarray, nonmembers: np.ndarray) -> np.ndarray:
    """AUC of each row pair (rank-sum / Mann-Whitney U, average ranks for ties): shape (B,)."""
    n_pos, n_neg = members.shape[1], nonmembers.shape[1]
    ranks = rankdata(np.concatenate([members, nonmembers], axis=1), axis=1)
    u = ranks[:, :n_pos].sum(axis=1) - n_pos * (n_pos + 1) / 2
    return u / (n_pos * n_neg)


def batch_tpr(members: np.ndarray, nonmembers: np.ndarray, fpr: float) -> np.ndarray:
    """TPR at FPR <= fpr of each row pair, as sklearn's roc_curve would give it: shape (B,).

    With k the most false positives allowed, the lowest admissible threshold lies just above the
    (k+1)-th highest non-member score; a threshold counts every score >= it, so members tied with
    that non-member score are not detected.
    """
    n_neg = nonmembers.shape[1]
    k = int(np.count_nonzero(np.arange(n_neg + 1) / n_neg <= fpr)) - 1  # same float test as sklearn
    if k >= n_neg:
        return np.ones(len(members))
    cut = np.partition(nonmembers, n_neg - 1 - k, axis=1)[:, n_neg - 1 - k]
    return (members > cut[:, None]).mean(axis=1)


def _with_interval(name: str, point: float, boot: np.ndarray) -> dict[str, float]:
    lo, hi = np.percentile(boot, [2.5, 97.5])
    return {name: point, f"{name}_lo": float(lo), f"{name}_hi": float(hi)}


def _evenly(index: np.ndarray, budget: int) -> np.ndarray:
    """At most budget entries of index, spread evenly and keeping its ends."""
    if len(index) <= budget:
        return index
    if budget <= 0:
        return index[:0]
    return index[np.unique(np.linspace(0, len(index) - 1, budget).round().astype(int))]


def _scores(members: np.ndarray, nonmembers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both score sets as flat float arrays, refusing empty or non-finite ones rather than guessing."""
    pos = np.asarray(members, dtype=float).ravel()
    neg = np.asarray(nonmembers, dtype=float).ravel()
    if not len(pos) or not len(neg):
        raise ValueError(f"an attack needs members and non-members, got {len(pos)} and {len(neg)}")
    bad_pos, bad_neg = int((~np.isfinite(pos)).sum()), int((~np.isfinite(neg)).sum())
    if bad_pos or bad_neg:
        raise ValueError(f"{bad_pos + bad_neg} non-finite attack scores (NaN or inf): {bad_pos} of "
                         f"{len(pos)} members, {bad_neg} of {len(neg)} non-members")
    return pos, neg
