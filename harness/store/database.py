"""The DuckDB results store. Its tables are a public interface (docs/results.md).

A run is inserted as `running` before its first stage and becomes `finished` in one
transaction that writes all of its rows, so a failed or killed run never shows partial
figures. DuckDB lets one process write a file at a time: every write opens the file briefly
and waits, bounded, for another writer's lock.
"""

from __future__ import annotations

import json
import math
import os
import socket
from collections.abc import Iterable
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import duckdb

from harness.errors import UsageError
from harness.runtime.cache import key, pid_alive
from harness.runtime.faults import fault
from harness.store import connection, migrations, transaction
from harness.store.connection import LOCK_WAIT_SECONDS

DEFAULT_DB = Path("results") / "harness.duckdb"  # relative to where `harness` runs


def default_path() -> Path:
    """The results database: $HARNESS_DB, else results/harness.duckdb. The one place it is worked out."""
    return Path(os.environ.get("HARNESS_DB") or DEFAULT_DB)


class Store:
    def __init__(self, path: str | os.PathLike, lock_wait: float = LOCK_WAIT_SECONDS) -> None:
        self.path = Path(path)
        self.lock_wait = lock_wait

    # ------------------------------------------------------------ connections

    @contextmanager
    def writing(self):
        """The writer's connection to a file that is ours (`connection.check`), an older file first brought
        up to date. A DuckDB error while it is in use is one line naming the file, with DuckDB's own reason.
        """
        con = self._open(False)
        try:
            migrations.upgrade(con, connection.check(con, self.path), self.path)
            connection.check_values(con, self.path)  # a file holding values no harness writes is never written
            try:
                yield con
            except duckdb.Error as err:
                raise UsageError(f"cannot write results database {self.path}: {connection.first_line(err)}") from None
        finally:
            con.close()

    def reading(self):
        """`connection.reading` on this store's file, with its lock wait: the file is never changed."""
        return connection.reading(self.path, self.lock_wait)

    def _open(self, read_only: bool) -> duckdb.DuckDBPyConnection:
        if not read_only:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                reason = err.strerror  # "File exists" when an ancestor is a file: name that file instead
                blocker = next((p for p in self.path.parents if p.exists()), None)
                if blocker is not None and not blocker.is_dir():
                    reason = f"{blocker} is a file, not a directory"
                raise UsageError(f"cannot write results to {self.path}: {reason}") from None
        return connection.open_file(self.path, read_only, self.lock_wait)

    def check_writable(self) -> None:
        """Fail before any training if the results cannot be written."""
        with self.writing():
            pass

    # ------------------------------------------------------------ run lifecycle

    def start_run(self, row: dict[str, Any]) -> None:
        row = {**row, "status": "running", "started_at": _now(), "hostname": socket.gethostname(), "pid": os.getpid()}
        with self.writing() as con:
            self._mark_stale(con)
            _insert(con, "runs", [row])

    def finish_run(self, run_id: str, *, models: list[dict], examples: list[dict], samples: dict[str, list],
                   metrics: dict[str, float], stage_seconds: dict[str, float],
                   tables: dict[str, dict[str, list]] | None = None) -> None:
        """Everything a finished run wrote, in one transaction: all of it lands, or none.

        `tables` holds the per-run tables beyond samples and metrics (scores, curves,
        continuations, features), column-wise, without the run_id.
        """
        with self.writing() as con:
            with transaction(con):
                _insert(con, "models", models)
                if examples:
                    con.execute("CREATE TEMP TABLE new_examples AS SELECT * FROM examples LIMIT 0")
                    _insert(con, "new_examples", examples)
                    con.execute("INSERT INTO examples SELECT * FROM new_examples n WHERE NOT EXISTS ("
                                "SELECT 1 FROM examples e WHERE e.dataset_hash = n.dataset_hash "
                                "AND e.tokenizer_key = n.tokenizer_key AND e.sample_id = n.sample_id)")
                    con.execute("DROP TABLE new_examples")
                _insert_columns(con, "samples", {"run_id": run_id, **samples})
                for table, columns in (tables or {}).items():
                    if any(columns.values()):
                        _insert_columns(con, table, {"run_id": run_id, **columns})
                _insert(con, "metrics", [{"run_id": run_id, "name": k, "value": _finite(v)} for k, v in metrics.items()])
                con.execute("UPDATE runs SET status = 'finished', finished_at = ?, stage_seconds = ? WHERE run_id = ?",
                            [_now(), json.dumps(stage_seconds), run_id])
                fault("store:commit")

    def record_prediction(self, run_id: str, risk: dict[str, float], figures: dict[str, float]) -> None:
        """A memorization predictor's per-member risk and its figures, added to a finished run."""
        with self.writing() as con:
            with transaction(con):
                con.execute("CREATE TEMP TABLE new_risk (sample_id VARCHAR, risk DOUBLE)")
                _insert_columns(con, "new_risk", {"sample_id": list(risk), "risk": list(risk.values())})
                con.execute("UPDATE features SET risk = n.risk FROM new_risk n "
                            "WHERE features.run_id = ? AND features.sample_id = n.sample_id", [run_id])
                con.execute("DROP TABLE new_risk")
                con.execute("DELETE FROM metrics WHERE run_id = ? AND list_contains(?, name)", [run_id, list(figures)])
                _insert(con, "metrics", [{"run_id": run_id, "name": k, "value": _finite(v)} for k, v in figures.items()])

    def record_group(self, group_id: str, seeds: dict[str, int], summary: dict[str, tuple[int, float, float, float]],
                     always: dict[str, list[str]]) -> None:
        """Runs of one configuration over several seeds: members, figures as (n, mean, lo, hi), and
        per role the members memorized at every seed."""
        with self.writing() as con:
            with transaction(con):
                _insert_columns(con, "seed_groups",
                                {"group_id": group_id, "run_id": list(seeds), "seed": list(seeds.values())})
                names = list(summary)
                _insert_columns(con, "group_metrics", {"group_id": group_id, "name": names,
                                                       **{c: [_db_value(summary[n][i]) for n in names]
                                                          for i, c in enumerate(("n", "mean", "lo", "hi"))}})
                pairs = [(role, sid) for role, ids in always.items() for sid in ids]
                if pairs:
                    _insert_columns(con, "group_sets", {"group_id": group_id, "role": [p[0] for p in pairs],
                                                        "sample_id": [p[1] for p in pairs]})

    def record_reproduction(self, reproduction_id: str, where: dict[str, str], rows: list[dict[str, Any]]) -> None:
        """One `harness reproduce`: a row per finding, in one transaction."""
        with self.writing() as con:
            with transaction(con):
                now = _now()
                _insert(con, "reproductions", [{"reproduction_id": reproduction_id, "created_at": now, **where,
                                                **{k: (_finite(v) if isinstance(v, float) else v)
                                                   for k, v in row.items()}} for row in rows])

    def fail_run(self, run_id: str, error: str, stage_seconds: dict[str, float] | None = None) -> None:
        with self.writing() as con:
            con.execute("UPDATE runs SET status = 'failed', error = ?, finished_at = ?, stage_seconds = ? "
                        "WHERE run_id = ?", [error, _now(), json.dumps(stage_seconds or {}), run_id])

    def _mark_stale(self, con) -> None:
        """A `running` run whose process on this host is gone was killed: say so."""
        host = socket.gethostname()
        for run_id, pid in con.execute("SELECT run_id, pid FROM runs WHERE status = 'running' AND hostname = ?",
                                       [host]).fetchall():
            if pid is not None and not pid_alive(pid):
                con.execute("UPDATE runs SET status = 'failed', error = ? WHERE run_id = ?",
                            [f"process {pid} ended without finishing (killed?)", run_id])

    # ------------------------------------------------------------ reading

    def query(self, sql: str, params: Iterable[Any] = ()) -> tuple[list[str], list[tuple]]:
        with self.reading() as con:
            cur = con.execute(sql, list(params))
            return [d[0] for d in cur.description], cur.fetchall()


