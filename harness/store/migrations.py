"""The results store's schema, and the named steps that bring an older file up to it.

As simonw/llm's `migrations.py`: each step is a function named after the version it makes,
registered in order; `Store` runs those a file lacks, each in its own transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import duckdb

from harness.errors import UsageError
from harness.store import transaction

SCHEMA_VERSION = 6
# The oldest version a reader (the app, a board) shows as it is: versions 5 and 6 only added a table of
# their own and its columns.
READABLE_SINCE = 4

# Tables that schema version 4 added (membership attacks, curves, approximate memorization,
# the memorization predictor, seed groups); what each holds is in docs/results.md.
NEW_IN_4 = """
CREATE TABLE IF NOT EXISTS scores (
    run_id VARCHAR, role VARCHAR, sample_id VARCHAR, attack VARCHAR, score DOUBLE,
    PRIMARY KEY (run_id, role, sample_id, attack)
);
CREATE TABLE IF NOT EXISTS curves (
    run_id VARCHAR, role VARCHAR, curve VARCHAR, i INTEGER, x DOUBLE, y DOUBLE,
    PRIMARY KEY (run_id, role, curve, i)
);
CREATE TABLE IF NOT EXISTS continuations (
    run_id VARCHAR, role VARCHAR, sample_id VARCHAR, token_ids INTEGER[], text VARCHAR,
    PRIMARY KEY (run_id, role, sample_id)
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
"""

# The steps that bring an older file up to SCHEMA_VERSION: MIGRATIONS[v - 1] turns version v into
# v + 1, and is named after the version it makes. They run in order, each in its own transaction,
# when an older file is opened for writing. A schema change bumps SCHEMA_VERSION, edits SCHEMA
# (what a new file gets) and adds the step that brings an old file to the same place.
Migration = Callable[[duckdb.DuckDBPyConnection], None]
MIGRATIONS: list[Migration] = []


def migration(step: Migration) -> Migration:
    MIGRATIONS.append(step)
    return step


@migration
def m002_trust_remote_code(con) -> None:
    """Provenance records whether the run let checkpoints run code from the hub."""
    con.execute("ALTER TABLE runs ADD COLUMN trust_remote_code BOOLEAN DEFAULT false")


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
    con.execute(NEW_IN_4)  # continuations exists by now: its CREATE ... IF NOT EXISTS does nothing


# `harness reproduce`: the studies' findings measured here (docs/results.md).
NEW_IN_5 = """
CREATE TABLE IF NOT EXISTS reproductions (
    reproduction_id VARCHAR, created_at TIMESTAMP, family VARCHAR, dataset VARCHAR, preset VARCHAR,
    finding VARCHAR, claim VARCHAR, published VARCHAR, source VARCHAR, unit VARCHAR,
    n INTEGER, mean DOUBLE, lo DOUBLE, hi DOUBLE, holds BOOLEAN, per_seed JSON, runs JSON,
    PRIMARY KEY (reproduction_id, finding)
);
"""


@migration
def m005_reproductions(con) -> None:
    """`harness reproduce` stores its findings beside the runs they come from."""
    con.execute(NEW_IN_5)


# Each reproduction row's verdict, the seeds asked for, the published figure and the magnitude beside it.
NEW_IN_6 = """
ALTER TABLE reproductions ADD COLUMN IF NOT EXISTS verdict VARCHAR;
ALTER TABLE reproductions ADD COLUMN IF NOT EXISTS requested INTEGER;
ALTER TABLE reproductions ADD COLUMN IF NOT EXISTS figure DOUBLE;
ALTER TABLE reproductions ADD COLUMN IF NOT EXISTS magnitude VARCHAR;
ALTER TABLE reproductions ADD COLUMN IF NOT EXISTS caveat VARCHAR;
"""


@migration
def m006_reproduction_verdicts(con) -> None:
    """A reproduction row says its verdict, how many seeds counted, and how its magnitude compares."""
    con.execute(NEW_IN_6)


SCHEMA = """
CREATE TABLE IF NOT EXISTS schema_info (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    run_id VARCHAR PRIMARY KEY,
    family VARCHAR, dataset VARCHAR, method VARCHAR, method_label VARCHAR, method_args JSON, dataset_args JSON,
    teacher_access VARCHAR, preset VARCHAR, preset_values JSON, seed INTEGER, example_limit INTEGER,
    prefix_len INTEGER, suffix_len INTEGER, n_members INTEGER, n_nonmembers INTEGER,
    config_hash VARCHAR, dataset_hash VARCHAR, tokenizer_key VARCHAR,
    harness_version VARCHAR, git_commit VARCHAR, torch_version VARCHAR, transformers_version VARCHAR,
    python_version VARCHAR, device VARCHAR, hostname VARCHAR, pid INTEGER, command VARCHAR,
    trust_remote_code BOOLEAN DEFAULT false,
    status VARCHAR, error VARCHAR, started_at TIMESTAMP, finished_at TIMESTAMP, stage_seconds JSON,
    family_args JSON, filter JSON, reference VARCHAR
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
    approx_match DOUBLE, edit_distance DOUBLE,
    PRIMARY KEY (run_id, role, sample_id)
);
CREATE TABLE IF NOT EXISTS metrics (
    run_id VARCHAR, name VARCHAR, value DOUBLE,
    PRIMARY KEY (run_id, name)
);
""" + NEW_IN_4 + NEW_IN_5 + NEW_IN_6


def upgrade(con, version: int, path: Path) -> None:
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
                MIGRATIONS[step - 1](con)
                con.execute("UPDATE schema_info SET version = ?", [step + 1])
        except duckdb.Error as err:
            lines = str(err).strip().splitlines()
            raise UsageError(f"cannot migrate results database {path} from schema version {step} "
                             f"to {step + 1}: {lines[0] if lines else type(err).__name__}") from None
