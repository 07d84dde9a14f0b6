"""Reading the results store: the one read-only connection, the one schema check, and every query.

DuckDB lets one process write a file at a time, and a writer holds the lock for a moment per
write: `open_file` waits for it, bounded, for readers and writers alike. A file is read only if
`check` finds it ours, whole and not newer than this harness; an older one is read through a
migrated temporary copy, so reading never creates, migrates or changes a file.

The board, compare and the app read through the functions below: rows or DataFrames, every filter
a query parameter and never SQL text, and which runs count (COUNTED_RUNS) defined once.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

import harness
from harness.contract.specs import ROLE_ORDER_SQL, ROLES
from harness.errors import UsageError
from harness.runtime import log
from harness.store import migrations
from harness.store.migrations import SCHEMA_VERSION

if TYPE_CHECKING:
    import pandas as pd

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
def connect(path: str | Path, lock_wait: float = LOCK_WAIT_SECONDS, empty: bool = True):
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


# ------------------------------------------------------------ which stored runs count

# What makes runs one board, for the app, `harness leaderboard`, publish, export and compare alike: the
# family with its arguments (pretrained and from-scratch weights are different boards), the dataset and
# its content, the preset, and --limit.
BOARD_KEYS = ["family", "family_args", "dataset", "preset", "dataset_hash", "example_limit"]
# A family run with its defaults stores '{}'; runs from before family arguments existed, NULL: one board.
FAMILY_ARGS_SQL = "coalesce(CAST(r.family_args AS VARCHAR), '{}')"


@dataclass(frozen=True)
class Filters:
    """What the app's sidebar (or `harness leaderboard --family`) narrows the runs to; None: everything."""

    family: Sequence[str] | None = None
    dataset: Sequence[str] | None = None
    method: Sequence[str] | None = None
    size: Sequence[str] | None = None
    access: Sequence[str] | None = None
    search: str | None = None

    def params(self) -> list:
        """COUNTED_RUNS's parameters, in its order."""
        def listed(v):
            return None if not v else list(v)
        return [listed(self.family), listed(self.family), listed(self.dataset), listed(self.dataset),
                listed(self.method), listed(self.method), listed(self.access), listed(self.access),
                self.search or None, self.search or "", listed(self.size), listed(self.size)]


NO_FILTERS = Filters()

# The runs that count, defined once: finished runs passing the filters, and where one seed of a method
# ran twice on a board, its latest run. Each with its student's size.
COUNTED_RUNS = f"""
    SELECT r.* REPLACE ({FAMILY_ARGS_SQL} AS family_args), mo.size AS student_size, mo.n_params AS student_params
    FROM runs r LEFT JOIN models mo ON mo.run_id = r.run_id AND mo.role = 'student'
    WHERE r.status = 'finished'
      AND (? IS NULL OR list_contains(?, r.family)) AND (? IS NULL OR list_contains(?, r.dataset))
      AND (? IS NULL OR list_contains(?, r.method_label)) AND (? IS NULL OR list_contains(?, r.teacher_access))
      AND (? IS NULL OR contains(lower(r.method_label || ' ' || r.method || ' ' || r.teacher_access), lower(?)))
      AND (? IS NULL OR list_contains(?, mo.size))
    QUALIFY row_number() OVER (
        PARTITION BY {', '.join(FAMILY_ARGS_SQL if k == 'family_args' else f'r.{k}' for k in BOARD_KEYS)},
                     r.method_label, r.seed
        ORDER BY r.finished_at DESC) = 1
"""


def frame(con, sql: str, params: Sequence = ()) -> pd.DataFrame:
    return con.execute(sql, list(params)).df()


def runs(con, filters: Filters = NO_FILTERS) -> pd.DataFrame:
    """The runs that count (COUNTED_RUNS), in board order."""
    return frame(con, COUNTED_RUNS + " ORDER BY family, dataset, method_label, seed", filters.params())


