"""Published boards: `leaderboards/<name>.toml`, its snapshot, and submission bundles.

A snapshot and a bundle are both small DuckDB files with the results store's tables, holding
only the chosen runs. They leave out local paths and host names, and the text (and token ids)
of any dataset not marked public. A bundle is validated whole before any of it is read into a
board: schema, the board's dataset hash and preset, the recomputed config hash, and verdicts
that agree with the figures.
"""

from __future__ import annotations

import json
import math
import re
import os
import shlex
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import tomli

from harness import board as board_mod
from harness.errors import UsageError, unknown
from harness.store import SCHEMA, SCHEMA_VERSION, Store, config_hash

ENV_VAR = "HARNESS_LEADERBOARDS"
TABLES = ("runs", "models", "examples", "samples", "metrics")
NOTES = "CREATE TABLE IF NOT EXISTS snapshot_notes (kind VARCHAR, subject VARCHAR, note VARCHAR)"
BLOCK_SIZE = 16384
# Published files are read, never updated in place: without the primary-key indexes a snapshot is
# less than half the size. Runs added by import are checked for duplicates before they are inserted.
SNAPSHOT_SCHEMA = re.sub(r",\s*PRIMARY KEY \([^)]*\)", "", SCHEMA).replace(" PRIMARY KEY", "")
VOCAB = "CREATE TABLE IF NOT EXISTS vocab (tokenizer_key VARCHAR, token_id INTEGER, piece VARCHAR)"
# What a published file must not carry: where it was run, by whom, from which paths.
PRIVATE_RUN_COLUMNS = ("hostname", "pid", "command")


def boards_dir() -> Path:
    env = os.environ.get(ENV_VAR)
    return Path(env) if env else Path(__file__).resolve().parent.parent / "leaderboards"


@dataclass(frozen=True)
class BoardSpec:
    """One `leaderboards/<name>.toml`."""

    name: str
    path: Path
    title: str
    family: str
    dataset: str
    preset: str
    methods: tuple[str, ...]  # "soft-kd" or "soft-kd temperature=4"
    seeds: tuple[int, ...] = (0,)
    dataset_args: dict = field(default_factory=dict)
    columns: tuple[str, ...] = ()
    sort: str = "mem_rate_student"

    @property
    def snapshot(self) -> Path:
        return self.path.with_suffix(".duckdb")

    def method_args(self, entry: str) -> tuple[str, dict[str, str]]:
        name, *pairs = shlex.split(entry)
        bad = [p for p in pairs if "=" not in p]
        if bad:
            raise UsageError(f"{self.path}: method entry {entry!r}: expected `name key=value ...`")
        return name, dict(p.split("=", 1) for p in pairs)


def load_spec(name: str, folder: Path | None = None) -> BoardSpec:
    folder = folder or boards_dir()
    path = folder / f"{name}.toml"
    if not path.is_file():
        found = sorted(p.stem for p in folder.glob("*.toml")) if folder.is_dir() else []
        raise unknown(f"leaderboard (in {folder})", name, found)
    try:
        raw = tomli.loads(path.read_text())
    except (tomli.TOMLDecodeError, UnicodeDecodeError, RecursionError, OSError) as err:
        raise UsageError(f"{path}: not valid TOML: {err}") from None
    missing = [k for k in ("family", "dataset", "preset", "methods") if k not in raw]
    if missing:
        raise UsageError(f"{path}: missing {', '.join(missing)}")
    allowed = {"title", "family", "dataset", "preset", "methods", "seeds", "dataset_args", "columns", "sort"}
    extra = sorted(set(raw) - allowed)
    if extra:
        raise unknown(f"key in {path}", extra[0], allowed)
    if not raw["methods"] or not all(isinstance(m, str) for m in raw["methods"]):
        raise UsageError(f"{path}: methods must be a non-empty list of strings")
    seeds = raw.get("seeds", [0])
    if not seeds or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds):
        raise UsageError(f"{path}: seeds must be a non-empty list of integers >= 0")
    return BoardSpec(name=name, path=path, title=raw.get("title", name), family=raw["family"],
                     dataset=raw["dataset"], preset=raw["preset"], methods=tuple(raw["methods"]),
                     seeds=tuple(seeds), dataset_args={k: str(v) for k, v in raw.get("dataset_args", {}).items()},
                     columns=tuple(raw.get("columns", ())), sort=raw.get("sort", "mem_rate_student"))


