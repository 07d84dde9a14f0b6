"""`--filter predicted`: distil without the members a predictor expects the student to memorize.

Borkar et al. filter the members their predictor flags before distilling. The labels come from the
unfiltered run at the same configuration, so that run is found in the results, or run first (its
teacher and baseline come from the cache), and its predictor decides which rows are left out.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from harness.protocol import provenance
from harness.protocol.data import Examples
from harness.runtime import processes
from harness.runtime.log import info as log
from harness.store.database import Store, config_hash

if TYPE_CHECKING:
    from harness.protocol.run import Protocol


def predicted(p: Protocol, dataset_hash: str, members: Examples, nonmembers: Examples) -> dict[str, Any]:
    """The source run, the member rows left out, and the figures the filter reports."""
    from harness.measure.predict import THRESHOLD, predict_run

    source = processes.broadcast(unfiltered_run(p, dataset_hash, members, nonmembers) if processes.is_main() else None)
    if source is None:
        log(f"filter: no unfiltered {p.method.name} run at this configuration yet; running it first")
        unfiltered = replace(p.req, filter=None, command=p.req.command + "  [the unfiltered run]")
        source = type(p)(unfiltered).run().run_id
    # the predictor is fitted and stored by the main process; every process leaves out the same members
    report, ids, risk = processes.broadcast(predict_run(p.store, source) if processes.is_main() else None)
    position = {sid: i for i, sid in enumerate(members.sample_ids)}
    rows = sorted(position[sid] for sid, r in zip(ids, risk) if r >= THRESHOLD)
    _, [(mem, ppl)] = processes.broadcast(p.store.query(
        "SELECT max(value) FILTER (name = 'mem_rate_student'), max(value) FILTER (name = 'val_ppl_student') "
        "FROM metrics WHERE run_id = ?", [source]) if processes.is_main() else None)
    log(f"filter: predictor from run {source} (AUC {report.auc_mean:.3f} over {report.splits} splits) leaves out "
        f"{len(rows)} of {len(members)} members predicted to be memorized")
    return {"source_run": source, "rows": rows,
            "figures": {"removed": float(len(rows)), "predict_auc": report.auc_mean,
                        "unfiltered_mem_rate_student": mem, "unfiltered_val_ppl_student": ppl}}


def unfiltered_run(p: Protocol, dataset_hash: str, members: Examples, nonmembers: Examples) -> str | None:
    """The latest finished run without a filter at `p`'s configuration (main process only)."""
    row = provenance.run_row(p, "", dataset_hash, p.tokenizer_key, members, nonmembers, None)
    return latest(p.store, config_hash({**row, "filter": None}))


def finished_run(p: Protocol) -> str | None:
    """The latest finished run in the results at exactly `p`'s configuration, if any (none is run)."""
    if not processes.is_main():
        return processes.broadcast(None)
    members, nonmembers, dataset_hash = p.data()
    unfiltered = unfiltered_run(p, dataset_hash, members, nonmembers)
    if p.req.filter is None or unfiltered is None:
        return processes.broadcast(unfiltered)
    _, rows = p.store.query(
        "SELECT run_id FROM runs WHERE status = 'finished' AND json_extract_string(filter, '$.by') = ? "
        "AND json_extract_string(filter, '$.source_run') = ? ORDER BY finished_at DESC LIMIT 1",
        [p.req.filter, unfiltered])
    return processes.broadcast(rows[0][0] if rows else None)


def latest(store: Store, config: str) -> str | None:
    """The latest finished run with this config hash and the predictor's features, if any."""
    if not store.path.is_file():
        return None
    _, rows = store.query("SELECT r.run_id FROM runs r WHERE r.config_hash = ? AND r.status = 'finished' "
                          "AND EXISTS (SELECT 1 FROM features f WHERE f.run_id = r.run_id) "
                          "ORDER BY r.finished_at DESC LIMIT 1", [config])
    return rows[0][0] if rows else None
