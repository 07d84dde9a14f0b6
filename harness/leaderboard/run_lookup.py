"""Finding one run again: its id from a unique prefix or `latest`, and its student's recipe.

`harness show` reads the rest through `harness.store.read` and prints it (`harness.present.run_report`).
"""

from __future__ import annotations

import json
from typing import Any

from harness.errors import UsageError, unknown
from harness.store import read
from harness.store.database import Store

# The most a checkpoint's training.json, named by a results file, is read for: it holds one recipe.
TRAINING_JSON_BYTES = 1 << 20


def resolve_run_id(store: Store, run_id: str) -> str:
    """`latest`, or a unique prefix of a stored run's id; anything else is one line naming the choices."""
    with store.reading() as con:
        if run_id == "latest":
            latest = read.recent_run_ids(con, 1)
            if not latest:
                raise UsageError(f"no runs in {store.path} yet")
            return latest[0]
        found = read.run_ids_from(con, run_id)
        recent = [] if found else read.recent_run_ids(con, 50)
    if len(found) == 1:
        return found[0]
    if len(found) > 1:
        raise UsageError(f"run id {run_id!r} is ambiguous: {', '.join(found[:5])}")
    if not recent:
        raise UsageError(f"no run {run_id!r}: {store.path} holds no runs yet")
    raise unknown("run", run_id, recent)


def student_recipe(run: dict[str, Any], checkpoint: str | None) -> str:
    """How the run's student was trained: the recipe its checkpoint was trained and keyed by (its
    `training.json`, in the folder `checkpoint`), or, where that folder is not on this machine (an imported run, a cleared
    cache), the run's preset with the method's overrides as its plugin declares them here."""
    from pathlib import Path

    from harness.config.registry import Training

    written = Path(checkpoint) / "training.json" if checkpoint else None
    try:  # a path a results file names: read only a small regular file there (never a FIFO or a device)
        if written.is_file() and written.stat().st_size <= TRAINING_JSON_BYTES:
            return Training(**json.loads(written.read_text())["training"]).describe() + " (as trained)"
    except (AttributeError, OSError, KeyError, TypeError, ValueError, OverflowError, RecursionError):
        pass
    try:
        preset = Training(**json.loads(run["preset_values"])["student"])
        preset.describe()
    except (KeyError, TypeError, ValueError, OverflowError, RecursionError):
        return "unknown"
    from harness.config import plugins, registry
    from harness.contract.specs import describe_training

    try:
        method = plugins.load(registry.load()).method(run["method"])
    except UsageError:
        return f"{preset.describe()} (the preset's; method {run['method']} is not registered here to say more)"
    if not method.training:
        return f"{preset.describe()} (the preset's)"
    return (f"{preset.overlaid(method.training).describe()} (the preset's with {describe_training(method.training)}, "
            "as the method declares it)")
