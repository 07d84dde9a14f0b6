"""Membership-inference figures on hand-built scores, and the vectorized bootstrap against sklearn
and against the per-resample rank-sum bootstrap it replaced."""

from __future__ import annotations

import math
import zlib

import numpy as np
import pytest
from scipy.stats import rankdata
from sklearn.metrics import roc_auc_score, roc_curve

from harness.measure import membership
from harness.measure.membership import (
    FPRS,
    MIN_FALSE_POSITIVES,
    attack_figures,
    resampled_figures,
    roc_points,
    zlib_entropy,
)

KEYS = ["auc", "auc_lo", "auc_hi", "tpr_1", "tpr_1_lo", "tpr_1_hi", "tpr_0.1", "tpr_0.1_lo", "tpr_0.1_hi"]


def sk_tpr(pos: np.ndarray, neg: np.ndarray, fpr: float) -> float:
    f, t, _ = roc_curve(np.r_[np.ones(len(pos)), np.zeros(len(neg))], np.r_[pos, neg], drop_intermediate=False)
    return float(t[f <= fpr].max())


def rank_sum_intervals(pos: np.ndarray, neg: np.ndarray, n_boot: int, seed: int) -> dict[str, float]:
    """The bootstrap intervals as attack_figures drew and computed them before resampled_figures: the
    same draws, each resample materialized, its AUC from average ranks, its TPR from a partition."""
    rng = np.random.default_rng(seed)
    bp = pos[rng.integers(0, len(pos), (n_boot, len(pos)))]
    bn = neg[rng.integers(0, len(neg), (n_boot, len(neg)))]
    ranks = rankdata(np.concatenate([bp, bn], axis=1), axis=1)
    boot = {"auc": (ranks[:, :len(pos)].sum(axis=1) - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg))}
    for a in FPRS:
        if a * len(neg) >= MIN_FALSE_POSITIVES:
            k = int(np.count_nonzero(np.arange(len(neg) + 1) / len(neg) <= a)) - 1
            cut = np.partition(bn, len(neg) - 1 - k, axis=1)[:, len(neg) - 1 - k]
            boot[f"tpr_{membership.fpr_name(a)}"] = (bp > cut[:, None]).mean(axis=1)
    out = {}
    for name, values in boot.items():
        out[f"{name}_lo"], out[f"{name}_hi"] = (float(v) for v in np.percentile(values, [2.5, 97.5]))
    return out


def test_auc_by_hand():
    # Pairs (member > non-member): 3 beats 1, 2 but not 3.5; 4 and 5 beat all three: 2 + 3 + 3 = 8 of 9.
    f = attack_figures(np.array([3, 4, 5]), np.array([1, 2, 3.5]), n_boot=200)
    assert list(f) == KEYS
    assert f["auc"] == pytest.approx(8 / 9)
    assert f["auc_lo"] <= f["auc"] <= f["auc_hi"]


def test_perfect_and_reversed_attacks():
    rng = np.random.default_rng(1)
    members, nonmembers = rng.uniform(10, 11, 50), rng.uniform(0, 1, 10_000)  # 0.1% FPR allows 10 false positives
    f = attack_figures(members, nonmembers, n_boot=200)
    assert all(f[k] == 1.0 for k in KEYS)
    r = attack_figures(nonmembers[:50], members, n_boot=200)
    assert r["auc"] == r["auc_lo"] == r["auc_hi"] == 0.0


def test_tpr_at_low_fpr_by_hand():
    # 1,000 non-members at 0..999: at 1% FPR ten false positives are allowed, so the lowest admissible
    # threshold is 990; 0.1% would allow one, too few to mean anything.
    nonmembers = np.arange(1000.0)
    members = np.array([2000, 999, 995, 990.5, 990, 989, 50, 10, 0, -1.0])
    f = attack_figures(members, nonmembers, n_boot=50)
    assert f["tpr_1"] == pytest.approx(5 / 10)  # 2000, 999, 995, 990.5, 990; 989 ties the eleventh non-member
    assert f["tpr_1"] == sk_tpr(members, nonmembers, 0.01)
    assert all(math.isnan(f[k]) for k in ("tpr_0.1", "tpr_0.1_lo", "tpr_0.1_hi"))


def test_a_tpr_the_nonmembers_cannot_resolve_is_nan():
    # 512 non-members: 1% of them is 5 false positives, fewer than MIN_FALSE_POSITIVES
    f = attack_figures(np.array([5, 6, 7, 0.5]), np.arange(512.0), n_boot=50)
    assert MIN_FALSE_POSITIVES == 10
    assert all(math.isnan(f[k]) for k in KEYS if k.startswith("tpr"))
    assert not math.isnan(f["auc"])


