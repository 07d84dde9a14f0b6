"""Opening a results file to read it: the one read-only connection, the one schema check, the one value check.

DuckDB lets one process write a file at a time, and a writer holds the lock for a moment per
write: `open_file` waits for it, bounded, for readers and writers alike. A file is read only if
`check` finds it ours, whole and not newer than this harness, and `check_values` finds every value
one a harness writes; an older file is read through a migrated temporary copy, so reading never
creates, migrates or changes a file. The queries are in `harness.store.read`.
"""
from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

import harness
from harness.errors import UsageError
from harness.runtime import log
from harness.store import migrations
from harness.store.migrations import SCHEMA_VERSION

if TYPE_CHECKING:
    pass

LOCK_WAIT_SECONDS = 120.0
# Tables a published snapshot adds to the results store's: a file holding them is still ours.
SNAPSHOT_TABLES = ("vocab", "snapshot_notes")
HEADER_BYTES = 3 * 4096  # a DuckDB file's main header and its two database headers, before the blocks

# The tables and columns every reader relies on, in every version a file may have: without them
# a file that says it is ours is not whole.
REQUIRED = {
    "runs": {"run_id", "family", "dataset", "method", "method_label", "teacher_access", "preset", "seed",
             "n_members", "config_hash", "dataset_hash", "tokenizer_key", "harness_version", "git_commit",
             "status", "error", "finished_at", "suffix_len", "prefix_len", "example_limit"},
    "models": {"run_id", "role", "size", "n_params", "val_ppl", "artifact_path"},
    "examples": {"dataset_hash", "tokenizer_key", "sample_id", "split", "repeats", "token_ids", "text"},
    "samples": {"run_id", "role", "sample_id", "split", "memorized", "match_len", "loss"},
    "metrics": {"run_id", "name", "value"},
}


class Refused(UsageError):
    """A file that cannot be opened or read as a results database, in one line.

    `kind` says which check refused it (missing, unopenable, locked, unreadable, foreign, version,
    newer, truncated, incomplete, empty) and `version`, `missing` and `reason` what it found, so
    that the app can say it in its own words.
    """

    def __init__(self, message: str, kind: str, path: Path, *, version: int | None = None,
                 missing: tuple[str, ...] = (), reason: str = "") -> None:
        super().__init__(message)
        self.kind, self.path, self.version, self.missing, self.reason = kind, path, version, missing, reason


# ------------------------------------------------------------ opening


def open_file(path: Path, read_only: bool, lock_wait: float = LOCK_WAIT_SECONDS) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection to `path`, waiting up to `lock_wait` seconds for another process's lock."""
    deadline = time.monotonic() + lock_wait
    said = False
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only)
        except duckdb.IOException as err:
            reason = str(err).splitlines()[0]
            if "lock" not in reason.lower():
                raise Refused(f"cannot open results database {path}: {reason}", "unopenable", path, reason=reason) from None
            if time.monotonic() > deadline:
                raise Refused(f"results database {path} stayed locked by another process for {lock_wait:.0f}s; "
                              "try again when it finishes", "locked", path, reason=reason) from None
            if not said:
                log.info(f"results database {path} is locked by another process; waiting up to {lock_wait:.0f}s")
                said = True
            time.sleep(0.2)
        except duckdb.Error as err:
            reason = str(err).splitlines()[0]
            raise Refused(f"cannot open results database {path}: {reason}", "unopenable", path, reason=reason) from None


