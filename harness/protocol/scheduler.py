"""A sweep's grid on a scheduler: one job per family/dataset/seed group, submitted through submitit.

Each job is `harness sweep` on its own group (`--shard I/N`, N the number of groups, so each shard
is exactly one group and each teacher trains in one job), under `accelerate launch` when it asks
for more than one GPU, and writes to a results file of its own (`JOBS/job-I.duckdb`: nodes cannot
share one DuckDB file). When the jobs end, their finished runs are merged into the sweep's results
file by value (`harness.store.merge`). A job that failed or was pre-empted is submitted again, up
to `retries` times; a later `harness sweep` with the same grid and `--jobs-dir` submits only the
jobs not yet done. Either way a job resumes: its models come from the artifact cache (which the
jobs share, so put `--cache-dir` on a shared filesystem) and its finished cells are read, not
rerun (`harness.protocol.sweep.run`).

`--executor local` runs the same jobs as processes on this machine through submitit's local
executor, one at a time: what CI tests, and a way to try a grid before a cluster. Its jobs go with
the sweep: each watches the sweep's process (`watch_parent`) and stops, its run marked failed, when
that is gone, however it went (SIGKILL included). SLURM's jobs outlive the sweep by design; it says
how to cancel them.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from harness.errors import UsageError
from harness.runtime.cache import pid_alive
from harness.store.database import Store
from harness.store.merge import merge

EXECUTORS = ("slurm", "local")
# Set in a local job's environment: the process id of the sweep that started it (`watch_parent`).
PARENT_ENV = "HARNESS_SWEEP_PARENT"


@dataclass(frozen=True)
class Resources:
    """What each job asks the scheduler for."""

    gpus: int = 0
    time_min: int = 240
    partition: str | None = None
    account: str | None = None
    cpus: int | None = None

    def parameters(self, executor: str) -> dict:
        """submitit's `update_parameters` for this executor."""
        params = {"timeout_min": self.time_min, "nodes": 1, "tasks_per_node": 1, "name": "harness-sweep"}
        if self.gpus:
            params["gpus_per_node"] = self.gpus
        if executor == "slurm":
            params.update({f"slurm_{k}": v for k, v in (("partition", self.partition), ("account", self.account))
                           if v is not None})
            if self.cpus is not None:
                params["cpus_per_task"] = self.cpus
        return params


@dataclass(frozen=True)
class Job:
    index: int  # 1-based, as --shard counts
    command: tuple[str, ...]
    results: Path

    @property
    def done_marker(self) -> Path:
        return self.results.with_suffix(".done")

    def signature(self) -> str:
        """The job's command, hashed: a done marker counts only for the same grid and job."""
        return hashlib.sha256(json.dumps(self.command).encode()).hexdigest()

    def is_done(self) -> bool:
        try:
            return self.done_marker.read_text(encoding="utf-8").strip() == self.signature()
        except OSError:
            return False


def jobs(global_args: list[str], sweep_args: list[str], groups: int, jobs_dir: Path, gpus: int) -> list[Job]:
    """One job per group: `harness GLOBAL_ARGS sweep SWEEP_ARGS --shard I/GROUPS --db JOBS/job-I.duckdb`,
    under `accelerate launch --num_processes GPUS` when a job has more than one GPU."""
    if any(a == "--shard" or a.startswith("--shard=") or a == "--db" or a.startswith("--db=") for a in sweep_args):
        raise UsageError("--executor submits each group with its own --shard and --db; leave both out")
    launch = ([sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(gpus),
               "-m", "harness"]
              if gpus > 1 else [sys.executable, "-m", "harness"])
    out = []
    for i in range(1, groups + 1):
        results = jobs_dir / f"job-{i}.duckdb"
        out.append(Job(i, (*launch, *global_args, "sweep", *sweep_args, "--shard", f"{i}/{groups}",
                           "--db", str(results)), results))
    return out


def check_executor(kind: str) -> None:
    """The scheduler is here, before anything is written: one line where it is not."""
    if kind not in EXECUTORS:
        raise UsageError(f"unknown executor {kind!r}; choose from: {', '.join(EXECUTORS)}")
    try:
        import submitit  # noqa: F401
    except ImportError:  # a dependency of the harness; only a broken install lacks it
        raise UsageError("--executor needs submitit: pip install submitit") from None
    missing = [tool for tool in ("sbatch", "srun") if shutil.which(tool) is None] if kind == "slurm" else []
    if missing:
        raise UsageError(f"--executor slurm: no SLURM on this machine ({' and '.join(missing)} not on PATH); run the "
                         "sweep on a SLURM login node, or try the grid here with --executor local")


