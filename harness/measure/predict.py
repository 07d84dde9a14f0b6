"""Predicting which members the student will memorize, from what is known before distilling.

The model is a class-balanced logistic regression on standardized features, with both perplexities
taken as logs first: perplexities are heavy-tailed, and one outlier would otherwise set the scale.
Coefficients are therefore per standard deviation of log perplexity (of KL, of zlib bits for the
others); their keys stay the FEATURES names.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import precision_score, recall_score, roc_auc_score
from sklearn.model_selection import (
    StratifiedKFold,
    StratifiedShuffleSplit,
    cross_val_predict,
)
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

FEATURES = ("teacher_ppl", "baseline_ppl", "kl_teacher_baseline", "zlib_entropy")
LOG_COLUMNS = (0, 1)  # the perplexities
THRESHOLD = 0.5  # risk at or above this predicts "memorized", as in the filtering experiment


@dataclass(frozen=True)
class PredictorReport:
    n: int
    n_positive: int
    splits: int
    auc_mean: float
    auc_std: float
    precision_mean: float
    precision_std: float
    recall_mean: float
    recall_std: float
    coefficients: dict[str, float]  # per standard deviation of each (log-perplexity) feature
    intercept: float


def log_perplexities(X: np.ndarray) -> np.ndarray:
    """X with the perplexity columns replaced by their logs (module-level, so the model pickles)."""
    X = np.array(X, dtype=float)
    X[:, LOG_COLUMNS] = np.log(X[:, LOG_COLUMNS])
    return X


def model() -> Pipeline:
    return make_pipeline(FunctionTransformer(log_perplexities), StandardScaler(),
                         LogisticRegression(class_weight="balanced", max_iter=1000))


def fit_report(X: np.ndarray, y: np.ndarray, *, splits: int = 20, test_size: float = 0.3,
               seed: int = 0) -> PredictorReport:
    """Held-out AUC, precision and recall over repeated stratified splits, and the all-data coefficients.

    Repeated splits rather than one: with a few dozen memorized members a single split's AUC is noise.
    Precision is 0 for a split with no predicted positives; stds are sample stds over splits.
    """
    X, y = _check(X, y, need=max(2, math.ceil(1 / test_size), math.ceil(1 / (1 - test_size))))
    aucs, precisions, recalls = [], [], []
    cv = StratifiedShuffleSplit(n_splits=splits, test_size=test_size, random_state=seed)
    for train, test in cv.split(X, y):
        risk = model().fit(X[train], y[train]).predict_proba(X[test])[:, 1]
        aucs.append(roc_auc_score(y[test], risk))
        precisions.append(precision_score(y[test], risk >= THRESHOLD, zero_division=0))
        recalls.append(recall_score(y[test], risk >= THRESHOLD, zero_division=0))
    fitted = model().fit(X, y)[-1]
    return PredictorReport(
        n=len(y), n_positive=int(y.sum()), splits=splits,
        auc_mean=_mean(aucs), auc_std=_std(aucs),
        precision_mean=_mean(precisions), precision_std=_std(precisions),
        recall_mean=_mean(recalls), recall_std=_std(recalls),
        coefficients=dict(zip(FEATURES, map(float, fitted.coef_[0]))),
        intercept=float(fitted.intercept_[0]))


def risk_scores(X: np.ndarray, y: np.ndarray, *, folds: int = 5, seed: int = 0) -> np.ndarray:
    """Out-of-fold probability that each example is memorized.

    Out-of-fold so that no example's own label decides its own score: the filtering experiment
    removes examples with risk >= THRESHOLD, and an in-sample score would leak the answer.
    """
    X, y = _check(X, y, need=max(2, folds))
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return cross_val_predict(model(), X, y, cv=cv, method="predict_proba")[:, 1]


def _check(X: np.ndarray, y: np.ndarray, *, need: int) -> tuple[np.ndarray, np.ndarray]:
    """Validated features and 0/1 labels; refuses what would make the splits fail obscurely."""
    X, y = np.asarray(X, dtype=float), np.asarray(y)
    if X.ndim != 2 or X.shape[1] != len(FEATURES):
        raise ValueError(f"X must have shape (n, {len(FEATURES)}) with columns {FEATURES}, got {X.shape}")
    if y.shape != (len(X),) or not np.isin(y, (0, 1)).all():
        raise ValueError(f"y must be {len(X)} labels of 0/1 (memorized), got shape {y.shape}")
    if not np.isfinite(X).all() or (X[:, LOG_COLUMNS] <= 0).any():
        raise ValueError("features must be finite, and perplexities positive")
    y = y.astype(int)
    pos, neg = int(y.sum()), int(len(y) - y.sum())
    if min(pos, neg) < need:
        raise ValueError(f"the predictor needs at least {need} memorized and {need} non-memorized members, "
                         f"got {pos} and {neg}: it needs a student that memorized some members and not others")
    return X, y


def _mean(values: list[float]) -> float:
    return float(np.mean(values))


def _std(values: list[float]) -> float:
    return float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def predict_members(run_id: str, rows: list[tuple]) -> tuple[PredictorReport, list[str], np.ndarray, dict[str, float]]:
    """Fit the predictor on a run's feature rows: the report, the sample ids, each one's risk, the figures.

    `rows` are (sample_id, *FEATURES, memorized_student), as `harness.store.read.features` gives
    them; the labels are that run's student verdicts.
    """
    from harness.errors import UsageError

    if not rows:
        raise UsageError(f"run {run_id} has no predictor features (it was stored by an older harness, or failed); "
                         "run `harness eval` again for it")
    ids = [r[0] for r in rows]
    X = np.array([r[1:-1] for r in rows], dtype=float)
    y = np.array([bool(r[-1]) for r in rows], dtype=int)
    try:
        report = fit_report(X, y)
        risk = risk_scores(X, y)
    except ValueError as err:
        raise UsageError(f"run {run_id}: {err}") from None
    figures = {"predict_auc": report.auc_mean, "predict_auc_std": report.auc_std,
               "predict_precision": report.precision_mean, "predict_precision_std": report.precision_std,
               "predict_recall": report.recall_mean, "predict_recall_std": report.recall_std,
               **{f"predict_coef_{k}": v for k, v in report.coefficients.items()}}
    return report, ids, risk, figures
