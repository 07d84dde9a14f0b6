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
import shutil
import socket
import tempfile
import time
from collections.abc import Iterable
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import duckdb

import harness
from harness.errors import UsageError
from harness.runtime import log
from harness.runtime.cache import key, pid_alive
from harness.runtime.faults import fault
from harness.store import migrations, transaction
from harness.store.migrations import SCHEMA, SCHEMA_VERSION

LOCK_WAIT_SECONDS = 120.0
# Tables a published snapshot adds to the results store's: a file holding them is still ours.
SNAPSHOT_TABLES = ("vocab", "snapshot_notes")
HEADER_BYTES = 3 * 4096  # a DuckDB file's main header and its two database headers, before the blocks

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
    def connect(self, read_only: bool = False):
        """A connection to a file that is ours; reading never creates, migrates or changes it.

        An older file is read through a migrated temporary copy, so that `show` or `leaderboard`
        leaves it byte for byte as it was. A DuckDB error while the connection is in use is one
        line naming the file, with DuckDB's own reason.
        """
        if read_only and not self.path.is_file():
            raise UsageError(f"no results database at {self.path}: run `harness eval` first, or pass --db")
        con = self._open(read_only)
        copy = None
        try:
            version = self._version(con)
            if read_only and version < SCHEMA_VERSION:
                con.close()
                copy = self._migrated_copy()
                con = Store(copy, self.lock_wait)._open(True)
            elif not read_only:
                self._upgrade(con, version)
            try:
                yield con
            except duckdb.Error as err:
                raise UsageError(f"cannot {'read' if read_only else 'write'} results database {self.path}: "
                                 f"{_first_line(err)}") from None
        finally:
            con.close()
            if copy is not None:
                shutil.rmtree(copy.parent, ignore_errors=True)

    def _migrated_copy(self) -> Path:
        """An older file, copied to a temporary folder and migrated there: the original is not touched."""
        folder = Path(tempfile.mkdtemp(prefix="harness-migrated-"))
        copy = folder / self.path.name
        shutil.copyfile(self.path, copy)
        try:
            with Store(copy, self.lock_wait).connect():
                pass
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return copy

    def _version(self, con) -> int:
        """The file's schema version: 0 for a new, empty file; refuses a newer or a foreign file.

        A file is ours only if every object in it is: our tables in `main`, and no view, macro,
        sequence, index, type or other schema. Anything else is someone else's file, never written.
        """
        try:
            found = catalog(con)
            version_type = con.execute("SELECT data_type FROM duckdb_columns() WHERE database_name = current_database() "
                                       "AND schema_name = 'main' AND table_name = 'schema_info' "
                                       "AND column_name = 'version'").fetchone()
        except duckdb.Error as err:
            raise UsageError(f"cannot read results database {self.path}: {_first_line(err)}") from None
        self._check_whole(con)
        tables = {t.removeprefix("main.") for t in found["table"]}
        foreign = _foreign(found)
        if foreign:
            raise UsageError(f"{self.path} is a DuckDB file but not a harness results database "
                             f"(it has {foreign}); pass another --db")
        if "schema_info" not in tables:
            if tables:
                raise UsageError(f"{self.path} is a DuckDB file but not a harness results database "
                                 f"(it has tables {', '.join(sorted(tables))} and no schema_info); pass another --db")
            return 0
        if version_type is None or version_type[0] != "INTEGER":
            raise UsageError(f"{self.path} is not a harness results database: schema_info.version is "
                             f"{version_type[0] if version_type else 'missing'}, not INTEGER; pass another --db")
        try:
            version = con.execute("SELECT max(version) FROM schema_info").fetchone()[0] or 0
        except duckdb.Error as err:
            raise UsageError(f"cannot read results database {self.path}: {_first_line(err)}") from None
        if version > SCHEMA_VERSION:
            raise UsageError(f"results database {self.path} has schema version {version}, newer than this harness "
                             f"({harness.__version__}) understands ({SCHEMA_VERSION}); upgrade the harness to read it")
        return version

    def _check_whole(self, con) -> None:
        """A file shorter than the blocks its header counts was cut off (a full disk, a partial copy):
        refused here, before a run trains for minutes and then cannot store its results."""
        try:
            block_size, used = con.execute("SELECT block_size, used_blocks FROM pragma_database_size() "
                                           "WHERE database_name = current_database()").fetchall()[0]
            size = self.path.stat().st_size
        except (duckdb.Error, OSError, TypeError, IndexError):
            return
        # Free blocks at the end may be cut off by DuckDB itself; used ones never are, and whole files
        # are whole blocks.
        if size < HEADER_BYTES + used * block_size or (size - HEADER_BYTES) % block_size:
            raise UsageError(f"results database {self.path} is truncated ({size} bytes, not the whole blocks its "
                             f"header counts); restore it or pass another --db")

    def _upgrade(self, con, version: int) -> None:
        """Create a new file's tables, or bring an older file up to SCHEMA_VERSION, step by step."""
        if version == 0:
            with transaction(con):
                con.execute(SCHEMA)
                con.execute("DELETE FROM schema_info")
                con.execute("INSERT INTO schema_info VALUES (?)", [SCHEMA_VERSION])
            return
        for step in range(version, SCHEMA_VERSION):
            try:
                with transaction(con):
                    migrations.MIGRATIONS[step - 1](con)
                    con.execute("UPDATE schema_info SET version = ?", [step + 1])
            except duckdb.Error as err:
                raise UsageError(f"cannot migrate results database {self.path} from schema version {step} "
                                 f"to {step + 1}: {_first_line(err)}") from None

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
        deadline = time.monotonic() + self.lock_wait
        said = False
        while True:
            try:
                return duckdb.connect(str(self.path), read_only=read_only)
            except duckdb.IOException as err:
                message = str(err)
                if "lock" not in message.lower():
                    raise UsageError(f"cannot open results database {self.path}: {message.splitlines()[0]}") from None
                if time.monotonic() > deadline:
                    raise UsageError(f"results database {self.path} stayed locked by another process "
                                     f"for {self.lock_wait:.0f}s; try again when it finishes") from None
                if not said:
                    log.info(f"results database {self.path} is locked by another process; waiting up to "
                             f"{self.lock_wait:.0f}s")
                    said = True
                time.sleep(0.2)
            except duckdb.Error as err:
                raise UsageError(f"cannot open results database {self.path}: {str(err).splitlines()[0]}") from None

    def check_writable(self) -> None:
        """Fail before any training if the results cannot be written."""
        with self.connect():
            pass

    # ------------------------------------------------------------ run lifecycle

    def start_run(self, row: dict[str, Any]) -> None:
        row = {**row, "status": "running", "started_at": _now(), "hostname": socket.gethostname(), "pid": os.getpid()}
        with self.connect() as con:
            self._mark_stale(con)
            _insert(con, "runs", [row])

    def finish_run(self, run_id: str, *, models: list[dict], examples: list[dict], samples: dict[str, list],
                   metrics: dict[str, float], stage_seconds: dict[str, float],
                   tables: dict[str, dict[str, list]] | None = None) -> None:
        """Everything a finished run wrote, in one transaction: all of it lands, or none.

        `tables` holds the per-run tables beyond samples and metrics (scores, curves,
        continuations, features), column-wise, without the run_id.
        """
        with self.connect() as con:
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
        with self.connect() as con:
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
        with self.connect() as con:
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
        with self.connect() as con:
            with transaction(con):
                now = _now()
                _insert(con, "reproductions", [{"reproduction_id": reproduction_id, "created_at": now, **where,
                                                **{k: (_finite(v) if isinstance(v, float) else v)
                                                   for k, v in row.items()}} for row in rows])

    def fail_run(self, run_id: str, error: str, stage_seconds: dict[str, float] | None = None) -> None:
        with self.connect() as con:
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
        with self.connect(read_only=True) as con:
            cur = con.execute(sql, list(params))
            return [d[0] for d in cur.description], cur.fetchall()