# ------------------------------------------------------------ writing a subset of the store


def write_subset(source: Path, dest: Path, run_ids: list[str], public: set[str], notes: list[tuple[str, str, str]],
                 continuations: dict[tuple[str, str, str], list[int]] | None = None) -> None:
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
        have = set(con.execute("SELECT run_id, role, sample_id FROM continuations").fetchall())
        extra = [[*k, tokens] for k, tokens in (continuations or {}).items() if k not in have]
        if extra:
            con.executemany("INSERT INTO continuations (run_id, role, sample_id, token_ids) VALUES (?, ?, ?, ?)", extra)
        # A continuation of a memorized example is the training text itself: private datasets keep none
        con.execute("DELETE FROM continuations WHERE run_id IN (SELECT run_id FROM runs WHERE NOT list_contains(?, dataset))",
                    [sorted(public)])
        withheld = [r[0] for r in con.execute("SELECT DISTINCT dataset FROM runs WHERE NOT list_contains(?, dataset)",
                                              [sorted(public)]).fetchall()]
        for ds in withheld:
            notes = [*notes, ("withheld", ds, f"The text of dataset {ds} is withheld from published files: the "
                              "dataset is not marked public (specs.Dataset.public), so only verdicts and scores "
                              "are published.")]
        con.executemany("INSERT INTO snapshot_notes VALUES (?, ?, ?)", [list(n) for n in notes])
        con.execute("DETACH src")
        con.execute("CHECKPOINT out")
        con.execute("USE memory")
        con.execute("DETACH out")
    finally:
        con.close()
    tmp.replace(dest)


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
        pieces = board_mod.load_pieces(path)
        if pieces:
            con.executemany("INSERT INTO vocab VALUES (?, ?, ?)", [[tok_key, i, p] for i, p in enumerate(pieces)])
            done.add(tok_key)


def _copy_continuations(con, ids: list[str]) -> None:
    has = con.execute("SELECT count(*) FROM information_schema.tables WHERE table_catalog = 'src' "
                      "AND table_name = 'continuations'").fetchone()[0]
    if has:
        con.execute("INSERT INTO continuations BY NAME SELECT * FROM src.continuations "
                    "WHERE list_contains(?, run_id)", [ids])


# ------------------------------------------------------------ continuations for the drill-down


