"""Published boards: `leaderboards/<name>.toml`, its snapshot, and submission bundles.

A snapshot and a bundle are both small DuckDB files with the results store's tables, holding
only the chosen runs. They leave out local paths and host names, and the text (and token ids)
of any dataset not marked public. A bundle is validated whole before any of it is read into a
board: schema, the board's dataset hash and preset, the recomputed config hash, and verdicts
that agree with the figures.
"""

from __future__ import annotations

import functools
import json
import math
import os
import re
import shlex
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from importlib import resources
from pathlib import Path

import duckdb
import tomli

from harness import board as board_mod
from harness.errors import UsageError, unknown
from harness.specs import ROLES
from harness.store import SCHEMA, SCHEMA_VERSION, Store, catalog, config_hash, portable_args

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


def find_boards(explicit: str | os.PathLike | None = None) -> tuple[Path, str]:
    """The leaderboards/ to act on, found like registry.toml, and where the choice came from: --leaderboards,
    $HARNESS_LEADERBOARDS, ./leaderboards, then the installed harness's (package data: harness/leaderboards)."""
    for given, how in ((explicit, "--leaderboards"), (os.environ.get(ENV_VAR) or None, f"${ENV_VAR}")):
        if given is not None:
            if not Path(given).is_dir():
                raise UsageError(f"{how}: no leaderboards folder at {given}")
            return Path(given).resolve(), how
    here = Path.cwd() / "leaderboards"
    if here.is_dir():
        return here.resolve(), "the current directory"
    return Path(str(resources.files("harness").joinpath("leaderboards"))), "the installed harness"


def boards_dir() -> Path:
    return find_boards()[0]


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
        have = set(con.execute("SELECT run_id, role, sample_id FROM continuations").fetchall())
        extra = [[*k, tokens] for k, tokens in (continuations or {}).items() if k not in have]
        if extra:
            con.executemany("INSERT INTO continuations (run_id, role, sample_id, token_ids) VALUES (?, ?, ?, ?)", extra)
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
        # a board runs the family's defaults: a from-scratch run is another board's (board_mod.BOARD_KEYS)
        f"SELECT run_id FROM runs r WHERE status = 'finished' AND {board_mod.FAMILY_ARGS_SQL} = '{{}}' "
        "AND family = ? AND dataset = ? AND preset = ? "
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
# Tables `harness export` leaves empty: nothing in them would be imported, so nothing is accepted.
EMPTY_TABLES = ("scores", "features", "seed_groups", "group_metrics", "group_sets")
SPLITS = ("member", "nonmember")
# A recomputed figure may differ from the stored one in float32's last bits (a mean taken on a GPU),
# never by one example's verdict in a million.
TOLERANCE = 1e-7
NOTE_KINDS = ("exported", "withheld", "published", "imported")
# Figures that lie in [0, 1] whatever they are: any stored value outside is false.
UNIT_FIGURES = ("auc_", "tpr_", "mem_rate_", "nonmember_rate_", "approx_match_", "inheritance_rate", "easy_share")


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
    columns: dict[str, list[tuple]] = {}
    for table, *column in con.execute(
            "SELECT table_name, column_name, data_type, column_default, is_nullable FROM duckdb_columns() "
            "WHERE database_name = current_database() AND schema_name = 'main' ORDER BY table_name, column_index"
    ).fetchall():
        columns.setdefault(table, []).append(tuple(column))
    constraints = sorted((t, c, str(cols)) for t, c, cols in con.execute(
        "SELECT table_name, constraint_type, constraint_column_names FROM duckdb_constraints() "
        "WHERE database_name = current_database()").fetchall())
    return columns, constraints


def _open_bundle(bundle: Path):
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
        raise UsageError(f"cannot open bundle {bundle}: {_line(err)}") from None


def _check_shape(con, bundle: Path) -> None:
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
    return f"column {extra[0]} is not in it" if extra else "columns out of order"


def _check_bounds(con, bundle: Path) -> None:
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


def _stage(con, bundle: Path):
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
                raise UsageError(f"bundle {bundle}: table {table}: {_line(err)}") from None
            finally:
                staged.unregister("incoming")
    except BaseException:
        staged.close()
        raise
    return staged


