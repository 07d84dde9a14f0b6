"""A subset of the results store as a small DuckDB file: a board's snapshot, or a submission bundle.

Both hold only the chosen runs. They leave out local paths and host names, and the text (and
token ids) of any dataset not marked public. For the app's drill-down, the greedy continuations
the protocol stored are kept beside them, each checkpoint's once (a shared teacher is one
checkpoint), and none that the verdict implies (a memorized member's is its true suffix).
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from pathlib import Path

import duckdb

from harness.leaderboard import standings
from harness.store.database import portable_args
from harness.store.migrations import SCHEMA, SCHEMA_VERSION

TABLES = ("runs", "models", "examples", "samples", "metrics")
NOTES = "CREATE TABLE IF NOT EXISTS snapshot_notes (kind VARCHAR, subject VARCHAR, note VARCHAR)"
BLOCK_SIZE = 16384
# Published files are read, never updated in place: without the primary-key indexes a snapshot is
# less than half the size. Runs added by import are checked for duplicates before they are inserted.
SNAPSHOT_SCHEMA = re.sub(r",\s*PRIMARY KEY \([^)]*\)", "", SCHEMA).replace(" PRIMARY KEY", "")
VOCAB = "CREATE TABLE IF NOT EXISTS vocab (tokenizer_key VARCHAR, token_id INTEGER, piece VARCHAR)"
# What a published file must not carry: where it was run, by whom, from which paths.
PRIVATE_RUN_COLUMNS = ("hostname", "pid", "command")

# ------------------------------------------------------------ writing a subset of the store


def now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def write_subset(source: Path, dest: Path, run_ids: list[str], public: set[str], notes: list[tuple[str, str, str]]) -> None:
    """Copy the given runs (and the examples they were tested on) from `source` into a new `dest`."""
    tmp = dest.with_name(dest.name + ".tmp")
    tmp.unlink(missing_ok=True)
    con = duckdb.connect()
    try:
        # Small blocks: a file of a few thousand rows in 16 KiB blocks is about a sixth of the default size.
        con.execute(f"ATTACH ? AS out (BLOCK_SIZE {BLOCK_SIZE})", [str(tmp)])
        con.execute("USE out")
        con.execute(SNAPSHOT_SCHEMA)
        con.execute(NOTES)
        con.execute("INSERT INTO schema_info VALUES (?)", [SCHEMA_VERSION])
        con.execute("ATTACH ? AS src (READ_ONLY)", [str(source)])
        ids = list(run_ids)
        con.execute("INSERT INTO runs BY NAME SELECT * FROM src.runs WHERE list_contains(?, run_id)", [ids])
        con.execute(f"UPDATE runs SET {', '.join(f'{c} = NULL' for c in PRIVATE_RUN_COLUMNS)}")
        _strip_paths(con)
        for table in ("models", "samples", "metrics", "curves"):
            con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM src.{table} WHERE list_contains(?, run_id)", [ids])
        _write_vocab(con, public)
        con.execute("UPDATE models SET artifact_path = NULL")
        con.execute("""INSERT INTO examples BY NAME SELECT DISTINCT e.* FROM src.examples e
                       JOIN (SELECT DISTINCT dataset_hash, tokenizer_key FROM runs) r USING (dataset_hash, tokenizer_key)""")
        con.execute("""UPDATE examples SET text = NULL, token_ids = NULL WHERE dataset_hash IN (
                       SELECT dataset_hash FROM runs WHERE NOT list_contains(?, dataset))""", [sorted(public)])
        _copy_continuations(con, ids)
        if con.execute("SELECT count(*) FROM information_schema.tables WHERE table_catalog = 'src' "
                       "AND table_name = 'vocab'").fetchone()[0]:
            con.execute("INSERT INTO vocab BY NAME SELECT * FROM src.vocab v WHERE list_contains(?, v.tokenizer_key) "
                        "AND v.tokenizer_key NOT IN (SELECT tokenizer_key FROM vocab)",
                        [[r[0] for r in con.execute("SELECT DISTINCT tokenizer_key FROM runs WHERE "
                                                    "list_contains(?, dataset)", [sorted(public)]).fetchall()]])
        # A continuation of a memorized example is the training text itself: private datasets keep none
        con.execute("DELETE FROM continuations WHERE run_id IN "
                    "(SELECT run_id FROM runs WHERE NOT list_contains(?, dataset))",
                    [sorted(public)])
        withheld = [r[0] for r in con.execute("SELECT DISTINCT dataset FROM runs WHERE NOT list_contains(?, dataset)",
                                              [sorted(public)]).fetchall()]
        for ds in withheld:
            notes = [*notes, ("withheld", ds, f"The text of dataset {ds} is withheld from published files: the "
                              "dataset is not marked public (specs.Dataset.public), so only verdicts and scores "
                              "are published.")]
        if notes:
            con.executemany("INSERT INTO snapshot_notes VALUES (?, ?, ?)", [list(n) for n in notes])
        con.execute("DETACH src")
        con.execute("CHECKPOINT out")
        con.execute("USE memory")
        con.execute("DETACH out")
    finally:
        con.close()
    tmp.replace(dest)


def _strip_paths(con) -> None:
    """A corpus's folder never leaves the machine: its `path` argument keeps only the file name."""
    for run_id, raw in con.execute("SELECT run_id, dataset_args FROM runs").fetchall():
        args = json.loads(raw or "{}")
        if portable_args(args) != args:
            con.execute("UPDATE runs SET dataset_args = ? WHERE run_id = ?", [json.dumps(portable_args(args)), run_id])


def _write_vocab(con, public: set[str]) -> None:
    """Each public dataset's tokenizer as (id, text piece), so a fresh clone can show tokens as text.

    A tokenizer trained on a private corpus is left out: its merges are fragments of that corpus.
    """
    con.execute(VOCAB)
    rows = con.execute("SELECT DISTINCT r.tokenizer_key, m.artifact_path FROM runs r JOIN models m USING (run_id) "
                       "WHERE list_contains(?, r.dataset) AND m.artifact_path IS NOT NULL", [sorted(public)]).fetchall()
    done = {r[0] for r in con.execute("SELECT DISTINCT tokenizer_key FROM vocab").fetchall()}
    for tok_key, path in rows:
        if tok_key in done or not Path(path).is_dir():
            continue
        pieces = standings.load_pieces(path)
        if pieces:
            con.executemany("INSERT INTO vocab VALUES (?, ?, ?)", [[tok_key, i, p] for i, p in enumerate(pieces)])
            done.add(tok_key)


def _copy_continuations(con, ids: list[str]) -> None:
    """The runs' stored continuations: one per checkpoint and member (the drill-down finds a shared
    checkpoint's through `models.artifact_key`), none of a member the role memorized."""
    has = con.execute("SELECT count(*) FROM information_schema.tables WHERE table_catalog = 'src' "
                      "AND table_name = 'continuations'").fetchone()[0]
    if has:
        con.execute("""INSERT INTO continuations BY NAME SELECT c.* FROM src.continuations c
                       JOIN src.models m USING (run_id, role)
                       LEFT JOIN src.samples s USING (run_id, role, sample_id)
                       WHERE list_contains(?, c.run_id) AND NOT coalesce(s.memorized, false)
                       QUALIFY row_number() OVER (PARTITION BY m.artifact_key, c.sample_id
                                                  ORDER BY list_position(?, c.run_id)) = 1""", [ids, ids])
