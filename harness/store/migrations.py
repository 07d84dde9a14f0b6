"""The results store's schema, as the named steps that build it.

As simonw/llm's `migrations.py`: the steps are the one source of truth. A new file runs every step
from m001 (the tables of schema version 1); an older file runs those it lacks, each in its own
transaction. A step's version is in its name (m004_... makes version 4), never its place in a list,
and the names must count 1, 2, 3... with no gap. A schema change is a new step and nothing else:
SCHEMA, the DDL that snapshots and bundles are built from, is rendered from a file that ran them all.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import duckdb

from harness.errors import UsageError
from harness.store import transaction

Migration = Callable[[duckdb.DuckDBPyConnection], None]
MIGRATIONS: list[Migration] = []


def migration(step: Migration) -> Migration:
    MIGRATIONS.append(step)
    return step


@migration
def m001_base_tables(con) -> None:
    """The tables of schema version 1: runs, their models, the examples, per-example verdicts, figures."""
    con.execute("""
CREATE TABLE IF NOT EXISTS schema_info (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    run_id VARCHAR PRIMARY KEY,
    family VARCHAR, dataset VARCHAR, method VARCHAR, method_label VARCHAR, method_args JSON, dataset_args JSON,
    teacher_access VARCHAR, preset VARCHAR, preset_values JSON, seed INTEGER, example_limit INTEGER,
    prefix_len INTEGER, suffix_len INTEGER, n_members INTEGER, n_nonmembers INTEGER,
    config_hash VARCHAR, dataset_hash VARCHAR, tokenizer_key VARCHAR,
    harness_version VARCHAR, git_commit VARCHAR, torch_version VARCHAR, transformers_version VARCHAR,
    python_version VARCHAR, device VARCHAR, hostname VARCHAR, pid INTEGER, command VARCHAR,
    status VARCHAR, error VARCHAR, started_at TIMESTAMP, finished_at TIMESTAMP, stage_seconds JSON
);
CREATE TABLE IF NOT EXISTS models (
    run_id VARCHAR, role VARCHAR, model_name VARCHAR, size VARCHAR, n_params BIGINT,
    artifact_key VARCHAR, artifact_path VARCHAR, cached BOOLEAN, train_seconds DOUBLE,
    val_loss DOUBLE, val_ppl DOUBLE,
    PRIMARY KEY (run_id, role)
);
CREATE TABLE IF NOT EXISTS examples (
    dataset_hash VARCHAR, tokenizer_key VARCHAR, sample_id VARCHAR, split VARCHAR,
    repeats INTEGER, kind VARCHAR, token_ids INTEGER[], text VARCHAR,
    PRIMARY KEY (dataset_hash, tokenizer_key, sample_id)
);
CREATE TABLE IF NOT EXISTS samples (
    run_id VARCHAR, role VARCHAR, sample_id VARCHAR, split VARCHAR, repeats INTEGER,
    memorized BOOLEAN, match_len INTEGER, loss DOUBLE, suffix_loss DOUBLE, tie BOOLEAN,
    PRIMARY KEY (run_id, role, sample_id)
);
CREATE TABLE IF NOT EXISTS metrics (
    run_id VARCHAR, name VARCHAR, value DOUBLE,
    PRIMARY KEY (run_id, name)
);
""")


@migration
def m002_trust_remote_code(con) -> None:
    """Provenance records whether the run let checkpoints run code from the hub."""
    con.execute("ALTER TABLE runs ADD COLUMN IF NOT EXISTS trust_remote_code BOOLEAN DEFAULT false")


@migration
def m003_family_args(con) -> None:
    """A family's own arguments (pretrained or from-scratch weights) keep such runs apart."""
    con.execute("ALTER TABLE runs ADD COLUMN IF NOT EXISTS family_args JSON")