def _line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return lines[0] if lines else type(err).__name__


@dataclass
class _Board:
    """What the board itself says a run must be: recomputed here, never read from the bundle."""

    spec: BoardSpec
    preset: dict
    prefix_len: int
    suffix_len: int
    dataset_hash: str
    dataset_args: dict
    examples: dict[str, tuple[str, int, str]]  # sample_id -> (split, repeats, kind)
    methods: dict  # registered name -> KDMethod

    @property
    def members(self) -> list[str]:
        return sorted(s for s, (split, _, _) in self.examples.items() if split == "member")


def _board(spec: BoardSpec, registry: Path | None) -> _Board:
    from harness import plugins, registry as registry_mod
    from harness.data import content_hash
    from harness.protocol import _preset_dict
    from harness.specs import resolve_params

    reg = registry_mod.load(registry)
    found = plugins.load(reg)
    preset = reg.preset(spec.preset)
    dataset = found.dataset(spec.dataset)
    declared = {p.name for p in dataset.params}
    preset_args = {k: v for k, v in preset.dataset_args.items() if k in declared}
    ds_args = resolve_params(dataset.params, {**preset_args, **spec.dataset_args}, f"dataset {dataset.name}")
    split = dataset.load(ds_args)
    return _Board(spec, _preset_dict(preset), preset.prefix_len, preset.suffix_len, content_hash(dataset, split),
                  portable_args(ds_args), _board_examples(spec, registry, dataset, split), dict(found.methods))


def _board_examples(spec: BoardSpec, registry: Path | None, dataset, split) -> dict[str, tuple[str, int, str]]:
    """The example ids the board's dataset and preset yield, with each one's split, repeats and kind.

    A record dataset gives one example per text; one cut by its tokenizer (a corpus, a length
    filter, prompts) is cut here the way a run cuts it, through the protocol's own data stage.
    """
    prompted = any(ex.prompt for ex in [*split.members, *split.nonmembers])
    if not (dataset.chunk or dataset.drop_short or prompted):
        out = {f"m{i:06d}": ("member", ex.repeats, ex.kind) for i, ex in enumerate(split.members)}
        out.update({f"n{i:06d}": ("nonmember", 1, ex.kind) for i, ex in enumerate(split.nonmembers)})
        return out
    from harness.cache import default_dir
    from harness.protocol import EvalRequest, Protocol
    from harness.store import default_path

    method, args = spec.method_args(spec.methods[0])
    protocol = Protocol(EvalRequest(method=method, family=spec.family, dataset=spec.dataset, preset=spec.preset,
                                    seed=0, db=default_path(), cache_dir=default_dir(), method_args=args,
                                    dataset_args=dict(spec.dataset_args), registry=registry))
    members, nonmembers, _ = protocol._data()
    return {sid: (ex.split, r, k) for ex in (members, nonmembers)
            for sid, r, k in zip(ex.sample_ids, ex.repeats.tolist(), ex.kinds)}


_BOARDS: dict[tuple, _Board] = {}


def _board_for(spec: BoardSpec, registry: Path | None) -> _Board:
    """The board's recomputed dataset, once per process: loading a dataset can take seconds."""
    from harness import registry as registry_mod

    path = registry_mod.find(registry) or registry_mod.defaults_path()
    memo = (repr(spec), str(path), path.stat().st_mtime_ns)
    if memo not in _BOARDS:
        _BOARDS[memo] = _board(spec, registry)
    return _BOARDS[memo]


def validate_bundle(bundle: Path, spec: BoardSpec, registry: Path | None = None) -> list[str]:
    """Every check, on a staged copy of the bundle's rows; returns its run ids. Reads nothing else."""
    staged = _read_bundle(bundle)
    try:
        return _validated(staged, bundle, _board_for(spec, registry))
    finally:
        staged.close()


def _validated(staged, bundle: Path, board: _Board) -> list[str]:
    """_validate, with a value of the wrong kind (a NULL seed, a string where JSON holds a number) one line."""
    try:
        return _validate(staged, bundle, board)
    except (duckdb.Error, TypeError, ValueError, KeyError, AttributeError, OverflowError) as err:
        raise UsageError(f"bundle {bundle} is malformed: {type(err).__name__}: {_line(err)}") from None


