"""`harness sweep` against running the same cells one by one, each cold.

    python benchmarks/sweep.py [--methods hard-kd,soft-kd,reverse-kl] [--members 128] [--repeat 2] [--quick]

A sweep orders its cells so that all methods of one family, dataset and seed run together: the
first cell trains the teacher and the baseline into the cache and the others load them
(`harness.protocol.sweep`). The alternative is what a user without the sweep does: each cell as its own
`harness eval` in an empty cache, so every cell trains its own teacher and baseline. This script
runs a grid of --methods x tiny x synthetic-pii x seed 0 both ways in this one process, on a
small preset written to a temporary copy of registry.toml (so the whole script takes a minute or
two on 2 idle cores), with separate temporary caches and DuckDB files: the sweep's cells share
one cache (what `harness.protocol.sweep.run` does with the whole grid), each cold cell has its own. The
two paths run interleaved, cell by cell, each going first in turn, so load from other processes
falls on both alike; each of --repeat rounds starts from empty caches, and each cell's best time
over the rounds is kept. A small untimed run first pays the one-time imports.

It prints the line each cell prints (what came from the cache, what was trained), both total
times, checks that every method's student figures are the same both ways (same seed, same
data: the same teacher, so the same student), and ends with `ratio R.RRx`: the cold cells'
total time over the sweep's. `--quick` runs the same path in seconds, to check the script, not to
measure: hard-kd and soft-kd, 32 members, one round, on a smaller preset (QUICK_PRESET).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import math
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("HARNESS_PROGRESS", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import _quick  # benchmarks/_quick.py: this folder is first on sys.path

from harness import EvalRequest, evaluate
from harness.protocol import sweep

ROOT = Path(__file__).resolve().parents[1]

def bench_preset(length: int, docs: int, approx: int, epochs: tuple[int, int, int]) -> str:
    """[presets.bench-sweep]: `length` + `length` tokens, `docs` pretraining documents, (teacher, baseline,
    student) epochs; every role at lr 3e-3 with a 5% warm-up, batch 16 (32 to pretrain)."""
    def role(n: int, batch: int = 16) -> dict:
        return {"epochs": n, "lr": 3e-3, "batch_size": batch, "warmup_ratio": 0.05}
    return _quick.preset("bench-sweep", {"prefix_len": length, "suffix_len": length, "eval_batch_size": 64,
                                         "generate_batch_size": 64, "approx_sample": approx, "pretrain_docs": docs},
                         {"pretrain": role(1, 32), **dict(zip(("teacher", "baseline", "student"), map(role, epochs)))})


# The embedded default's shape, scaled down: shorter examples, fewer epochs, a small pretraining
# corpus (without pretrain_docs a preset pretrains each size on 20,000 documents, which would
# swamp the cells' own training).
PRESET = bench_preset(16, 500, 32, (4, 3, 3))
DESCRIBED = "16 + 16 tokens, 500 pretraining documents, epochs 4/3/3"

# --quick: the same path in seconds (the figures then mean nothing).
QUICK = {"methods": "hard-kd,soft-kd", "members": 32, "repeat": 1}
QUICK_PRESET = bench_preset(8, 60, 16, (2, 1, 1))
QUICK_DESCRIBED = "8 + 8 tokens, 60 pretraining documents, epochs 2/1/1"

# The figures that describe the student; each must be the same both ways.
STUDENT_FIGURES = ("mem_rate_student", "nonmember_rate_student", "val_loss_student", "teacher_exclusive",
                   "inherited", "inheritance_rate", "student_only", "auc_loss_student")


def quiet(fn):
    """Run fn with the harness's stderr log kept, shown only if it fails."""
    buf = io.StringIO()
    try:
        with contextlib.redirect_stderr(buf):
            return fn()
    except BaseException:
        sys.stderr.write(buf.getvalue()[-4000:])
        raise


