"""Submission bundles as files: `harness export` writes one; reading one is reading data, by value.

A bundle is opened with nothing but its own tables in reach, its size, shape (exactly the tables
and columns `export` writes) and field lengths bounded before any row is read into a board.
"""

from __future__ import annotations

import functools
from pathlib import Path

import duckdb

from harness.errors import UsageError
from harness.leaderboard.snapshot import NOTES, SNAPSHOT_SCHEMA, VOCAB, now, write_subset
from harness.store import read
from harness.store.connection import catalog
from harness.store.database import Store
from harness.store.migrations import SCHEMA

# ------------------------------------------------------------ export


def export(store: Store, run_ids: list[str], dest: Path, registry: Path | None = None) -> Path:
    """One bundle file with the runs' rows, verdicts and provenance; no checkpoints."""
    from harness.config import plugins, registry as registry_mod
    from harness.leaderboard.run_lookup import resolve_run_id

    ids = [resolve_run_id(store, r) for r in run_ids]
    with store.reading() as con:
        stored = read.statuses(con, ids)
    unfinished = [r for r, status in stored.items() if status != "finished"]
    if unfinished:
        raise UsageError(f"run {unfinished[0]} did not finish: only finished runs can be exported")
    found = plugins.load(registry_mod.load(registry))
    public = {name for name, d in found.datasets.items() if d.public}
    if dest.exists():
        raise UsageError(f"{dest} already exists: choose another --output or remove it")
    dest.parent.mkdir(parents=True, exist_ok=True)
    write_subset(store.path, dest, ids, public, [("exported", r, now()) for r in ids])
    return dest


# ------------------------------------------------------------ import: a bundle is data, read by value

MAX_BUNDLE_BYTES = 64 << 20
# A bundle is opened with nothing but its own tables in reach: no files, no network, no extension
# installed or loaded on demand, and settings its contents cannot change.
LOCKED = {"enable_external_access": False, "autoinstall_known_extensions": False,
          "autoload_known_extensions": False, "lock_configuration": True}
MAX_TEXT = 1000  # characters in one text field, unless TEXT_LIMITS says otherwise
TEXT_LIMITS = {("examples", "text"): 100_000, ("continuations", "text"): 100_000, ("snapshot_notes", "note"): 2000,
               **{("runs", c): 10_000 for c in ("method_args", "dataset_args", "family_args", "preset_values",
                                                "stage_seconds", "filter", "error")}}
MAX_LIST = 65536  # token ids in one list


def _bundle_schema(con) -> None:
    for statement in (SNAPSHOT_SCHEMA, NOTES, VOCAB):
        con.execute(statement)


@functools.lru_cache(maxsize=1)
def _expected_shape() -> tuple[dict[str, list[tuple]], list[tuple]]:
    """The columns (name, type, default, nullable) of each table `harness export` writes, and its constraints."""
    con = duckdb.connect()
    try:
        _bundle_schema(con)
        return _shape(con)
    finally:
        con.close()


def _shape(con) -> tuple[dict[str, list[tuple]], list[tuple]]:
    """Columns by name, not position: every import copies by name, and a migration that adds a column
    puts it last, so a bundle exported before a schema change can hold the same columns in another order."""
    columns: dict[str, list[tuple]] = {}
    for table, *column in con.execute(
            "SELECT table_name, column_name, data_type, column_default, is_nullable FROM duckdb_columns() "
            "WHERE database_name = current_database() AND schema_name = 'main' ORDER BY table_name, column_name"
    ).fetchall():
        columns.setdefault(table, []).append(tuple(column))
    constraints = sorted((t, c, str(cols)) for t, c, cols in con.execute(
        "SELECT table_name, constraint_type, constraint_column_names FROM duckdb_constraints() "
        "WHERE database_name = current_database()").fetchall())
    return columns, constraints


def open_bundle(bundle: Path):
    """A read-only, locked connection to the bundle, after the checks that need no DuckDB."""
    if not bundle.is_file():
        raise UsageError(f"no bundle at {bundle}")
    size = bundle.stat().st_size
    if size > MAX_BUNDLE_BYTES:
        raise UsageError(f"bundle {bundle} is {size / 1e6:.0f} MB, over the {MAX_BUNDLE_BYTES / 1e6:.0f} MB a bundle "
                         "may be")
    with open(bundle, "rb") as f:
        head = f.read(16)
    if head[8:12] != b"DUCK":
        raise UsageError(f"{bundle} is not a DuckDB bundle (made by `harness export`)")
    try:
        return duckdb.connect(str(bundle), read_only=True, config=LOCKED)
    except duckdb.Error as err:
        raise UsageError(f"cannot open bundle {bundle}: {first_line(err)}") from None