@contextmanager
def reading(path: str | Path, lock_wait: float = LOCK_WAIT_SECONDS, empty: bool = True):
    """A read-only connection to a results file that `check` accepts; the file is never changed.

    An older file is read through a migrated temporary copy. A file with no tables yet reads as
    an empty store, or is refused (`empty=False`: the app says so). A DuckDB error while the
    connection is in use is one line naming the file, with DuckDB's own reason.
    """
    path = Path(path)
    if not path.is_file():
        raise Refused(f"no results database at {path}: run `harness eval` first, or pass --db", "missing", path)
    con = open_file(path, True, lock_wait)
    copy = None
    try:
        version = check(con, path)
        if version == 0 and not empty:
            raise Refused(f"results database {path} is empty: no run has been stored in it yet", "empty", path, version=0)
        if version < SCHEMA_VERSION:
            con.close()
            copy = migrated_copy(path, lock_wait)
            con = open_file(copy, True, lock_wait)
        check_values(con, path)
        try:
            yield con
        except duckdb.Error as err:
            raise UsageError(f"cannot read results database {path}: {first_line(err)}") from None
    finally:
        con.close()
        if copy is not None:
            shutil.rmtree(copy.parent, ignore_errors=True)


def migrated_copy(path: Path, lock_wait: float = LOCK_WAIT_SECONDS) -> Path:
    """An older file, copied to a temporary folder and migrated there: the original is not touched."""
    folder = Path(tempfile.mkdtemp(prefix="harness-migrated-"))
    copy = folder / path.name
    try:
        shutil.copyfile(path, copy)
        con = open_file(copy, False, lock_wait)
        try:
            migrations.upgrade(con, check(con, copy), copy)
        finally:
            con.close()
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return copy


# ------------------------------------------------------------ the schema check


def check(con, path: Path | None = None) -> int:
    """The file's schema version (0 for a new, empty file), or Refused saying why it is not read.

    A file is ours only if every object in it is: our tables in `main`, and no view, macro,
    sequence, index, type or other schema. Anything else is someone else's file, never written.
    It must also be whole (not cut off), not newer than this harness, and hold REQUIRED.
    """
    if path is None:
        row = con.execute("SELECT path FROM duckdb_databases() WHERE database_name = current_database()").fetchone()
        path = Path(row[0]) if row and row[0] else Path(":memory:")
    try:
        found = catalog(con)
        columns = tables(con)
        version_type = con.execute("SELECT data_type FROM duckdb_columns() WHERE database_name = current_database() "
                                   "AND schema_name = 'main' AND table_name = 'schema_info' "
                                   "AND column_name = 'version'").fetchone()
    except duckdb.Error as err:
        raise Refused(f"cannot read results database {path}: {first_line(err)}", "unreadable", path) from None
    _check_whole(con, path)
    missing = tuple(f"{t}.{c}" for t, cols in REQUIRED.items() for c in sorted(cols - columns.get(t, set())))
    names = {t.removeprefix("main.") for t in found["table"]}
    foreign = _foreign(found)
    if foreign:
        raise Refused(f"{path} is a DuckDB file but not a harness results database (it has {foreign}); "
                      "pass another --db", "foreign", path, missing=missing)
    if "schema_info" not in names:
        if names:
            raise Refused(f"{path} is a DuckDB file but not a harness results database (it has tables "
                          f"{', '.join(sorted(names))} and no schema_info); pass another --db", "foreign", path,
                          missing=missing)
        return 0
    if version_type is None or version_type[0] != "INTEGER":
        raise Refused(f"{path} is not a harness results database: schema_info.version is "
                      f"{version_type[0] if version_type else 'missing'}, not INTEGER; pass another --db",
                      "version", path, missing=missing)
    try:
        version = con.execute("SELECT max(version) FROM schema_info").fetchone()[0] or 0
    except duckdb.Error as err:
        raise Refused(f"cannot read results database {path}: {first_line(err)}", "unreadable", path) from None
    if version > SCHEMA_VERSION:
        raise Refused(f"results database {path} has schema version {version}, newer than this harness "
                      f"({harness.__version__}) understands ({SCHEMA_VERSION}); upgrade the harness to read it",
                      "newer", path, version=version)
    if version and missing:
        raise Refused(f"results database {path} is not whole: schema version {version} but no "
                      f"{', '.join(missing[:4])}{' and more' if len(missing) > 4 else ''}; pass another --db",
                      "incomplete", path, version=version, missing=missing)
    return version


