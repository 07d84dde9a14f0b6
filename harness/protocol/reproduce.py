"""`harness reproduce`: the studies' findings, measured here, side by side with the published figures.

Each finding is a figure of a few runs at one seed (soft KD, hard KD, reverse KL, and hard KD
with the predicted members filtered out), its mean and 95% t-interval over seeds, and whether the
published *direction* holds at this scale. A run already in the results at the same
configuration is read, not rerun; models come from the cache. Where a direction does not hold,
the report says so: the harness reports what it measures (docs/protocol.md, "Reproducing the
studies", discusses why a finding may not hold on a small model).
"""

from __future__ import annotations

import json
import math
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timezone

from harness.errors import RunFailed, UsageError
from harness.measure.stats import interval
from harness.protocol.request import EvalRequest
from harness.protocol.run import Protocol
from harness.runtime import processes

# The runs a seed needs: name -> (method, filter)
# The predictor is fitted on the hard-KD student's memorized members: at the embedded default's scale
# the soft-KD student memorizes too few (2 of 512) to fit one, while the hard-KD student memorizes
# about as many as the baseline.
RUNS: dict[str, tuple[str, str | None]] = {
    "soft": ("soft-kd", None),
    "hard": ("hard-kd", None),
    "reverse": ("reverse-kl", None),
    "filtered": ("hard-kd", "predicted"),
}
BORKAR = "Borkar et al. (2026)"

Runs = Mapping[str, Mapping[str, float]]  # run name -> its figures, at one seed


def _get(runs: Runs, run: str, name: str) -> float:
    value = runs[run].get(name)
    return math.nan if value is None else float(value)


def _ratio(a: float, b: float) -> float:
    return a / b if b and not math.isnan(a) and not math.isnan(b) else math.nan


@dataclass(frozen=True)
class Finding:
    name: str
    claim: str  # the finding, as the study states its direction
    published: str  # the study's figure
    source: str  # paper and where in it (as the README cites it)
    measure: Callable[[Runs], float]  # the same figure here, from one seed's runs
    holds: Callable[[float], bool]  # whether a measured value has the published direction
    unit: str = ""  # "%" a share, "x" a ratio, "auc" an AUC, "" a signed difference


FINDINGS: tuple[Finding, ...] = (
    Finding("reduction", "the soft-KD student memorizes fewer members than the baseline",
            ">= 2.4x fewer", f"{BORKAR}, FineWeb and WikiText-103",
            lambda r: _ratio(_get(r, "soft", "mem_rate_baseline"), _get(r, "soft", "mem_rate_student")),
            lambda v: v > 1, "x"),
    Finding("validation loss", "the soft-KD student's validation loss is at or below the baseline's",
            "student <= baseline", f"{BORKAR}, utility",
            lambda r: _get(r, "soft", "val_loss_student") - _get(r, "soft", "val_loss_baseline"),
            lambda v: v <= 0),
    Finding("easy share", "nearly all the student memorizes, teacher and baseline memorize too",
            "95.7%", f"{BORKAR}, overlap of memorized sets",
            lambda r: _get(r, "soft", "easy_share"), lambda v: v > 0.5, "%"),
    Finding("soft-KD inheritance", "soft KD rarely passes on what only the teacher memorized",
            "0.9% (18 of 1,955)", f"{BORKAR}, teacher-exclusive members",
            lambda r: _get(r, "soft", "inheritance_rate"), lambda v: v < 0.1, "%"),
    Finding("hard/soft inheritance", "hard KD inherits more of the teacher's exclusive members than soft KD",
            "2.7x", f"{BORKAR}, teacher-exclusive members",
            lambda r: _ratio(_get(r, "hard", "inheritance_rate"), _get(r, "soft", "inheritance_rate")),
            lambda v: v > 1, "x"),
    Finding("containment", "the larger model memorizes what the smaller one does",
            "teacher > baseline (0.33% vs 0.17%, Pythia)", f"{BORKAR}, memorization rates",
            lambda r: _get(r, "soft", "containment"), lambda v: v > 0.5, "%"),
    Finding("predictor AUC", "teacher and baseline perplexity, their KL and zlib entropy predict what the "
            "student memorizes (here the hard-KD student's)", "AUC ~ 0.99", f"{BORKAR}, predicting memorization",
            lambda r: _get(r, "filtered", "filter_predict_auc"), lambda v: v > 0.8, "auc"),
    Finding("filtering", "leaving out the predicted members before distilling removes most memorization "
            "(hard KD here)",
            "1,698 -> 4 memorized", f"{BORKAR}, filtering experiment",
            lambda r: _ratio(_get(r, "filtered", "mem_rate_student"),
                             _get(r, "filtered", "filter_unfiltered_mem_rate_student")),
            lambda v: v < 0.5, "x"),
    Finding("reverse vs forward KL", "a reverse-KL student memorizes less than a forward-KL (soft-KD) one",
            "6.0% vs 65.4% fine-tuned (GPT-2)", "Singh (2025)",
            lambda r: _ratio(_get(r, "reverse", "mem_rate_student"), _get(r, "soft", "mem_rate_student")),
            lambda v: v < 1, "x"),
    Finding("teacher vs student MIA", "membership inference (loss attack) is easier on the teacher than on "
            "its student", "teacher AUC > student AUC", "Zhang et al. (2025)",
            lambda r: _get(r, "soft", "auc_loss_teacher") - _get(r, "soft", "auc_loss_student"),
            lambda v: v > 0),
)


