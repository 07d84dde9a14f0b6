"""`harness.evaluate`: the library's entry point runs a request once, then reads the stored run back."""

from __future__ import annotations

import math
from dataclasses import replace

import duckdb
import pytest

import harness

pytestmark = pytest.mark.slow  # trains the quick preset's tiny models


def test_evaluate_runs_then_returns_the_stored_run_with_the_same_figures(quick_registry, tmp_path):
    req = harness.EvalRequest(method="soft-kd", preset="quick", registry=quick_registry, limit=16,
                              db=tmp_path / "h.duckdb", cache_dir=tmp_path / "cache")
    first = harness.evaluate(req)
    assert not first.stored and first.result is not None and first.result.run_id == first.run_id
    again = harness.evaluate(req)
    assert again.stored and again.result is None and again.run_id == first.run_id
    assert again.metrics.keys() == first.metrics.keys()
    for name, value in first.metrics.items():  # stored as DOUBLE: the same figures, bit for bit
        assert value == again.metrics[name] or (math.isnan(value) and math.isnan(again.metrics[name])), name

    other = harness.evaluate(replace(req, seed=1))  # another identity: run
    assert not other.stored and other.run_id != first.run_id
    rerun = harness.evaluate(req, rerun=True)
    assert not rerun.stored and rerun.run_id not in (first.run_id, other.run_id)
    with duckdb.connect(str(req.db), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM runs WHERE status = 'finished'").fetchone() == (3,)