def _our_tables() -> frozenset[str]:
    con = duckdb.connect()
    try:
        con.execute(SCHEMA)
        names = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    finally:
        con.close()
    return frozenset(names | set(SNAPSHOT_TABLES))


OUR_TABLES = _our_tables()

CATALOG = {
    "schema": "SELECT schema_name FROM duckdb_schemas() WHERE database_name = current_database() AND NOT internal",
    "table": "SELECT schema_name || '.' || table_name FROM duckdb_tables() WHERE database_name = current_database()",
    "view": "SELECT schema_name || '.' || view_name FROM duckdb_views() WHERE database_name = current_database() "
            "AND NOT internal",
    "macro": "SELECT DISTINCT schema_name || '.' || function_name FROM duckdb_functions() "
             "WHERE database_name = current_database() AND NOT internal",
    "sequence": "SELECT schema_name || '.' || sequence_name FROM duckdb_sequences() "
                "WHERE database_name = current_database()",
    "index": "SELECT schema_name || '.' || index_name FROM duckdb_indexes() WHERE database_name = current_database()",
    "type": "SELECT schema_name || '.' || type_name FROM duckdb_types() WHERE database_name = current_database() "
            "AND NOT internal",
}


def catalog(con) -> dict[str, list[str]]:
    """Every user-made object of the connection's own file, by kind, sorted."""
    return {kind: sorted(r[0] for r in con.execute(sql).fetchall()) for kind, sql in CATALOG.items()}


def _foreign(found: dict[str, list[str]]) -> str:
    """What in a catalog is not ours, as a phrase ('tables notes, view main.v'); empty when all is ours."""
    tables = [n.removeprefix("main.") for n in found["table"] if n.startswith("main.")
              and n.removeprefix("main.") not in OUR_TABLES]
    extra = [f"tables {', '.join(tables[:3])}"] if tables else []
    extra += [f"{kind} {name}" for kind, names in found.items() if kind != "table" for name in names]
    extra += [f"table {name}" for name in found["table"] if not name.startswith("main.")]
    if extra:
        more = f" and {len(extra) - 3} more" if len(extra) > 3 else ""
        return ", ".join(extra[:3]) + more
    return ""


def _first_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return lines[0] if lines else type(err).__name__


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
    cols = {k: (v if isinstance(v, list) else [v] * length) for k, v in data.items()}
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
