"""Probabilistic extraction (Hayes et al., 2024, "Measuring memorization in language models via
probabilistic extraction", arXiv:2410.19482), from each example's stored `sample_logprob`.

Greedy extraction asks one question (does the arg-max continuation equal the suffix?) and is 0 for
almost every member of a model that leaks little, so it cannot tell such models apart. An attacker
who samples gets many tries: with p the chance that one top-k sample from the prefix is the suffix
(`harness.measure.extract`), n samples reproduce it at least once with chance 1 - (1 - p)^n.
Torch-free, so the leaderboard reads it.
"""

from __future__ import annotations

import numpy as np

# The attacker draws QUERIES samples from each prefix; a member is (n, p)-extractable when the chance
# that one of them is its suffix is at least CONFIDENCE. Both are the harness's choice, not the
# paper's (Hayes et al. report curves over n and p): 10,000 queries is a cheap attack on a served
# model, and 0.9 a near-certain extraction.
QUERIES = 10_000
CONFIDENCE = 0.9


def chance(sample_logprob, queries: int = QUERIES) -> np.ndarray:
    """1 - (1 - p)^n per example, p = exp(sample_logprob), in log space so that p near 0 or 1 keeps its
    digits; -inf (a suffix token outside the top k) gives 0."""
    p = np.exp(np.asarray(sample_logprob, dtype=np.float64))
    with np.errstate(divide="ignore"):  # p = 1: log1p(-1) = -inf, and the chance is exactly 1
        return -np.expm1(queries * np.log1p(-p))
