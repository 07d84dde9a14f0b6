"""What changes a published board: `publish` runs what the board is missing and writes its snapshot;
`import_bundle` adds a validated bundle's runs to it.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import duckdb

from harness.errors import UsageError
from harness.leaderboard.board_specs import BoardSpec, in_installed_package
from harness.leaderboard.snapshot import (
    NOTES,
    PRIVATE_RUN_COLUMNS,
    SNAPSHOT_SCHEMA,
    VOCAB,
    now,
    write_subset,
)
from harness.leaderboard.validate import board_for, read_bundle, validated
from harness.store import connection, copy_rows, read, transaction
from harness.store.database import Store
from harness.store.migrations import SCHEMA_VERSION

# ------------------------------------------------------------ publish


def publish(spec: BoardSpec, db: Path, cache_dir: Path, registry: Path | None = None, log=print) -> Path:
    """Run what the board is missing into `db`, then write its snapshot next to its definition."""
    from harness.protocol.request import EvalRequest

    writable(spec)
    from harness.protocol.evaluate import evaluate, stored
    from harness.protocol.request import Resolved

    run_ids = []
    public: set[str] = set()
    dataset_hash = None
    for entry in spec.methods:
        method, args = spec.method_args(entry)
        for seed in spec.seeds:
            req = EvalRequest(method=method, family=spec.family, dataset=spec.dataset, preset=spec.preset,
                              seed=seed, db=db, cache_dir=cache_dir, method_args=args,
                              dataset_args=dict(spec.dataset_args), registry=registry,
                              command=f"harness leaderboard publish {spec.name}")
            setup = Resolved(req)
            if dataset_hash is None:
                dataset_hash = _dataset_hash(setup)
            if setup.dataset.public:
                public.add(setup.dataset.name)
            done = stored(req)  # the run that counts for this identity, as the sweep and reproduce find it
            if done is not None:
                log(f"{entry}, seed {seed}: run {done.run_id} (already in {db})")
            else:
                log(f"{entry}, seed {seed}: running the protocol")
                done = evaluate(req, rerun=True)
            run_ids.append(done.run_id)
    with Store(db).reading() as con:
        refuse_unshared(spec.name, read.shared_models(con, run_ids))
    keep = _imported_runs(spec, dataset_hash)
    notes = [("published", spec.name, now())]
    snapshot = spec.snapshot
    if keep:  # runs added by `harness leaderboard import` stay on the board
        merged = snapshot.with_name(snapshot.name + ".merge")
        _merge_into(db, snapshot, keep, merged)
        source = merged
        notes += [("imported", r, "submitted as a bundle") for r in keep]
    else:
        source = db
    write_subset(source, snapshot, [*run_ids, *keep], public, notes)
    if source != db:
        source.unlink(missing_ok=True)
    return snapshot


def refuse_unshared(board: str, models) -> None:
    """The rows of a board at one seed are compared paired, so they must share the teacher and the baseline
    by content: refused, naming the rows, where one was trained against other weights (another machine's
    run under the same cache key) or does not record its weights (an older harness)."""
    groups: dict[tuple[int, str], dict[str | None, list[str]]] = {}
    for _, seed, label, role, digest in models:
        groups.setdefault((seed, role), {}).setdefault(digest, []).append(label)
    for (seed, role), by_hash in sorted(groups.items()):
        if None in by_hash:
            raise UsageError(f"board {board}: at seed {seed}, {', '.join(by_hash[None])}: no record of the "
                             f"{role}'s weights (a run from an older harness): rerun it before publishing")
        if len(by_hash) > 1:
            common = max(by_hash, key=lambda h: len(by_hash[h]))
            odd = sorted(label for h, labels in by_hash.items() if h != common for label in labels)
            raise UsageError(f"board {board}: at seed {seed}, {', '.join(odd)} trained against another {role} "
                             f"than the other {len(by_hash[common])} row(s) (weights differ under the same key); "
                             "rerun them with this cache before publishing")


def writable(spec: BoardSpec) -> None:
    """A board is changed in a checkout's leaderboards/, never in an installed package's copy."""
    if in_installed_package(spec.path.parent):
        raise UsageError(f"board {spec.name} is the installed package's copy ({spec.path.parent}): publish and "
                         "import write the snapshot beside its definition, in a checkout's leaderboards/; run from "
                         "the checkout, or pass --leaderboards DIR")


def _dataset_hash(setup) -> str:
    from harness.protocol.data import content_hash

    return content_hash(setup.dataset, setup.dataset.load(setup.dataset_args))


def _imported_runs(spec: BoardSpec, dataset_hash: str | None) -> list[str]:
    if not spec.snapshot.is_file():
        return []
    with connection.reading(spec.snapshot) as con:
        if "snapshot_notes" not in connection.tables(con):
            return []
        rows = con.execute("SELECT n.subject FROM snapshot_notes n JOIN runs r ON r.run_id = n.subject "
                           "WHERE n.kind = 'imported' AND r.dataset_hash = ?", [dataset_hash]).fetchall()
    return [r[0] for r in rows]


def _merge_into(db: Path, snapshot: Path, imported: list[str], dest: Path) -> None:
    """A scratch copy of `db` plus the imported runs from the old snapshot, as one source."""
    import shutil

    dest.unlink(missing_ok=True)
    shutil.copyfile(db, dest)
    con = duckdb.connect(str(dest))
    try:
        con.execute(VOCAB)
        con.execute("ATTACH ? AS snap (READ_ONLY)", [str(snapshot)])
        _append(con, "snap", imported)
        con.execute("INSERT OR REPLACE INTO continuations BY NAME SELECT * FROM snap.continuations "
                    "WHERE list_contains(?, run_id)", [imported])
        con.execute("INSERT INTO vocab BY NAME SELECT * FROM snap.vocab WHERE tokenizer_key NOT IN "
                    "(SELECT tokenizer_key FROM vocab)")
        con.execute("DETACH snap")
    finally:
        con.close()


def _append(con, alias: str, run_ids: list[str]) -> None:
    """Insert the runs' rows from an attached database, skipping runs and examples already present."""
    present = {r[0] for r in con.execute("SELECT run_id FROM runs WHERE list_contains(?, run_id)", [run_ids]).fetchall()}
    run_ids = [r for r in run_ids if r not in present]
    for table in ("runs", "models", "samples", "metrics"):
        con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM {alias}.{table} WHERE list_contains(?, run_id)", [run_ids])
    con.execute(f"""INSERT INTO examples BY NAME SELECT e.* FROM {alias}.examples e WHERE NOT EXISTS (
                    SELECT 1 FROM examples x WHERE x.dataset_hash = e.dataset_hash
                    AND x.tokenizer_key = e.tokenizer_key AND x.sample_id = e.sample_id)""")