def greedy_continuations(store: Store, run_ids: list[str], batch_size: int = 128) -> dict[tuple[str, str, str], list[int]]:
    """Each role's greedy continuation of every member it did not memorize, from the run's checkpoints.

    A memorized member's continuation is its true suffix, and a checkpoint shared by several runs
    (the teacher, the baseline) has one continuation per member, so neither is stored twice. Runs
    whose checkpoints are gone are skipped.
    """
    import torch
    from transformers import AutoModelForCausalLM

    from harness.extract import greedy

    out: dict[tuple[str, str, str], list[int]] = {}
    by_key: dict[tuple[str, str], torch.Tensor] = {}
    for run_id in run_ids:
        _, rows = store.query("SELECT r.prefix_len, r.suffix_len, r.dataset_hash, r.tokenizer_key, m.role, "
                              "m.artifact_key, m.artifact_path FROM runs r JOIN models m USING (run_id) "
                              "WHERE run_id = ?", [run_id])
        for prefix_len, suffix_len, ds_hash, tok_key, role, art_key, art_path in rows:
            if not art_path or not Path(art_path).is_dir():
                continue
            _, ex = store.query("SELECT sample_id, token_ids FROM examples WHERE dataset_hash = ? AND tokenizer_key = ? "
                                "AND split = 'member' ORDER BY sample_id", [ds_hash, tok_key])
            if not ex:
                continue
            cache_key = (art_key, ds_hash)
            if cache_key in by_key:  # the same checkpoint in another run (a shared teacher or baseline):
                continue  # stored once; the drill-down finds it through models.artifact_key
            model = AutoModelForCausalLM.from_pretrained(art_path, use_safetensors=True)
            prompts = torch.tensor([ids[:prefix_len] for _, ids in ex], dtype=torch.long)
            by_key[cache_key] = greedy(model, prompts, suffix_len, batch_size, desc=f"{role}: continuations")[:, prefix_len:]
            _, held = store.query("SELECT sample_id FROM samples WHERE run_id = ? AND role = ? AND memorized",
                                  [run_id, role])
            memorized = {r[0] for r in held}  # their continuation is the true suffix: the drill-down knows it
            for (sample_id, _), tokens in zip(ex, by_key[cache_key].tolist()):
                if sample_id not in memorized:
                    out[(run_id, role, sample_id)] = tokens
    return out


# ------------------------------------------------------------ publish


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def publish(spec: BoardSpec, db: Path, cache_dir: Path, registry: Path | None = None, log=print) -> Path:
    """Run what the board is missing into `db`, then write its snapshot next to its definition."""
    from harness.protocol import EvalRequest, Protocol

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
            protocol = Protocol(req)
            if dataset_hash is None:
                dataset_hash = _dataset_hash(protocol)
            if protocol.dataset.public:
                public.add(protocol.dataset.name)
            found = _existing(Store(db), protocol, dataset_hash) if Path(db).is_file() else None
            if found:
                log(f"{entry}, seed {seed}: run {found} (already in {db})")
            else:
                log(f"{entry}, seed {seed}: running the protocol")
                found = protocol.run().run_id
            run_ids.append(found)
    keep = _imported_runs(spec, dataset_hash)
    notes = [("published", spec.name, _now())]
    snapshot = spec.snapshot
    if keep:  # runs added by `harness leaderboard import` stay on the board
        merged = snapshot.with_name(snapshot.name + ".merge")
        _merge_into(db, snapshot, keep, merged)
        source = merged
        notes += [("imported", r, "submitted as a bundle") for r in keep]
    else:
        source = db
    log("greedy continuations for the drill-down")
    conts = greedy_continuations(Store(db), run_ids)
    write_subset(source, snapshot, [*run_ids, *keep], public, notes, conts)
    if source != db:
        source.unlink(missing_ok=True)
    return snapshot


def _dataset_hash(protocol) -> str:
    from harness.data import content_hash

    return content_hash(protocol.dataset, protocol.dataset.load(protocol.dataset_args))


def _existing(store: Store, protocol, dataset_hash: str) -> str | None:
    _, rows = store.query(
        "SELECT run_id FROM runs WHERE status = 'finished' AND family = ? AND dataset = ? AND preset = ? "
        "AND method = ? AND method_args = ?::JSON AND seed = ? AND example_limit IS NULL AND dataset_hash = ? "
        "AND harness_version = ? ORDER BY finished_at DESC LIMIT 1",
        [protocol.family.name, protocol.dataset.name, protocol.preset.name, protocol.method.name,
         json.dumps(protocol.method_args), protocol.req.seed, dataset_hash, _version()])
    return rows[0][0] if rows else None


def _version() -> str:
    import harness

    return harness.__version__


def _imported_runs(spec: BoardSpec, dataset_hash: str | None) -> list[str]:
    if not spec.snapshot.is_file():
        return []
    with board_mod.connect(spec.snapshot) as con:
        if "snapshot_notes" not in board_mod.tables(con):
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


# ------------------------------------------------------------ export and import


