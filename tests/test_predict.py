"""The memorization predictor on synthetic members whose labels follow a known rule, or none."""

from __future__ import annotations

import numpy as np
import pytest

from harness.measure.predict import FEATURES, fit_report, log_perplexities, risk_scores


def features(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.column_stack([
        rng.uniform(1.0, 3.0, n),  # teacher_ppl
        np.exp(rng.normal(1.0, 1.0, n)),  # baseline_ppl, heavy-tailed
        rng.exponential(0.5, n),  # kl_teacher_baseline
        rng.uniform(500, 3000, n),  # zlib_entropy
    ])


def rule(X: np.ndarray) -> np.ndarray:
    return (X[:, 0] < 1.5).astype(int)  # memorized iff the teacher is confident on it


def test_a_rule_on_one_feature_is_found():
    X = features(300)
    report = fit_report(X, rule(X), splits=10)
    assert report.n == 300 and report.n_positive == rule(X).sum() and report.splits == 10
    assert report.auc_mean > 0.95 and report.recall_mean > 0.8 and report.precision_mean > 0.6
    assert list(report.coefficients) == list(FEATURES)
    coef = report.coefficients
    assert coef["teacher_ppl"] < 0
    assert abs(coef["teacher_ppl"]) == max(abs(v) for v in coef.values())


def test_noise_labels_give_chance_auc():
    X = features(300, seed=1)
    y = np.random.default_rng(2).binomial(1, 0.3, 300)
    report = fit_report(X, y, splits=10)
    assert abs(report.auc_mean - 0.5) < 0.15
    assert report.auc_std > 0


def test_risk_is_out_of_fold():
    # Every member obeys the rule except one: the most teacher-confident member, labelled not memorized.
    # Its own label never trains the model that scores it, so its risk still follows the rule.
    X = features(200, seed=3)
    y = rule(X)
    odd = int(np.argmin(X[:, 0]))
    y[odd] = 0
    risk = risk_scores(X, y)
    assert risk.shape == (200,) and ((risk >= 0) & (risk <= 1)).all()
    assert risk[odd] > 0.9
    assert ((risk >= 0.5) == (y == 1)).mean() > 0.9


def test_too_few_positives_is_a_clear_error():
    X = features(50)
    y = np.zeros(50, dtype=int)
    y[:3] = 1
    with pytest.raises(ValueError, match="got 3 and 47: it needs a student that memorized some"):
        risk_scores(X, y, folds=5)
    with pytest.raises(ValueError, match="got 0 and 50"):
        fit_report(X, np.zeros(50, dtype=int))
    y[:4] = 1
    assert fit_report(X, y, splits=3).n_positive == 4  # 4 positives suffice for 70/30 splits


def test_bad_inputs_are_refused():
    X = features(40)
    y = rule(X)
    with pytest.raises(ValueError, match="shape"):
        fit_report(X[:, :3], y)
    with pytest.raises(ValueError, match="0/1"):
        fit_report(X, y * 2)
    X[0, 1] = 0.0
    with pytest.raises(ValueError, match="positive"):
        fit_report(X, y)


def test_reproducible_at_a_seed():
    X = features(120, seed=4)
    y = np.random.default_rng(5).binomial(1, 0.4, 120)
    assert fit_report(X, y, splits=5, seed=7) == fit_report(X, y, splits=5, seed=7)
    np.testing.assert_array_equal(risk_scores(X, y, seed=7), risk_scores(X, y, seed=7))


def test_perplexities_enter_as_logs():
    X = features(5)
    out = log_perplexities(X)
    np.testing.assert_allclose(out[:, :2], np.log(X[:, :2]))
    np.testing.assert_array_equal(out[:, 2:], X[:, 2:])
    assert not np.shares_memory(out, X)