def check_shape(con, bundle: Path) -> None:
    """Exactly the tables `harness export` writes, each with exactly its columns and types, and nothing else."""
    found = catalog(con)
    others = [f"{kind} {name}" for kind, names in found.items() if kind != "table" for name in names]
    if others:
        raise UsageError(f"bundle {bundle} holds {others[0]}: a bundle may hold only the tables `harness export` "
                         "writes")
    columns, constraints = _expected_shape()
    tables = set(found["table"])
    want = {f"main.{t}" for t in columns}
    if tables != want:
        diff = sorted(tables ^ want)
        what = "an extra table" if diff[0] in tables else "no table"
        raise UsageError(f"bundle {bundle} has {what} {diff[0]}: it must hold exactly the tables `harness export` "
                         "writes")
    have_columns, have_constraints = _shape(con)
    for table, cols in columns.items():
        if have_columns.get(table) != cols:
            raise UsageError(f"bundle {bundle}: table {table} does not match the schema "
                             f"({_column_diff(have_columns.get(table, []), cols)})")
    if have_constraints != constraints:
        extra = sorted(set(have_constraints) ^ set(constraints))[0]
        raise UsageError(f"bundle {bundle}: table {extra[0]} has a {extra[1]} constraint the schema does not")


def _column_diff(have: list[tuple], want: list[tuple]) -> str:
    got = {c[0]: c for c in have}
    for col in want:
        if col[0] not in got:
            return f"column {col[0]} is missing"
        if got[col[0]] != col:
            return f"column {col[0]} is {got[col[0]][1]}" + (" with a default" if got[col[0]][2] != col[2] else "") + \
                f", expected {col[1]}"
    names = {c[0] for c in want}
    extra = [c[0] for c in have if c[0] not in names]
    return f"column {extra[0]} is not in it"  # compared by name (see _shape): an extra column is all that is left


def check_bounds(con, bundle: Path) -> None:
    """Every text field and list bounded, every number finite: one label cannot take the app down."""
    columns, _ = _expected_shape()
    for table, cols in columns.items():
        for name, dtype, *_ in cols:
            if dtype in ("VARCHAR", "JSON"):
                limit = TEXT_LIMITS.get((table, name), MAX_TEXT)
                over = con.execute(f'SELECT max(length("{name}")) FROM main."{table}"').fetchall()[0][0]
                if over is not None and over > limit:
                    raise UsageError(f"bundle {bundle}: {table}.{name} holds {over} characters, over the "
                                     f"{limit} it may")
            elif dtype.endswith("[]"):
                over = con.execute(f'SELECT max(len("{name}")) FROM main."{table}"').fetchall()[0][0]
                if over is not None and over > MAX_LIST:
                    raise UsageError(f"bundle {bundle}: {table}.{name} holds a list of {over}, over {MAX_LIST}")
            elif dtype == "DOUBLE":
                bad = con.execute(f'SELECT count(*) FROM main."{table}" WHERE NOT isfinite("{name}")').fetchall()[0][0]
                if bad:
                    raise UsageError(f"bundle {bundle}: {table}.{name} holds {bad} NaN or infinite value(s)")


def stage(con, bundle: Path):
    """The bundle's rows, copied by value through fixed column lists into a fresh in-memory database
    with the results store's keys: a duplicate or a NULL key is refused here."""
    columns, _ = _expected_shape()
    staged = duckdb.connect()
    try:
        staged.execute(SCHEMA)
        staged.execute(NOTES)
        staged.execute("CREATE TABLE IF NOT EXISTS vocab (tokenizer_key VARCHAR, token_id INTEGER, piece VARCHAR, "
                       "PRIMARY KEY (tokenizer_key, token_id))")
        staged.execute("DELETE FROM schema_info")
        for table, cols in columns.items():
            names = ", ".join(f'"{c[0]}"' for c in cols)
            rows = con.sql(f'SELECT {names} FROM main."{table}"').to_arrow_table()
            staged.register("incoming", rows)
            try:
                staged.execute(f'INSERT INTO "{table}" ({names}) SELECT {names} FROM incoming')
            except duckdb.ConstraintException as err:
                raise UsageError(f"bundle {bundle}: table {table}: {first_line(err)}") from None
            finally:
                staged.unregister("incoming")
    except BaseException:
        staged.close()
        raise
    return staged


def first_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return lines[0] if lines else type(err).__name__
