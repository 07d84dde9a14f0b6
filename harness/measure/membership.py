"""Membership-inference figures from attack scores: higher means "more likely a member".

Members are the positives. Point estimates come from scikit-learn; the bootstrap intervals from
`resampled_figures`, which agrees with it exactly on every resample, because a Python loop over
1000 resamples is too slow for the ~90 calls of a run (attacks x roles x repeat strata). The
scores are sorted once, and each resample is reduced to counts of its draws, so no resample is
ranked or sorted (benchmarks/attack_bootstrap.py measures it against the per-resample rank-sum
and partition it replaced, on the same draws).
"""

from __future__ import annotations

import zlib

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve

from harness.measure.stats import MIN_FALSE_POSITIVES

FPRS = (0.01, 0.001)  # TPR is reported at these false-positive rates
LOW_FPR = 0.01  # below this the log-axis ROC plot needs every point
CHUNK_BYTES = 100 * 2**20  # the bootstrap draws in chunks whose (draws, scores) arrays stay under this
BLOCK_ROWS = 256  # resampled_figures counts this many resamples at a time (benchmarks/attack_bootstrap.py)


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
    if n_boot < 1:
        raise ValueError(f"n_boot must be at least 1, got {n_boot}")
    pos, neg = _scores(members, nonmembers)
    y = np.r_[np.ones(len(pos)), np.zeros(len(neg))]
    fpr, tpr, _ = roc_curve(y, np.r_[pos, neg], drop_intermediate=False)  # every threshold counts
    resolved = [a for a in FPRS if a * len(neg) >= MIN_FALSE_POSITIVES]
    boot = _bootstrap(pos, neg, n_boot, seed, resolved)
    out = _with_interval("auc", float(roc_auc_score(y, np.r_[pos, neg])), boot["auc"])
    for a in FPRS:
        name = f"tpr_{fpr_name(a)}"
        if a not in resolved:
            out |= {f"{name}{end}": float("nan") for end in ("", "_lo", "_hi")}
            continue
        out |= _with_interval(name, float(tpr[fpr <= a].max()), boot[name])
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


def resampled_figures(members: np.ndarray, nonmembers: np.ndarray, member_draws: np.ndarray,
                      nonmember_draws: np.ndarray, fprs: tuple[float, ...] = FPRS) -> dict[str, np.ndarray]:
    """Each resample's AUC and TPR at each FPR in fprs, exactly as scikit-learn gives them on the
    resample itself (`members[member_draws[b]]` against `nonmembers[nonmember_draws[b]]`):
    {"auc": (B,), "tpr_1": (B,), "tpr_0.1": (B,)}.

    members (n_pos,) and nonmembers (n_neg,) are the scores, the draws (B, m_pos) and (B, m_neg)
    indices into them. No resample is sorted: everything rests on each member's place among the sorted
    non-members, found once. A member occurrence's AUC credit is the non-member occurrences strictly
    below it plus half those tied with it (Mann-Whitney). It is detected at FPR a (sklearn's roc_curve,
    every threshold) when its own score as threshold passes: at most k non-member occurrences score
    >= it, k the most false positives a allows. Members between the same two non-member scores are
    alike for both, so the draws are counted per such slot, and the non-members' running counts kept
    at the slots' edges only (at most 2 n_pos + 1 bins a row): O(B x (m_pos + m_neg)). Every sum is
    of integer counts, exact; only the final division rounds.
    """
    members, nonmembers = np.asarray(members), np.asarray(nonmembers)
    pd, nd = np.asarray(member_draws), np.asarray(nonmember_draws)
    if pd.ndim != 2 or nd.ndim != 2 or len(pd) != len(nd) or 0 in (*pd.shape, *nd.shape):
        raise ValueError(f"draws must be (B, m) index arrays with the same B, B and m >= 1, got {pd.shape} "
                         f"and {nd.shape}")
    ns = np.sort(nonmembers)
    left, right = np.searchsorted(ns, members, "left"), np.searchsorted(ns, members, "right")
    slots, slot_of = np.unique(np.stack([left, right], axis=1), axis=0, return_inverse=True)
    edges, edge_of = np.unique(slots, return_inverse=True)  # the non-member places the figures need
    edge_of = edge_of.reshape(slots.shape)
    # a non-member counts towards the running count at edge e when its place in ns is below edges[e]; an
    # edge never splits a run of tied scores, so the first place of each score stands for all its copies
    bucket = np.searchsorted(edges, np.searchsorted(ns, nonmembers, "left"), "right")
    n_pos, n_neg = pd.shape[1], nd.shape[1]
    ks = [int(np.count_nonzero(np.arange(n_neg + 1) / n_neg <= a)) - 1 for a in fprs]  # sklearn's float test
    parts = []
    for start in range(0, len(pd), BLOCK_ROWS):  # blocks of resamples whose working set stays in cache
        rows = slice(start, start + BLOCK_ROWS)
        per_slot = _counts(slot_of.ravel(), pd[rows], len(slots))  # (b, slots): member occurrences per slot
        below = np.cumsum(_counts(bucket, nd[rows], len(edges) + 1), axis=1)  # (b, edges + 1) running counts
        lo, hi = below[:, edge_of[:, 0]], below[:, edge_of[:, 1]]  # (b, slots): strictly below; up to and tied
        parts.append([np.einsum("bs,bs->b", per_slot, lo + hi) / (2.0 * n_pos * n_neg)])
        for k in ks:  # a member occurrence is detected when at most k non-member occurrences score >= it
            parts[-1].append(np.einsum("bs,bs->b", per_slot, (n_neg - lo <= k).astype(per_slot.dtype)) / n_pos)
    names = ["auc", *(f"tpr_{fpr_name(a)}" for a in fprs)]
    return {name: np.concatenate([p[i] for p in parts]) for i, name in enumerate(names)}


def _bootstrap(pos: np.ndarray, neg: np.ndarray, n_boot: int, seed: int,
               fprs: list[float]) -> dict[str, np.ndarray]:
    """resampled_figures over n_boot stratified resamples (members and non-members drawn apart, each
    with replacement to its own size), in chunks of draws that keep each (draws, scores) array under
    CHUNK_BYTES. Each chunk draws its members' indices, then its non-members': in one chunk, the same
    resamples as the per-draw rank-sum bootstrap this replaced drew at the same seed."""
    rng = np.random.default_rng(seed)
    step = max(1, CHUNK_BYTES // (8 * (len(pos) + len(neg))))
    parts = []
    for start in range(0, n_boot, step):
        b = min(step, n_boot - start)
        pd, nd = rng.integers(0, len(pos), (b, len(pos))), rng.integers(0, len(neg), (b, len(neg)))
        parts.append(resampled_figures(pos, neg, pd, nd, tuple(fprs)))
    return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}


def _counts(label: np.ndarray, draws: np.ndarray, n: int) -> np.ndarray:
    """(B, n) how often each label 0..n-1 occurs in each row of label[draws], draws (B, m)."""
    b = len(draws)
    flat = label[draws]
    flat += n * np.arange(b)[:, None]  # row r's labels become r * n + label: one bincount for all rows
    return np.bincount(flat.ravel(), minlength=b * n).reshape(b, n)


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