def latest_by_seed(con, family: str, dataset: str, method: str) -> list[tuple[int, str]]:
    """(seed, run id) of a method's unfiltered runs that count on this family and dataset, the latest per seed
    where several boards hold one (another preset, --limit): `harness compare`'s runs."""
    return con.execute(f"SELECT seed, arg_max(run_id, finished_at) FROM ({COUNTED_RUNS}) WHERE filter IS NULL "
                       "AND (method = ? OR method_label = ?) GROUP BY seed ORDER BY seed",
                       [*Filters(family=[family], dataset=[dataset]).params(), method, method]).fetchall()


def latest_finished(source, config_hash: str, require_features: bool = False) -> str | None:
    """The latest finished run with this config hash (and, if asked, the predictor's features), if any.

    `source` is a connection, or a Store (read here, and None when its file does not exist yet)."""
    if hasattr(source, "connect") and hasattr(source, "path"):
        if not source.path.is_file():
            return None
        with source.connect(read_only=True) as con:
            return latest_finished(con, config_hash, require_features)
    row = source.execute("SELECT r.run_id FROM runs r WHERE r.config_hash = ? AND r.status = 'finished' "
                         "AND (NOT ? OR EXISTS (SELECT 1 FROM features f WHERE f.run_id = r.run_id)) "
                         "ORDER BY r.finished_at DESC LIMIT 1", [config_hash, require_features]).fetchone()
    return row[0] if row else None


def failed_runs(con) -> pd.DataFrame:
    return frame(con, "SELECT run_id, family, dataset, method_label, seed, status, error, started_at FROM runs "
                      "WHERE status <> 'finished' ORDER BY started_at DESC")


def choices(con) -> dict[str, list[str]]:
    """The values each filter can take, from the finished runs."""
    def distinct(sql):
        return [r[0] for r in con.execute(sql).fetchall() if r[0] is not None]
    return {
        "family": distinct("SELECT DISTINCT family FROM runs WHERE status = 'finished' ORDER BY 1"),
        "dataset": distinct("SELECT DISTINCT dataset FROM runs WHERE status = 'finished' ORDER BY 1"),
        "method": distinct("SELECT DISTINCT method_label FROM runs WHERE status = 'finished' ORDER BY 1"),
        "access": distinct("SELECT DISTINCT teacher_access FROM runs WHERE status = 'finished' ORDER BY 1"),
        "size": distinct("SELECT DISTINCT mo.size FROM models mo JOIN runs r USING (run_id) "
                         "WHERE r.status = 'finished' AND mo.role = 'student' ORDER BY 1"),
    }


# ------------------------------------------------------------ figures


def run_metrics(con, run_ids: Sequence[str]) -> pd.DataFrame:
    """One row per run, one column per figure."""
    import pandas as pd

    long = frame(con, "SELECT run_id, name, value FROM metrics WHERE list_contains(?, run_id)", [list(run_ids)])
    if long.empty:
        return pd.DataFrame({"run_id": list(run_ids)})
    return long.pivot_table(index="run_id", columns="name", values="value", aggfunc="first").reset_index()


def metric_means(con, run_ids: Sequence[str], names: Sequence[str]) -> dict[str, float]:
    """Each named figure's mean over the runs (those the runs stored)."""
    return dict(con.execute("SELECT name, avg(value) FROM metrics WHERE list_contains(?, run_id) "
                            "AND list_contains(?, name) GROUP BY name", [list(run_ids), list(names)]).fetchall())


def blind_figures(con, run_ids: Sequence[str]) -> list[tuple[float, float, float]]:
    """Each run's blind-baseline AUC and its interval (`harness.measure.blind`), for the runs that stored one."""
    return con.execute("SELECT a.value, l.value, h.value FROM metrics a JOIN metrics l ON l.run_id = a.run_id "
                       "AND l.name = 'blind_auc_lo' JOIN metrics h ON h.run_id = a.run_id AND h.name = 'blind_auc_hi' "
                       "WHERE a.name = 'blind_auc' AND list_contains(?, a.run_id) ORDER BY a.run_id",
                       [list(run_ids)]).fetchall()


def statuses(con, run_ids: Sequence[str]) -> dict[str, str]:
    """Each stored run's status (running, finished, failed), by run id."""
    return dict(con.execute("SELECT run_id, status FROM runs WHERE list_contains(?, run_id)",
                            [list(run_ids)]).fetchall())


