"""The recipe and data exposure each model actually trained with: `dedup-ft`'s order (each member once
per epoch), `models.training` with its steps, `runs.own_recipe`, and `harness show` printing them."""

from __future__ import annotations

import json
import re
from pathlib import Path

import duckdb
import pytest
import torch
from test_methods import tiny

from conftest import ROOT, quick_args
from harness.cli import main
from harness.config import plugins, registry
from harness.config.registry import Training
from harness.contract.specs import resolve_params
from harness.protocol import provenance
from harness.protocol.data import Examples
from harness.protocol.provenance import ModelInfo
from harness.store.database import config_hash

FOUND = plugins.load(registry.load(ROOT / "registry.toml"))
PRESET = registry.load(ROOT / "registry.toml").preset("tiny")
REPEATS = torch.tensor([1, 3, 1, 2, 1, 4])  # 6 members, 12 rows of the training set
IDS = torch.randint(0, 40, (len(REPEATS), 10), generator=torch.Generator().manual_seed(0))


def members(repeats: torch.Tensor = REPEATS) -> Examples:
    return Examples("member", IDS[: len(repeats)], repeats, ["record"] * len(repeats))


def student_stage(tmp_path: Path, method: str):
    """What the student stage hands `_trained` for `method` on `members()`: its deps, rows and order."""
    from harness.protocol.request import EvalRequest
    from harness.protocol.run import Data, Protocol, Trained

    protocol = Protocol(EvalRequest(method=method, registry=ROOT / "registry.toml", cache_dir=tmp_path / "cache",
                                    db=tmp_path / "harness.duckdb"))
    seen = {}

    def trained(job, data):
        seen.update(deps=job.deps, rows=job.rows, order=job.order)
        return Trained(None, None)

    protocol._trained = trained
    data = Data(members(), members(), "", None, "tokenizer")
    teacher = Trained(tiny(0), ModelInfo("teacher", "big", "teacher-key", tmp_path, False, 0.0, 0))
    protocol.student(data, teacher)
    return seen


def test_dedup_ft_trains_each_member_once_per_epoch_and_is_keyed_by_it(tmp_path):
    dedup, plain = student_stage(tmp_path, "dedup-ft"), student_stage(tmp_path, "dp-ft")
    assert dedup["order"].tolist() == list(range(len(REPEATS)))  # each member once, whatever its repeats
    assert plain["order"].tolist() == members().training_rows().tolist()  # 12 rows: the repeats kept
    assert torch.equal(dedup["rows"], plain["rows"])  # the same members; only how often they are seen differs
    assert dedup["deps"]["data"] != plain["deps"]["data"]  # the cache key holds rows[order]: another student


def test_the_recipe_that_trained_a_model_counts_its_steps():
    cfg = Training(epochs=2, lr=1e-3, batch_size=4, warmup_ratio=0.0, weight_decay=0.0, schedule="constant")
    assert provenance.recipe(cfg, 10, {}, private=False) == {**cfg.key(), "steps": 6}  # 2 x ceil(10 / 4)
    # DP-SGD's Poisson batches: the accountant's steps, not the rows'
    assert provenance.recipe(cfg, 10, {"dp_steps": 30.0}, private=True)["steps"] == 30
    assert provenance.recipe(cfg, 10, {}, private=True)["steps"] is None  # an older cache: unknown, not guessed


def own(name: str, repeats: torch.Tensor = REPEATS, **args) -> str | None:
    method = FOUND.method(name)
    return provenance.own_recipe(method, resolve_params(method.params, args, name), PRESET, members(repeats))


def test_own_recipe_says_why_a_student_is_set_apart():
    # the preset's students stop early (patience 2); DP-SGD trains the steps its accountant planned
    li = "its own recipe: epochs=10, lr=0.002, schedule=constant, warmup_ratio=0.0, patience=0"
    merged = ("DP-SGD: a member with all its repeats is one record, clipped to one norm, so its repeats pull about "
              "as hard as one copy (in effect deduplicated)")
    assert own("dp-kd") == f"{merged}; {li}"
    assert own("dp-ft") == f"{merged}; {li}"
    assert own("dp-kd", unit="occurrence") == li  # each occurrence a record: its repeats are not merged
    assert own("dedup-ft") == "each member seen once per epoch (deduplicated)"
    assert own("minillm") is None  # its 12 epochs are the preset's cap now: the shared recipe
    assert own("soft-kd") is None and own("hard-kd") is None
    # without repeats there is nothing to merge: only the recipe sets a row apart
    single = torch.ones(len(REPEATS), dtype=torch.long)
    assert own("dedup-ft", single) is None and own("dp-ft", single) == li


def test_own_recipe_is_stored_with_the_run_and_left_out_of_its_hash(tmp_path):
    from harness.protocol.request import EvalRequest, Resolved

    setup = Resolved(EvalRequest(method="dp-kd", registry=ROOT / "registry.toml", cache_dir=tmp_path / "cache",
                                 db=tmp_path / "harness.duckdb"))
    row = provenance.run_row(setup, "r", "dh", "tok", members(), members(), None)
    assert row["own_recipe"].startswith("DP-SGD: a member with all its repeats is one record")
    # derived from the method, which the hash holds already: runs stored before it keep their hash
    assert config_hash({**row, "own_recipe": None}) == row["config_hash"]


@pytest.mark.slow
def test_show_prints_the_recipe_each_role_was_trained_with(quick_registry, tmp_path, capsys):
    db = tmp_path / "harness.duckdb"
    assert main([*quick_args(quick_registry, "dedup-ft"), "--db", str(db)]) == 0
    with duckdb.connect(str(db), read_only=True) as con:
        (run_id, reason), = con.execute("SELECT run_id, own_recipe FROM runs").fetchall()
        rows, distinct = con.execute("SELECT sum(repeats), count(*) FROM examples WHERE split = 'member'").fetchone()
        stored = dict(con.execute("SELECT role, training FROM models").fetchall())
    assert reason == "each member seen once per epoch (deduplicated)"
    assert rows > distinct  # synthetic-pii repeats some members: deduplication changes what the student sees
    # the quick preset: baseline and student 2 epochs of batch 16, the student over the distinct members only
    assert json.loads(stored["baseline"])["steps"] == 2 * -(-rows // 16)
    assert json.loads(stored["student"]) == {"epochs": 2, "lr": 0.003, "batch_size": 16, "warmup_ratio": 0.0,
                                             "weight_decay": 0.0, "schedule": "cosine", "steps": 2 * -(-distinct // 16),
                                             "epochs_run": 2, "kept_epoch": 2}  # scored on the validation split
    capsys.readouterr()
    assert main(["show", run_id, "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert re.search(r"own recipe +each member seen once per epoch \(deduplicated\)", out)
    assert "Recipes, as each role was trained:\n  teacher: 3 epochs, lr 0.003 cosine, batch 16, " in out
    assert f"  student: 2 epochs, lr 0.003 cosine, batch 16, {2 * -(-distinct // 16)} steps" in out
