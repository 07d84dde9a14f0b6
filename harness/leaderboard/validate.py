"""Whether a bundle belongs on a board: checked whole before any of it is read into the board.

The board's dataset hash and preset, each run's recomputed config hash and label, times, and
verdicts and figures that agree with the per-example results.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import duckdb

from harness.contract.specs import ROLES
from harness.errors import UsageError
from harness.leaderboard.board_specs import BoardSpec
from harness.leaderboard.bundles import check_bounds, check_shape, first_line, open_bundle, stage
from harness.store.connection import Refused, check_values
from harness.store.database import config_hash, portable_args
from harness.store.labels import UNIT_FIGURES
from harness.store.migrations import SCHEMA_VERSION

# Every figure `harness.measure.metrics.figures` can give from a run's verdicts: a bundle may hold one only
# where its verdicts give it (an extractable rate needs the sampling log-probabilities it comes from).
RECOMPUTED = frozenset({f"{kind}_{role}" for role in ROLES for kind in (
    "memorized", "mem_rate", "nonmember_rate", "val_loss", "val_ppl", "extractable", "extractable_rate", "np_rate",
    "nonmember_extractable", "nonmember_extractable_rate", "nonmember_np_rate", "ties")}
    | {"reduction", "teacher_exclusive", "inherited", "inheritance_rate", "easy", "easy_share", "student_only",
       "containment"})

# Tables `harness export` leaves empty: nothing in them would be imported, so nothing is accepted.
EMPTY_TABLES = ("scores", "features", "seed_groups", "group_metrics", "group_sets")
SPLITS = ("member", "nonmember")
# A recomputed figure may differ from the stored one in float32's last bits (a mean taken on a GPU),
# never by one example's verdict in a million.
TOLERANCE = 1e-7
NOTE_KINDS = ("exported", "withheld", "published", "imported")


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
    recipe: Any = None  # the board's Preset: what a run's own recipe (runs.own_recipe) is recomputed from

    @property
    def members(self) -> list[str]:
        return sorted(s for s, (split, _, _) in self.examples.items() if split == "member")


def _board(spec: BoardSpec, registry: Path | None) -> _Board:
    from harness.config import plugins, registry as registry_mod
    from harness.contract.specs import resolve_params
    from harness.protocol.data import content_hash
    from harness.protocol.provenance import preset_dict

    reg = registry_mod.load(registry)
    found = plugins.load(reg)
    preset = reg.preset(spec.preset)
    dataset = found.dataset(spec.dataset)
    declared = {p.name for p in dataset.params}
    preset_args = {k: v for k, v in preset.dataset_args.items() if k in declared}
    ds_args = resolve_params(dataset.params, {**preset_args, **spec.dataset_args}, f"dataset {dataset.name}")
    split = dataset.load(ds_args)
    return _Board(spec, preset_dict(preset), preset.prefix_len, preset.suffix_len, content_hash(dataset, split),
                  portable_args(ds_args), _board_examples(spec, registry, dataset, split), dict(found.methods), preset)


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
    from harness.protocol.request import EvalRequest
    from harness.protocol.run import Protocol
    from harness.runtime.cache import default_dir
    from harness.store.database import default_path

    method, args = spec.method_args(spec.methods[0])
    protocol = Protocol(EvalRequest(method=method, family=spec.family, dataset=spec.dataset, preset=spec.preset,
                                    seed=0, db=default_path(), cache_dir=default_dir(), method_args=args,
                                    dataset_args=dict(spec.dataset_args), registry=registry))
    data = protocol.data()
    return {sid: (ex.split, r, k) for ex in (data.members, data.nonmembers)
            for sid, r, k in zip(ex.sample_ids, ex.repeats.tolist(), ex.kinds)}


_BOARDS: dict[tuple, _Board] = {}


def board_for(spec: BoardSpec, registry: Path | None) -> _Board:
    """The board's recomputed dataset, once per process: loading a dataset can take seconds."""
    from harness.config import registry as registry_mod

    path = registry_mod.find(registry) or registry_mod.defaults_path()
    memo = (repr(spec), str(path), path.stat().st_mtime_ns)
    if memo not in _BOARDS:
        _BOARDS[memo] = _board(spec, registry)
    return _BOARDS[memo]


def validate_bundle(bundle: Path, spec: BoardSpec, registry: Path | None = None) -> list[str]:
    """Every check, on a staged copy of the bundle's rows; returns its run ids. Reads nothing else."""
    staged = read_bundle(bundle)
    try:
        return validated(staged, bundle, board_for(spec, registry))
    finally:
        staged.close()


def validated(staged, bundle: Path, board: _Board) -> list[str]:
    """_validate, with a value of the wrong kind (a NULL seed, a string where JSON holds a number) one line."""
    try:
        return _validate(staged, bundle, board)
    except (duckdb.Error, TypeError, ValueError, KeyError, AttributeError, OverflowError) as err:
        raise UsageError(f"bundle {bundle} is malformed: {type(err).__name__}: {first_line(err)}") from None