@migration
def m004_privacy_beyond_exact_match(con) -> None:
    """Membership attacks, curves, approximate memorization, the predictor and seed groups."""
    con.execute("ALTER TABLE runs ADD COLUMN IF NOT EXISTS filter JSON")
    con.execute("ALTER TABLE runs ADD COLUMN IF NOT EXISTS reference VARCHAR")
    con.execute("ALTER TABLE samples ADD COLUMN IF NOT EXISTS approx_match DOUBLE")
    con.execute("ALTER TABLE samples ADD COLUMN IF NOT EXISTS edit_distance DOUBLE")
    # Published snapshots of version 3 carry a continuations table without the text.
    con.execute("CREATE TABLE IF NOT EXISTS continuations (run_id VARCHAR, role VARCHAR, sample_id VARCHAR, "
                "token_ids INTEGER[], PRIMARY KEY (run_id, role, sample_id))")
    con.execute("ALTER TABLE continuations ADD COLUMN IF NOT EXISTS text VARCHAR")
    con.execute("""
CREATE TABLE IF NOT EXISTS scores (
    run_id VARCHAR, role VARCHAR, sample_id VARCHAR, attack VARCHAR, score DOUBLE,
    PRIMARY KEY (run_id, role, sample_id, attack)
);
CREATE TABLE IF NOT EXISTS curves (
    run_id VARCHAR, role VARCHAR, curve VARCHAR, i INTEGER, x DOUBLE, y DOUBLE,
    PRIMARY KEY (run_id, role, curve, i)
);
CREATE TABLE IF NOT EXISTS features (
    run_id VARCHAR, sample_id VARCHAR, teacher_ppl DOUBLE, baseline_ppl DOUBLE, kl_teacher_baseline DOUBLE,
    zlib_entropy DOUBLE, memorized_student BOOLEAN, risk DOUBLE,
    PRIMARY KEY (run_id, sample_id)
);
CREATE TABLE IF NOT EXISTS seed_groups (
    group_id VARCHAR, run_id VARCHAR, seed INTEGER,
    PRIMARY KEY (group_id, run_id)
);
CREATE TABLE IF NOT EXISTS group_metrics (
    group_id VARCHAR, name VARCHAR, n INTEGER, mean DOUBLE, lo DOUBLE, hi DOUBLE,
    PRIMARY KEY (group_id, name)
);
CREATE TABLE IF NOT EXISTS group_sets (
    group_id VARCHAR, role VARCHAR, sample_id VARCHAR,
    PRIMARY KEY (group_id, role, sample_id)
);
""")


@migration
def m005_reproductions(con) -> None:
    """`harness reproduce` stores its findings beside the runs they come from."""
    con.execute("""
CREATE TABLE IF NOT EXISTS reproductions (
    reproduction_id VARCHAR, created_at TIMESTAMP, family VARCHAR, dataset VARCHAR, preset VARCHAR,
    finding VARCHAR, claim VARCHAR, published VARCHAR, source VARCHAR, unit VARCHAR,
    n INTEGER, mean DOUBLE, lo DOUBLE, hi DOUBLE, holds BOOLEAN, per_seed JSON, runs JSON,
    PRIMARY KEY (reproduction_id, finding)
);
""")


@migration
def m006_reproduction_verdicts(con) -> None:
    """A reproduction row says its verdict, how many seeds counted, and how its magnitude compares."""
    for column in ("verdict VARCHAR", "requested INTEGER", "figure DOUBLE", "magnitude VARCHAR", "caveat VARCHAR"):
        con.execute(f"ALTER TABLE reproductions ADD COLUMN IF NOT EXISTS {column}")


@migration
def m007_resolving_measures(con) -> None:
    """What lets a board tell methods apart: each example's probability of extraction by sampling
    (Hayes et al., 2024), the recipe each model actually trained with, and why a row's student did
    not train on the recipe and data exposure the rest share."""
    con.execute("ALTER TABLE samples ADD COLUMN IF NOT EXISTS sample_logprob DOUBLE")
    con.execute("ALTER TABLE models ADD COLUMN IF NOT EXISTS training JSON")
    con.execute("ALTER TABLE runs ADD COLUMN IF NOT EXISTS own_recipe VARCHAR")


