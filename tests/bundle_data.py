"""A genuine submission bundle for a real board, built without training: every row consistent with
the board's dataset (synthetic-pii, small), its preset and a registered method, every figure from
its verdicts. The hostile-bundle tests start from it."""

from __future__ import annotations

import json
import math
from pathlib import Path

import duckdb
import torch

from harness.config import plugins, registry as registry_mod
from harness.contract.specs import resolve_params
from harness.leaderboard.snapshot import write_subset
from harness.measure.extract import Extraction
from harness.measure.metrics import ROLES, figures
from harness.protocol.data import content_hash
from harness.protocol.provenance import label, preset_dict
from harness.store.database import Store, config_hash
from tests.board_data import model_rows, sample_columns

N_MEMBERS, N_NONMEMBERS = 20, 10
BOARD = f"""
title = "small"
family = "tiny"
dataset = "synthetic-pii"
preset = "quick"
methods = ["soft-kd"]
dataset_args = {{n_members = {N_MEMBERS}, n_nonmembers = {N_NONMEMBERS}}}
"""
MEMORIZED = {"teacher": set(range(12)), "baseline": set(range(6)), "student": {0, 1, 2, 7}}
PPL = {"teacher": 20.0, "baseline": 30.0, "student": 31.0}


def _extraction(memorized: set[int], losses: list[float], suffix: int) -> Extraction:
    n = len(losses)
    mem = torch.tensor([i in memorized for i in range(n)])
    return Extraction(memorized=mem, match_len=torch.where(mem, suffix, 2), loss=torch.tensor(losses),
                      suffix_loss=torch.tensor(losses), ties=torch.zeros(n, dtype=torch.bool))


def add_genuine_run(store: Store, registry: Path, run_id: str = "20260101-000000-abcdef", method_name: str = "soft-kd",
                    seed: int = 0, student: set[int] | None = None) -> None:
    reg = registry_mod.load(registry)
    found = plugins.load(reg)
    preset, dataset, method = reg.preset("quick"), found.dataset("synthetic-pii"), found.method(method_name)
    ds_args = resolve_params(dataset.params, {"n_members": N_MEMBERS, "n_nonmembers": N_NONMEMBERS}, "dataset")
    split = dataset.load(ds_args)
    m_args = resolve_params(method.params, {}, "method")
    row = {"run_id": run_id, "family": "tiny", "dataset": "synthetic-pii", "method": method.name,
           "method_label": label(method, m_args), "method_args": json.dumps(m_args), "dataset_args": json.dumps(ds_args),
           "family_args": "{}", "teacher_access": method.teacher_access, "preset": "quick",
           "preset_values": json.dumps(preset_dict(preset)), "seed": seed, "example_limit": None,
           "prefix_len": preset.prefix_len, "suffix_len": preset.suffix_len, "n_members": N_MEMBERS,
           "n_nonmembers": N_NONMEMBERS, "dataset_hash": content_hash(dataset, split), "tokenizer_key": "tok0",
           "harness_version": "0.1.0", "git_commit": "abc1234"}
    row["config_hash"] = config_hash(row)
    store.start_run(row)
    sets = {**MEMORIZED, "student": MEMORIZED["student"] if student is None else student}
    on_m = {r: _extraction(sets[r], [1.0 + 0.01 * i for i in range(N_MEMBERS)], preset.suffix_len) for r in ROLES}
    on_n = {r: _extraction(set(), [math.log(PPL[r]) + 0.01 * i for i in range(N_NONMEMBERS)], preset.suffix_len)
            for r in ROLES}
    metrics = figures(on_m, on_n)
    metrics.update({f"auc_loss_{r}": 0.6 for r in ROLES})
    parts = (("member", "m", split.members, on_m), ("nonmember", "n", split.nonmembers, on_n))
    examples = [{"dataset_hash": row["dataset_hash"], "tokenizer_key": "tok0", "sample_id": f"{t}{i:06d}", "split": name,
                 "repeats": ex.repeats if name == "member" else 1, "kind": ex.kind,
                 "token_ids": [(i * 7 + j) % 50 for j in range(16)], "text": ex.text[:60]}
                for name, t, exs, _ in parts for i, ex in enumerate(exs)]
    samples = sample_columns([(name, t, on, [ex.repeats if name == "member" else 1 for ex in exs])
                              for name, t, exs, on in parts])
    models = model_rows(run_id, metrics, lambda r: f"/home/someone/cache/{r}")
    store.finish_run(run_id, models=models, examples=examples, samples=samples, metrics=metrics, stage_seconds={})


def genuine_bundle(folder: Path, registry: Path, **run) -> Path:
    """`harness export`'s own writer over a store holding one genuine run."""
    store = Store(folder / "results.duckdb")
    add_genuine_run(store, registry, **run)
    _, [(run_id,)] = store.query("SELECT run_id FROM runs ORDER BY started_at DESC LIMIT 1")
    bundle = folder / f"bundle-{run_id}.duckdb"
    con = duckdb.connect(str(store.path))  # the student's stored continuations of three members it did not memorize
    con.executemany("INSERT INTO continuations (run_id, role, sample_id, token_ids) VALUES (?, ?, ?, ?)",
                    [[run_id, "student", f"m{i:06d}", [1] * 8] for i in (10, 11, 13)])
    con.close()
    write_subset(store.path, bundle, [run_id], {"synthetic-pii"}, [("exported", run_id, "now")])
    return bundle
