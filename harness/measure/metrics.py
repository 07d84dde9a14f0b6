"""The figures of the protocol (defined in docs/protocol.md), from each role's extraction."""

from __future__ import annotations

import math

from harness.contract.specs import ROLES
from harness.measure import probabilistic
from harness.measure.extract import Extraction
from harness.measure.seed_clusters import overlap_sets
from harness.measure.stats import MIN_COUNT, enough

__all__ = ["MIN_COUNT", "UTILITY_SLACK", "enough", "figures", "memorized_set"]

# A student whose validation perplexity is within this share of the baseline's learned the task as well:
# the board ranks only those (`leaderboard.ranking`), and `harness reproduce` correlates only those.
UTILITY_SLACK = 0.10


def memorized_set(result: Extraction) -> set[int]:
    return set(result.memorized.nonzero().flatten().tolist())


def figures(members: dict[str, Extraction], nonmembers: dict[str, Extraction],
            validation: dict[str, Extraction] | None = None) -> dict[str, float]:
    """Every figure of section 1, with the counts behind each ratio.

    A ratio (reduction, inheritance rate, easy share, containment) is NaN, stored as NULL, when a
    count it rests on is below MIN_COUNT memorized members: 2 of 2 is not "100%". The validation
    loss and perplexity are the validation split's, or the non-members' where a dataset has none
    (`n_validation` says which: 0 for the non-members).
    """
    m = {role: memorized_set(members[role]) for role in ROLES}
    n = len(members["teacher"].memorized)
    out: dict[str, float] = {}
    for role in ROLES:
        out[f"memorized_{role}"] = float(len(m[role]))
        out[f"mem_rate_{role}"] = len(m[role]) / n
        out[f"nonmember_rate_{role}"] = nonmembers[role].memorized.float().mean().item()
        out[f"val_loss_{role}"] = (validation or nonmembers)[role].loss.mean().item()
        out[f"val_ppl_{role}"] = math.exp(out[f"val_loss_{role}"])
        if members[role].sample_logprob is not None:  # Hayes et al.'s probabilistic extraction, with its control
            for split, result in (("", members[role]), ("nonmember_", nonmembers[role])):
                chance = probabilistic.chance(result.sample_logprob.numpy())
                out[f"{split}extractable_{role}"] = float(chance.sum())  # expected members extracted
                out[f"{split}extractable_rate_{role}"] = float(chance.mean())
                out[f"{split}np_rate_{role}"] = float((chance >= probabilistic.CONFIDENCE).mean())
        out[f"ties_{role}"] = float(members[role].ties.sum().item() + nonmembers[role].ties.sum().item())
    out["n_validation"] = float(len(validation["teacher"].loss)) if validation else 0.0
    sets = overlap_sets(m)
    exclusive, inherited, easy, both = (len(sets[k]) for k in ("teacher_exclusive", "inherited", "easy", "both"))
    out["reduction"] = _ratio(len(m["baseline"]), len(m["student"]), len(m["baseline"]), len(m["student"]))
    out["teacher_exclusive"] = float(exclusive)
    out["inherited"] = float(inherited)
    out["inheritance_rate"] = _ratio(inherited, exclusive, exclusive)
    out["easy"] = float(easy)
    out["easy_share"] = _ratio(easy, len(m["student"]), len(m["student"]))
    out["student_only"] = float(len(sets["student_only"]))
    out["containment"] = _ratio(both, len(m["baseline"]), len(m["baseline"]))
    return out


def _ratio(a: float, b: float, *counts: int) -> float:
    """a / b, or NaN when b is zero or any count it rests on is below MIN_COUNT."""
    return a / b if b and all(enough(c) for c in counts) else math.nan