def _check_whole(con, path: Path) -> None:
    """A file shorter than the blocks its header counts was cut off (a full disk, a partial copy):
    refused here, before a run trains for minutes and then cannot store its results."""
    try:
        block_size, used = con.execute("SELECT block_size, used_blocks FROM pragma_database_size() "
                                       "WHERE database_name = current_database()").fetchall()[0]
        size = path.stat().st_size
    except (duckdb.Error, OSError, TypeError, IndexError):
        return
    # Free blocks at the end may be cut off by DuckDB itself; used ones never are, and whole files
    # are whole blocks.
    if size < HEADER_BYTES + used * block_size or (size - HEADER_BYTES) % block_size:
        raise Refused(f"results database {path} is truncated ({size} bytes, not the whole blocks its header "
                      "counts); restore it or pass another --db", "truncated", path)


# ------------------------------------------------------------ the value check

# What the harness writes, by value; a file holding anything else is refused: a NaN or an infinity
# (every figure, loss and perplexity is stored finite, or NULL where there is none), a rate outside
# [0, 1], a count outside 0 .. the run's examples, a run's sizes out of range, a weights hash that is
# not one. NULL is "none", never refused: older and hand-made files leave fields out. Each rule is one
# SQL condition that a bad row meets: (table, what it says, condition, the columns it needs).
SUFFIX_MAX = 4096  # registry.PROTOCOL_PARAMS: prefix_len and suffix_len are 1 .. 4096 tokens
FINITE_COLUMNS = {"metrics": ("value",), "models": ("val_loss", "val_ppl", "train_seconds"),
                  "samples": ("loss", "suffix_loss", "approx_match", "edit_distance", "sample_logprob"),
                  "group_metrics": ("mean", "lo", "hi"), "reproductions": ("mean", "lo", "hi", "figure"),
                  "curves": ("x", "y")}


def _prefixes(names: Sequence[str]) -> str:
    return "(" + " OR ".join(f"starts_with(name, '{n}')" for n in names) + ")"


def _value_rules() -> list[tuple[str, str, str, tuple[str, ...]]]:
    from harness.store.labels import COUNT_FIGURES, POSITIVE_FIGURES, UNIT_FIGURES

    rules = [(table, "a figure that is NaN or infinite" if table == "metrics" else "a value that is NaN or infinite",
              f"isfinite({c}) IS FALSE", (c,)) for table, columns in FINITE_COLUMNS.items() for c in columns]
    return rules + [
        ("runs", "a run's members, non-members, prefix, suffix, seed or limit out of range",
         f"n_members < 1 OR n_nonmembers < 0 OR prefix_len NOT BETWEEN 1 AND {SUFFIX_MAX} OR suffix_len NOT "
         f"BETWEEN 1 AND {SUFFIX_MAX} OR seed < 0 OR example_limit < 1",
         ("n_members", "n_nonmembers", "prefix_len", "suffix_len", "seed", "example_limit")),
        ("metrics", "a rate outside [0, 1]", f"{_prefixes(UNIT_FIGURES)} AND value NOT BETWEEN 0 AND 1",
         ("name", "value")),
        ("metrics", "a perplexity that is not above 0", f"{_prefixes(POSITIVE_FIGURES)} AND value <= 0",
         ("name", "value")),
        ("metrics", "a count below 0 or above the run's examples",
         f"{_prefixes(COUNT_FIGURES)} AND (value < 0 OR value > (SELECT max(r.n_members) + max(r.n_nonmembers) "
         "FROM runs r WHERE r.run_id = metrics.run_id))", ("name", "value")),
        ("models", "a parameter count below 0", "n_params < 0", ("n_params",)),
        ("models", "a weights hash that is not hex digits (runtime.cache.weights_hash)",
         "NOT regexp_full_match(weights_sha256, '[0-9a-f]{1,64}')", ("weights_sha256",)),
        ("models", "a perplexity that is not above 0", "val_ppl <= 0", ("val_ppl",)),
        ("models", "a negative training time", "train_seconds < 0", ("train_seconds",)),
        ("samples", "a match length outside the suffix", f"match_len NOT BETWEEN 0 AND {SUFFIX_MAX}", ("match_len",)),
        ("samples", "a token match outside [0, 1]", "approx_match NOT BETWEEN 0 AND 1", ("approx_match",)),
        ("samples", "a negative edit distance", "edit_distance < 0", ("edit_distance",)),
        # a suffix's log-probability under top-k sampling: at most 0 (float rounding aside), at least
        # extract.IMPOSSIBLE, the value stored for a suffix sampling cannot produce
        ("samples", "a sampling log-probability outside [-1e6, 0]", "sample_logprob NOT BETWEEN -1e6 AND 1e-4",
         ("sample_logprob",))]