def read_bundle(bundle: Path):
    con = open_bundle(bundle)
    try:
        check_shape(con, bundle)
        check_bounds(con, bundle)
        return stage(con, bundle)
    except duckdb.Error as err:
        raise UsageError(f"cannot read bundle {bundle}: {first_line(err)}") from None
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
    try:  # and whatever a results file may not hold, by value, a bundle may not either (a NaN, a rate outside [0, 1])
        check_values(con, bundle)
    except Refused as err:
        said = str(err).replace(f"results database {bundle} ", "it ").replace("; pass another --db", "")
        raise UsageError(f"bundle {bundle}: {said}") from None
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
    from harness.contract.specs import resolve_params
    from harness.protocol.provenance import label as method_label, own_recipe

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
    label = method_label(method, args, filter_by.get("by") if isinstance(filter_by, dict) else None)
    if run["method_label"] != label or run["teacher_access"] != method.teacher_access:
        raise UsageError(f"{where}: label {run['method_label']!r} / teacher access {run['teacher_access']!r} are not "
                         f"what {method.name} gives ({label!r} / {method.teacher_access!r})")
    own = own_recipe(method, args, board.recipe, _Members([r for s, r, _ in board.examples.values() if s == "member"]))
    if (run.get("own_recipe") or None) != own:  # the section a board puts the row in: not the bundle's to say
        raise UsageError(f"{where}: own recipe {run.get('own_recipe')!r} is not what {method.name} gives here "
                         f"({own!r})")
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
                      " OR edit_distance < 0 OR tie IS NULL OR sample_logprob NOT BETWEEN -1e6 AND 1e-4)",
                      [rid, run["suffix_len"]]).fetchall()[0][0]
    if bad:
        raise UsageError(f"{where}: {bad} verdict(s) with no verdict, no loss or values out of range")


def _check_figures(con, run: dict, where: str) -> None:
    """Every figure of the protocol recomputed from the verdicts, and every other figure in range."""
    import torch

    from harness.measure.extract import Extraction
    from harness.measure.metrics import figures

    rid = run["run_id"]
    parts: dict[str, dict[str, Extraction]] = {"member": {}, "nonmember": {}}
    for role in ROLES:
        for split in SPLITS:
            rows = con.execute("SELECT memorized, match_len, loss, coalesce(suffix_loss, 0), tie, sample_logprob "
                               "FROM samples WHERE run_id = ? AND role = ? AND split = ? ORDER BY sample_id",
                               [rid, role, split]).fetchall()
            cols = list(zip(*rows)) or [(), (), (), (), (), ()]
            sampled = None if any(v is None for v in cols[5]) else torch.tensor(cols[5], dtype=torch.float32)
            parts[split][role] = Extraction(memorized=torch.tensor(cols[0], dtype=torch.bool),
                                            match_len=torch.tensor(cols[1], dtype=torch.long),
                                            loss=torch.tensor(cols[2], dtype=torch.float32),
                                            suffix_loss=torch.tensor(cols[3], dtype=torch.float32),
                                            ties=torch.tensor(cols[4], dtype=torch.bool), sample_logprob=sampled)
    recomputed = figures(parts["member"], parts["nonmember"])
    stored = dict(con.execute("SELECT name, value FROM metrics WHERE run_id = ?", [rid]).fetchall())
    # scored on a validation split, whose losses are not stored per example: its figures are checked
    # finite and in range with every figure (connection.check_values), and against the models' rows below
    unchecked = {k for k in recomputed if k.startswith(("val_loss_", "val_ppl_")) or k == "n_validation"} \
        if stored.get("n_validation") else set()
    for name, value in recomputed.items():
        if name not in unchecked and not _same(stored.get(name, math.nan), value):
            raise UsageError(f"{where}: {name} is {stored.get(name)}, its verdicts give {value:.6g}")
    stray = sorted(n for n in stored if n in RECOMPUTED and n not in recomputed and n not in unchecked
                   and stored[n] is not None)
    if stray:  # e.g. an extractable rate where no sampling log-probability was stored to give one
        raise UsageError(f"{where}: {stray[0]} is {stored[stray[0]]}, but its verdicts give none")
    for name, value in stored.items():
        if value is not None and name.startswith(UNIT_FIGURES) and not 0 <= value <= 1:
            raise UsageError(f"{where}: {name} is {value}, outside [0, 1]")
    models = {r["role"]: r for r in _rows(con, "SELECT * FROM models WHERE run_id = ?", [rid])}
    if sorted(models) != sorted(ROLES):
        raise UsageError(f"{where}: models for roles {sorted(models)}, expected {', '.join(ROLES)}")
    for role, m in models.items():
        want = {k: stored.get(f"{k}_{role}") if stored.get("n_validation") else recomputed[f"{k}_{role}"]
                for k in ("val_loss", "val_ppl")}
        if not _same(m["val_ppl"], want["val_ppl"]) or not _same(m["val_loss"], want["val_loss"]):
            raise UsageError(f"{where}: the {role}'s validation loss {m['val_loss']} does not match its figures")
        if not isinstance(m["val_loss"], float) or not -1 < m["val_loss"] < 700 \
                or not _same(m["val_ppl"], math.exp(m["val_loss"])):
            raise UsageError(f"{where}: the {role}'s validation perplexity {m['val_ppl']} is not exp of its loss")


class _Members:
    """What `provenance.own_recipe` reads of a run's members: their repeat counts."""

    def __init__(self, repeats: list[int]) -> None:
        import numpy as np

        self.repeats = np.asarray(repeats, dtype=np.int64)


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
