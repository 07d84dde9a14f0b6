"""Each member's counts summed over seeds: what a pooled share's design effect rests on.

The seeds of a board or a reproduction test one sample of members, so a member's verdicts at the
seeds are one cluster, not independent trials (docs/protocol.md, "The seeds share their members"). The overlap sets
are defined here once, for one run (`harness.measure.metrics`) and for the clusters alike. Torch-free,
so the leaderboard app can read them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

from harness.contract.specs import ROLES
from harness.measure.stats import crossed_design_effect, design_effect

Totals = Mapping[str, list[int]]  # count name -> per member (sorted sample ids), summed over the runs


def overlap_sets(m: Mapping[str, set]) -> dict[str, set]:
    """The members behind each count of one run, from each role's memorized set."""
    exclusive = m["teacher"] - m["baseline"]
    return {**{f"memorized_{r}": m[r] for r in ROLES},
            "teacher_exclusive": exclusive,
            "inherited": m["student"] & exclusive,
            "easy": m["student"] & m["teacher"] & m["baseline"],
            "both": m["teacher"] & m["baseline"],
            "student_only": m["student"] - (m["teacher"] | m["baseline"])}


def member_totals(verdicts: Iterable[tuple[str, str, str, bool]]) -> dict[str, list[int]]:
    """(run_id, sample_id, role, memorized) rows of the runs' members -> for each count (and
    `n_members`, the runs that tested the member), its per-member sums over the runs."""
    tested: dict[str, set] = {}
    memorized: dict[str, dict[str, set]] = {}
    for run_id, sample_id, role, hit in verdicts:
        tested.setdefault(run_id, set()).add(sample_id)
        sets = memorized.setdefault(run_id, {r: set() for r in ROLES})
        if hit and role in sets:
            sets[role].add(sample_id)
    totals: dict[str, Counter] = {"n_members": Counter()}
    for run_id, ids in tested.items():
        totals["n_members"].update(ids)
        for name, members in overlap_sets(memorized[run_id]).items():
            totals.setdefault(name, Counter()).update(members)
    members = sorted(totals["n_members"])
    return {name: [c[s] for s in members] for name, c in totals.items()}


def design(num: Sequence[int] | None, den: Sequence[int] | None, k: float, n: float, seeds: int,
           per_seed: Sequence[float] | None = None) -> float:
    """The design effect of the pooled share k / n from its members' totals (`num` of `den`, as
    `member_totals` gives them); `seeds`, the largest it can be, where they are missing or do not
    add up to k and n. `per_seed`, a rate's count at each seed (`memorized_<role>` over `n_members`,
    every seed testing every member), carries the seeds' own variance too: the larger of Kish's and
    the two-way deff (`stats.crossed_design_effect`). Ratio shares (inheritance, the easy share) pass none."""
    if num is None or den is None or len(num) != len(den) or sum(num) != k or sum(den) != n:
        return float(max(seeds, 1))
    deff = design_effect(num, den)
    if per_seed is not None and len(per_seed) and sum(per_seed) == k and all(t == len(per_seed) for t in den):
        deff = max(deff, crossed_design_effect(per_seed, num))
    return deff
