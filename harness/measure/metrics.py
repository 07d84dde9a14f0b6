"""The figures of the protocol (defined in docs/protocol.md), from each role's extraction."""

from __future__ import annotations

import math

from harness.contract.specs import ROLES
from harness.measure.extract import Extraction


def memorized_set(result: Extraction) -> set[int]:
    return set(result.memorized.nonzero().flatten().tolist())


def figures(members: dict[str, Extraction], nonmembers: dict[str, Extraction]) -> dict[str, float]:
    """Every figure of section 1. `reduction` is NaN when the student memorized nothing."""
    m = {role: memorized_set(members[role]) for role in ROLES}
    n = len(members["teacher"].memorized)
    out: dict[str, float] = {}
    for role in ROLES:
        out[f"mem_rate_{role}"] = len(m[role]) / n
        out[f"nonmember_rate_{role}"] = nonmembers[role].memorized.float().mean().item()
        out[f"val_loss_{role}"] = nonmembers[role].loss.mean().item()
        out[f"val_ppl_{role}"] = math.exp(out[f"val_loss_{role}"])
        out[f"ties_{role}"] = float(members[role].ties.sum().item() + nonmembers[role].ties.sum().item())
    exclusive = m["teacher"] - m["baseline"]
    inherited = m["student"] & exclusive
    out["reduction"] = _ratio(out["mem_rate_baseline"], out["mem_rate_student"])
    out["teacher_exclusive"] = float(len(exclusive))
    out["inherited"] = float(len(inherited))
    out["inheritance_rate"] = _ratio(len(inherited), len(exclusive))
    out["easy_share"] = _ratio(len(m["student"] & m["teacher"] & m["baseline"]), len(m["student"]))
    out["student_only"] = float(len(m["student"] - (m["teacher"] | m["baseline"])))
    out["containment"] = _ratio(len(m["teacher"] & m["baseline"]), len(m["baseline"]))
    return out


def _ratio(a: float, b: float) -> float:
    return a / b if b else math.nan
