"""The attack figures' bootstrap: counts of draws against a rank-sum and a partition per resample.

    python benchmarks/attack_bootstrap.py [--boot 1000] [--repeat 3] [--quick]

`harness.measure.membership.attack_figures` gives an attack's AUC and TPR at 1% and 0.1% FPR with
stratified bootstrap 95% intervals (1000 resamples), and a run calls it ~90 times (5 attacks x 3
roles x all members and 5 repeat strata of 51-300 members, each against all non-members). It used
to materialize every resample, rank each one's pooled scores (`scipy.stats.rankdata` over
(1000, n_pos + n_neg)) for the AUC and partition its non-members (`np.partition`) for each TPR;
that way is copied below as `rank_sum_figures`. The harness's way (`resampled_figures`) sorts the
scores once and reduces each resample to counts of its draws per slot between non-member scores,
so no resample is ranked or sorted. Both draw the same resamples at a seed, so the script also
checks that they give the same figures and intervals, to the bit.

Timed, best of `--repeat` after a warm-up: one whole `attack_figures` call each way (sklearn's
point estimates included, the same in both) on normal scores, 512 members (every member) and 51
(the smallest repeat stratum) against 2,048 non-members. Then the harness's way again with
`membership.BLOCK_ROWS` (the resamples counted at a time: small enough for a block's counts to stay
in cache, large enough to pay numpy's per-call overhead rarely) at other values, the default marked.
The last line is `ratio R.RRx`: the rank-sum way's time over the harness's, the smaller of the two
cases' ratios. `--quick` (100 resamples, one timed call, 512 non-members) runs the same path in
seconds, to check the script, not to measure.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import _quick  # benchmarks/_quick.py: this folder is first on sys.path
import numpy as np
from scipy.stats import rankdata
from sklearn.metrics import roc_auc_score, roc_curve

from harness.measure import membership
from harness.measure.stats import MIN_FALSE_POSITIVES

# --quick: the same path in seconds (the figures then mean nothing).
QUICK = {"boot": 100, "repeat": 1, "nonmembers": 512}


def rank_sum_figures(members: np.ndarray, nonmembers: np.ndarray, *, n_boot: int = 1000,
                     seed: int = 0) -> dict[str, float]:
    """attack_figures as it was before `resampled_figures`: every resample materialized and ranked."""
    pos, neg = membership._scores(members, nonmembers)
    y = np.r_[np.ones(len(pos)), np.zeros(len(neg))]
    fpr, tpr, _ = roc_curve(y, np.r_[pos, neg], drop_intermediate=False)
    rng = np.random.default_rng(seed)
    boot_pos = pos[rng.integers(0, len(pos), (n_boot, len(pos)))]
    boot_neg = neg[rng.integers(0, len(neg), (n_boot, len(neg)))]
    out = membership._with_interval("auc", float(roc_auc_score(y, np.r_[pos, neg])), batch_auc(boot_pos, boot_neg))
    for a in membership.FPRS:
        name = f"tpr_{membership.fpr_name(a)}"
        if a * len(neg) < MIN_FALSE_POSITIVES:
            out |= {f"{name}{end}": float("nan") for end in ("", "_lo", "_hi")}
            continue
        out |= membership._with_interval(name, float(tpr[fpr <= a].max()), batch_tpr(boot_pos, boot_neg, a))
    return out


def batch_auc(members: np.ndarray, nonmembers: np.ndarray) -> np.ndarray:
    """AUC of each row pair (rank-sum / Mann-Whitney U, average ranks for ties): shape (B,)."""
    n_pos, n_neg = members.shape[1], nonmembers.shape[1]
    ranks = rankdata(np.concatenate([members, nonmembers], axis=1), axis=1)
    u = ranks[:, :n_pos].sum(axis=1) - n_pos * (n_pos + 1) / 2
    return u / (n_pos * n_neg)


def batch_tpr(members: np.ndarray, nonmembers: np.ndarray, fpr: float) -> np.ndarray:
    """TPR at FPR <= fpr of each row pair, as sklearn's roc_curve would give it: shape (B,)."""
    n_neg = nonmembers.shape[1]
    k = int(np.count_nonzero(np.arange(n_neg + 1) / n_neg <= fpr)) - 1
    if k >= n_neg:
        return np.ones(len(members))
    cut = np.partition(nonmembers, n_neg - 1 - k, axis=1)[:, n_neg - 1 - k]
    return (members > cut[:, None]).mean(axis=1)


def best_of(figures, members: np.ndarray, nonmembers: np.ndarray, n_boot: int,
            repeat: int) -> tuple[float, dict[str, float]]:
    """The best time of `repeat` calls of figures(members, nonmembers) after a warm-up, and its figures."""
    out = figures(members, nonmembers, n_boot=n_boot)  # warm-up
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        out = figures(members, nonmembers, n_boot=n_boot)
        times.append(time.perf_counter() - start)
    return min(times), out


def same(a: dict[str, float], b: dict[str, float]) -> bool:
    return a.keys() == b.keys() and all(a[k] == b[k] or (np.isnan(a[k]) and np.isnan(b[k])) for k in a)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--boot", type=int, default=1000, help="bootstrap resamples per call")
    parser.add_argument("--repeat", type=int, default=3, help="timed calls per way, the best kept")
    parser.add_argument("--nonmembers", type=int, default=2048)
    opts = _quick.options(parser, QUICK, "100 resamples, one timed call, 512 non-members")
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, numpy {np.__version__}; "
          f"{opts.boot} resamples a call, best of {opts.repeat}")
    rng = np.random.default_rng(0)
    nonmembers = rng.normal(0, 1, opts.nonmembers)
    ratios = []
    for n_members in (512, 51):
        members = rng.normal(0.5, 1, n_members)
        t_old, old = best_of(rank_sum_figures, members, nonmembers, opts.boot, opts.repeat)
        t_new, new = best_of(membership.attack_figures, members, nonmembers, opts.boot, opts.repeat)
        if not same(old, new):
            raise SystemExit(f"the two ways disagree at {n_members} members: {old} against {new}")
        ratios.append(t_old / t_new)
        print(f"{n_members:4d} members vs {opts.nonmembers} non-members: rank-sum {t_old:7.3f} s, "
              f"counts (harness) {t_new:7.3f} s, {t_old / t_new:5.2f}x; figures identical "
              f"(auc {new['auc']:.4f} [{new['auc_lo']:.4f}, {new['auc_hi']:.4f}])")
        default, blocks = membership.BLOCK_ROWS, []
        for rows in sorted({1000, 500, default, 64}, reverse=True):
            membership.BLOCK_ROWS = rows
            t_rows, _ = best_of(membership.attack_figures, members, nonmembers, opts.boot, opts.repeat)
            blocks.append(f"{rows}{'*' if rows == default else ''} {t_rows:.3f} s")
        membership.BLOCK_ROWS = default
        print(f"     counts by BLOCK_ROWS: {', '.join(blocks)}")
    print(f"ratio {min(ratios):.2f}x")


if __name__ == "__main__":
    main()
