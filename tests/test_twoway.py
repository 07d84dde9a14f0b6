"""The two-way bootstrap over examples and seeds (harness.measure.twoway): its weighted AUC is the AUC,
its interval carries the examples' variation where a t-interval over seeds does not, and it covers."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from harness.measure import twoway
from harness.measure.stats import interval as t_interval


def test_the_weighted_auc_is_the_auc_of_the_weighted_data():
    rng = np.random.default_rng(0)
    scores = np.round(rng.normal(size=300), 1)  # ties included: counted half, as roc_auc_score does
    labels = rng.random(300) < 0.3
    auc = twoway.Auc(scores, labels)
    assert auc(np.ones(300)) == pytest.approx(roc_auc_score(labels, scores))
    weights = rng.integers(0, 4, 300)
    repeated = np.repeat(np.arange(300), weights)
    assert auc(weights.astype(float)) == pytest.approx(roc_auc_score(labels[repeated], scores[repeated]))
    assert np.isnan(auc(np.where(labels, 0.0, 1.0)))  # no positive left: no AUC


def _seeds(rng, n_members=400, n_nonmembers=400, seeds=3, shift=1.0, seed_noise=0.0):
    """Seeds that share their members: each member's score is its own memorability plus a little seed noise."""
    own_m, own_n = rng.normal(shift, 1, n_members), rng.normal(0, 1, n_nonmembers)
    out = []
    for _ in range(seeds):
        s = twoway.Seed([f"m{i}" for i in range(n_members)], [f"n{i}" for i in range(n_nonmembers)])
        s.members["score"] = own_m + rng.normal(0, seed_noise, n_members)
        s.nonmembers["score"] = own_n + rng.normal(0, seed_noise, n_nonmembers)
        out.append(s)
    return out


def _auc(s, wm, wn):
    return s.membership_auc("score")(np.r_[wm, wn])


def test_the_interval_carries_the_examples_where_a_t_interval_over_seeds_does_not():
    seeds = _seeds(np.random.default_rng(1), seed_noise=0.01)  # three seeds nearly alike, as the soft-KD AUCs are
    per_seed = [_auc(s, np.ones(400), np.ones(400)) for s in seeds]
    _, t_lo, t_hi = t_interval(per_seed)
    mean, lo, hi = twoway.interval(seeds, _auc, draws=400)
    assert mean == pytest.approx(np.mean(per_seed))
    assert (hi - lo) > 10 * (t_hi - t_lo)  # the examples' variation, which the seeds cannot show
    assert 0.02 < (hi - lo) / 2 < 0.06  # about what 400 against 400 allow for an AUC near 0.76


def test_the_interval_covers_the_truth():
    """A difference of means whose truth is known: at least 90% of 150 simulated studies cover it (95%
    nominal, a small simulation's slack)."""
    rng = np.random.default_rng(2)
    covered = 0
    for _ in range(150):
        seeds = []
        seed_effects = rng.normal(0, 0.05, 3)  # each seed's own luck, which the interval must carry too
        own = rng.normal(0.3, 1, 200)  # each member's value, shared by the seeds
        for e in seed_effects:
            s = twoway.Seed([f"m{i}" for i in range(200)], [])
            s.members["x"] = own + e + rng.normal(0, 0.2, 200)
            seeds.append(s)
        _, lo, hi = twoway.interval(seeds, lambda s, wm, wn: twoway.weighted_mean(s.members["x"], wm), draws=200,
                                    seed=int(rng.integers(1 << 30)))
        covered += lo <= 0.3 <= hi
    assert covered / 150 >= 0.90


def test_members_shared_by_seeds_are_one_cluster():
    """A member id the seeds share is one position in the draw: weighted alike at every seed it is in."""
    index, n = twoway._index([["a", "b", "c"], ["c", "a", "d"]])
    assert n == 4 and index[0].tolist() == [0, 1, 2] and index[1].tolist() == [2, 0, 3]
    # the draw's weights are read through these positions at every seed (`interval`: m_w[index]), so a
    # shared id's weight is one draw's, whatever seed reads it
    weights = np.array([2.0, 0.0, 1.0, 3.0])
    assert weights[index[0]][[0, 2]].tolist() == weights[index[1]][[1, 0]].tolist() == [2.0, 1.0]


def test_no_seeds_no_figure():
    assert all(np.isnan(v) for v in twoway.interval([], _auc))