def _read_bundle(bundle: Path):
    con = _open_bundle(bundle)
    try:
        _check_shape(con, bundle)
        _check_bounds(con, bundle)
        return _stage(con, bundle)
    except duckdb.Error as err:
        raise UsageError(f"cannot read bundle {bundle}: {_line(err)}") from None
    finally:
        con.close()


def _validate(con, bundle: Path, board: _Board) -> list[str]:
    versions = [r[0] for r in con.execute("SELECT version FROM schema_info").fetchall()]
    if versions != [SCHEMA_VERSION]:
        raise UsageError(f"bundle {bundle} has schema version {versions}; this harness reads {SCHEMA_VERSION}")
    for table in EMPTY_TABLES:
        if con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]:
            raise UsageError(f"bundle {bundle}: table {table} must be empty in a bundle")
    runs = _rows(con, "SELECT * FROM runs ORDER BY run_id")
    if not runs:
        raise UsageError(f"bundle {bundle} holds no runs")
    ids = [r["run_id"] for r in runs]
    _check_labels_and_roles(con, bundle, ids)
    seen: dict[tuple, str] = {}
    for run in runs:
        where = f"bundle {bundle}, run {run['run_id']}"
        _check_run(run, board, where)
        slot = (run["method_label"], run["seed"])
        if slot in seen:
            raise UsageError(f"{where}: {slot[0]} at seed {slot[1]} twice in one bundle (also run {seen[slot]})")
        seen[slot] = run["run_id"]
        _check_verdicts(con, run, board, where)
        _check_figures(con, run, where)
    _check_examples(con, bundle, board, {r["tokenizer_key"] for r in runs})
    _check_extras(con, bundle, board, ids, {r["tokenizer_key"] for r in runs})
    return ids


def _rows(con, sql: str, params=()) -> list[dict]:
    cur = con.execute(sql, list(params))
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row)) for row in cur.fetchall()]


def _check_labels_and_roles(con, bundle: Path, ids: list[str]) -> None:
    """Roles and splits from the allowed sets, exactly as spelt: `member ` is not `member`."""
    for table, column, allowed in (("samples", "role", ROLES), ("samples", "split", SPLITS), ("models", "role", ROLES),
                                   ("examples", "split", SPLITS), ("continuations", "role", ROLES),
                                   ("snapshot_notes", "kind", NOTE_KINDS)):
        bad = con.execute(f"SELECT {column} FROM {table} WHERE {column} IS NULL OR NOT list_contains(?, {column}) "
                          "LIMIT 1", [list(allowed)]).fetchall()
        if bad:
            raise UsageError(f"bundle {bundle}: {table}.{column} {bad[0][0]!r} is not one of {', '.join(allowed)}")
    for table in ("models", "samples", "metrics", "continuations", "curves"):
        stray = con.execute(f"SELECT run_id FROM {table} WHERE NOT list_contains(?, run_id) LIMIT 1", [ids]).fetchall()
        if stray:
            raise UsageError(f"bundle {bundle}: table {table} holds rows of run {stray[0][0]!r}, which it does not carry")


