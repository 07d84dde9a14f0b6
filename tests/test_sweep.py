"""`harness sweep`: the grid, each teacher and baseline trained once, a line per cell."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import duckdb
import pytest

from harness.cli import main
from tests.conftest import exit_code


@pytest.mark.slow
def test_sweep_trains_teacher_and_baseline_once_and_reports_each_cell(quick_registry, capsys):
    argv = ["--registry", str(quick_registry), "sweep", "--methods", "soft-kd,hard-kd", "--seeds", "2",
            "--preset", "quick", "--limit", "16"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.startswith("[")]
    assert len(lines) == 4 and "sweep: 4 of 4 cells finished" in out
    # per seed: the first method trains teacher and baseline, the second loads them
    assert "teacher trained" in lines[0] and "baseline trained" in lines[0]
    assert "teacher cache, baseline cache, student trained" in lines[1]
    assert "/ seed 1:" in lines[2] and "teacher trained" in lines[2]
    with duckdb.connect(os.environ["HARNESS_DB"], read_only=True) as con:
        got = con.execute("SELECT method, seed FROM runs WHERE status = 'finished' ORDER BY seed, method").fetchall()
    assert got == [("hard-kd", 0), ("soft-kd", 0), ("hard-kd", 1), ("soft-kd", 1)]


def test_sweep_checks_every_name_before_running(quick_registry, capsys):
    assert main(["--registry", str(quick_registry), "sweep", "--methods", "soft-kd,hard-kdd"]) == 2
    assert "did you mean 'hard-kd'" in capsys.readouterr().err
    assert main(["--registry", str(quick_registry), "sweep", "--methods", "all", "--families", "tiyn"]) == 2
    assert "did you mean 'tiny'" in capsys.readouterr().err
    assert not os.path.exists(os.environ["HARNESS_DB"])


def test_sweep_all_means_every_registered_method(quick_registry):
    from harness.config import plugins, registry
    from harness.protocol import sweep
    from harness.protocol.request import EvalRequest

    cells = sweep.grid(EvalRequest(method="", registry=quick_registry), ["all"], [], [], [0])
    registered = set(plugins.load(registry.load(quick_registry)).methods)
    assert {c.method for c in cells} == registered and len(cells) == len(registered) == 16
    assert {"soft-kd", "hard-kd", "minillm", "topk-kd", "rs-kd", "dp-kd", "dp-ft"} <= registered


def test_shards_split_the_grid_into_whole_groups(quick_registry):
    from harness.protocol import sweep
    from harness.protocol.request import EvalRequest

    cells = sweep.grid(EvalRequest(method="", registry=quick_registry), ["soft-kd", "hard-kd"], [], [],
                       [0, 1, 2])
    shards = [sweep.shard(cells, i, 2) for i in range(2)]
    assert sorted(map(str, shards[0] + shards[1])) == sorted(map(str, cells))  # every cell once
    assert {c.seed for c in shards[0]} == {0, 2} and {c.seed for c in shards[1]} == {1}
    assert all(len(s) == 2 * len({c.seed for c in s}) for s in shards)  # a seed's methods stay together


def test_a_bad_shard_is_one_line(quick_registry, capsys):
    for bad in ("3/2", "0/2", "1", "a/b"):
        assert exit_code(["--registry", str(quick_registry), "sweep", "--methods", "soft-kd", "--shard", bad]) == 2
        err = capsys.readouterr().err
        assert "argument --shard: expected I/N with 1 <= I <= N" in err and err.count("\n") == 1


# ---------------------------------------------------------------- the grid's edges (issue 37)

def _refused(argv: list[str], capsys) -> str:
    assert exit_code(argv) == 2
    out, err = capsys.readouterr()
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


@pytest.mark.parametrize(("flag", "value", "said"), [
    ("--methods", "", "argument --methods: names nothing (got '')"),
    ("--methods", ",,", "argument --methods: names nothing (got ',,')"),
    ("--methods", "soft-kd,hard-kd,soft-kd", "argument --methods: soft-kd given twice"),
    ("--families", " , ", "argument --families: names nothing"),
    ("--datasets", "synthetic-pii,synthetic-pii", "argument --datasets: synthetic-pii given twice"),
])
def test_an_empty_or_repeated_name_list_is_refused_not_zero_cells(quick_registry, capsys, flag, value, said):
    argv = ["--registry", str(quick_registry), "sweep", "--methods", "soft-kd", flag, value]
    assert said in _refused(argv, capsys)
    assert not os.path.exists(os.environ["HARNESS_DB"])


@pytest.mark.parametrize(("extra", "said"), [
    (["--gpus", "4"], "--gpus is for a scheduler's jobs: add --executor slurm|local, or run the sweep on N GPUs"),
    (["--gpus", "0"], "--gpus is for a scheduler's jobs"),
    (["--time", "30"], "--time is for a scheduler's jobs"),
    (["--retries", "2"], "--retries is for a scheduler's jobs"),
    (["--jobs-dir", "jobs"], "--jobs-dir is for a scheduler's jobs"),
    (["--executor", "local", "--partition", "gpu"], "--partition is SLURM's: --executor local runs the jobs here"),
    (["--executor", "local", "--cpus", "4"], "--cpus is SLURM's"),
])
def test_a_schedulers_option_where_it_would_be_ignored_is_refused(quick_registry, capsys, extra, said):
    argv = ["--registry", str(quick_registry), "sweep", "--methods", "soft-kd", *extra]
    assert said.replace(" here", " on this machine") in _refused(argv, capsys)


def test_slurm_without_slurm_is_one_line_and_leaves_nothing_behind(quick_registry, capsys, monkeypatch):
    from harness.protocol import scheduler

    monkeypatch.setattr(scheduler.shutil, "which", lambda tool: None)
    argv = ["--registry", str(quick_registry), "sweep", "--methods", "soft-kd", "--executor", "slurm"]
    assert "--executor slurm: no SLURM on this machine (sbatch and srun not on PATH)" in _refused(argv, capsys)
    assert not os.path.exists(os.path.dirname(os.environ["HARNESS_DB"]))  # no jobs folder, no results folder


def test_an_executor_that_fails_to_start_leaves_no_jobs_folder(quick_registry, capsys, monkeypatch, tmp_path):
    import submitit

    from harness.protocol import scheduler


    def no_srun(**kwargs):
        raise RuntimeError('Could not detect "srun", are you indeed on a slurm cluster?')

    monkeypatch.setattr(scheduler, "check_executor", lambda kind: None)
    monkeypatch.setattr(submitit, "AutoExecutor", no_srun)
    jobs = tmp_path / "jobs"
    argv = ["--registry", str(quick_registry), "sweep", "--methods", "soft-kd", "--executor", "slurm", "--jobs-dir",
            str(jobs)]
    assert '--executor slurm: Could not detect "srun"' in _refused(argv, capsys)
    assert not jobs.exists()


@pytest.mark.parametrize("where", ["file", "under a file"])
def test_a_jobs_dir_that_is_a_file_or_under_one_is_one_line(quick_registry, capsys, tmp_path, where):
    (tmp_path / "afile").write_text("x")
    jobs = tmp_path / "afile" if where == "file" else tmp_path / "afile" / "jobs"
    argv = ["--registry", str(quick_registry), "sweep", "--methods", "soft-kd", "--executor", "local", "--jobs-dir",
            str(jobs)]
    err = _refused(argv, capsys)
    assert f"{tmp_path / 'afile'} is a file" in err and (tmp_path / "afile").read_text() == "x"


class _Handle:
    job_id, state = "123", "DONE"

    def result(self):
        return ""


class _Executor:
    """A stand-in scheduler: records what it was given to run."""

    def __init__(self):
        self.functions = []

    def submit(self, function):
        self.functions.append(function)
        return _Handle()


def test_a_local_sweep_hands_its_jobs_its_own_process_id(quick_registry, capsys, monkeypatch):
    from harness.protocol import scheduler

    fake = _Executor()
    monkeypatch.setattr(scheduler, "executor_for", lambda kind, folder, resources: fake)
    argv = ["--registry", str(quick_registry), "sweep", "--methods", "soft-kd", "--executor", "local", "--limit", "8"]
    assert exit_code(argv) == 0
    assert "the jobs stop when this sweep stops" in capsys.readouterr().out
    [function] = fake.functions
    assert function.env[scheduler.PARENT_ENV] == str(os.getpid())


WATCHED = """
import time
from harness.protocol.scheduler import watch_parent
assert watch_parent(interval=0.1) is not None
print("watching", flush=True)
time.sleep(120)
"""


@pytest.mark.timeout(120)
@pytest.mark.parametrize("reaped", [True, False])
def test_a_local_job_stops_when_the_sweep_that_started_it_is_gone(reaped):
    """SIGKILL included: nothing the sweep does on its way out is needed. Not yet reaped, it is a zombie: gone too."""
    from harness.protocol import scheduler

    sweep = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    job = subprocess.Popen([sys.executable, "-c", WATCHED], stdout=subprocess.PIPE, text=True,
                           env={**os.environ, scheduler.PARENT_ENV: str(sweep.pid)})
    try:
        assert job.stdout.readline().strip() == "watching"
        time.sleep(1)
        assert job.poll() is None  # its sweep runs: so does it
        sweep.kill()
        if reaped:
            sweep.wait()
        assert job.wait(timeout=60) == -signal.SIGTERM
    finally:
        for proc in (sweep, job):
            if proc.poll() is None:
                proc.kill()
        sweep.wait()


def test_outside_a_local_job_nothing_is_watched(monkeypatch):
    from harness.protocol import scheduler

    monkeypatch.delenv(scheduler.PARENT_ENV, raising=False)
    assert scheduler.watch_parent() is None
