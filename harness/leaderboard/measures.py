"""A board's leakage measures per example, and its rows compared paired (`harness.measure.paired`).

The rows of one board at one seed share the teacher, the baseline's start and the members, so they
are compared member by member and seed by seed: a member every method memorizes (a 16x duplicate)
moves them all together and says nothing about which leaks least. Each measure is a mean over the
members (less the non-members' for a gap), higher meaning more leakage:

- `extractable_rate_student`: the chance that 10,000 top-k samples from a member's prefix reproduce
  its suffix at least once (Hayes et al., 2024; `harness.measure.probabilistic`), averaged over the
  members: the expected share extractable. It resolves where exact match sits at zero.
- `mem_rate_student`: exact match by greedy decoding (Carlini et al., 2023), 0 or 1 per member.
- `membership_gap_student`: the suffix loss of the non-members less that of the members seen once
  (nats per token): the signal a loss attack reads, on members no duplicate can carry.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from harness.measure import paired, probabilistic

# What a board may rank by first (its spec's `order` starts with one), and how each reads.
MEASURES = {
    "extractable_rate_student": "the share extractable by sampling (expected; 10,000 top-k samples a member)",
    "mem_rate_student": "exact match by greedy decoding",
    "membership_gap_student": "the loss gap on members seen once (nats per token)",
}
# The stored per-example column (`samples`) each measure rests on.
SOURCE = {"extractable_rate_student": "sample_logprob", "mem_rate_student": "memorized",
          "membership_gap_student": "suffix_loss"}
BOOTSTRAP_DRAWS = 2000


@dataclass(frozen=True)
class Row:
    """One board row to compare: its label, and its run at each seed (`role` names which model of the run)."""

    label: str
    runs: Mapping[int, str]  # seed -> run_id
    role: str = "student"


def values(examples: pd.DataFrame, measure: str, rows: Sequence[Row]) -> tuple[np.ndarray, np.ndarray | None]:
    """(rows, seeds, members) of per-member values, and (rows, seeds, non-members) for a gap, over the
    seeds every row has and the examples every run scored. `examples`: `read.example_values`."""
    seeds = sorted(set.intersection(*(set(r.runs) for r in rows)))
    if not seeds:
        raise ValueError("the rows share no seed: they cannot be compared paired")
    once = measure == "membership_gap_student"
    runs = {run for r in rows for run in r.runs.values()}
    mine = examples[examples["run_id"].isin(runs)]  # a board's other rows are no part of this comparison
    parts = {}
    for split in ("member", "nonmember") if once else ("member",):
        picked = mine[mine["split"] == split]
        if once and split == "member":
            picked = picked[picked["repeats"] == 1]
        column = SOURCE[measure]
        wide = picked.pivot(index=["run_id", "role"], columns="sample_id", values=column)
        keys = [(r.runs[s], r.role) for r in rows for s in seeds]
        missing = [k for k in keys if k not in wide.index]
        if missing:
            raise ValueError(f"run {missing[0][0]} stored no {column} for its {missing[0][1]}")
        table = wide.loc[keys].dropna(axis=1).to_numpy(dtype=float)  # the examples every run scored
        if table.shape[1] == 0:
            raise ValueError(f"no {split} has a {column} in every run")
        if measure == "extractable_rate_student":
            table = probabilistic.chance(table)
        elif once:
            table = -table  # higher leaks more: members' loss below the non-members'
        parts[split] = table.reshape(len(rows), len(seeds), -1)
    return parts["member"], parts.get("nonmember")


def comparable(examples: pd.DataFrame, measure: str) -> bool:
    """Whether the runs stored what `measure` rests on (runs from before sample_logprob have no sampling chance)."""
    column = SOURCE[measure]
    return not examples.empty and column in examples and examples[column].notna().any()


def compare(examples: pd.DataFrame, measure: str, rows: Sequence[Row]) -> paired.Comparison:
    """The rows compared paired on `measure`, by the two-way bootstrap over members and seeds."""
    members, nonmembers = values(examples, measure, rows)
    return paired.compare(members, nonmembers, draws=BOOTSTRAP_DRAWS)


def separated_pairs(c: paired.Comparison) -> tuple[int, int]:
    """(pairs separated at 95%, pairs) among the compared rows."""
    m = len(c.estimate)
    return int(np.triu(c.separated, 1).sum()), m * (m - 1) // 2