def _check_run(run: dict, board: _Board, where: str) -> None:
    """The run's row against the board: its configuration recomputed, never taken from the bundle."""
    from harness.protocol import _label
    from harness.specs import resolve_params

    spec = board.spec
    if run["status"] != "finished":
        raise UsageError(f"{where}: status {run['status']}, not finished")
    for col, want in (("family", spec.family), ("dataset", spec.dataset), ("preset", spec.preset),
                      ("dataset_hash", board.dataset_hash), ("prefix_len", board.prefix_len),
                      ("suffix_len", board.suffix_len)):
        if run[col] != want:
            raise UsageError(f"{where}: {col} is {run[col]!r}, board {spec.name} needs {want!r}")
    if run["example_limit"] is not None:
        raise UsageError(f"{where}: ran on --limit {int(run['example_limit'])} examples, the board needs all: "
                         f"rerun without --limit (harness eval --method {run['method']}) and export again")
    members = sum(1 for s, _, _ in board.examples.values() if s == "member")
    for col, want in (("n_members", members), ("n_nonmembers", len(board.examples) - members)):
        if run[col] != want:
            raise UsageError(f"{where}: {col} is {run[col]}, but the board's dataset yields {want}")
    if _json(run, "preset_values", where) != board.preset:
        raise UsageError(f"{where}: preset values differ from preset {spec.preset}")
    if _json(run, "dataset_args", where) != board.dataset_args:
        raise UsageError(f"{where}: dataset arguments differ from board {spec.name}'s")
    if _json(run, "family_args", where, "{}"):
        raise UsageError(f"{where}: family arguments {run['family_args']}; board {spec.name} runs the family's defaults")
    method = board.methods.get(run["method"])
    if method is None:
        raise UsageError(f"{where}: method {run['method']!r} is not registered here, so its run cannot be verified")
    args = _json(run, "method_args", where)
    if not isinstance(args, dict) or resolve_params(method.params, args, f"method {method.name}") != args:
        raise UsageError(f"{where}: method arguments {run['method_args']} are not {method.name}'s, resolved")
    filter_by = _json(run, "filter", where, "null")
    label = _label(method, args, filter_by.get("by") if isinstance(filter_by, dict) else None)
    if run["method_label"] != label or run["teacher_access"] != method.teacher_access:
        raise UsageError(f"{where}: label {run['method_label']!r} / teacher access {run['teacher_access']!r} are not "
                         f"what {method.name} gives ({label!r} / {method.teacher_access!r})")
    _check_times(run, where)
    recomputed = config_hash(run)
    if recomputed != run["config_hash"]:
        raise UsageError(f"{where}: config hash {run['config_hash']} does not match its configuration "
                         f"(recomputed {recomputed})")


def _json(run: dict, col: str, where: str, default: str | None = None):
    raw = run[col] if run[col] is not None else default
    try:
        return json.loads(raw)
    except (TypeError, ValueError):
        raise UsageError(f"{where}: {col} is not valid JSON") from None


def _check_times(run: dict, where: str) -> None:
    started, finished = run["started_at"], run["finished_at"]
    if started is None or finished is None or started > finished:
        raise UsageError(f"{where}: started {started}, finished {finished}: not a run that finished")
    if finished > datetime.now(timezone.utc).replace(tzinfo=None) + timedelta(days=1):
        raise UsageError(f"{where}: finished at {finished}, in the future")


def _check_verdicts(con, run: dict, board: _Board, where: str) -> None:
    """A verdict for every example of the board's dataset and role, with the dataset's split and repeats."""
    rid = run["run_id"]
    for role in ROLES:
        got = {sid: (split, repeats) for sid, split, repeats in con.execute(
            "SELECT sample_id, split, repeats FROM samples WHERE run_id = ? AND role = ?", [rid, role]).fetchall()}
        want = {sid: (split, repeats) for sid, (split, repeats, _) in board.examples.items()}
        if got != want:
            missing = sorted(set(want) - set(got))
            wrong = sorted(s for s in set(want) & set(got) if want[s] != got[s])
            extra = sorted(set(got) - set(want))
            what = (f"no verdict for {missing[0]} ({len(missing)} missing)" if missing else
                    f"{wrong[0]} is {got[wrong[0]]}, the dataset says {want[wrong[0]]}" if wrong else
                    f"verdict for {extra[0]}, which the board's dataset does not yield")
            raise UsageError(f"{where}: {role}: {what}")
    bad = con.execute("SELECT count(*) FROM samples WHERE run_id = ? AND (memorized IS NULL OR loss IS NULL "
                      "OR match_len NOT BETWEEN 0 AND ? OR (approx_match IS NOT NULL AND approx_match NOT BETWEEN 0 AND 1)"
                      " OR edit_distance < 0 OR tie IS NULL)", [rid, run["suffix_len"]]).fetchall()[0][0]
    if bad:
        raise UsageError(f"{where}: {bad} verdict(s) with no verdict, no loss or values out of range")