def jobs_folder(folder: Path) -> Path:
    """The jobs' folder, made (with its parents) where it is not; one line where it cannot be."""
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"--jobs-dir {folder} is a file, not a folder: name a folder (made if missing)")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        blocker = next((p for p in folder.parents if p.exists() and not p.is_dir()), None)
        reason = f"{blocker} is a file, not a folder" if blocker is not None else err.strerror or str(err)
        raise UsageError(f"cannot make --jobs-dir {folder}: {reason}") from None
    return folder


def executor_for(kind: str, folder: Path, resources: Resources):
    """A submitit executor: SLURM, or local processes."""
    check_executor(kind)
    import submitit

    try:
        executor = submitit.AutoExecutor(folder=folder, cluster=kind)
        executor.update_parameters(**resources.parameters(kind))
    except (RuntimeError, ValueError) as err:  # submitit's "Could not detect srun", a parameter it refuses
        lines = str(err).strip().splitlines()
        raise UsageError(f"--executor {kind}: {lines[0] if lines else type(err).__name__}") from None
    return executor


def submit(all_jobs: list[Job], executor, retries: int, parallel: bool = True,
           report: Callable[[str], None] = print, env: dict[str, str] | None = None) -> list[Job]:
    """Submit the jobs not done, wait, resubmit the failed up to `retries` times; returns the jobs
    still failed. A job that ends well is marked done, so a later sweep does not submit it again.
    Not `parallel` (the local executor), each job waits for the one before: a machine's cores are shared.
    `env`: the jobs' environment (a local job's names this process: `watch_parent`)."""
    pending = [j for j in all_jobs if not j.is_done()]
    for job in all_jobs:
        if job.is_done():
            report(f"sweep: job {job.index} of {len(all_jobs)} done before; not submitted")
    for attempt in range(retries + 1):
        if not pending:
            return []
        failed = []
        handles = (_submitted(executor, job, len(all_jobs), attempt, report, env) for job in pending)
        for job, handle in (handles if not parallel else list(handles)):
            try:
                handle.result()
            except Exception as err:  # noqa: BLE001 - a failed, killed or pre-empted job: resubmitted or reported
                reason = str(err).strip().splitlines()
                report(f"sweep: job {job.index} failed ({handle.state}): {reason[-1] if reason else type(err).__name__}; "
                       f"its log: {handle.paths.stderr}")
                failed.append(job)
                continue
            job.done_marker.write_text(job.signature() + "\n", encoding="utf-8")
            report(f"sweep: job {job.index} finished")
        pending = failed
    return pending


def _submitted(executor, job: Job, of: int, attempt: int, report, env: dict[str, str] | None = None):
    import submitit

    handle = executor.submit(submitit.helpers.CommandFunction(list(job.command), verbose=False, env=env))
    report(f"sweep: job {job.index} of {of} submitted as {handle.job_id}"
           + (f" (attempt {attempt + 1})" if attempt else "") + f": {shlex.join(job.command)}")
    return job, handle


def merge_results(all_jobs: list[Job], dest: Store, report: Callable[[str], None] = print) -> int:
    """Every job's finished runs into `dest` (a failed job's too: what it finished counts); how many."""
    added = 0
    for job in all_jobs:
        if not job.results.is_file():
            continue
        ids = merge(job.results, dest)
        added += len(ids)
        report(f"sweep: merged {len(ids)} run(s) of job {job.index} into {dest.path}")
    return added


def local_env() -> dict[str, str]:
    """A local job's environment: this one, naming this process as the sweep it goes with."""
    return {**os.environ, PARENT_ENV: str(os.getpid())}


def watch_parent(interval: float = 1.0) -> threading.Thread | None:
    """In a local job (its environment names the sweep that started it, PARENT_ENV): a thread that sends
    this process SIGTERM when that sweep has gone, however it went, so the job's run is marked failed and
    the job ends instead of running on, orphaned. None outside a local job."""
    raw = os.environ.get(PARENT_ENV, "")
    if not raw.isdigit():
        return None
    parent = int(raw)

    def watch() -> None:
        while pid_alive(parent):
            time.sleep(interval)
        from harness.runtime import log

        log.info(f"the sweep that started this job (process {parent}) has gone: stopping the job")
        os.kill(os.getpid(), signal.SIGTERM)

    thread = threading.Thread(target=watch, name="harness-sweep-parent", daemon=True)
    thread.start()
    return thread

