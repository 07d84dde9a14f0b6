"""`--filter predicted`: distil without the members a predictor expects the student to memorize.

Borkar et al. filter the members their predictor flags before distilling. The labels come from the
unfiltered run at the same configuration (the protocol finds it in the results, or runs it first:
its teacher and baseline come from the cache); given that run's id, its predictor decides which
member rows are left out here.

Removing members removes memorization whoever picks them, so the filter has two controls, which
leave out as many members as the predictor flags: `--filter random`, drawn at random from all the
members, and `--filter matched`, drawn at random within each repeat stratum as many as the predictor
flags there. The predictor shows what it learned only where it beats both (`harness reproduce`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from harness.protocol.data import Examples
from harness.runtime import processes
from harness.runtime.log import info as log
from harness.store import read
from harness.store.database import Store


def predict_run(store: Store, run_id: str):
    """Fit the predictor on a stored run's members; store each member's risk and the report's figures."""
    from harness.measure.predict import FEATURES, predict_members

    with store.reading() as con:
        rows = read.features(con, run_id, FEATURES)
    report, ids, risk, figures = predict_members(run_id, rows)
    store.record_prediction(run_id, dict(zip(ids, risk.tolist())), figures)
    return report, ids, risk


def control(store: Store, source: str, members: Examples, how: str, seed: int) -> dict[str, Any]:
    """`--filter random` or `matched`: as many member rows as `predicted` flags, drawn at random from all the
    members or from each repeat stratum (its flagged count there); the same rows at the same seed."""
    flagged = predicted(store, source, members)
    rng = np.random.default_rng([seed, len(members), {"random": 20260, "matched": 20261}[how]])
    if how == "random":
        rows = rng.choice(len(members), size=len(flagged["rows"]), replace=False)
    else:
        repeats = members.repeats.numpy()
        taken = np.bincount(repeats[flagged["rows"]], minlength=repeats.max() + 1) if flagged["rows"] else []
        rows = np.concatenate([rng.choice(np.flatnonzero(repeats == r), size=k, replace=False)
                               for r, k in enumerate(taken) if k] or [np.zeros(0, np.int64)])
    rows = sorted(int(r) for r in rows)
    log(f"filter: {how} control leaves out {len(rows)} of {len(members)} members, as many as the predictor flags"
        + (", in each repeat stratum" if how == "matched" else ""))
    return {**flagged, "rows": rows, "figures": {**flagged["figures"], "removed": float(len(rows))}}


def predicted(store: Store, source: str, members: Examples) -> dict[str, Any]:
    """The member rows the source run's predictor flags, and the figures the filter reports."""
    from harness.measure.predict import THRESHOLD

    # the predictor is fitted and stored by the main process; every process leaves out the same members
    report, ids, risk = processes.broadcast(predict_run(store, source) if processes.is_main() else None)
    position = {sid: i for i, sid in enumerate(members.sample_ids)}
    rows = sorted(position[sid] for sid, r in zip(ids, risk) if r >= THRESHOLD)
    if processes.is_main():
        with store.reading() as con:
            unfiltered = read.metrics(con, source)
    mem, ppl = processes.broadcast((unfiltered.get("mem_rate_student"), unfiltered.get("val_ppl_student"))
                                   if processes.is_main() else None)
    log(f"filter: predictor from run {source} (AUC {report.auc_mean:.3f} over {report.splits} splits) leaves out "
        f"{len(rows)} of {len(members)} members predicted to be memorized")
    return {"source_run": source, "rows": rows,
            "figures": {"removed": float(len(rows)), "predict_auc": report.auc_mean,
                        "unfiltered_mem_rate_student": mem, "unfiltered_val_ppl_student": ppl}}
