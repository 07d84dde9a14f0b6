"""Intervals over examples and seeds: the two-way bootstrap of a statistic of per-example values.

A figure averaged over three seeds and given a t-interval over them says how much the seeds
disagree, not how much the examples could: the soft-KD student's loss-attack AUC is 0.8338,
0.8329 and 0.8333 by seed, a half-width of 0.001, where resampling its 2,560 examples gives about
0.025. Each draw here weights the seeds and the examples at once (the pigeonhole bootstrap, Owen
2007, as `harness.measure.paired` does for methods): the seeds by multinomial counts, each example
by the count of its id, so that a member the seeds share is one cluster, drawn once for all of them.
The statistic is computed at each drawn seed from the weighted examples and averaged with the seeds'
weights; the interval is the draws' 2.5 and 97.5 percentiles. Torch-free: numpy only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

DRAWS = 1000


@dataclass
class Seed:
    """One seed's examples: each named value an array over `member_ids` or `nonmember_ids`."""

    member_ids: Sequence[str]
    nonmember_ids: Sequence[str]
    members: dict[str, np.ndarray] = field(default_factory=dict)
    nonmembers: dict[str, np.ndarray] = field(default_factory=dict)
    _aucs: dict = field(default_factory=dict, repr=False)

    def membership_auc(self, name: str) -> Auc:
        """The AUC of a score (higher: a member) that both sides carry, members against non-members."""
        if name not in self._aucs:
            self._aucs[name] = Auc(np.r_[self.members[name], self.nonmembers[name]],
                                   np.r_[np.ones(len(self.member_ids), bool), np.zeros(len(self.nonmember_ids), bool)])
        return self._aucs[name]

    def member_auc(self, score: str, label: str) -> Auc:
        """The AUC of a member score at telling the members with `label` from the rest (e.g. memorized)."""
        key = (score, label)
        if key not in self._aucs:
            self._aucs[key] = Auc(self.members[score], self.members[label].astype(bool))
        return self._aucs[key]


# A statistic at one seed, from the weights of its members and its non-members (each 1 for the data as it is).
Stat = Callable[[Seed, np.ndarray, np.ndarray], float]


class Auc:
    """A weighted AUC (Mann-Whitney, ties counted half) of fixed scores and labels: the scores are ranked
    once, so each draw costs two weighted counts."""

    def __init__(self, scores: np.ndarray, labels: np.ndarray) -> None:
        _, self.rank = np.unique(np.asarray(scores, float), return_inverse=True)
        self.levels = int(self.rank.max()) + 1 if len(self.rank) else 0
        self.labels = np.asarray(labels, bool)

    def __call__(self, weights: np.ndarray) -> float:
        pos = np.bincount(self.rank[self.labels], weights=weights[self.labels], minlength=self.levels)
        neg = np.bincount(self.rank[~self.labels], weights=weights[~self.labels], minlength=self.levels)
        total = pos.sum() * neg.sum()
        if total <= 0:
            return float("nan")
        below = np.cumsum(neg) - neg
        return float((pos * (below + 0.5 * neg)).sum() / total)


def weighted_mean(values: np.ndarray, weights: np.ndarray) -> float:
    total = weights.sum()
    return float((values * weights).sum() / total) if total > 0 else float("nan")


def point_of(seeds: Sequence[Seed], stat: Stat) -> float:
    """The statistic on the data as it is (every weight 1), averaged over the seeds: `interval`'s point."""
    return float(np.mean([stat(s, np.ones(len(s.member_ids)), np.ones(len(s.nonmember_ids))) for s in seeds]))


def interval(seeds: Sequence[Seed], stat: Stat, *, draws: int = DRAWS, seed: int = 0) -> tuple[float, float, float]:
    """The statistic's mean over the seeds, and its 95% interval over examples and seeds (see the module)."""
    seeds = list(seeds)
    if not seeds:
        return float("nan"), float("nan"), float("nan")
    point = point_of(seeds, stat)
    m_index, m_ids = _index([s.member_ids for s in seeds])
    n_index, n_ids = _index([s.nonmember_ids for s in seeds])
    rng = np.random.default_rng(seed)
    values = np.empty(draws)
    for b in range(draws):
        seed_w = rng.multinomial(len(seeds), np.full(len(seeds), 1 / len(seeds)))
        m_w = rng.multinomial(m_ids, np.full(m_ids, 1 / m_ids)).astype(float) if m_ids else np.zeros(0)
        n_w = rng.multinomial(n_ids, np.full(n_ids, 1 / n_ids)).astype(float) if n_ids else np.zeros(0)
        values[b] = sum(w * stat(s, m_w[mi], n_w[ni]) for s, w, mi, ni in zip(seeds, seed_w, m_index, n_index)
                        if w) / len(seeds)
    values = values[np.isfinite(values)]
    if len(values) < draws / 2:  # the statistic is undefined on most draws (too few of a label): no interval
        return point, float("nan"), float("nan")
    lo, hi = np.quantile(values, [0.025, 0.975])
    return point, float(lo), float(hi)


def _index(ids_by_seed: Sequence[Sequence[str]]) -> tuple[list[np.ndarray], int]:
    """Each seed's examples as positions in the union of their ids: one cluster per id."""
    union: dict[str, int] = {}
    for ids in ids_by_seed:
        for i in ids:
            union.setdefault(i, len(union))
    return [np.array([union[i] for i in ids], dtype=np.int64) for ids in ids_by_seed], len(union)
