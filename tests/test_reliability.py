"""Faults: runs killed at every stage resume to the same figures; concurrent writers all land; NaN/inf stop.

The kills are exact, not timed: `HARNESS_FAULT` (harness/runtime/faults.py) makes the process SIGKILL
itself at a named point.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest
import torch

from harness.config.registry import Training
from harness.contract.specs import KDMethod
from harness.errors import RunFailed
from harness.training.distill import Distiller
from harness.training.train import train
from tests.conftest import preset, quick_args

# The quick preset cut further: these tests start many processes, and each trains something.
FAST_PRESET = preset("fast", {"pretrain": (1, 3e-3, 32), "teacher": (2, 3e-3, 8), "baseline": (1, 3e-3, 8),
                              "student": (1, 3e-3, 8)})
LIMIT = 24
N_EXAMPLES = 2 * LIMIT  # members + non-members


@pytest.fixture
def fast_registry(quick_registry) -> Path:
    quick_registry.write_text(quick_registry.read_text() + FAST_PRESET)
    return quick_registry


def fast_args(registry: Path, method: str, *extra: str) -> list[str]:
    return quick_args(registry, method, "--preset", "fast", "--limit", str(LIMIT), *extra)


def harness(registry: Path, method: str, *extra: str, env: dict[str, str] | None = None,
            fault: str | None = None, **popen) -> subprocess.Popen:
    env = {**os.environ, **(env or {})}
    env.pop("HARNESS_FAULT", None)
    if fault:
        env["HARNESS_FAULT"] = fault
    return subprocess.Popen([sys.executable, "-m", "harness.cli", *fast_args(registry, method, *extra)],
                            env=env, text=True, **popen)


def run_to_end(registry: Path, method: str, *extra: str, **kw) -> tuple[int, str]:
    proc = harness(registry, method, *extra, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)
    _, err = proc.communicate(timeout=480)
    return proc.returncode, err


def query(db: Path, sql: str, params=()) -> list[tuple]:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(sql, list(params)).fetchall()


def figures(db: Path, run_id: str) -> tuple[dict, list]:
    metrics = dict(query(db, "SELECT name, value FROM metrics WHERE run_id = ?", [run_id]))
    samples = query(db, "SELECT role, sample_id, memorized, match_len, round(loss, 4) FROM samples "
                        "WHERE run_id = ? ORDER BY ALL", [run_id])
    return metrics, samples


def cached_models(err: str) -> set[str]:
    """The roles whose model this run took from the cache, from its log."""
    return {role for role in ("teacher", "baseline", "student") for line in err.splitlines()
            if line.startswith(f"harness: {role}: tiny ") and " from the cache (" in line}


# Each step kills the run at one point; the next resumes it: (fault, the models the killed run took
# from the cache and the ones it finished training before the kill).
KILLS = [
    ("teacher:step@6", {"cached": [], "trained": []}),
    ("baseline:step@3", {"cached": [], "trained": ["teacher"]}),
    ("generate:batch", {"cached": ["teacher"], "trained": ["baseline"]}),
    ("student:step@2", {"cached": ["teacher", "baseline"], "trained": []}),
    ("cache:write", {"cached": ["teacher", "baseline"], "trained": []}),  # the student written, not yet in place
    ("extraction:batch@3", {"cached": ["teacher", "baseline"], "trained": ["student"]}),
    ("store:commit", {"cached": ["teacher", "baseline", "student"], "trained": []}),
]


@pytest.mark.slow
def test_a_run_killed_at_every_stage_resumes_to_the_uninterrupted_figures(fast_registry, tmp_path):
    db, cache = tmp_path / "killed.duckdb", tmp_path / "killed-cache"
    env = {"HARNESS_DB": str(db), "HARNESS_CACHE": str(cache)}
    for fault, log in KILLS:
        code, err = run_to_end(fast_registry, "hard-kd", env=env, fault=fault)
        assert code == -signal.SIGKILL, err
        assert "HARNESS_FAULT: killing process" in err and f"at {fault.split('@')[0]} " in err, err
        assert cached_models(err) == set(log["cached"]), err
        trained = {r for r in ("teacher", "baseline", "student") if f"harness: {r}: trained in" in err}
        assert trained == set(log["trained"]), err
        # the killed run is `running` until the next run finds its process gone; it never has figures
        [(run_id, status)] = query(db, "SELECT run_id, status FROM runs WHERE status <> 'failed'")
        assert status == "running"
        for table in ("models", "samples", "metrics"):
            assert query(db, f"SELECT count(*) FROM {table}") == [(0,)], (fault, table)
    # the killed cache write left a temporary folder behind; a later write removed it
    assert not list((cache / "models").glob(".tmp-*"))

    code, err = run_to_end(fast_registry, "hard-kd", env=env)
    assert code == 0, err
    # teacher, baseline, hard-kd's data, student (and the pretrained student size, as the reference)
    cached = [line for line in err.splitlines() if "from the cache" in line and not line.startswith("harness: pretrain")]
    assert len(cached) == 4, cached
    statuses = query(db, "SELECT status, count(*) FROM runs GROUP BY ALL ORDER BY ALL")
    assert statuses == [("failed", len(KILLS)), ("finished", 1)]
    assert {e for (e,) in query(db, "SELECT error FROM runs WHERE status = 'failed'")} == {
        e for (e,) in query(db, "SELECT 'process ' || pid || ' ended without finishing (killed?)' FROM runs "
                                "WHERE status = 'failed'")}
    [(run_id,)] = query(db, "SELECT run_id FROM runs WHERE status = 'finished'")
    # no duplicate rows: one finished run's worth, everywhere
    assert query(db, "SELECT count(*), count(DISTINCT (role, sample_id)) FROM samples") == [(3 * N_EXAMPLES,) * 2]
    assert query(db, "SELECT count(*), count(DISTINCT sample_id) FROM examples") == [(N_EXAMPLES,) * 2]
    assert query(db, "SELECT count(*) FROM models") == [(3,)]
    assert query(db, "SELECT count(DISTINCT run_id) FROM metrics") == [(1,)]

    fresh = tmp_path / "fresh.duckdb"
    code, err = run_to_end(fast_registry, "hard-kd", env={"HARNESS_DB": str(fresh),
                                                           "HARNESS_CACHE": str(tmp_path / "fresh-cache")})
    assert code == 0, err
    [(fresh_id,)] = query(fresh, "SELECT run_id FROM runs")
    resumed_metrics, resumed_samples = figures(db, run_id)
    fresh_metrics, fresh_samples = figures(fresh, fresh_id)
    assert resumed_metrics == fresh_metrics and len(resumed_metrics) > 10
    assert resumed_samples == fresh_samples
    artifact = "SELECT role, artifact_key FROM models ORDER BY role"
    assert query(db, artifact) == query(fresh, artifact)


@pytest.mark.slow
def test_four_concurrent_writers_all_land_whole(fast_registry, tmp_path):
    db = tmp_path / "shared.duckdb"
    env = {"HARNESS_DB": str(db)}
    code, err = run_to_end(fast_registry, "hard-kd", env=env)  # the teacher and the baseline, cached once
    assert code == 0, err
    variants = [("soft-kd",), ("soft-kd", "--method-arg", "temperature=4"),
                ("soft-kd", "--method-arg", "ce_weight=0.5"), ("hard-kd", "--seed", "0")]
    # Hold the file's lock so that all four must wait for it, then let them go; each also keeps its
    # finishing transaction open for a second, so that their writes queue behind each other.
    holder = subprocess.Popen([sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); "
                               "print('locked', flush=True); time.sleep(600)", str(db)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    logs = [tmp_path / f"writer{i}.err" for i in range(len(variants))]
    procs = []
    try:
        for (method, *extra), log in zip(variants, logs):
            procs.append(harness(fast_registry, method, *extra, env=env, fault="store:commit=sleep:1",
                                 stdout=subprocess.DEVNULL, stderr=log.open("w")))
        deadline = time.monotonic() + 300  # a guard against a hang, not a measurement
        while not all(log.exists() and "is locked by another process" in log.read_text() for log in logs):
            assert time.monotonic() < deadline, [log.read_text() for log in logs]
            assert all(p.poll() is None for p in procs), [log.read_text() for log in logs]
            time.sleep(0.5)
    finally:
        holder.kill()
        holder.wait()
    codes = [p.wait(timeout=480) for p in procs]
    assert codes == [0, 0, 0, 0], [log.read_text() for log in logs]
    runs = query(db, "SELECT run_id, method_label, status FROM runs ORDER BY started_at")
    assert [r[2] for r in runs] == ["finished"] * 5
    assert sorted(r[1] for r in runs[1:]) == ["hard-kd", "soft-kd", "soft-kd ce_weight=0.5", "soft-kd temperature=4.0"]
    for run_id, _, _ in runs:
        assert query(db, "SELECT count(*) FROM samples WHERE run_id = ?", [run_id]) == [(3 * N_EXAMPLES,)]
        assert query(db, "SELECT count(*) FROM models WHERE run_id = ?", [run_id]) == [(3,)]
        assert query(db, "SELECT count(*) FROM metrics WHERE run_id = ? AND name = 'mem_rate_student'",
                     [run_id]) == [(1,)]
    assert query(db, "SELECT count(*), count(DISTINCT sample_id) FROM examples") == [(N_EXAMPLES,) * 2]


# ---------------------------------------------------------------- numerical faults


def _tiny_lm():
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    torch.manual_seed(0)
    return GPTNeoXForCausalLM(GPTNeoXConfig(vocab_size=32, hidden_size=16, num_hidden_layers=1,
                                            num_attention_heads=2, intermediate_size=32, max_position_embeddings=16))


@pytest.mark.parametrize(("bad", "shown"), [(float("nan"), "nan"), (float("inf"), "inf"), (float("-inf"), "-inf")])
def test_a_non_finite_loss_stops_the_stage_naming_stage_step_and_lr(bad, shown):
    rows = torch.randint(0, 32, (8, 12))
    cfg = Training(epochs=2, lr=1e-3, batch_size=4, warmup_ratio=0.0, weight_decay=0.0, schedule="constant")
    calls = []

    def loss(batch, args):  # finite for two steps, then the fault
        calls.append(1)
        value = batch.student_logits.float().mean()
        return value * 0 + bad if len(calls) == 3 else value

    method = KDMethod("faulty", "", "logits", loss=loss)
    distiller = Distiller(method, {}, _tiny_lm(), rows, prefix_len=4, batch_size=4, stage="student", seed=0)
    with pytest.raises(RunFailed) as err:
        train(_tiny_lm(), rows, torch.arange(8), cfg, seed=0, stage="student", distiller=distiller)
    assert str(err.value) == f"student: loss became {shown} at step 3 of 4 (lr 0.001)"


def test_a_diverging_cross_entropy_stage_is_stopped_too():
    rows = torch.randint(0, 32, (8, 12))
    model = _tiny_lm()
    with torch.no_grad():
        model.get_output_embeddings().weight.fill_(float("inf"))
    cfg = Training(epochs=1, lr=0.5, batch_size=8, warmup_ratio=0.0, weight_decay=0.0, schedule="constant")
    with pytest.raises(RunFailed, match=r"^teacher: loss became nan at step 1 of 1 \(lr 0\.5\)$"):
        train(model, rows, torch.arange(8), cfg, seed=0, stage="teacher")


# ---------------------------------------------------------------- corrupted cache


@pytest.mark.slow
def test_altered_cached_teacher_output_is_reported_once_and_rebuilt(fast_registry, tmp_path, capsys):
    from harness.cli import main

    assert main(fast_args(fast_registry, "hard-kd")) == 0
    [tokens] = list((Path(os.environ["HARNESS_CACHE"]) / "teacher-data").glob("*/tokens.safetensors"))
    data = bytearray(tokens.read_bytes())
    data[-5] ^= 0x01  # one bit of one generated token: still a valid safetensors file
    tokens.write_bytes(bytes(data))
    capsys.readouterr()
    assert main(fast_args(fast_registry, "hard-kd")) == 0
    err = capsys.readouterr().err
    corrupt = [line for line in err.splitlines() if "is corrupt" in line]
    assert corrupt == [f"harness: cached teacher-data {tokens.parent.name} is corrupt (tokens.safetensors changed); "
                       "rebuilding it"]
    assert "student: hard-kd made its training data" in err
    assert "student: tiny 0.6m from the cache" in err  # the rebuilt data is the data the student was trained on
    db = Path(os.environ["HARNESS_DB"])
    first, second = (figures(db, r)[0] for (r,) in query(db, "SELECT run_id FROM runs ORDER BY started_at"))
    assert first == second