def metric_max(con, run_ids: Sequence[str], name: str) -> float | None:
    """A figure's largest value over the runs (a DP row's delta: every seed's is the same), or None."""
    [(value,)] = con.execute("SELECT max(value) FROM metrics WHERE list_contains(?, run_id) AND name = ?",
                             [list(run_ids), name]).fetchall()
    return value


def member_losses(con, run_ids: Sequence[str], role: str) -> pd.DataFrame:
    """A role's per-example losses over the runs, members and non-members: run_id, split, sample_id, loss,
    each run's examples in sample-id order (so a member is at one position in every run)."""
    return frame(con, "SELECT run_id, split, sample_id, loss FROM samples WHERE list_contains(?, run_id) "
                      "AND role = ? AND loss IS NOT NULL ORDER BY run_id, split, sample_id", [list(run_ids), role])


def features(con, run_id: str, names: Sequence[str]) -> list[tuple]:
    """A run's predictor rows, by sample id: (sample_id, *names, memorized_student).

    `names` are the predictor's feature columns (harness.measure.predict.FEATURES), checked
    against the table's columns, so no caller's text reaches the SQL.
    """
    known = tables(con).get("features", set())
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"features has no column {unknown[0]!r}")
    return con.execute(f"SELECT sample_id, {', '.join(names)}, memorized_student FROM features "
                       "WHERE run_id = ? ORDER BY sample_id", [run_id]).fetchall()


def attack_auc_names(con, role: str = "student") -> list[str]:
    """A role's membership-attack AUCs (`auc_<attack>_<role>` in metrics), once attacks wrote them."""
    return [r[0] for r in con.execute("SELECT DISTINCT name FROM metrics WHERE name LIKE 'auc\\_%\\_' || ? "
                                      "ESCAPE '\\' ORDER BY 1", [role]).fetchall()]


def memorized(con, run_id: str, role: str) -> set[str]:
    """The members a role of the run memorized."""
    return {r[0] for r in con.execute("SELECT sample_id FROM samples WHERE run_id = ? AND role = ? "
                                      "AND split = 'member' AND memorized", [run_id, role]).fetchall()}


def baseline_repeats(con, run_ids: Sequence[str]) -> tuple[int, int, int, int]:
    """The baseline's members seen once and how many it memorized, then the same for repeated members,
    pooled over the runs' seeds (each seed's baseline counted once)."""
    return con.execute("""
        SELECT count(*) FILTER (WHERE repeats = 1), count(*) FILTER (WHERE repeats = 1 AND memorized),
               count(*) FILTER (WHERE repeats > 1), count(*) FILTER (WHERE repeats > 1 AND memorized)
        FROM (SELECT DISTINCT r.seed, s.sample_id, s.repeats, s.memorized FROM samples s JOIN runs r USING (run_id)
              WHERE list_contains(?, s.run_id) AND s.role = 'baseline' AND s.split = 'member')""",
                       [list(run_ids)]).fetchone()


def overlap(con, run_id: str) -> pd.DataFrame:
    """Members by which roles memorized them (UpSet-style): one row per non-empty combination."""
    return frame(con, f"""
        SELECT combo, count(*) AS members FROM (
            SELECT sample_id, string_agg(role, ' + ' ORDER BY {ROLE_ORDER_SQL})
                   FILTER (WHERE memorized) AS combo
            FROM samples WHERE run_id = ? AND split = 'member' GROUP BY sample_id)
        WHERE combo IS NOT NULL GROUP BY combo ORDER BY members DESC""", [run_id])


def k_extractability(con, run_ids: Sequence[str]) -> pd.DataFrame:
    """Share of members whose greedy continuation matches at least k suffix tokens, per k and role."""
    return frame(con, """
        WITH ks AS (SELECT r.run_id, r.method_label, unnest(range(1, r.suffix_len + 1)) AS k
                    FROM runs r WHERE list_contains(?, r.run_id))
        SELECT ks.method_label AS method, s.role, ks.k, avg((s.match_len >= ks.k)::INTEGER) AS share
        FROM ks JOIN samples s ON s.run_id = ks.run_id AND s.split = 'member'
        GROUP BY ks.method_label, s.role, ks.k ORDER BY method, role, k""", [list(run_ids)])


