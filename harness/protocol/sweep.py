"""A grid of protocol runs: methods × families × datasets × seeds, each teacher and baseline trained once.

The cells are ordered so that all methods of one family, dataset and seed run together: the
first trains the teacher and the baseline into the cache and the others load them. A cell that
fails is reported and the sweep goes on; every name is checked before the first cell runs, and a
cell already finished in the results is not run again. On a scheduler, `harness.protocol.scheduler`
submits the grid's groups as jobs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

from harness.config import plugins, registry
from harness.errors import RunFailed
from harness.protocol.evaluate import evaluate
from harness.protocol.request import EvalRequest
from harness.protocol.run import RunResult


@dataclass(frozen=True)
class Cell:
    family: str
    dataset: str
    method: str
    seed: int

    def __str__(self) -> str:
        return f"{self.family} / {self.dataset} / {self.method} / seed {self.seed}"


@dataclass
class Outcome:
    cell: Cell
    seconds: float
    result: RunResult | None = None
    error: str | None = None
    stored: str | None = None  # the run id of a cell already finished in the results: read, not rerun

    @property
    def ok(self) -> bool:
        return self.result is not None or self.stored is not None

    def line(self) -> str:
        if self.stored is not None:
            return f"{self.cell}: run {self.stored} from the results"
        if self.result is None:
            return f"{self.cell}: FAILED in {self.seconds:.0f}s: {self.error}"
        r = self.result
        how = ", ".join(f"{role} {'cache' if m.cached else f'trained {m.train_seconds:.0f}s'}"
                        for role, m in r.models.items())
        rate = r.metrics.get("mem_rate_student")
        return f"{self.cell}: run {r.run_id} in {self.seconds:.0f}s ({how}); student memorizes {100 * rate:.1f}%"


def grid(base: EvalRequest, methods: list[str], families: list[str], datasets: list[str], seeds: list[int]) -> list[Cell]:
    """Every cell of the grid, names resolved (`all` means every registered method), in cache-friendly order."""
    reg = registry.load(base.registry)
    found = plugins.load(reg)
    methods = list(found.methods) if methods == ["all"] else [found.method(m).name for m in methods]
    families = [found.family(f).name for f in families or [reg.family]]
    datasets = [found.dataset(d).name for d in datasets or [reg.dataset]]
    return [Cell(f, d, m, s) for f in families for d in datasets for s in seeds for m in methods]


def shard(cells: list[Cell], index: int, count: int) -> list[Cell]:
    """The cells machine `index` of `count` runs: whole (family, dataset, seed) groups, dealt in turn.

    A group's methods share one teacher and baseline, so a group never spans machines and each
    teacher is trained once across the fleet; the groups are dealt round-robin so every machine
    gets a similar share of the grid.
    """
    groups = list(dict.fromkeys((c.family, c.dataset, c.seed) for c in cells))
    mine = set(groups[index::count])
    return [c for c in cells if (c.family, c.dataset, c.seed) in mine]


def run(base: EvalRequest, cells: list[Cell], report=print) -> list[Outcome]:
    """Every cell, in order; a cell already finished in the results is read, so a killed sweep (or a
    resubmitted cluster job) goes on where it stopped, its models from the artifact cache."""
    outcomes = []
    for i, cell in enumerate(cells, 1):
        t0 = time.perf_counter()
        req = replace(base, family=cell.family, dataset=cell.dataset, method=cell.method, seed=cell.seed)
        try:
            done = evaluate(req)
            outcome = Outcome(cell, 0.0, stored=done.run_id) if done.stored else Outcome(cell, 0.0, result=done.result)
        except RunFailed as err:
            outcome = Outcome(cell, 0.0, error=str(err))
        outcome.seconds = time.perf_counter() - t0
        report(f"[{i}/{len(cells)}] {outcome.line()}")
        outcomes.append(outcome)
    return outcomes
