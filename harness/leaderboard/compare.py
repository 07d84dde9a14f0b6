"""Methods side by side on one family, dataset and seed set: how much each student inherits.

The question it answers is the study's "hard KD inherits 2.7x more teacher-exclusive examples
than soft KD": each method's figures, the overlap of the students' memorized sets, and the ratio
of inherited counts, from runs already in the store (`harness.present.compare_report` prints them).
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.errors import UsageError
from harness.store.database import Store


@dataclass
class Comparison:
    methods: list[str]
    seeds: list[int]
    figures: dict[str, dict[str, float]]  # method -> figure -> mean over seeds
    memorized: dict[str, dict[int, set[str]]]  # method -> seed -> the student's memorized members
    overlap: dict[tuple[str, str], float]  # (a, b) -> mean |M_a ∩ M_b| over seeds
    jaccard: dict[tuple[str, str], float]

    def ratio(self, a: str, b: str) -> float:
        """How many times as many teacher-exclusive members b's student inherits as a's."""
        x, y = self.figures[a]["inherited"], self.figures[b]["inherited"]
        return y / x if x else float("nan")


FIGURES = ("mem_rate_student", "inherited", "teacher_exclusive", "inheritance_rate", "easy_share", "val_ppl_student")


def compare(store: Store, methods: list[str], family: str, dataset: str, seeds: list[int] | None = None) -> Comparison:
    """The latest finished, unfiltered run of each method at each seed that all methods have."""
    latest: dict[str, dict[int, str]] = {}
    for method in methods:
        _, rows = store.query(
            "SELECT seed, arg_max(run_id, finished_at) FROM runs WHERE status = 'finished' AND filter IS NULL "
            "AND family = ? AND dataset = ? AND (method = ? OR method_label = ?) GROUP BY seed",
            [family, dataset, method, method])
        latest[method] = {seed: run for seed, run in rows if seeds is None or seed in seeds}
        if not latest[method]:
            raise UsageError(f"no finished {method} run on {family} / {dataset}"
                             + (f" at seeds {seeds}" if seeds else "") + f": run `harness eval --method {method}` first")
    common = sorted(set.intersection(*(set(v) for v in latest.values())))
    if not common:
        raise UsageError("the methods share no seed: " + "; ".join(f"{m} has seeds {sorted(v)}" for m, v in latest.items()))
    figures, memorized = {}, {}
    for method in methods:
        ids = [latest[method][s] for s in common]
        _, rows = store.query("SELECT name, avg(value) FROM metrics WHERE list_contains(?, run_id) "
                              "AND list_contains(?, name) GROUP BY name", [ids, list(FIGURES)])
        figures[method] = dict(rows)
        memorized[method] = {}
        for seed in common:
            _, rows = store.query("SELECT sample_id FROM samples WHERE run_id = ? AND role = 'student' "
                                  "AND split = 'member' AND memorized", [latest[method][seed]])
            memorized[method][seed] = {r[0] for r in rows}
    overlap, jaccard = {}, {}
    for i, a in enumerate(methods):
        for b in methods[i + 1:]:
            inter = [len(memorized[a][s] & memorized[b][s]) for s in common]
            union = [len(memorized[a][s] | memorized[b][s]) for s in common]
            overlap[(a, b)] = sum(inter) / len(common)
            defined = [x / u for x, u in zip(inter, union) if u]  # two empty sets have no Jaccard index
            jaccard[(a, b)] = sum(defined) / len(defined) if defined else float("nan")
    return Comparison(methods, common, figures, memorized, overlap, jaccard)

