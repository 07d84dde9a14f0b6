"""Fault injection for the reliability tests: `HARNESS_FAULT` makes a run die (or stall) at a named point.

The tests must kill `harness eval` at exact places (mid-training, mid-extraction, inside the
results transaction) rather than after a guessed delay, so the code calls `fault(point)` there,
and nothing happens unless the variable names that point:

    HARNESS_FAULT=teacher:step@5        SIGKILL at the 5th training step of the teacher
    HARNESS_FAULT=extraction:batch      SIGKILL at the first extraction batch
    HARNESS_FAULT=store:commit=sleep:2  hold the results transaction open for 2 seconds

Entries are `point[@n][=action]`, comma-separated; the action is `kill` (the default) or
`sleep:SECONDS`. Points: `<role>:step` (teacher, baseline, student), `generate:batch` (a
teacher generating a data-level method's data), `cache:write` (an artifact written but not yet
in place), `extraction:batch`, `store:commit` (inside the finishing transaction, before it
commits).
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter

from harness.runtime import log

ENV_VAR = "HARNESS_FAULT"

_hits: Counter[str] = Counter()


def fault(point: str) -> None:
    """Die or stall here if `HARNESS_FAULT` names this point (and this is its n-th hit)."""
    spec = os.environ.get(ENV_VAR)
    if not spec:
        return
    _hits[point] += 1
    for entry in spec.split(","):
        where, _, action = entry.strip().partition("=")
        name, _, nth = where.partition("@")
        if name != point or _hits[point] != int(nth or 1):
            continue
        if action.startswith("sleep:"):
            time.sleep(float(action.removeprefix("sleep:")))
        else:
            log.info(f"{ENV_VAR}: killing process {os.getpid()} at {point} (hit {_hits[point]})")
            os.kill(os.getpid(), signal.SIGKILL)
