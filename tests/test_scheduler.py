"""`harness sweep --executor local`: the grid's groups as submitit jobs, each with its own results
file, merged into one; a killed job is submitted again and resumes from the cache. And the merge
itself: by value, idempotent, the source untouched, a foreign file refused."""

from __future__ import annotations

import os
from pathlib import Path

import duckdb
import pytest

from harness.cli import main
from harness.errors import UsageError
from harness.protocol import scheduler
from harness.store.database import Store
from harness.store.merge import merge


def grid(registry: Path) -> list[str]:
    return ["--registry", str(registry), "sweep", "--methods", "soft-kd", "--seeds", "2", "--preset", "quick",
            "--limit", "16", "--executor", "local", "--retries", "0"]


@pytest.mark.slow
def test_a_grid_runs_as_local_jobs_is_merged_and_a_killed_job_resumes(quick_registry, monkeypatch, capsys):
    db = Path(os.environ["HARNESS_DB"])
    monkeypatch.setenv("HARNESS_FAULT", "student:step@2")  # every job dies in its student's training
    assert main(grid(quick_registry)) == 1
    out = capsys.readouterr().out
    assert "2 cells in 2 job(s) on local" in out
    assert out.count("failed (") == 2 and "0 of 2 jobs finished; 0 run(s) merged" in out
    assert "rerun the same command to resubmit job(s) 1, 2" in out

    monkeypatch.delenv("HARNESS_FAULT")
    assert main(grid(quick_registry)) == 0
    out = capsys.readouterr().out
    assert "2 of 2 jobs finished; 2 run(s) merged" in out
    with duckdb.connect(str(db), read_only=True) as con:
        runs = con.execute("SELECT run_id, seed FROM runs WHERE status = 'finished' ORDER BY seed").fetchall()
        assert [s for _, s in runs] == [0, 1]
        # resumed: the teacher and baseline the killed jobs trained came from the cache
        cached = con.execute("SELECT role, cached FROM models WHERE role <> 'student' ORDER BY ALL").fetchall()
        assert cached == [("baseline", True), ("baseline", True), ("teacher", True), ("teacher", True)]
        for table in ("samples", "metrics", "scores", "curves"):
            per_run = con.execute(f"SELECT count(DISTINCT run_id) FROM {table}").fetchall()[0][0]
            assert per_run == 2, table
    jobs_dir = db.parent / "sweep-jobs"
    assert sorted(p.name for p in jobs_dir.glob("job-*.duckdb")) == ["job-1.duckdb", "job-2.duckdb"]

    assert main(grid(quick_registry)) == 0  # done: nothing submitted, nothing merged twice
    out = capsys.readouterr().out
    assert out.count("done before; not submitted") == 2 and "0 run(s) merged" in out
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM runs").fetchall()[0][0] == 2


def test_jobs_are_one_per_group_with_their_own_shard_and_file(tmp_path):
    jobs = scheduler.jobs(["--registry", "r.toml"], ["--methods", "soft-kd"], 3, tmp_path, gpus=4)
    assert [j.index for j in jobs] == [1, 2, 3]
    assert jobs[1].command[-4:] == ("--shard", "2/3", "--db", str(tmp_path / "job-2.duckdb"))
    assert "accelerate.commands.launch" in jobs[0].command and "4" in jobs[0].command
    assert jobs[0].command.index("--registry") < jobs[0].command.index("sweep")
    assert "accelerate.commands.launch" not in scheduler.jobs([], [], 1, tmp_path, gpus=1)[0].command
    with pytest.raises(UsageError, match="leave both out"):
        scheduler.jobs([], ["--shard", "1/2"], 2, tmp_path, gpus=0)
    params = scheduler.Resources(gpus=8, partition="gpu", account="lab").parameters("slurm")
    assert params["slurm_partition"] == "gpu" and params["slurm_account"] == "lab" and params["gpus_per_node"] == 8
    assert "slurm_partition" not in scheduler.Resources(partition="gpu").parameters("local")


@pytest.mark.slow
def test_merge_is_by_value_idempotent_and_leaves_the_source_as_it_was(quick_registry, tmp_path):
    from conftest import quick_args

    source = tmp_path / "job.duckdb"
    assert main([*quick_args(quick_registry, "soft-kd"), "--db", str(source)]) == 0
    before = source.read_bytes()
    dest = Store(tmp_path / "merged.duckdb")
    [run_id] = merge(source, dest)
    assert merge(source, dest) == []
    assert source.read_bytes() == before
    with duckdb.connect(str(dest.path), read_only=True) as con:
        assert con.execute("SELECT status FROM runs WHERE run_id = ?", [run_id]).fetchall() == [("finished",)]
        assert con.execute("SELECT count(*) FROM examples").fetchall()[0][0] > 0

    foreign = tmp_path / "foreign.duckdb"
    with duckdb.connect(str(foreign)) as con:
        con.execute("CREATE TABLE runs (run_id VARCHAR, status VARCHAR)")
    dest_bytes = dest.path.read_bytes()
    with pytest.raises(UsageError, match="not a harness results database"):
        merge(foreign, dest)
    assert dest.path.read_bytes() == dest_bytes
    with pytest.raises(UsageError, match="no results file"):
        merge(tmp_path / "missing.duckdb", dest)