def member_log_probs(con, run_id: str) -> pd.DataFrame:
    """Per member and role whose text is stored: memorized, repeats, total log-probability, and the text."""
    return frame(con, """
        SELECT s.sample_id, s.role, s.memorized, s.repeats, -s.loss * (len(e.token_ids) - 1) AS log_prob, e.text
        FROM samples s JOIN runs r USING (run_id)
        JOIN examples e ON e.dataset_hash = r.dataset_hash AND e.tokenizer_key = r.tokenizer_key
                       AND e.sample_id = s.sample_id
        WHERE s.run_id = ? AND s.split = 'member' AND e.text IS NOT NULL""", [run_id])


def losses(con, run_id: str) -> pd.DataFrame:
    """Each role's per-example loss, member or not."""
    return frame(con, "SELECT role, split, loss FROM samples WHERE run_id = ? AND loss IS NOT NULL", [run_id])


def stored_attacks(con, run_id: str) -> list[str]:
    """The attacks whose ROC curves the run stored (empty for runs from before attacks existed)."""
    if "curves" not in tables(con):
        return []
    return [r[0] for r in con.execute("SELECT DISTINCT substr(curve, 5) FROM curves WHERE run_id = ? "
                                      "AND starts_with(curve, 'roc:') ORDER BY 1", [run_id]).fetchall()]


def attack_roc(con, run_id: str, attack: str) -> pd.DataFrame:
    """A stored attack's ROC per role, with the run's AUC for it."""
    return frame(con, "SELECT c.role, c.x AS fpr, c.y AS tpr, m.value AS auc FROM curves c LEFT JOIN metrics m "
                      "ON m.run_id = c.run_id AND m.name = 'auc_' || ? || '_' || c.role "
                      "WHERE c.run_id = ? AND c.curve = 'roc:' || ? ORDER BY c.role, c.i", [attack, run_id, attack])


# ------------------------------------------------------------ one run, one example


def examples_of(con, run_id: str, memorized_by: str | None = None, limit: int = 500) -> pd.DataFrame:
    """A run's members with each role's verdict, most-memorized first, for the drill-down picker."""
    return frame(con, """
        SELECT sample_id, any_value(repeats) AS repeats,
               bool_or(memorized) FILTER (WHERE role = 'teacher') AS teacher,
               bool_or(memorized) FILTER (WHERE role = 'baseline') AS baseline,
               bool_or(memorized) FILTER (WHERE role = 'student') AS student,
               max(match_len) FILTER (WHERE role = 'student') AS student_match
        FROM samples WHERE run_id = ? AND split = 'member' GROUP BY sample_id
        HAVING ? IS NULL OR bool_or(memorized AND role = ?)
        ORDER BY student DESC, student_match DESC, sample_id LIMIT ?""", [run_id, memorized_by, memorized_by, limit])


def run_row(con, run_id: str) -> dict:
    """The run's row of `runs`, by column, as DuckDB gives it (NULL is None)."""
    cur = con.execute("SELECT * FROM runs WHERE run_id = ?", [run_id])
    return dict(zip([d[0] for d in cur.description], cur.fetchone()))


def run_ids_from(con, prefix: str) -> list[str]:
    """The stored run ids that start with `prefix`."""
    return [r[0] for r in con.execute("SELECT run_id FROM runs WHERE starts_with(run_id, ?) ORDER BY run_id",
                                      [prefix]).fetchall()]


def recent_run_ids(con, limit: int) -> list[str]:
    """The `limit` most recently started runs' ids, newest first."""
    return [r[0] for r in con.execute("SELECT run_id FROM runs ORDER BY started_at DESC LIMIT ?", [limit]).fetchall()]


def metrics(con, run_id: str) -> dict[str, float]:
    """The run's stored figures by name."""
    return dict(con.execute("SELECT name, value FROM metrics WHERE run_id = ?", [run_id]).fetchall())


