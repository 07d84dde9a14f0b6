"""The standard protocol end to end on the embedded default, at a quick preset."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from harness.cli import main
from tests import prose
from tests.conftest import quick_args

ROLES = {"teacher", "baseline", "student"}


def db_rows(sql: str, params=()):
    con = duckdb.connect(os.environ["HARNESS_DB"], read_only=True)
    try:
        return con.execute(sql, list(params)).fetchall()
    finally:
        con.close()


@pytest.mark.slow
def test_eval_writes_every_table_and_prints_the_figures(quick_registry, capsys):
    assert main(quick_args(quick_registry, "hard-kd")) == 0
    out = capsys.readouterr().out
    for word in ("teacher", "baseline", "student", "inheritance rate", "easy share"):
        assert word in out
    [(run_id, status, method, access, commit, ds_hash, cfg_hash, seconds)] = db_rows(
        "SELECT run_id, status, method, teacher_access, git_commit, dataset_hash, config_hash, stage_seconds FROM runs")
    assert (status, method, access) == ("finished", "hard-kd", "text")
    assert run_id in out and ds_hash and cfg_hash
    assert {"teacher", "baseline", "student", "extraction"} <= set(json.loads(seconds))
    assert {r[0] for r in db_rows("SELECT role FROM models")} == ROLES
    # every member and non-member, on every role
    assert db_rows("SELECT count(*) FROM samples")[0][0] == 3 * (48 + 24)
    assert db_rows("SELECT count(*) FROM examples")[0][0] == 48 + 24
    names = {r[0] for r in db_rows("SELECT name FROM metrics")}
    for role in ROLES:
        assert {f"mem_rate_{role}", f"val_ppl_{role}", f"nonmember_rate_{role}"} <= names
    assert {"reduction", "teacher_exclusive", "inherited", "inheritance_rate", "easy_share", "student_only"} <= names
    # the blind baseline: the same members and non-members, no model; stored with its interval, and printed
    [(auc, lo, hi)] = db_rows("SELECT max(value) FILTER (name = 'blind_auc'), max(value) FILTER (name = 'blind_auc_lo'), "
                              "max(value) FILTER (name = 'blind_auc_hi') FROM metrics")
    assert 0 <= lo <= auc <= hi <= 1 and "blind baseline (the texts alone, no model" in out
    # the stored rates are the samples' verdicts
    for role in ROLES:
        [(rate,)] = db_rows("SELECT value FROM metrics WHERE name = ?", [f"mem_rate_{role}"])
        [(share,)] = db_rows("SELECT avg(memorized::INT) FROM samples WHERE role = ? AND split = 'member'", [role])
        assert rate == pytest.approx(share)


@pytest.mark.slow
def test_second_method_reuses_teacher_and_baseline(quick_registry, capsys):
    assert main(quick_args(quick_registry, "hard-kd")) == 0
    capsys.readouterr()
    assert main(quick_args(quick_registry, "soft-kd")) == 0
    err = capsys.readouterr().err
    assert "teacher: tiny 2.6m from the cache" in err
    assert "baseline: tiny 0.6m from the cache" in err
    assert "student: training" in err
    cached = dict(db_rows("SELECT role, cached FROM models m JOIN runs r USING (run_id) WHERE r.method = 'soft-kd'"))
    assert cached == {"teacher": True, "baseline": True, "student": False}
    keys = db_rows("SELECT role, count(DISTINCT artifact_key) FROM models GROUP BY role ORDER BY role")
    assert dict(keys) == {"baseline": 1, "teacher": 1, "student": 2}


@pytest.mark.slow
def test_checkpoints_open_with_plain_transformers(quick_registry):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    assert main(quick_args(quick_registry, "soft-kd")) == 0
    [(path,)] = db_rows("SELECT artifact_path FROM models WHERE role = 'student'")
    assert (Path(path) / "model.safetensors").is_file()
    model = AutoModelForCausalLM.from_pretrained(path, use_safetensors=True)
    tokenizer = AutoTokenizer.from_pretrained(path)
    ids = tokenizer("Name: Jane", return_tensors="pt").input_ids
    assert model(input_ids=ids).logits.shape[-1] == len(tokenizer)


FAILING_METHOD = '''
import math
import torch
from harness import hookimpl
from harness.contract.specs import KDMethod

def nan_loss(batch, args):
    return batch.student_logits.sum() * float("nan")

@hookimpl
def register_kd_methods(register):
    register(KDMethod(name="nan-kd", description="diverges", teacher_access="logits", loss=nan_loss))
'''


@pytest.mark.slow
def test_failed_run_is_marked_failed_and_shows_no_figures(quick_registry, tmp_path, capsys):
    plugin = tmp_path / "nan_kd.py"
    plugin.write_text(FAILING_METHOD)
    text = quick_registry.read_text().replace("files = []", f"files = [{str(plugin)!r}]")
    quick_registry.write_text(text)
    assert main(quick_args(quick_registry, "nan-kd")) == 1
    err = capsys.readouterr().err
    assert "student" in err and "step 1" in err and "lr" in err
    [(status, error)] = db_rows("SELECT status, error FROM runs")
    assert status == "failed" and "loss became nan" in error
    [(run_id,)] = db_rows("SELECT run_id FROM runs")
    for table in ("metrics", "samples", "models"):
        assert db_rows(f"SELECT count(*) FROM {table} WHERE run_id = ?", [run_id])[0][0] == 0
    assert main(["leaderboard"]) == 0
    assert "No finished runs" in capsys.readouterr().out
    assert main(["show", run_id]) == 0
    assert "did not finish" in capsys.readouterr().out
    # the teacher and the baseline it finished are kept: the next run starts from there
    assert main(quick_args(quick_registry, "soft-kd")) == 0
    err = capsys.readouterr().err
    assert "teacher: tiny 2.6m from the cache" in err and "baseline: tiny 0.6m from the cache" in err
    assert "training tiny" in err and err.count("training tiny") == 1  # the student alone


@pytest.mark.slow
def test_show_and_leaderboard(quick_registry, capsys):
    assert main(quick_args(quick_registry, "hard-kd")) == 0
    assert main(quick_args(quick_registry, "soft-kd")) == 0
    capsys.readouterr()
    assert main(["show", "latest"]) == 0
    out = capsys.readouterr().out
    assert "soft-kd" in out and "model.safetensors" not in out and "repeats" in out
    assert "blind baseline (the texts alone, no model" in out
    [(path,)] = db_rows("SELECT artifact_path FROM models m JOIN runs USING (run_id) "
                        "WHERE method = 'soft-kd' AND role = 'student'")
    assert path in out
    assert main(["leaderboard"]) == 0
    out = capsys.readouterr().out
    assert "hard-kd" in out and "soft-kd" in out and "(baseline: fine-tuned)" in out
    assert "blind baseline (the texts alone, no model" in out and "runs" in out  # the board's split, checked
    assert out.index("rank") < out.index("1  ")


@pytest.mark.slow
def test_corrupt_checkpoint_is_detected_and_rebuilt(quick_registry, capsys):
    assert main(quick_args(quick_registry, "soft-kd")) == 0
    [(path,)] = db_rows("SELECT artifact_path FROM models WHERE role = 'teacher'")
    weights = Path(path) / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])  # truncated
    capsys.readouterr()
    assert main(quick_args(quick_registry, "soft-kd")) == 0
    err = capsys.readouterr().err
    assert "is corrupt" in err and "teacher: training" in err
    first, second = db_rows("SELECT value FROM metrics WHERE name = 'mem_rate_teacher' ORDER BY run_id")
    assert first == second  # rebuilt deterministically


@pytest.mark.slow
@pytest.mark.cold_cache  # the teacher trains in this run, and the kill lands in its baseline's training
def test_killed_run_resumes_from_its_last_finished_stage(quick_registry, tmp_path):
    """SIGKILL after the teacher is cached: the rerun reuses it, and the dead run is marked failed."""
    env = {**os.environ, "HARNESS_PROGRESS": "0"}
    args = [sys.executable, "-m", "harness.cli", *quick_args(quick_registry, "soft-kd")]
    # slow the baseline down so that the kill lands while it trains
    slow = quick_registry.read_text().replace("[presets.quick.baseline]\nepochs = 2",
                                              "[presets.quick.baseline]\nepochs = 60")
    quick_registry.write_text(slow)
    proc = subprocess.Popen(args, env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    seen = ""
    while "baseline: training" not in seen and time.monotonic() < deadline:
        seen += proc.stderr.readline()
    assert "teacher: trained" in seen
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert db_rows("SELECT status FROM runs") == [("running",)]
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "teacher: tiny 2.6m from the cache" in done.stderr
    assert "baseline: training" in done.stderr
    statuses = sorted(r[0] for r in db_rows("SELECT status FROM runs"))
    assert statuses == ["failed", "finished"]
    [(error,)] = db_rows("SELECT error FROM runs WHERE status = 'failed'")
    assert "killed" in error


@pytest.mark.slow
def test_protocol_on_real_prose_through_text_files(quick_registry, capsys, tmp_path):
    text = prose.write(tmp_path / "prose.txt")
    args = ["--registry", str(quick_registry), "eval", "--method", "soft-kd", "--preset", "quick",
            "--dataset", "text-files", "--dataset-arg", f"path={text}", "--limit", "40"]
    assert main(args) == 0
    assert "tiny / text-files / soft-kd" in capsys.readouterr().out
    [(dataset, n_members, n_nonmembers, args_json)] = db_rows(
        "SELECT dataset, n_members, n_nonmembers, dataset_args FROM runs")
    assert (dataset, n_members, n_nonmembers) == ("text-files", 40, 40)
    assert json.loads(args_json)["path"] == str(text)
    texts = [r[0] for r in db_rows("SELECT text FROM examples WHERE split = 'member' LIMIT 5")]
    assert all(len(t) > 20 for t in texts)