def import_bundle(bundle: Path, spec: BoardSpec, registry: Path | None = None) -> list[str]:
    """Validate, then add the bundle's runs to the board's snapshot, or leave the snapshot byte for byte as it was.

    The snapshot is written as a copy and renamed into place only when every row is in.
    """
    writable(spec)
    staged = read_bundle(bundle)
    try:
        ids = validated(staged, bundle, board_for(spec, registry))
        snapshot = spec.snapshot
        tmp = snapshot.with_name(snapshot.name + ".import")
        tmp.unlink(missing_ok=True)
        try:
            if snapshot.is_file():
                shutil.copyfile(snapshot, tmp)
                with Store(tmp).writing():  # an older snapshot is migrated (in the copy) before runs are added
                    pass
            _add_runs(staged, tmp, spec, ids, bundle)
            os.replace(tmp, snapshot)
        finally:
            tmp.unlink(missing_ok=True)
    finally:
        staged.close()
    return ids


def _add_runs(staged, dest: Path, spec: BoardSpec, ids: list[str], bundle: Path) -> None:
    con = duckdb.connect(str(dest))
    try:
        for statement in (SNAPSHOT_SCHEMA, NOTES, VOCAB):
            con.execute(statement)
        if con.execute("SELECT count(*) FROM schema_info").fetchall()[0][0] == 0:
            con.execute("INSERT INTO schema_info VALUES (?)", [SCHEMA_VERSION])
        _refuse_replacing(con, staged, spec, ids)
        with transaction(con):
            private = ", ".join(f"NULL AS {c}" for c in PRIVATE_RUN_COLUMNS)
            copy_rows(staged, con, "runs", f"SELECT * EXCLUDE ({', '.join(PRIVATE_RUN_COLUMNS)}), {private} FROM runs")
            copy_rows(staged, con, "models", "SELECT * EXCLUDE (artifact_path), NULL AS artifact_path FROM models")
            copy_rows(staged, con, "samples", "SELECT * FROM samples")
            copy_rows(staged, con, "metrics", "SELECT * FROM metrics")
            have = [r[0] for r in con.execute("SELECT DISTINCT dataset_hash || '/' || tokenizer_key "
                                              "FROM examples").fetchall()]
            copy_rows(staged, con, "examples", "SELECT * FROM examples WHERE NOT list_contains(?, dataset_hash || '/' || "
                  "tokenizer_key)", [[*have, ""]])
            copy_rows(staged, con, "continuations", "SELECT * FROM continuations")
            vocab = [r[0] for r in con.execute("SELECT DISTINCT tokenizer_key FROM vocab").fetchall()]
            copy_rows(staged, con, "vocab", "SELECT * FROM vocab WHERE NOT list_contains(?, tokenizer_key)", [[*vocab, ""]])
            withheld = [r[0] for r in con.execute("SELECT subject FROM snapshot_notes WHERE kind = 'withheld'").fetchall()]
            copy_rows(staged, con, "snapshot_notes", "SELECT DISTINCT kind, subject, note FROM snapshot_notes "
                  "WHERE kind = 'withheld' AND NOT list_contains(?, subject)", [[*withheld, ""]])
            con.executemany("INSERT INTO snapshot_notes VALUES ('imported', ?, ?)",
                            [[r, f"from {bundle.name[:200]}, {now()}"] for r in ids])
        con.execute("CHECKPOINT")
    finally:
        con.close()


def _refuse_replacing(con, staged, spec: BoardSpec, ids: list[str]) -> None:
    """A submission adds a row to the board; it never takes the place of one already published."""
    dup = con.execute("SELECT run_id FROM runs WHERE list_contains(?, run_id)", [ids]).fetchall()
    if dup:
        raise UsageError(f"run {dup[0][0]} is already on board {spec.name}")
    slots = staged.execute("SELECT method_label, seed, dataset_hash FROM runs").fetchall()
    for label, seed, ds_hash in slots:
        taken = con.execute("SELECT run_id FROM runs WHERE method_label = ? AND seed = ? AND dataset_hash = ? "
                            "AND family = ? AND preset = ? AND example_limit IS NULL",
                            [label, seed, ds_hash, spec.family, spec.preset]).fetchall()
        if taken:
            raise UsageError(f"board {spec.name} already shows {label} at seed {seed} (run {taken[0][0]}); a "
                             "submission never replaces a published run: submit another seed")