@pytest.mark.parametrize("seed, kind", list(enumerate(["normal", "ties", "tiny", "shifted_ties", "shared_values",
                                                      "other_sizes"])))
def test_resampled_figures_match_sklearn_on_each_resample(seed, kind, monkeypatch):
    monkeypatch.setattr(membership, "BLOCK_ROWS", 7)  # 25 resamples in blocks of 7, 7, 7 and 4
    rng = np.random.default_rng(seed)
    sets = {
        "normal": (rng.normal(0.5, 1, 300), rng.normal(0, 1, 400)),
        "ties": (rng.integers(0, 4, 120).astype(float), rng.integers(0, 4, 150).astype(float)),
        "tiny": (rng.normal(1, 1, 3), rng.normal(0, 1, 5)),
        "shifted_ties": (rng.integers(1, 4, 1000).astype(float), rng.integers(0, 3, 2000).astype(float)),
        # members on, between, below and above the non-members' values, many tied across the two sets
        "shared_values": (rng.integers(0, 30, 200) / 2, rng.integers(2, 12, 1500).astype(float)),
        "other_sizes": (rng.normal(0.3, 1, 80), rng.integers(-3, 4, 700).astype(float)),
    }
    pos, neg = sets[kind]
    m_pos, m_neg = (37, 1200) if kind == "other_sizes" else (len(pos), len(neg))  # resamples of other sizes
    ip, ineg = rng.integers(0, len(pos), (25, m_pos)), rng.integers(0, len(neg), (25, m_neg))
    if kind != "other_sizes":  # row 0 is the original data
        ip[0], ineg[0] = np.arange(len(pos)), np.arange(len(neg))
    fprs = (*FPRS, 0.05, 0.3, 0.999, 1.0)
    got = resampled_figures(pos, neg, ip, ineg, fprs)
    y = np.r_[np.ones(m_pos), np.zeros(m_neg)]
    expected_auc = [roc_auc_score(y, np.r_[pos[p], neg[n]]) for p, n in zip(ip, ineg)]
    np.testing.assert_allclose(got["auc"], expected_auc, rtol=0, atol=1e-12)
    for fpr in fprs:
        expected = [sk_tpr(pos[p], neg[n], fpr) for p, n in zip(ip, ineg)]
        np.testing.assert_array_equal(got[f"tpr_{membership.fpr_name(fpr)}"], expected)


def test_resampled_figures_refuse_draws_that_do_not_pair():
    with pytest.raises(ValueError, match="same B"):
        resampled_figures(np.arange(3.0), np.arange(4.0), np.zeros((2, 3), int), np.zeros((3, 4), int))
    with pytest.raises(ValueError, match="m >= 1"):
        resampled_figures(np.arange(3.0), np.arange(4.0), np.zeros((2, 0), int), np.zeros((2, 4), int))
    with pytest.raises(ValueError, match="m >= 1"):
        resampled_figures(np.arange(3.0), np.arange(4.0), np.zeros((0, 3), int), np.zeros((0, 4), int))


@pytest.mark.parametrize("kind", ["normal", "ties"])
def test_point_estimates_are_sklearns(kind):
    rng = np.random.default_rng(11)
    if kind == "normal":
        pos, neg = rng.normal(1.5, 1, 512), rng.normal(0, 1, 12_000)
    else:
        pos, neg = rng.integers(0, 40, 300).astype(float), rng.integers(0, 30, 20_000).astype(float)
    f = attack_figures(pos, neg, n_boot=20)
    assert f["auc"] == roc_auc_score(np.r_[np.ones(len(pos)), np.zeros(len(neg))], np.r_[pos, neg])
    for a in FPRS:
        assert f[f"tpr_{membership.fpr_name(a)}"] == sk_tpr(pos, neg, a)
    assert 0 < f["tpr_0.1"] <= f["tpr_1"] < 1  # the cases are not degenerate
    for name in ("auc", "tpr_1", "tpr_0.1"):
        assert f[f"{name}_lo"] < f[f"{name}_hi"]


def test_intervals_are_the_rank_sum_bootstraps_on_the_same_draws():
    # One chunk draws exactly the resamples the per-resample rank-sum bootstrap drew at the same seed,
    # and every resample's figures agree exactly, so the percentile intervals do too.
    rng = np.random.default_rng(12)
    pos, neg = np.round(rng.normal(0.6, 1, 400), 1), np.round(rng.normal(0, 1, 12_000), 1)  # ties throughout
    f = attack_figures(pos, neg, n_boot=300, seed=7)
    old = rank_sum_intervals(pos, neg, 300, 7)
    assert len(old) == 6
    assert {k: f[k] for k in old} == old


