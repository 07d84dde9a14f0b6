"""The protocol under `accelerate launch` with two CPU processes (gloo) gives the single-process figures.

Training splits each single-process batch across the processes and weights the losses so the
averaged gradient is the same; only the order of floating-point sums differs. So the memorized
sets and match lengths must be the same, member by member (an arg-max tie may go either way and
is counted, as everywhere in the harness), and losses agree to float32 reduction noise.
"""

from __future__ import annotations

import os
import subprocess
import sys

import duckdb
import pytest

from harness.cli import main
from tests.conftest import quick_args

pytestmark = pytest.mark.slow

LOSS_TOLERANCE = 1e-3  # relative: float32 sums taken in another order, over a few hundred steps


def launch(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "2", "--cpu",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "harness", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)


def results(db: str) -> tuple[dict, dict, list]:
    con = duckdb.connect(db, read_only=True)
    try:
        runs = con.execute("SELECT run_id, method, status FROM runs ORDER BY started_at").fetchall()
        samples, metrics = {}, {}
        for run_id, method, _ in runs:
            for role, split, sid, memorized, match_len, loss, tie in con.execute(
                    "SELECT role, split, sample_id, memorized, match_len, loss, tie FROM samples WHERE run_id = ?",
                    [run_id]).fetchall():
                samples[(method, role, split, sid)] = (memorized, match_len, loss, tie)
            metrics[method] = dict(con.execute("SELECT name, value FROM metrics WHERE run_id = ?", [run_id]).fetchall())
        return samples, metrics, runs
    finally:
        con.close()


def test_two_processes_give_the_single_process_figures(quick_registry, tmp_path, monkeypatch):
    one_db = os.environ["HARNESS_DB"]
    for method in ("hard-kd", "soft-kd"):  # a method that makes data, and one distilled from logits
        assert main(quick_args(quick_registry, method)) == 0

    two_db = str(tmp_path / "two" / "harness.duckdb")
    env = {**os.environ, "HARNESS_DB": two_db, "HARNESS_CACHE": str(tmp_path / "two" / "cache")}
    outputs, errors = [], []
    for method in ("hard-kd", "soft-kd"):  # the second finds the teacher and the baseline in its own cache
        done = launch(quick_args(quick_registry, method), env)
        assert done.returncode == 0, done.stderr[-3000:]
        outputs.append(done.stdout)
        errors.append(done.stderr)
    assert all(out.count("finished in") == 1 for out in outputs), "only the main process reports"
    assert "teacher: tiny 2.6m from the cache" in done.stderr
    assert not any("Writing model shards" in err for err in errors)  # HARNESS_PROGRESS=0 quiets transformers' bars too

    one, one_metrics, one_runs = results(one_db)
    two, two_metrics, two_runs = results(two_db)
    assert [(m, s) for _, m, s in two_runs] == [("hard-kd", "finished"), ("soft-kd", "finished")]  # written once
    assert one.keys() == two.keys()
    for k, (memorized, match_len, loss, tie) in one.items():
        memorized2, match_len2, loss2, tie2 = two[k]
        if not (tie or tie2):
            assert (memorized, match_len) == (memorized2, match_len2), k
        assert loss2 == pytest.approx(loss, rel=LOSS_TOLERANCE), k
    for method, figures in one_metrics.items():
        assert figures.keys() == two_metrics[method].keys()
        for name in ("val_loss_teacher", "val_loss_baseline", "val_loss_student"):
            assert two_metrics[method][name] == pytest.approx(figures[name], rel=LOSS_TOLERANCE), (method, name)