def models(con, run_id: str) -> list[dict]:
    """The run's models, one row each by column, in role order."""
    cur = con.execute(f"SELECT * FROM models WHERE run_id = ? ORDER BY {ROLE_ORDER_SQL}", [run_id])
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, r)) for r in cur.fetchall()]


def repeat_counts(con, run_id: str) -> list[tuple]:
    """(repeats, role, members, memorized) for the members at each repetition count in training."""
    return con.execute("SELECT repeats, role, count(*), count(*) FILTER (memorized) FROM samples "
                       "WHERE run_id = ? AND split = 'member' GROUP BY ALL ORDER BY ALL", [run_id]).fetchall()


def source_run(con, run_id: str) -> str | None:
    """The run a filtered run's predictor came from (its filter's source_run), if any."""
    row = con.execute("SELECT json_extract_string(filter, '$.source_run') FROM runs WHERE run_id = ?",
                      [run_id]).fetchone()
    return row[0] if row else None


def member_overlap(con, run_id: str) -> tuple[int, int, int, int, int]:
    """Over the run's members: (members, memorized by all three roles, by teacher and baseline, by the
    teacher and not the baseline, by the student and teacher and not the baseline)."""
    return con.execute(
        "WITH m AS (SELECT sample_id, bool_or(memorized) FILTER (role = 'teacher') AS t, "
        "bool_or(memorized) FILTER (role = 'baseline') AS b, bool_or(memorized) FILTER (role = 'student') AS s "
        "FROM samples WHERE run_id = ? AND split = 'member' GROUP BY sample_id) "
        "SELECT count(*), count(*) FILTER (t AND b AND s), count(*) FILTER (t AND b), "
        "count(*) FILTER (t AND NOT b), count(*) FILTER (s AND t AND NOT b) FROM m", [run_id]).fetchone()


def member_verdicts(con, run_ids: Sequence[str]) -> list[tuple[str, str, str, bool]]:
    """(run_id, sample_id, role, memorized) of every member the runs tested: the clusters of a pooled share."""
    return con.execute("SELECT run_id, sample_id, role, memorized FROM samples WHERE list_contains(?, run_id) "
                       "AND split = 'member' ORDER BY run_id, sample_id, role", [list(run_ids)]).fetchall()


def example_values(con, students: Sequence[str], baselines: Sequence[str]) -> pd.DataFrame:
    """Per run, role and example (members and non-members): what a board's paired comparison rests on,
    the verdict, the suffix loss and the suffix's log-probability under top-k sampling; the students of
    the runs `students`, the baselines of the runs `baselines` (one run per seed holds a seed's baseline)."""
    return frame(con, "SELECT run_id, role, sample_id, split, repeats, memorized::DOUBLE AS memorized, suffix_loss, "
                      "sample_logprob FROM samples WHERE (role = 'student' AND list_contains(?, run_id)) "
                      "OR (role = 'baseline' AND list_contains(?, run_id)) ORDER BY run_id, role, sample_id",
                 [list(students), list(baselines)])


def shared_models(con, run_ids: Sequence[str]) -> list[tuple[str, int, str, str, str | None]]:
    """(run_id, seed, method_label, role, weights_sha256) of the runs' teachers and baselines: what the rows
    of a board at one seed must share."""
    return con.execute("SELECT r.run_id, r.seed, r.method_label, m.role, m.weights_sha256 FROM runs r JOIN models m "
                       "USING (run_id) WHERE list_contains(?, r.run_id) AND m.role IN ('teacher', 'baseline') "
                       "ORDER BY r.seed, m.role, r.method_label", [list(run_ids)]).fetchall()


def repeats_and_verdicts(con, run_id: str) -> list[tuple[int, bool]]:
    """(repeats, memorized by the student) for each member the run's predictor saw (its features)."""
    return con.execute("SELECT s.repeats, f.memorized_student FROM features f JOIN samples s ON "
                       "s.run_id = f.run_id AND s.sample_id = f.sample_id AND s.role = 'student' "
                       "WHERE f.run_id = ?", [run_id]).fetchall()


