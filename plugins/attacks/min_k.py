"""`min-k` and `min-k-plus-plus`: only the hardest tokens of a text tell members apart.

Min-K% (Shi et al., 2024) averages the log-probabilities of the k% least likely tokens: a
non-member has a few very unlikely tokens, a member has fewer. Min-K%++ (Zhang et al., 2025)
first normalizes each token's log-probability by the mean and spread of the model's own
next-token distribution at that position, so a token is judged against what the model
expected there, not against all positions alike.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from harness import Attack, Evidence, Param, hookimpl

if TYPE_CHECKING:  # torch is imported by the run, not by `harness list`
    import torch

K = Param("k", float, 0.2, "share of the least likely tokens averaged", min=0.01, max=1.0)


def lowest_share_mean(values: torch.Tensor, share: float) -> torch.Tensor:
    """Mean of the lowest ceil(share * T) values of each row."""
    count = max(1, math.ceil(share * values.shape[1]))
    return values.topk(count, dim=1, largest=False).values.mean(dim=1)


def min_k_score(evidence: Evidence, args: dict):
    return lowest_share_mean(evidence.token_logprobs, args["k"])


def min_k_plus_plus_score(evidence: Evidence, args: dict):
    z = (evidence.token_logprobs - evidence.token_mean) / evidence.token_std.clamp(min=1e-6)
    return lowest_share_mean(z, args["k"])


@hookimpl
def register_attacks(register):
    register(Attack(name="min-k", description="mean of the lowest k% token log-probabilities",
                    score=min_k_score, params=(K,), paper="Shi et al., 2024, arXiv:2310.16789"))
    register(Attack(name="min-k-plus-plus",
                    description="Min-K% over token log-probabilities standardized by the model's own distribution",
                    score=min_k_plus_plus_score, params=(K,), paper="Zhang et al., 2025, arXiv:2404.02936"))
