"""One configuration over several seeds: per-seed runs, mean and 95% interval, sets memorized at every seed.

A memorization rate from one seed mixes the method's effect with the luck of one training run;
the study this harness follows found examples the baseline memorized at every seed and the
student at none. Each seed is an ordinary run (cached stages are reused); the group ties them.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, replace
from datetime import datetime, timezone

from harness.contract.specs import ROLES
from harness.measure.stats import interval
from harness.protocol.evaluate import Evaluation, evaluate
from harness.protocol.request import EvalRequest
from harness.runtime import processes
from harness.store import read
from harness.store.database import Store


@dataclass
class SeedGroup:
    group_id: str
    runs: dict[int, Evaluation]
    summary: dict[str, tuple[int, float, float, float]]  # figure -> (seeds, mean, lo, hi)
    always: dict[str, list[str]]  # role -> members memorized at every seed


def run_seeds(req: EvalRequest, count: int, rerun: bool = True) -> SeedGroup:
    """Seeds `req.seed` .. `req.seed + count - 1`, each through `evaluate` (`rerun=False`: a seed already
    stored at this configuration is read back), grouped and stored as one seed group."""
    runs = {seed: evaluate(replace(req, seed=seed), rerun=rerun) for seed in range(req.seed, req.seed + count)}
    names = sorted({name for r in runs.values() for name in r.metrics})
    summary = {}
    for name in names:
        values = [r.metrics.get(name) for r in runs.values()]
        mean, lo, hi = interval(values)
        summary[name] = (sum(v is not None for v in values), mean, lo, hi)
    always: dict[str, list[str]] = {}
    group_id = processes.broadcast(datetime.now(timezone.utc).strftime("g%Y%m%d-%H%M%S-") + secrets.token_hex(3))
    if processes.is_main():  # the results database is the main process's
        store = Store(req.db)
        with store.reading() as con:
            always = {role: read.memorized_at_every(con, [r.run_id for r in runs.values()], role) for role in ROLES}
        store.record_group(group_id, {r.run_id: seed for seed, r in runs.items()}, summary, always)
    always = processes.broadcast(always)
    return SeedGroup(group_id, runs, summary, always)