@dataclass
class Row:
    finding: Finding
    values: list[float]  # per seed
    mean: float
    lo: float
    hi: float

    @property
    def holds(self) -> bool | None:
        """Whether the mean has the published direction (None: nothing to measure)."""
        return None if math.isnan(self.mean) else bool(self.finding.holds(self.mean))

    @property
    def verdict(self) -> str:
        if self.holds is None:
            return "n/a (nothing to measure)"
        if not self.holds:
            return "DOES NOT HOLD"
        sure = all(self.finding.holds(v) for v in (self.lo, self.hi) if not math.isnan(v))
        return "holds" if sure else "holds on the mean; the 95% interval crosses"


@dataclass
class Reproduction:
    reproduction_id: str
    seeds: list[int]
    runs: dict[int, dict[str, str]]  # seed -> run name -> run id
    rows: list[Row]


def reproduce(base: EvalRequest, seeds: list[int], report=print) -> Reproduction:
    """Every run the findings need at each seed, read from the results or run now; then the findings."""
    runs: dict[int, dict[str, str]] = {}
    figures: dict[int, dict[str, dict[str, float]]] = {}
    for seed in seeds:
        runs[seed], figures[seed] = {}, {}
        for name, (method, filter_) in RUNS.items():
            req = replace(base, method=method, seed=seed, filter=filter_,
                          command=f"{base.command}  [reproduce: {name}, seed {seed}]")
            protocol = Protocol(req)
            found = protocol.finished_run()
            if found is None:
                report(f"reproduce: seed {seed}, {name} ({method}{', filtered' if filter_ else ''}): running it")
                try:
                    found = protocol.run().run_id
                except (RunFailed, UsageError) as err:  # its findings are n/a; the others still stand
                    report(f"reproduce: seed {seed}, {name}: could not run ({err}); its findings are n/a")
                    figures[seed][name] = {}
                    continue
            else:
                report(f"reproduce: seed {seed}, {name}: run {found} from the results")
            runs[seed][name] = found
            figures[seed][name] = processes.broadcast(_figures(protocol, found) if processes.is_main() else None)
    rows = []
    for finding in FINDINGS:
        values = [finding.measure(figures[seed]) for seed in seeds]
        mean, lo, hi = interval(values)
        if finding.unit == "%":  # a share's interval stops at 0 and 100%
            lo, hi = max(lo, 0.0), min(hi, 1.0)
        elif finding.unit in ("x", "auc"):  # ratios and AUCs are never negative
            lo = max(lo, 0.0)
        rows.append(Row(finding, values, mean, lo, hi))
    reproduction_id = processes.broadcast(datetime.now(timezone.utc).strftime("r%Y%m%d-%H%M%S-") + secrets.token_hex(3))
    result = Reproduction(reproduction_id, list(seeds), runs, rows)
    if processes.is_main():
        protocol.store.record_reproduction(reproduction_id, _family_dataset(protocol), rows_for_store(result))
    return result


def _figures(protocol: Protocol, run_id: str) -> dict[str, float]:
    _, rows = protocol.store.query("SELECT name, value FROM metrics WHERE run_id = ?", [run_id])
    return {name: value for name, value in rows}


def _family_dataset(protocol: Protocol) -> dict[str, str]:
    return {"family": protocol.family.name, "dataset": protocol.dataset.name, "preset": protocol.preset.name}


def rows_for_store(result: Reproduction) -> list[dict]:
    return [{"finding": r.finding.name, "claim": r.finding.claim, "published": r.finding.published,
             "source": r.finding.source, "unit": r.finding.unit, "n": sum(not math.isnan(v) for v in r.values),
             "mean": r.mean, "lo": r.lo, "hi": r.hi, "holds": r.holds,
             "per_seed": json.dumps([None if math.isnan(v) else v for v in r.values]),
             "runs": json.dumps({str(s): ids for s, ids in result.runs.items()})} for r in result.rows]


def table(result: Reproduction) -> str:
    from harness.store import tables
    from harness.store.tables import finding_value as fmt

    rows = []
    for r in result.rows:
        unit = r.finding.unit
        n = sum(not math.isnan(v) for v in r.values)
        measured = fmt(r.mean, unit)
        if n > 1 and r.lo != r.hi:
            measured += f" [{fmt(r.lo, unit)}, {fmt(r.hi, unit)}]"
        if 0 < n < len(r.values):  # a seed where the figure is undefined (nothing memorized) drops out
            measured += f" ({n} of {len(r.values)} seeds)"
        rows.append([r.finding.name, r.finding.claim, r.finding.published, r.finding.source, measured, r.verdict])
    return tables.render(["finding", "direction (published)", "published", "source", "measured here",
                          "direction here"], rows, right=[False, False, False, False, True, False])