def test_chunked_draws_are_fresh_and_as_wide(monkeypatch):
    # Split the draws into chunks of 64; each chunk must draw new resamples, and the intervals stay
    # as wide as the rank-sum bootstrap's (other draws, so within Monte Carlo error, not equal).
    rng = np.random.default_rng(13)
    pos, neg = rng.normal(0.5, 1, 1000), rng.normal(0, 1, 3000)
    monkeypatch.setattr(membership, "CHUNK_BYTES", 8 * 4000 * 64)
    boot = membership._bootstrap(pos, neg, 1000, 0, list(FPRS))
    assert len(boot["auc"]) == 1000 and len(np.unique(boot["auc"])) > 900
    assert not np.array_equal(boot["auc"][:64], boot["auc"][64:128])
    f = attack_figures(pos, neg, n_boot=1000, seed=0)
    old = rank_sum_intervals(pos, neg, 1000, 1)
    for name in ("auc", "tpr_1"):  # 3,000 non-members leave 0.1% FPR unresolved
        assert f[f"{name}_lo"] <= f[name] <= f[f"{name}_hi"]
        width, old_width = f[f"{name}_hi"] - f[f"{name}_lo"], old[f"{name}_hi"] - old[f"{name}_lo"]
        assert width == pytest.approx(old_width, rel=0.1), name


def test_interval_contains_estimate_and_narrows():
    rng = np.random.default_rng(2)
    widths = []
    for n in (1000, 16000):  # 1% FPR resolvable at both
        f = attack_figures(rng.normal(0.5, 1, n), rng.normal(0, 1, n), n_boot=300)
        for name in ("auc", "tpr_1"):
            assert f[f"{name}_lo"] <= f[name] <= f[f"{name}_hi"]
        widths.append(f["auc_hi"] - f["auc_lo"])
    assert widths[1] < widths[0] / 2


def test_reproducible_at_a_seed():
    rng = np.random.default_rng(3)
    pos, neg = rng.normal(1, 1, 64), rng.normal(0, 1, 10_000)
    assert attack_figures(pos, neg, seed=5) == attack_figures(pos, neg, seed=5)


def test_bad_scores_are_refused():
    with pytest.raises(ValueError, match="2 non-finite"):
        attack_figures(np.array([1.0, np.nan]), np.array([0.0, np.inf]))
    with pytest.raises(ValueError, match="members and non-members"):
        attack_figures(np.array([]), np.array([0.0]))
    with pytest.raises(ValueError, match="non-finite"):
        roc_points(np.array([1.0]), np.array([np.nan]))


def test_roc_points_thinning_keeps_ends_and_low_fpr():
    rng = np.random.default_rng(4)
    pos, neg = rng.normal(1, 1, 3000), rng.normal(0, 1, 3000)
    full_fpr, full_tpr, _ = roc_curve(np.r_[np.ones(3000), np.zeros(3000)], np.r_[pos, neg])
    fpr, tpr = roc_points(pos, neg, max_points=200)
    assert len(fpr) <= 200 < len(full_fpr)
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (full_fpr[0], full_tpr[0], full_fpr[-1], full_tpr[-1])
    low = full_fpr <= 0.01
    assert 2 < low.sum() < 200
    np.testing.assert_array_equal(fpr[: low.sum()], full_fpr[low])  # every low-FPR point kept
    assert np.all(np.diff(fpr) >= 0) and (fpr > 0.5).any()  # the rest is spread along the curve
    small_fpr, _ = roc_points(pos[:5], neg[:5])
    assert len(small_fpr) <= 11  # a short curve is stored whole


def test_roc_points_thins_a_crowded_low_region():
    rng = np.random.default_rng(5)
    pos, neg = rng.normal(1, 1, 20000), rng.normal(0, 1, 20000)
    fpr, _ = roc_points(pos, neg, max_points=50)
    assert len(fpr) <= 50 and fpr[0] == 0 and fpr[-1] == 1


def test_zlib_entropy_matches_board_definition():
    text = "hello hello hello hello"
    assert zlib_entropy(text) == 8.0 * len(zlib.compress(text.encode("utf-8")))
    assert zlib_entropy("a" * 1000) < zlib_entropy("".join(chr(33 + (i * 7919) % 90) for i in range(1000)))