def export(store: Store, run_ids: list[str], dest: Path, registry: Path | None = None) -> Path:
    """One bundle file with the runs' rows, verdicts and provenance; no checkpoints."""
    from harness import plugins, registry as registry_mod
    from harness.results import resolve_run_id

    ids = [resolve_run_id(store, r) for r in run_ids]
    _, rows = store.query("SELECT run_id, status FROM runs WHERE list_contains(?, run_id)", [ids])
    unfinished = [r for r, status in rows if status != "finished"]
    if unfinished:
        raise UsageError(f"run {unfinished[0]} did not finish: only finished runs can be exported")
    found = plugins.load(registry_mod.load(registry))
    public = {name for name, d in found.datasets.items() if d.public}
    if dest.exists():
        raise UsageError(f"{dest} already exists: choose another --output or remove it")
    dest.parent.mkdir(parents=True, exist_ok=True)
    write_subset(store.path, dest, ids, public, [("exported", r, _now()) for r in ids],
                 greedy_continuations(store, ids))
    return dest


def validate_bundle(bundle: Path, spec: BoardSpec, registry: Path | None = None) -> list[str]:
    """Every check, before anything reads the bundle's rows into a board; returns its run ids."""
    from harness import plugins, registry as registry_mod
    from harness.protocol import _preset_dict

    if not bundle.is_file():
        raise UsageError(f"no bundle at {bundle}")
    with open(bundle, "rb") as f:
        head = f.read(16)
    if head[8:12] != b"DUCK":
        raise UsageError(f"{bundle} is not a DuckDB bundle (made by `harness export`)")
    try:
        con = duckdb.connect(str(bundle), read_only=True)
    except duckdb.Error as err:
        raise UsageError(f"cannot open bundle {bundle}: {str(err).splitlines()[0]}") from None
    try:
        problem = board_mod.schema_problem(con)
        if problem:
            raise UsageError(f"bundle {bundle}: {problem}")
        version = con.execute("SELECT max(version) FROM schema_info").fetchone()[0]
        if version != SCHEMA_VERSION:
            raise UsageError(f"bundle {bundle} has schema version {version}; this harness reads {SCHEMA_VERSION}")
        expected = _schema_columns()
        found = board_mod.tables(con)
        for table, cols in expected.items():
            if found.get(table, set()) != cols:
                diff = sorted(cols ^ found.get(table, set()))
                raise UsageError(f"bundle {bundle}: table {table} does not match the schema ({', '.join(diff[:3])})")
        runs = con.execute("SELECT * FROM runs").df()
        if runs.empty:
            raise UsageError(f"bundle {bundle} holds no runs")
        reg = registry_mod.load(registry)
        found_plugins = plugins.load(reg)
        preset = _preset_dict(reg.preset(spec.preset))
        dataset = found_plugins.dataset(spec.dataset)
        from harness.data import content_hash
        from harness.specs import resolve_params

        ds_args = resolve_params(dataset.params, spec.dataset_args, f"dataset {dataset.name}")
        board_hash = content_hash(dataset, dataset.load(ds_args))
        for run in runs.to_dict("records"):
            rid = run["run_id"]
            where = f"bundle {bundle}, run {rid}"
            if run["status"] != "finished":
                raise UsageError(f"{where}: status {run['status']}, not finished")
            for col, want in (("family", spec.family), ("dataset", spec.dataset), ("preset", spec.preset),
                              ("dataset_hash", board_hash)):
                if run[col] != want:
                    raise UsageError(f"{where}: {col} is {run[col]!r}, board {spec.name} needs {want!r}")
            if run["example_limit"] is not None and not (isinstance(run["example_limit"], float)
                                                         and math.isnan(run["example_limit"])):
                raise UsageError(f"{where}: ran on --limit {run['example_limit']} examples, the board needs all")
            if json.loads(run["preset_values"]) != preset:
                raise UsageError(f"{where}: preset values differ from preset {spec.preset} in {reg.path}")
            recomputed = config_hash(run)
            if recomputed != run["config_hash"]:
                raise UsageError(f"{where}: config hash {run['config_hash']} does not match its configuration "
                                 f"(recomputed {recomputed})")
            _check_verdicts(con, run, where)
        return runs["run_id"].tolist()
    finally:
        con.close()


