"""Reading one run back from the store: its id from a prefix or `latest`, its row, figures, models and
memorization by repeat count, and its student's recipe. `harness show` prints them (`harness.present.run_report`).
"""

from __future__ import annotations

import json
from typing import Any

from harness.contract.specs import ROLE_ORDER_SQL
from harness.errors import UsageError, unknown
from harness.store.database import Store


def resolve_run_id(store: Store, run_id: str) -> str:
    if run_id == "latest":
        _, rows = store.query("SELECT run_id FROM runs ORDER BY started_at DESC LIMIT 1")
        if not rows:
            raise UsageError(f"no runs in {store.path} yet")
        return rows[0][0]
    _, rows = store.query("SELECT run_id FROM runs WHERE starts_with(run_id, ?)", [run_id])
    if len(rows) == 1:
        return rows[0][0]
    if len(rows) > 1:
        raise UsageError(f"run id {run_id!r} is ambiguous: {', '.join(r[0] for r in rows[:5])}")
    _, recent = store.query("SELECT run_id FROM runs ORDER BY started_at DESC LIMIT 50")
    if not recent:
        raise UsageError(f"no run {run_id!r}: {store.path} holds no runs yet")
    raise unknown("run", run_id, [r[0] for r in recent])


def student_recipe(store: Store, run: dict[str, Any]) -> str:
    """How the run's student was trained: the recipe its checkpoint was trained and keyed by (its
    `training.json`), or, where that folder is not on this machine (an imported run, a cleared
    cache), the run's preset with the method's overrides as its plugin declares them here."""
    from pathlib import Path

    from harness.config.registry import Training

    _, rows = store.query("SELECT artifact_path FROM models WHERE run_id = ? AND role = 'student'", [run["run_id"]])
    written = Path(rows[0][0]) / "training.json" if rows and rows[0][0] else None
    try:
        return Training(**json.loads(written.read_text())["training"]).describe() + " (as trained)"
    except (AttributeError, OSError, KeyError, TypeError, ValueError):
        pass
    try:
        preset = Training(**json.loads(run["preset_values"])["student"])
    except (KeyError, TypeError, ValueError):
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


def run_row(store: Store, run_id: str) -> dict[str, Any]:
    """The run's row of `runs`, by column."""
    cols, rows = store.query("SELECT * FROM runs WHERE run_id = ?", [run_id])
    return dict(zip(cols, rows[0]))


def stored_metrics(store: Store, run_id: str) -> dict[str, float]:
    _, rows = store.query("SELECT name, value FROM metrics WHERE run_id = ?", [run_id])
    return dict(rows)


def stored_models(store: Store, run_id: str) -> list[dict[str, Any]]:
    """The run's models, one row each by column, in role order."""
    cols, rows = store.query("SELECT * FROM models WHERE run_id = ? ORDER BY "
                             f"{ROLE_ORDER_SQL}", [run_id])
    return [dict(zip(cols, r)) for r in rows]


def repeat_rates(store: Store, run_id: str) -> list[tuple]:
    """(repeats, role, members, memorization rate) for the members at each repetition count in training."""
    _, rows = store.query(
        "SELECT repeats, role, count(*), avg(memorized::INTEGER) FROM samples "
        "WHERE run_id = ? AND split = 'member' GROUP BY repeats, role", [run_id])
    return rows