def predictor_rows(con, run_id: str) -> list[tuple[str, float, int, bool]]:
    """(sample_id, out-of-fold risk, repeats, memorized by the student) of each member the run's predictor
    scored (`harness predict`), in sample-id order."""
    return con.execute("SELECT f.sample_id, f.risk, s.repeats, f.memorized_student FROM features f JOIN samples s "
                       "ON s.run_id = f.run_id AND s.sample_id = f.sample_id AND s.role = 'student' "
                       "WHERE f.run_id = ? AND f.risk IS NOT NULL ORDER BY f.sample_id", [run_id]).fetchall()


def high_entropy_loss_gap(con, run_id: str) -> float | None:
    """Among members in the top quartile of zlib entropy, the student's mean loss minus the baseline's."""
    row = con.execute(
        "WITH q AS (SELECT quantile_cont(zlib_entropy, 0.75) AS cut FROM features WHERE run_id = ?) "
        "SELECT avg(s.loss) FILTER (s.role = 'student') - avg(s.loss) FILTER (s.role = 'baseline') "
        "FROM features f JOIN samples s ON s.run_id = f.run_id AND s.sample_id = f.sample_id CROSS JOIN q "
        "WHERE f.run_id = ? AND f.zlib_entropy >= q.cut", [run_id, run_id]).fetchone()
    return row[0] if row else None


def peers_at_seed(con, run_id: str) -> list[tuple]:
    """(method label, student memorization rate, the student's strongest attack AUC, student and baseline
    validation perplexity, trained with DP-SGD, its own recipe) of each unfiltered run that counts
    (COUNTED_RUNS) on this run's board at its seed."""
    keys = " AND ".join(f"c.{k} IS NOT DISTINCT FROM me.{k}" for k in BOARD_KEYS)
    return con.execute(
        f"WITH me AS (SELECT * REPLACE ({FAMILY_ARGS_SQL} AS family_args) FROM runs r WHERE r.run_id = ?), "
        f"c AS ({COUNTED_RUNS}) "
        "SELECT c.method_label, max(m.value) FILTER (m.name = 'mem_rate_student'), "
        "max(m.value) FILTER (m.name LIKE 'auc\\_%\\_student' ESCAPE '\\'), "
        "max(m.value) FILTER (m.name = 'val_ppl_student'), max(m.value) FILTER (m.name = 'val_ppl_baseline'), "
        "count(m.value) FILTER (m.name = 'dp_noise_multiplier') > 0, any_value(c.own_recipe) "
        f"FROM c JOIN me ON {keys} AND c.seed = me.seed JOIN metrics m ON m.run_id = c.run_id "
        "WHERE c.filter IS NULL GROUP BY c.method_label ORDER BY c.method_label",
        [run_id, *NO_FILTERS.params()]).fetchall()


def memorized_at_every(con, run_ids: Sequence[str], role: str) -> list[str]:
    """The members `role` memorized in every one of `run_ids` (a seed group's always-memorized set)."""
    return [r[0] for r in con.execute(
        "SELECT sample_id FROM samples WHERE list_contains(?, run_id) AND role = ? AND split = 'member' "
        "GROUP BY sample_id HAVING bool_and(memorized) AND count(*) = ? ORDER BY sample_id",
        [list(run_ids), role, len(run_ids)]).fetchall()]


def latest_filtered(con, by: str, source: str) -> str | None:
    """The latest finished run filtered by `by` whose predictor came from run `source`."""
    row = con.execute("SELECT run_id FROM runs WHERE status = 'finished' AND json_extract_string(filter, '$.by') = ? "
                      "AND json_extract_string(filter, '$.source_run') = ? ORDER BY finished_at DESC LIMIT 1",
                      [by, source]).fetchone()
    return row[0] if row else None


def example(con, run: dict, sample_id: str) -> tuple[list[int] | None, str | None]:
    """An example's token ids and text as the run tokenized it; None where withheld or absent."""
    row = con.execute("SELECT token_ids, text FROM examples WHERE dataset_hash = ? AND tokenizer_key = ? "
                      "AND sample_id = ?", [run["dataset_hash"], run["tokenizer_key"], sample_id]).fetchone()
    return row if row else (None, None)


