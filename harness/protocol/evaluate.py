"""The library's entry point: `harness.evaluate(request)`, one run of the protocol or the stored run that answers it.

lm-evaluation-harness exports `simple_evaluate`; this is the same for a script or a notebook::

    import harness
    result = harness.evaluate(harness.EvalRequest(method="soft-kd", seed=1))
    result.metrics["mem_rate_student"]

A request whose identity (its configuration hash, `harness.store.database.config_hash`) already
has a finished run in the results is read back, not run again: the sweep, the reproduction and a
resubmitted cluster job all go through here, so a killed grid goes on where it stopped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from harness.protocol.request import EvalRequest
from harness.protocol.run import Protocol, RunResult
from harness.runtime import processes
from harness.store import read


@dataclass(frozen=True)
class Evaluation:
    run_id: str
    metrics: dict[str, float]  # the run's figures, as `runs`/`metrics` store them (NaN where undefined)
    result: RunResult | None = None  # the run made now (models, stage times); None when read from the results

    @property
    def stored(self) -> bool:
        return self.result is None


def evaluate(request: EvalRequest, rerun: bool = False) -> Evaluation:
    """Run `request`, or return the latest finished run with its identity (`rerun=True`: always run).

    Raises `RunFailed` when the run fails (it is stored as failed, without figures) and
    `UsageError` for a request that cannot run; under `accelerate launch` every process calls it.
    """
    protocol = Protocol(request)
    found = None if rerun else _stored(protocol)
    if found is not None:
        return found
    result = protocol.run()
    return Evaluation(result.run_id, result.metrics, result)


def stored(request: EvalRequest) -> Evaluation | None:
    """The latest finished run with `request`'s identity, read from the results; None if there is none."""
    return _stored(Protocol(request))


def _stored(protocol: Protocol) -> Evaluation | None:
    if not protocol.req.db.is_file():
        return None
    found = protocol.finished_run()
    if found is None:
        return None
    if processes.is_main():
        with protocol.store.reading() as con:
            stored = read.metrics(con, found)
    stored = processes.broadcast(stored if processes.is_main() else None)
    return Evaluation(found, {name: math.nan if value is None else value for name, value in stored.items()})