def _check_figures(con, run: dict, where: str) -> None:
    """Every figure of the protocol recomputed from the verdicts, and every other figure in range."""
    import torch

    from harness.extract import Extraction
    from harness.metrics import figures

    rid = run["run_id"]
    parts: dict[str, dict[str, Extraction]] = {"member": {}, "nonmember": {}}
    for role in ROLES:
        for split in SPLITS:
            rows = con.execute("SELECT memorized, match_len, loss, coalesce(suffix_loss, 0), tie FROM samples "
                               "WHERE run_id = ? AND role = ? AND split = ? ORDER BY sample_id",
                               [rid, role, split]).fetchall()
            cols = list(zip(*rows)) or [(), (), (), (), ()]
            parts[split][role] = Extraction(memorized=torch.tensor(cols[0], dtype=torch.bool),
                                            match_len=torch.tensor(cols[1], dtype=torch.long),
                                            loss=torch.tensor(cols[2], dtype=torch.float32),
                                            suffix_loss=torch.tensor(cols[3], dtype=torch.float32),
                                            ties=torch.tensor(cols[4], dtype=torch.bool))
    recomputed = figures(parts["member"], parts["nonmember"])
    stored = dict(con.execute("SELECT name, value FROM metrics WHERE run_id = ?", [rid]).fetchall())
    for name, value in recomputed.items():
        if not _same(stored.get(name, math.nan), value):
            raise UsageError(f"{where}: {name} is {stored.get(name)}, its verdicts give {value:.6g}")
    for name, value in stored.items():
        if value is not None and name.startswith(UNIT_FIGURES) and not 0 <= value <= 1:
            raise UsageError(f"{where}: {name} is {value}, outside [0, 1]")
    models = {r["role"]: r for r in _rows(con, "SELECT * FROM models WHERE run_id = ?", [rid])}
    if sorted(models) != sorted(ROLES):
        raise UsageError(f"{where}: models for roles {sorted(models)}, expected {', '.join(ROLES)}")
    for role, m in models.items():
        if not _same(m["val_ppl"], recomputed[f"val_ppl_{role}"]) or not _same(m["val_loss"],
                                                                               recomputed[f"val_loss_{role}"]):
            raise UsageError(f"{where}: the {role}'s validation loss {m['val_loss']} does not match its verdicts")


def _same(stored: float | None, value: float) -> bool:
    """A stored figure equals its recomputed value; NaN (nothing to divide by) is stored as NULL."""
    if value is None or math.isnan(value):
        return stored is None or math.isnan(stored)
    return stored is not None and math.isfinite(stored) and abs(stored - value) <= TOLERANCE * max(1.0, abs(value))


def _check_examples(con, bundle: Path, board: _Board, tokenizers: set[str]) -> None:
    """The examples are the board's: its dataset hash, the runs' tokenizer, its ids, splits and repeats."""
    for tok in sorted(tokenizers):
        got = {sid: (split, repeats, kind) for sid, split, repeats, kind in con.execute(
            "SELECT sample_id, split, repeats, kind FROM examples WHERE dataset_hash = ? AND tokenizer_key = ?",
            [board.dataset_hash, tok]).fetchall()}
        if got != board.examples:
            raise UsageError(f"bundle {bundle}: its examples (tokenizer {tok}) are not the ones the board's dataset "
                             f"yields ({len(got)} of {len(board.examples)} match in id, split, repeats and kind)")
    stray = con.execute("SELECT dataset_hash, tokenizer_key FROM examples WHERE dataset_hash <> ? "
                        "OR NOT list_contains(?, tokenizer_key) LIMIT 1", [board.dataset_hash, sorted(tokenizers)]
                        ).fetchall()
    if stray:
        raise UsageError(f"bundle {bundle}: examples under dataset hash {stray[0][0]} / tokenizer {stray[0][1]}, "
                         f"not the board's {board.dataset_hash}")