def _schema_columns() -> dict[str, set[str]]:
    con = duckdb.connect()
    try:
        con.execute(SCHEMA)
        return {t: c for t, c in board_mod.tables(con).items() if t in TABLES}
    finally:
        con.close()


def _check_verdicts(con, run: dict, where: str) -> None:
    """The per-example verdicts must be complete and give the stored memorization rates."""
    rid = run["run_id"]
    n = con.execute("SELECT count(*) FROM samples WHERE run_id = ?", [rid]).fetchone()[0]
    want = 3 * (int(run["n_members"]) + int(run["n_nonmembers"]))
    if n != want:
        raise UsageError(f"{where}: {n} per-example verdicts, expected {want}")
    rows = con.execute("SELECT s.role, avg(s.memorized::INTEGER), any_value(m.value) FROM samples s "
                       "LEFT JOIN metrics m ON m.run_id = s.run_id AND m.name = 'mem_rate_' || s.role "
                       "WHERE s.run_id = ? AND s.split = 'member' GROUP BY s.role", [rid]).fetchall()
    for role, rate, stored in rows:
        if stored is None or abs(rate - stored) > 1e-9:
            raise UsageError(f"{where}: {role} memorization rate {stored} does not match its verdicts ({rate:.4f})")


def import_bundle(bundle: Path, spec: BoardSpec, registry: Path | None = None) -> list[str]:
    """Validate, then add the bundle's runs to the board's snapshot."""
    ids = validate_bundle(bundle, spec, registry)
    snapshot = spec.snapshot
    if snapshot.is_file():
        with board_mod.connect(snapshot) as con:
            dup = con.execute("SELECT run_id FROM runs WHERE list_contains(?, run_id)", [ids]).fetchall()
        if dup:
            raise UsageError(f"run {dup[0][0]} is already on board {spec.name}")
        with Store(snapshot).connect():  # an older snapshot is migrated before runs are added to it
            pass
    con = duckdb.connect(str(snapshot))
    try:
        con.execute(SNAPSHOT_SCHEMA)
        con.execute(NOTES)
        con.execute(VOCAB)
        if con.execute("SELECT count(*) FROM schema_info").fetchone()[0] == 0:
            con.execute("INSERT INTO schema_info VALUES (?)", [SCHEMA_VERSION])
        con.execute("ATTACH ? AS bundle (READ_ONLY)", [str(bundle)])
        con.execute("BEGIN TRANSACTION")
        _append(con, "bundle", ids)
        attached = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables "
                                              "WHERE table_catalog = 'bundle'").fetchall()}
        if "continuations" in attached:
            con.execute("INSERT INTO continuations BY NAME SELECT run_id, role, sample_id, token_ids "
                        "FROM bundle.continuations WHERE list_contains(?, run_id)", [ids])
        if "vocab" in attached:
            con.execute("INSERT INTO vocab BY NAME SELECT tokenizer_key, token_id, piece FROM bundle.vocab "
                        "WHERE tokenizer_key NOT IN (SELECT tokenizer_key FROM vocab)")
        if "snapshot_notes" in attached:
            con.execute("INSERT INTO snapshot_notes BY NAME SELECT kind, subject, note FROM bundle.snapshot_notes "
                        "WHERE kind = 'withheld' AND subject NOT IN "
                        "(SELECT subject FROM snapshot_notes WHERE kind = 'withheld')")
        con.executemany("INSERT INTO snapshot_notes VALUES ('imported', ?, ?)",
                        [[r, f"from {bundle.name}, {_now()}"] for r in ids])
        con.execute("COMMIT")
        con.execute("DETACH bundle")
    finally:
        con.close()
    return ids
