"""Methods side by side on one family, dataset and seed set: how much each student inherits.

The question it answers is the study's "hard KD inherits 2.7x more teacher-exclusive examples
than soft KD": each method's figures, the overlap of the students' memorized sets, and the ratio
of inherited counts, from runs already in the store (`harness.present.compare_report` prints them).
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.errors import UsageError
from harness.store import read
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
    """The latest unfiltered run that counts (`read.latest_by_seed`) of each method at each seed all methods have."""
    latest: dict[str, dict[int, str]] = {}
    figures, memorized = {}, {}
    with store.reading() as con:
        for method in methods:
            latest[method] = {seed: run for seed, run in read.latest_by_seed(con, family, dataset, method)
                              if seeds is None or seed in seeds}
            if not latest[method]:
                raise UsageError(f"no finished {method} run on {family} / {dataset}"
                                 + (f" at seeds {seeds}" if seeds else "")
                                 + f": run `harness eval --method {method}` first")
        common = sorted(set.intersection(*(set(v) for v in latest.values())))
        if not common:
            raise UsageError("the methods share no seed: "
                             + "; ".join(f"{m} has seeds {sorted(v)}" for m, v in latest.items()))
        for method in methods:
            figures[method] = read.metric_means(con, [latest[method][s] for s in common], FIGURES)
            memorized[method] = {seed: read.memorized(con, latest[method][seed], "student") for seed in common}
    overlap, jaccard = {}, {}
    for i, a in enumerate(methods):
        for b in methods[i + 1:]:
            inter = [len(memorized[a][s] & memorized[b][s]) for s in common]
            union = [len(memorized[a][s] | memorized[b][s]) for s in common]
            overlap[(a, b)] = sum(inter) / len(common)
            defined = [x / u for x, u in zip(inter, union) if u]  # two empty sets have no Jaccard index
            jaccard[(a, b)] = sum(defined) / len(defined) if defined else float("nan")
    return Comparison(methods, common, figures, memorized, overlap, jaccard)