def same(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", default="hard-kd,soft-kd,reverse-kl")
    parser.add_argument("--members", type=int, default=128, help="synthetic-pii members (non-members: half as many)")
    parser.add_argument("--repeat", type=int, default=2, help="rounds, each from empty caches; each cell's best kept")
    opts = _quick.options(parser, QUICK, "hard-kd and soft-kd, 32 members, one round, a smaller preset")
    preset, described = (QUICK_PRESET, QUICK_DESCRIBED) if opts.quick else (PRESET, DESCRIBED)
    methods = [m.strip() for m in opts.methods.split(",") if m.strip()]

    with tempfile.TemporaryDirectory(prefix="bench-sweep-") as tmp:
        tmp = Path(tmp)
        registry = tmp / "registry.toml"
        registry.write_text((ROOT / "registry.toml").read_text() + preset)
        data = {"n_members": str(opts.members), "n_nonmembers": str(max(1, opts.members // 2))}
        base = EvalRequest(method="", preset="bench-sweep", registry=registry, dataset_args=data,
                           db=tmp / "sweep.duckdb", cache_dir=tmp / "sweep-cache", command="benchmarks/sweep.py")
        cells = sweep.grid(base, methods, ["tiny"], ["synthetic-pii"], [0])

        # Untimed warm-up: imports and first-call costs, on a handful of examples in its own cache.
        quiet(lambda: evaluate(replace(base, method=cells[0].method, limit=8, db=tmp / "warm.duckdb",
                                       cache_dir=tmp / "warm-cache"), rerun=True))

        import torch

        print(f"{len(cells)} cells: {', '.join(c.method for c in cells)} x tiny x synthetic-pii x seed 0; "
              f"{opts.members} members, preset bench-sweep ({described}); "
              f"torch {torch.__version__}, {torch.get_num_threads()} threads")

        # The two paths are interleaved cell by cell, each going first in turn, so that load from other
        # processes on the machine falls on both alike; the sweep's cells share one cache, as in `sweep.run`.
        # Each round starts from empty caches; each cell's best time over the rounds is kept.
        best: dict[tuple[str, int], float] = {}
        for round_ in range(opts.repeat):
            swept, cold, lines = [], [], {"sweep": [], "cold": []}
            sweep_base = replace(base, db=tmp / f"sweep-{round_}.duckdb", cache_dir=tmp / f"sweep-{round_}-cache")
            for i, cell in enumerate(cells, 1):
                own = replace(base, db=tmp / f"cold-{round_}-{i}.duckdb", cache_dir=tmp / f"cold-{round_}-{i}-cache")
                for label in (("sweep", "cold") if (i + round_) % 2 else ("cold", "sweep")):
                    req = sweep_base if label == "sweep" else own
                    t0 = time.perf_counter()
                    [outcome] = quiet(lambda req=req, cell=cell: sweep.run(req, [cell], report=lambda line: None))
                    if outcome.result is None:
                        sys.exit(f"{label} cell {cell} failed: {outcome.error}")
                    best[label, i] = min(best.get((label, i), math.inf), time.perf_counter() - t0)
                    (swept if label == "sweep" else cold).append(outcome)
                    lines[label].append(f"[{i}/{len(cells)}] {outcome.line()}")
        seconds = {label: sum(best[label, i] for i in range(1, len(cells) + 1)) for label in ("sweep", "cold")}
        t_sweep, t_cold = seconds["sweep"], seconds["cold"]
        print(f"(the lines of the last of {opts.repeat} rounds; totals are the sums of each cell's best time)")
        print("\n== harness sweep (one cache: teacher and baseline trained by the first cell)")
        print("\n".join(lines["sweep"]))
        print("\n== each cell cold (its own empty cache)")
        print("\n".join(lines["cold"]))

        print("\nstudent figures, sweep = cold:")
        disagree = 0
        for s, c in zip(swept, cold):
            assert s.cell == c.cell
            shown, diffs = [], []
            for name in STUDENT_FIGURES:
                a, b = s.result.metrics.get(name, math.nan), c.result.metrics.get(name, math.nan)
                shown.append(f"{name} {a:.4g}")
                if not same(a, b):
                    diffs.append(f"{name}: sweep {a!r} cold {b!r}")
            disagree += len(diffs)
            print(f"  {s.cell.method:<11} {'agree' if not diffs else 'DIFFER'}: {', '.join(shown)}")
            for d in diffs:
                print(f"    {d}")
        print(f"{disagree} figures differ" if disagree else "every student figure is identical both ways")
        print(f"\nsweep (teacher and baseline trained once): {t_sweep:7.1f} s")
        print(f"cold cells (each trains all three models):  {t_cold:7.1f} s")
    print(f"ratio {t_cold / t_sweep:.2f}x")


if __name__ == "__main__":
    main()
