"""A results database built row by row through harness.store.database: known verdicts, no training."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from harness.measure.extract import Extraction
from harness.measure.metrics import ROLES, figures
from harness.store.database import Store, config_hash

N_MEMBERS, N_NONMEMBERS, PREFIX, SUFFIX = 20, 10, 4, 4
PRESET = {"prefix_len": PREFIX, "suffix_len": SUFFIX}
# Members memorized by the teacher and the baseline, the same in every run (they are shared).
TEACHER, BASELINE = set(range(12)), set(range(6))
# What each method's student memorized, and what it reads from the teacher.
METHODS = {"soft-kd": ("logits", {0, 1}), "hard-kd": ("text", {0, 1, 2, 3, 4, 6, 7, 8}),
           "topk-kd": ("top-k logits", {0, 1, 2, 3, 4})}
VAL_PPL = {"teacher": 20.0, "baseline": 30.0, "soft-kd": 31.0, "hard-kd": 33.0, "topk-kd": 29.0}



def sample_columns(parts) -> dict[str, list]:
    """The `samples` table's columns from (split, id prefix, extraction per role, repeats) per split."""
    samples: dict[str, list] = {k: [] for k in ("role", "sample_id", "split", "repeats", "memorized", "match_len",
                                                "loss", "suffix_loss", "tie")}
    for role in ROLES:
        for split, t, on, repeats in parts:
            res = on[role]
            n = len(res.memorized)
            samples["role"] += [role] * n
            samples["sample_id"] += [f"{t}{i:06d}" for i in range(n)]
            samples["split"] += [split] * n
            samples["repeats"] += repeats
            samples["memorized"] += res.memorized.tolist()
            samples["match_len"] += res.match_len.tolist()
            samples["loss"] += res.loss.tolist()
            samples["suffix_loss"] += res.suffix_loss.tolist()
            samples["tie"] += res.ties.tolist()
    return samples


def model_rows(run_id: str, metrics: dict[str, float], path) -> list[dict]:
    """One `models` row per role, `artifact_path` a function of the role (or None)."""
    return [{"run_id": run_id, "role": r, "model_name": f"tiny-{r}", "size": "2.6m" if r == "teacher" else "0.6m",
             "n_params": 1000, "artifact_key": f"k-{r}", "artifact_path": None if path is None else path(r),
             "cached": False, "train_seconds": 1.0, "val_loss": metrics[f"val_loss_{r}"],
             "val_ppl": metrics[f"val_ppl_{r}"]} for r in ROLES]

def token_ids(i: int) -> list[int]:
    return [(i * 7 + j) % 50 for j in range(PREFIX + SUFFIX)]


def continuation(role: str, method: str, i: int) -> list[int]:
    """The stored greedy continuation: the true suffix where memorized, else wrong from token 2 on."""
    memorized = {"teacher": TEACHER, "baseline": BASELINE, "student": METHODS[method][1]}[role]
    true = token_ids(i)[PREFIX:]
    return true if i in memorized else true[:2] + [49] * (SUFFIX - 2)


def _extraction(memorized: set[int], n: int, loss: float) -> Extraction:
    mem = torch.tensor([i in memorized for i in range(n)])
    match = torch.where(mem, SUFFIX, 2)
    return Extraction(memorized=mem, match_len=match, loss=torch.full((n,), loss) + torch.arange(n) * 0.01,
                      suffix_loss=torch.full((n,), loss), ties=torch.zeros(n, dtype=torch.bool))


def add_run(store: Store, run_id: str, method: str, seed: int = 0, dataset: str = "synthetic-pii",
            status: str = "finished", family: str = "tiny", family_args: str | None = "{}",
            student: set[int] | None = None) -> None:
    """One run; `family_args` None stores NULL (a run from before family arguments), `student` overrides
    what the method's student memorized."""
    access, memorized = METHODS[method]
    student = memorized if student is None else student
    row = {"run_id": run_id, "family": family, "dataset": dataset, "method": method, "method_label": method,
           "method_args": "{}", "dataset_args": "{}", "teacher_access": access, "preset": "quick",
           "preset_values": json.dumps(PRESET), "seed": seed, "example_limit": None, "prefix_len": PREFIX,
           "suffix_len": SUFFIX, "n_members": N_MEMBERS, "n_nonmembers": N_NONMEMBERS, "dataset_hash": "dh0",
           "tokenizer_key": "tok0", "harness_version": "0.1.0", "git_commit": "abc1234"}
    if family_args is not None:
        row["family_args"] = family_args
    row["config_hash"] = config_hash(row)
    store.start_run(row)
    if status != "finished":
        store.fail_run(run_id, "ValueError: boom")
        return
    sets = {"teacher": TEACHER, "baseline": BASELINE, "student": student}
    ppl = {"teacher": VAL_PPL["teacher"], "baseline": VAL_PPL["baseline"], "student": VAL_PPL[method]}
    import math
    on_m = {r: _extraction(sets[r], N_MEMBERS, 1.0) for r in ROLES}
    on_n = {r: _extraction(set(), N_NONMEMBERS, math.log(ppl[r])) for r in ROLES}
    for r in ROLES:  # the non-member loss must average to log(val_ppl)
        on_n[r] = Extraction(on_n[r].memorized, on_n[r].match_len, torch.full((N_NONMEMBERS,), math.log(ppl[r])),
                             on_n[r].suffix_loss, on_n[r].ties)
    metrics = figures(on_m, on_n)
    examples = [{"dataset_hash": "dh0", "tokenizer_key": "tok0", "sample_id": f"{t}{i:06d}", "split": split,
                 "repeats": 1 + i % 3, "kind": "record", "token_ids": token_ids(i), "text": f"text of {t}{i}"}
                for split, t, n in (("member", "m", N_MEMBERS), ("nonmember", "n", N_NONMEMBERS)) for i in range(n)]
    parts = [(split, t, on, [1 + i % 3 for i in range(len(on[ROLES[0]].memorized))])
             for split, t, on in (("member", "m", on_m), ("nonmember", "n", on_n))]
    samples = sample_columns(parts)
    models = model_rows(run_id, metrics, None)
    store.finish_run(run_id, models=models, examples=examples, samples=samples, metrics=metrics, stage_seconds={})
    with store.writing() as con:  # what `harness leaderboard publish` adds for the drill-down
        con.execute("CREATE TABLE IF NOT EXISTS continuations (run_id VARCHAR, role VARCHAR, sample_id VARCHAR, "
                    "token_ids INTEGER[])")
        con.execute("CREATE TABLE IF NOT EXISTS vocab (tokenizer_key VARCHAR, token_id INTEGER, piece VARCHAR)")
        if con.execute("SELECT count(*) FROM vocab").fetchone()[0] == 0:
            con.executemany("INSERT INTO vocab VALUES ('tok0', ?, ?)", [[i, f"w{i} "] for i in range(50)])
        con.executemany("INSERT INTO continuations (run_id, role, sample_id, token_ids) VALUES (?, ?, ?, ?)",
                        [[run_id, r, f"m{i:06d}", continuation(r, method, i)] for r in ROLES for i in range(N_MEMBERS)])


def build(path: Path, methods=("soft-kd", "hard-kd"), failed: bool = False) -> Path:
    store = Store(path)
    for method in methods:
        add_run(store, f"run-{method}", method)
    if failed:
        add_run(store, "run-failed", "soft-kd", seed=1, status="failed")
    return path