@migration
def m008_weights_hash(con) -> None:
    """Each model's weights by content: the rows of a board at one seed must share the teacher and the
    baseline, and a cache key alone does not say so (the same key trained elsewhere gives other weights)."""
    con.execute("ALTER TABLE models ADD COLUMN IF NOT EXISTS weights_sha256 VARCHAR")


# ------------------------------------------------------------ running them


def version_of(step: Migration) -> int:
    """The version a step makes, from its name: m004_... makes 4."""
    found = re.fullmatch(r"m(\d{3})_\w+", step.__name__)
    if not found:
        raise ValueError(f"migration {step.__name__} is not named m<NNN>_<what it does>")
    return int(found.group(1))


def steps() -> dict[int, Migration]:
    """The steps by the version each makes, refused unless they count 1, 2, 3... without a gap or a repeat."""
    by_version: dict[int, Migration] = {}
    for step in MIGRATIONS:
        version = version_of(step)
        if version in by_version:
            raise ValueError(f"migrations {by_version[version].__name__} and {step.__name__} both make version {version}")
        by_version[version] = step
    if sorted(by_version) != list(range(1, len(by_version) + 1)):
        raise ValueError(f"migrations make versions {sorted(by_version)}: they must count from 1 without a gap")
    return dict(sorted(by_version.items()))


SCHEMA_VERSION = max(steps())


def upgrade(con, version: int, path: Path) -> None:
    """Bring a file of schema `version` (0: new, empty) up to SCHEMA_VERSION, one transaction per step."""
    for target, step in steps().items():
        if target <= version:
            continue
        try:
            with transaction(con):
                step(con)
                con.execute("DELETE FROM schema_info")
                con.execute("INSERT INTO schema_info VALUES (?)", [target])
        except duckdb.Error as err:
            lines = str(err).strip().splitlines()
            raise UsageError(f"cannot migrate results database {path} from schema version {target - 1} "
                             f"to {target}: {lines[0] if lines else type(err).__name__}") from None


# ------------------------------------------------------------ the schema a new file has


def ddl(con) -> str:
    """The connection's tables as CREATE TABLE IF NOT EXISTS statements, columns in their order."""
    statements = []
    for (table,) in con.execute("SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() "
                                "AND schema_name = 'main' ORDER BY table_oid").fetchall():
        keys = [c for (cols,) in con.execute("SELECT constraint_column_names FROM duckdb_constraints() WHERE "
                                             "database_name = current_database() AND table_name = ? AND "
                                             "constraint_type = 'PRIMARY KEY'", [table]).fetchall() for c in cols]
        parts = [f"{name} {dtype}" + ("" if default is None else f" DEFAULT {default}")
                 + ("" if nullable or name in keys else " NOT NULL")  # a key's NOT NULL comes with its key
                 for name, dtype, default, nullable in con.execute(
                     "SELECT column_name, data_type, column_default, is_nullable FROM duckdb_columns() WHERE "
                     "database_name = current_database() AND table_name = ? ORDER BY column_index", [table]).fetchall()]
        if keys:
            parts.append(f"PRIMARY KEY ({', '.join(keys)})")
        statements.append(f"CREATE TABLE IF NOT EXISTS {table} (\n    " + ",\n    ".join(parts) + "\n);")
    return "\n".join(statements) + "\n"


def _new_file_schema() -> tuple[str, frozenset[str], dict[str, dict[str, str]]]:
    con = duckdb.connect()
    try:
        upgrade(con, 0, Path(":memory:"))
        tables = frozenset(r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall())
        types: dict[str, dict[str, str]] = {}
        for table, column, dtype in con.execute("SELECT table_name, column_name, data_type FROM duckdb_columns() "
                                                "WHERE list_contains(?, table_name)", [sorted(tables)]).fetchall():
            types.setdefault(table, {})[column] = dtype
        return ddl(con), tables, types
    finally:
        con.close()


# What a new file holds after every step: its DDL, its tables' names, and each table's column types (a file
# read is checked against them: `connection.check_values`).
SCHEMA, TABLES, COLUMN_TYPES = _new_file_schema()