def _check_extras(con, bundle: Path, board: _Board, ids: list[str], tokenizers: set[str]) -> None:
    """Continuations of the board's members only, a suffix long each; vocab of the runs' tokenizers only."""
    bad = con.execute("SELECT run_id, sample_id FROM continuations c WHERE NOT list_contains(?, sample_id) OR "
                      "len(token_ids) <> (SELECT suffix_len FROM runs r WHERE r.run_id = c.run_id) "
                      "OR list_min(token_ids) < 0 LIMIT 1", [board.members]).fetchall()
    if bad:
        raise UsageError(f"bundle {bundle}: continuation of {bad[0][1]} (run {bad[0][0]}) is not one of a member's "
                         "suffix")
    bad = con.execute("SELECT tokenizer_key FROM vocab WHERE NOT list_contains(?, tokenizer_key) OR token_id < 0 "
                      "LIMIT 1", [sorted(tokenizers)]).fetchall()
    if bad:
        raise UsageError(f"bundle {bundle}: vocab of tokenizer {bad[0][0]!r}, which none of its runs used")


def import_bundle(bundle: Path, spec: BoardSpec, registry: Path | None = None) -> list[str]:
    """Validate, then add the bundle's runs to the board's snapshot, or leave the snapshot byte for byte as it was.

    The snapshot is written as a copy and renamed into place only when every row is in.
    """
    staged = _read_bundle(bundle)
    try:
        ids = _validated(staged, bundle, _board_for(spec, registry))
        snapshot = spec.snapshot
        tmp = snapshot.with_name(snapshot.name + ".import")
        tmp.unlink(missing_ok=True)
        try:
            if snapshot.is_file():
                shutil.copyfile(snapshot, tmp)
                with Store(tmp).connect():  # an older snapshot is migrated (in the copy) before runs are added
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
        con.execute("BEGIN TRANSACTION")
        private = ", ".join(f"NULL AS {c}" for c in PRIVATE_RUN_COLUMNS)
        _copy(staged, con, "runs", f"SELECT * EXCLUDE ({', '.join(PRIVATE_RUN_COLUMNS)}), {private} FROM runs")
        _copy(staged, con, "models", "SELECT * EXCLUDE (artifact_path), NULL AS artifact_path FROM models")
        _copy(staged, con, "samples", "SELECT * FROM samples")
        _copy(staged, con, "metrics", "SELECT * FROM metrics")
        have = [r[0] for r in con.execute("SELECT DISTINCT dataset_hash || '/' || tokenizer_key FROM examples").fetchall()]
        _copy(staged, con, "examples", "SELECT * FROM examples WHERE NOT list_contains(?, dataset_hash || '/' || "
              "tokenizer_key)", [[*have, ""]])
        _copy(staged, con, "continuations", "SELECT * FROM continuations")
        vocab = [r[0] for r in con.execute("SELECT DISTINCT tokenizer_key FROM vocab").fetchall()]
        _copy(staged, con, "vocab", "SELECT * FROM vocab WHERE NOT list_contains(?, tokenizer_key)", [[*vocab, ""]])
        withheld = [r[0] for r in con.execute("SELECT subject FROM snapshot_notes WHERE kind = 'withheld'").fetchall()]
        _copy(staged, con, "snapshot_notes", "SELECT DISTINCT kind, subject, note FROM snapshot_notes "
              "WHERE kind = 'withheld' AND NOT list_contains(?, subject)", [[*withheld, ""]])
        con.executemany("INSERT INTO snapshot_notes VALUES ('imported', ?, ?)",
                        [[r, f"from {bundle.name[:200]}, {_now()}"] for r in ids])
        con.execute("COMMIT")
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


def _copy(staged, con, table: str, select: str, params=None) -> None:
    """Rows from the staged bundle into the snapshot by value, through the snapshot's own column list."""
    names = [r[0] for r in con.execute("SELECT column_name FROM duckdb_columns() WHERE database_name = "
                                       "current_database() AND table_name = ? ORDER BY column_index", [table]).fetchall()]
    cols = ", ".join(f'"{n}"' for n in names)
    rows = staged.sql(f"SELECT {cols} FROM ({select})", params=params).to_arrow_table()
    con.register("incoming", rows)
    try:
        con.execute(f'INSERT INTO "{table}" ({cols}) SELECT {cols} FROM incoming')
    finally:
        con.unregister("incoming")