def check_values(con, path: Path) -> None:
    """Refused in one line: a file of ours whose columns have another type than ours, or that holds a value
    no harness writes (`_value_rules`). A results file comes from anyone; its shape is checked by `check`
    and its values here, as a bundle's are (`leaderboard.validate`), before any command reads a figure."""
    found = tables(con)
    types = {(t, c): d for t, c, d in con.execute(
        "SELECT table_name, column_name, data_type FROM duckdb_columns() WHERE database_name = current_database() "
        "AND schema_name = 'main'").fetchall()}
    for table, columns in migrations.COLUMN_TYPES.items():
        for column, want in columns.items():
            got = types.get((table, column))
            if got is not None and got != want:
                raise Refused(f"results database {path} is not a harness results file: {table}.{column} is {got}, "
                              f"not {want}; pass another --db", "values", path, reason=f"{table}.{column}")
    for table, what, condition, columns in _value_rules():
        if not set(columns) <= found.get(table, set()) or "runs" not in found:
            continue
        keys = ", ".join(k for k in ("run_id", "name") if k in found[table]) or "NULL"
        try:
            bad = con.execute(f"SELECT {keys} FROM {table} WHERE {condition} LIMIT 1").fetchall()
        except duckdb.Error as err:
            raise Refused(f"cannot read results database {path}: {first_line(err)}", "unreadable", path) from None
        if bad:
            where = ", ".join(f"{k} {v!r}" for k, v in zip(("run", "figure"), bad[0]) if v is not None)
            raise Refused(f"results database {path} holds {what} ({table}{': ' + where if where else ''}), which "
                          "no harness writes: it was altered or damaged; pass another --db", "values", path,
                          reason=f"{table}: {what}")


OUR_TABLES = migrations.TABLES | set(SNAPSHOT_TABLES)

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
    theirs = [n.removeprefix("main.") for n in found["table"] if n.startswith("main.")
              and n.removeprefix("main.") not in OUR_TABLES]
    extra = [f"tables {', '.join(theirs[:3])}"] if theirs else []
    extra += [f"{kind} {name}" for kind, names in found.items() if kind != "table" for name in names]
    extra += [f"table {name}" for name in found["table"] if not name.startswith("main.")]
    if extra:
        more = f" and {len(extra) - 3} more" if len(extra) > 3 else ""
        return ", ".join(extra[:3]) + more
    return ""


def tables(con) -> dict[str, set[str]]:
    """The connection's tables in `main`, each with its columns."""
    rows = con.execute("SELECT table_name, column_name FROM duckdb_columns() WHERE database_name = current_database() "
                       "AND schema_name = 'main'").fetchall()
    out: dict[str, set[str]] = {}
    for table, column in rows:
        out.setdefault(table, set()).add(column)
    return out


def first_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return lines[0] if lines else type(err).__name__
