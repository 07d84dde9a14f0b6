"""The blind baseline: a membership attack that never sees a model, to test the split itself.

A membership figure means something only where members and non-members come from one distribution.
Where they do not (non-members from a later period, another source, the test split of a corpus cut
by date), an attack can tell them apart from the text alone, and a model's AUC measures the shift
as much as the model. Das, Zhang and Tramèr (2024, "Blind Baselines Beat Membership Inference
Attacks for Foundation Models") show blind attacks matching published MIAs on several benchmarks;
Duan et al. (2024, "Do Membership Inference Attacks Work on Large Language Models?") trace such
results to temporal shift.

The attack here is theirs in kind: a logistic regression on a bag of character n-grams (1-3, case
kept) and words (1-2), tf-idf weighted, with the text's length, scored out of fold (`FOLDS`-fold
stratified cross-validation), so that no example is scored by a classifier that trained on its
label. A corpus's windows are joined per document before they reach it (`Examples.by_document`): scored
window by window, a fold would train on some windows of a document and score the others, and a
random split would look shifted. Its AUC carries the count-based bootstrap interval every attack's does
(`membership.attack_figures`). An interval that excludes 0.5 is a `shifted` split: the run's
membership figures may then measure the split rather than the model. Where a corpus has dates,
Das et al. add them as features; the harness's datasets carry none, so none are used.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

FOLDS = 5
MAX_PER_SIDE = 20_000  # texts per side the classifier sees at most (evenly spaced): a large corpus stays cheap


def scores(members: Sequence[str], nonmembers: Sequence[str], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Out-of-fold membership scores (higher: more likely a member) from the texts alone. The bag's
    vocabulary and weights are fitted once on all the texts, which reads no label; each fold's
    classifier is trained on the other folds' labels only."""
    from scipy.sparse import csr_matrix, hstack
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    texts = [*members, *nonmembers]
    y = np.r_[np.ones(len(members)), np.zeros(len(nonmembers))]
    chars = TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 3), lowercase=False, min_df=2, sublinear_tf=True)
    words = TfidfVectorizer(analyzer="word", ngram_range=(1, 2), min_df=2, sublinear_tf=True)
    lengths = _lengths(texts)
    lengths = (lengths - lengths.mean(axis=0)) / (lengths.std(axis=0) + 1e-12)
    x = hstack([chars.fit_transform(texts), words.fit_transform(texts), csr_matrix(lengths)]).tocsr()
    out = np.zeros(len(texts))
    for train, test in StratifiedKFold(n_splits=FOLDS, shuffle=True, random_state=seed).split(x, y):
        model = LogisticRegression(C=1.0, class_weight="balanced", solver="liblinear", dual=True, max_iter=1000)
        out[test] = model.fit(x[train], y[train]).decision_function(x[test])
    return out[: len(members)], out[len(members):]


def _lengths(texts) -> np.ndarray:
    """Each text's length in characters and in words, on a log scale."""
    return np.log1p([[len(t), len(t.split())] for t in texts])


def figures(members: Sequence[str], nonmembers: Sequence[str], seed: int = 0) -> dict[str, float]:
    """`blind_auc` with its 95% interval (`blind_auc_lo`, `blind_auc_hi`); {} where a side has fewer
    texts than folds (nothing to cross-validate)."""
    from harness.measure.membership import attack_figures

    members, nonmembers = _evenly(members), _evenly(nonmembers)
    if min(len(members), len(nonmembers)) < FOLDS:
        return {}
    pos, neg = scores(members, nonmembers, seed)
    found = attack_figures(pos, neg, seed=seed)
    return {f"blind_{k}": found[k] for k in ("auc", "auc_lo", "auc_hi")}


def shifted(lo: float | None, hi: float | None) -> bool | None:
    """Whether the blind AUC's interval [lo, hi] excludes 0.5 (either way); None where there is no figure."""
    if lo is None or hi is None or lo != lo or hi != hi:
        return None
    return lo > 0.5 or hi < 0.5


def _evenly(texts: Sequence[str]) -> list[str]:
    texts = list(texts)
    if len(texts) <= MAX_PER_SIDE:
        return texts
    return [texts[i] for i in np.linspace(0, len(texts) - 1, MAX_PER_SIDE).round().astype(int)]
