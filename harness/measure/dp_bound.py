"""Does a DP student's measured leakage stay inside what its (epsilon, delta) allows?

An (epsilon, delta)-DP training run bounds every test of whether one record was in its training set:
at false-positive rate a the true-positive rate is at most

    min(e^eps a + delta, 1 - e^-eps (1 - delta - a))

(Kairouz, Oh and Viswanath, 2015, "The Composition Theorem for Differential Privacy", the hypothesis-
testing region). Averaged over records put into the training set at random, the same bound holds for an
attack's TPR at a fixed threshold (Steinke, Nasr and Jagielski, 2023, "Privacy Auditing with One (1)
Training Run"), so the loss attack's ROC on a private student must stay under it.

This is a check, not an audit: the member/non-member split is one draw, the threshold is the
non-members' quantile, and the TPR is pooled over seeds with a Wilson interval that carries the
design effect of the seeds sharing their members (`harness.measure.stats.design_effect`). The FPR is
not exact either: each seed's threshold lets `floor(a x non-members)` of its non-members through, and
the FPR it gives on the population is known only to within an interval (Clopper and Pearson, 1934, on
that count; the widest over the seeds). So the bound is taken at the FPR interval's upper end, and a
violation is called only where the TPR interval's lower end is above that: on 5 false positives of
512 the FPR may be up to 2.26%, not 1%. Each FPR must allow at least MIN_FALSE_POSITIVES pooled false
positives. The epsilon the attack shows (the smallest epsilon consistent with both intervals' far
ends: the TPR's lower, the FPR's upper) says how loose the bound is: far below the spent epsilon, the
accountant promises much more than this attack can tell apart.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from harness.measure.stats import MIN_FALSE_POSITIVES, clopper_pearson, design_effect, wilson

AUDIT_FPRS = (0.01, 0.05, 0.1, 0.25, 0.5)  # where the check looks; 1% is the board's low-FPR point


def max_tpr(epsilon: float, delta: float, fpr: float) -> float:
    """The largest TPR at `fpr` any test can reach on an (epsilon, delta)-DP run (Kairouz et al., 2015)."""
    if math.isinf(epsilon) or math.isnan(epsilon):
        return 1.0
    return max(0.0, min(1.0, math.exp(epsilon) * fpr + delta, 1 - math.exp(-epsilon) * (1 - delta - fpr)))


def epsilon_shown(tpr: float, fpr: float, delta: float) -> float:
    """The smallest epsilon under which a test at (fpr, tpr) is possible: `max_tpr` inverted; 0 for none."""
    shown = [0.0]
    if tpr - delta > 0 and fpr > 0:
        shown.append(math.log((tpr - delta) / fpr))
    if tpr < 1 and 1 - delta - fpr > 0:
        shown.append(math.log((1 - delta - fpr) / (1 - tpr)))
    return max(shown)


def allowance(fpr: float, nonmembers: int) -> int:
    """How many of a run's non-members its threshold at `fpr` lets through: floor(fpr x non-members)."""
    return int(math.floor(fpr * nonmembers + 1e-9))


def fpr_upper(fpr: float, nonmembers: Sequence[int]) -> float:
    """The 95% upper end of the population FPR the thresholds at `fpr` give: each run's threshold rests
    on `allowance` of its own non-members (Clopper-Pearson), and the widest run's end is taken."""
    return max(clopper_pearson(allowance(fpr, n), n)[2] for n in nonmembers)


def true_hits(members: np.ndarray, nonmembers: np.ndarray, fpr: float) -> np.ndarray:
    """Which members score above the threshold that lets at most floor(fpr x non-members) non-members through.

    Scores are "higher means member", as in `harness.measure.membership`; a tie at the threshold is
    not above it, so the false positives never exceed the allowance."""
    allowed = allowance(fpr, len(nonmembers))
    if allowed >= len(nonmembers):
        return np.ones(len(members), dtype=bool)
    threshold = np.sort(np.asarray(nonmembers))[::-1][allowed]
    return np.asarray(members) > threshold


def true_positives(members: np.ndarray, nonmembers: np.ndarray, fpr: float) -> int:
    """How many members `true_hits` flags."""
    return int(true_hits(members, nonmembers, fpr).sum())


def seed_design(hits: Sequence[np.ndarray]) -> float:
    """The design effect of a TPR pooled over seeds whose member scores are in one member order
    (`harness.measure.stats.design_effect`); the number of seeds, its largest, where the seeds'
    members differ in number."""
    if len({len(h) for h in hits}) != 1:
        return float(len(hits))
    return design_effect(np.sum(hits, axis=0).tolist(), [len(hits)] * len(hits[0]))


@dataclass(frozen=True)
class Check:
    """The loss attack at one FPR, pooled over a private method's seeds, against its bound."""

    fpr: float  # the FPR the thresholds were set at
    fpr_hi: float  # its 95% upper end on the population (`fpr_upper`): where the bound is taken
    tpr: float
    tpr_lo: float
    tpr_hi: float
    bound: float  # the largest TPR (epsilon, delta) allows at fpr_hi
    epsilon: float  # the epsilon the runs spent
    shown: float  # the epsilon the attack shows, at the TPR interval's lower end and fpr_hi

    @property
    def verdict(self) -> str:
        if self.tpr_lo > self.bound:
            return "violated"
        return "holds" if self.tpr <= self.bound else "holds within the interval"


def check(runs: Sequence[tuple[np.ndarray, np.ndarray]], epsilon: float, delta: float,
          fprs: Sequence[float] = AUDIT_FPRS) -> list[Check]:
    """The bound check over seeds: each run's (member, non-member) attack scores, its epsilon and delta.

    FPRs whose pooled false-positive allowance is below MIN_FALSE_POSITIVES are left out."""
    out = []
    n_pos = sum(len(m) for m, _ in runs)
    n_neg = sum(len(n) for _, n in runs)
    for a in fprs:
        if not n_pos or a * n_neg < MIN_FALSE_POSITIVES:
            continue
        hits = [true_hits(m, n, a) for m, n in runs]
        k = sum(int(h.sum()) for h in hits)
        tpr, lo, hi = wilson(k, n_pos, seed_design(hits))
        top = fpr_upper(a, [len(n) for _, n in runs])
        out.append(Check(a, top, tpr, lo, hi, max_tpr(epsilon, delta, top), epsilon, epsilon_shown(lo, top, delta)))
    return out
