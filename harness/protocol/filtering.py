"""`--filter predicted`: distil without the members a predictor expects the student to memorize.

Borkar et al. filter the members their predictor flags before distilling. The labels come from the
unfiltered run at the same configuration (the protocol finds it in the results, or runs it first:
its teacher and baseline come from the cache); given that run's id, its predictor decides which
member rows are left out here.
"""

from __future__ import annotations

from typing import Any

from harness.protocol.data import Examples
from harness.runtime import processes
from harness.runtime.log import info as log
from harness.store import read
from harness.store.database import Store


def predict_run(store: Store, run_id: str):
    """Fit the predictor on a stored run's members; store each member's risk and the report's figures."""
    from harness.measure.predict import FEATURES, predict_members

    with store.connect(read_only=True) as con:
        rows = read.features(con, run_id, FEATURES)
    report, ids, risk, figures = predict_members(run_id, rows)
    store.record_prediction(run_id, dict(zip(ids, risk.tolist())), figures)
    return report, ids, risk


def predicted(store: Store, source: str, members: Examples) -> dict[str, Any]:
    """The member rows the source run's predictor flags, and the figures the filter reports."""
    from harness.measure.predict import THRESHOLD

    # the predictor is fitted and stored by the main process; every process leaves out the same members
    report, ids, risk = processes.broadcast(predict_run(store, source) if processes.is_main() else None)
    position = {sid: i for i, sid in enumerate(members.sample_ids)}
    rows = sorted(position[sid] for sid, r in zip(ids, risk) if r >= THRESHOLD)
    if processes.is_main():
        with store.connect(read_only=True) as con:
            unfiltered = read.metrics(con, source)
    mem, ppl = processes.broadcast((unfiltered.get("mem_rate_student"), unfiltered.get("val_ppl_student"))
                                   if processes.is_main() else None)
    log(f"filter: predictor from run {source} (AUC {report.auc_mean:.3f} over {report.splits} splits) leaves out "
        f"{len(rows)} of {len(members)} members predicted to be memorized")
    return {"source_run": source, "rows": rows,
            "figures": {"removed": float(len(rows)), "predict_auc": report.auc_mean,
                        "unfiltered_mem_rate_student": mem, "unfiltered_val_ppl_student": ppl}}