def verdicts(con, run_id: str, sample_id: str) -> pd.DataFrame:
    """One example's row of `samples` per role, in role order."""
    return frame(con, "SELECT * EXCLUDE (run_id, sample_id) FROM samples WHERE run_id = ? AND sample_id = ? "
                      f"ORDER BY {ROLE_ORDER_SQL}", [run_id, sample_id])


def continuations(con, run_id: str, sample_id: str) -> dict[str, list[int]]:
    """Each role's stored greedy continuation of the example: the run's own, else that of a run sharing
    the role's checkpoint (a teacher or baseline is stored once)."""
    if "continuations" not in tables(con):
        return {}
    out = {role: list(ids) for role, ids in con.execute(
        "SELECT role, token_ids FROM continuations WHERE run_id = ? AND sample_id = ?", [run_id, sample_id]).fetchall()}
    for role in sorted(set(ROLES) - set(out)):
        row = con.execute("SELECT c.token_ids FROM continuations c JOIN models m USING (run_id, role) "
                          "WHERE c.role = ? AND c.sample_id = ? AND m.artifact_key = (SELECT artifact_key "
                          "FROM models WHERE run_id = ? AND role = ?) LIMIT 1",
                          [role, sample_id, run_id, role]).fetchone()
        if row is not None:
            out[role] = list(row[0])
    return out


def attack_scores(con, run_id: str, sample_id: str) -> pd.DataFrame:
    """Each attack's score of one example, a row per role and a column per attack (empty if none stored)."""
    import pandas as pd

    if "scores" not in tables(con):
        return pd.DataFrame()
    df = frame(con, "SELECT role, attack, score FROM scores WHERE run_id = ? AND sample_id = ?", [run_id, sample_id])
    if df.empty:
        return df
    return df.pivot_table(index="role", columns="attack", values="score", aggfunc="first").reset_index()


def snapshot_note(con, kind: str, subject: str) -> str | None:
    """A published snapshot's notes (why a dataset's text was withheld, when it was published)."""
    if "snapshot_notes" not in tables(con):
        return None
    row = con.execute("SELECT note FROM snapshot_notes WHERE kind = ? AND subject = ?", [kind, subject]).fetchone()
    return row[0] if row else None


def vocab(con, tokenizer_key: str) -> list[str] | None:
    """A snapshot's tokenizer as text pieces, indexed by token id; None where it carries none."""
    if "vocab" not in tables(con):
        return None
    rows = con.execute("SELECT token_id, piece FROM vocab WHERE tokenizer_key = ? ORDER BY token_id",
                       [tokenizer_key]).fetchall()
    if not rows:
        return None
    out = [""] * (rows[-1][0] + 1)
    for i, p in rows:
        out[i] = p
    return out


def artifact_paths(con, run_id: str) -> list[str]:
    """Where the run's checkpoints were saved, where it recorded them."""
    return [r[0] for r in con.execute("SELECT artifact_path FROM models WHERE run_id = ? AND artifact_path IS NOT NULL",
                                      [run_id]).fetchall()]


def reproduction(con) -> tuple[dict, pd.DataFrame] | None:
    """The latest `harness reproduce` stored in this database: where it ran, and a row per finding.

    A file that lacks the verdict columns (schema version 5's, read as it is) reads them as NULL."""
    found = tables(con).get("reproductions")
    if found is None:
        return None
    latest = con.execute("SELECT reproduction_id, family, dataset, preset, created_at FROM reproductions "
                         "ORDER BY created_at DESC, reproduction_id DESC LIMIT 1").fetchone()
    if latest is None:
        return None
    meta = dict(zip(("reproduction_id", "family", "dataset", "preset", "created_at"), latest))
    columns = ["finding", "claim", "published", "source", "unit", "n", "mean", "lo", "hi", "holds",
               "verdict", "requested", "figure", "magnitude", "caveat"]
    select = ", ".join(c if c in found else f"NULL AS {c}" for c in columns)
    rows = con.execute(f"SELECT {select} FROM reproductions WHERE reproduction_id = ? ORDER BY rowid",
                       [meta["reproduction_id"]]).df()
    return meta, rows
