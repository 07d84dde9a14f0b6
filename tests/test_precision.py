"""One precision, whatever the cache holds: a model trained in this run scores as the same weights
loaded from the cache do.

Training may run under accelerate's bf16 autocast, and then every scoring pass runs the float32
weights rounded to bf16 (`harness.runtime.precision`). Here bf16 is asked for on the CPU, as
`accelerate launch --mixed_precision bf16` does: the cold run trains all three models, its rerun
loads them, and the two must agree on every verdict, match length and score, exactly. A third run
scores the same cached models in float32 (`HARNESS_SCORING=float32`): the share of verdicts that
differ is what bf16 scoring costs (docs/performance.md quotes it).
"""

from __future__ import annotations

import os

import duckdb
import pytest

from harness.cli import main
from tests.conftest import quick_args

pytestmark = pytest.mark.slow


def stored(db: str) -> tuple[list, list]:
    con = duckdb.connect(db, read_only=True)
    try:
        runs = con.execute("SELECT run_id, device FROM runs ORDER BY started_at").fetchall()
        per_run = []
        for run_id, _ in runs:
            samples = con.execute("SELECT role, split, sample_id, memorized, match_len, loss, suffix_loss, tie, "
                                  "approx_match, edit_distance FROM samples WHERE run_id = ? "
                                  "ORDER BY role, split, sample_id", [run_id]).fetchall()
            scores = con.execute("SELECT * EXCLUDE (run_id) FROM scores WHERE run_id = ? ORDER BY ALL",
                                 [run_id]).fetchall()
            metrics = con.execute("SELECT name, value FROM metrics WHERE run_id = ? ORDER BY name", [run_id]).fetchall()
            cached = con.execute("SELECT role, cached FROM models WHERE run_id = ? ORDER BY role", [run_id]).fetchall()
            per_run.append((samples, scores, metrics, cached))
        return runs, per_run
    finally:
        con.close()


@pytest.fixture
def fresh_accelerate_state():
    """accelerate keeps one precision per process (a singleton); this test asks for another."""
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)
    yield
    AcceleratorState._reset_state(reset_partial_state=True)


def test_cold_run_and_cached_rerun_agree_under_bf16(quick_registry, monkeypatch, fresh_accelerate_state):
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "bf16")
    for _ in range(2):
        assert main(quick_args(quick_registry, "soft-kd")) == 0
    runs, ((samples, scores, metrics, cached), (samples2, scores2, metrics2, cached2)) = stored(os.environ["HARNESS_DB"])
    assert [c for _, c in cached] == [False] * 3 and [c for _, c in cached2] == [True] * 3
    assert all(device.endswith("training bf16, scoring bf16; one process") for _, device in runs)
    assert len(samples) > 100 and samples == samples2  # verdicts, match lengths, losses, ties, continuations
    assert len(scores) > 100 and scores == scores2  # every attack's score on every example
    assert metrics == metrics2

    monkeypatch.setenv("HARNESS_SCORING", "float32")  # the same cached models, scored in float32
    assert main(quick_args(quick_registry, "soft-kd")) == 0
    runs, per_run = stored(os.environ["HARNESS_DB"])
    assert runs[-1][1].endswith("training bf16, scoring float32; one process")
    float32, cached32 = per_run[-1][0], per_run[-1][3]
    assert [c for _, c in cached32] == [True] * 3
    bf16 = {(r, sp, sid): (mem, tie) for r, sp, sid, mem, _, _, _, tie, *_ in samples}
    differ = [k for r, sp, sid, mem, *_ in float32 if bf16[(k := (r, sp, sid))][0] != mem]
    share = len(differ) / len(float32)
    print(f"bf16 against float32 scoring: {len(differ)} of {len(float32)} verdicts differ ({share:.2%}); "
          f"{sum(bf16[k][1] for k in differ)} of them flagged as ties in bf16")
    assert share <= 0.05
    assert sum(a[5] != b[5] for a, b in zip(samples, float32)) > len(samples) / 2  # float32 losses, not bf16 ones