def config_hash(run: dict[str, Any]) -> str:
    """The hash of a run's configuration, computed from its stored row alone.

    Importing a bundle recomputes it, so it may use only what `runs` keeps. Family args
    enter only when they differ from the family's defaults, and a filter or reference model
    only when given, which keeps the hashes of runs stored before these existed unchanged.
    """
    config = {"family": run["family"], "dataset": run["dataset"], "dataset_hash": run["dataset_hash"],
              "dataset_args": portable_args(json.loads(run["dataset_args"])), "method": run["method"],
              "method_args": json.loads(run["method_args"]), "preset": json.loads(run["preset_values"]),
              "seed": int(run["seed"]), "limit": _int_or_none(run["example_limit"]),
              "harness": run["harness_version"]}
    family_args = json.loads(run.get("family_args") or "{}")
    if family_args:
        config["family_args"] = family_args
    for optional in ("filter", "reference"):  # present only when the run used them
        if run.get(optional):
            config[optional] = run[optional]
    return key(config)


def portable(value: Any) -> Any:
    """A local path reduced to its file name; anything else as it is.

    A corpus is identified by its content hash, so where it lies on this machine (a home
    folder, a project's name) adds nothing to a run's identity and must not leave with it.
    """
    if isinstance(value, str) and ("/" in value or os.sep in value):
        return Path(value.rstrip("/" + os.sep)).name or value
    return value


def portable_args(args: dict[str, Any]) -> dict[str, Any]:
    """Dataset arguments with a local `path` (every dataset plugin's name for one) reduced to its file name."""
    return {k: portable(v) if k == "path" else v for k, v in args.items()}


def _int_or_none(value: Any) -> int | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else int(value)


def _insert(con, table: str, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    columns = dict.fromkeys(name for row in rows for name in row)
    _insert_columns(con, table, {k: [_db_value(r.get(k)) for r in rows] for k in columns})


def _insert_columns(con, table: str, data: dict[str, Any]) -> None:
    """Insert column-wise through Arrow: thousands of sample rows in one statement."""
    import pyarrow as pa

    length = max(len(v) for v in data.values() if isinstance(v, list))
    # a NaN or an infinity is stored as NULL, as every figure is: a file holding one is refused (connection.check_values)
    cols = {k: ([_db_value(x) for x in v] if any(isinstance(x, float) for x in v) else v)
            if isinstance(v, list) else [_db_value(v)] * length for k, v in data.items()}
    arrow = pa.table(cols)
    con.register("incoming", arrow)
    try:
        names = ", ".join(f'"{k}"' for k in cols)
        con.execute(f"INSERT INTO {table} ({names}) SELECT {names} FROM incoming")
    finally:
        con.unregister("incoming")


def _db_value(value: Any) -> Any:
    if isinstance(value, float):
        return _finite(value)
    return value


def _finite(value: float | None) -> float | None:
    return None if value is None or (isinstance(value, float) and not math.isfinite(value)) else float(value)


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)
