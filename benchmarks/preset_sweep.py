"""How the embedded default preset was chosen: each setting tried, and what it gave.

Each setting overrides the `tiny` preset (pretraining corpus size, epochs and learning rates per
role); the script runs soft-kd (and hard-kd with --methods) on the default dataset for each seed
and prints the teacher, baseline and student memorization and validation perplexity, and whether
the default's targets hold (docs/protocol.md, "The embedded default"):

  teacher val ppl < baseline's;  soft-kd student's <= baseline's;  teacher memorizes 2-60%;
  soft-kd student memorizes at least 2x fewer members than the baseline.

    python benchmarks/preset_sweep.py                      # every setting below, seed 0
    python benchmarks/preset_sweep.py --only chosen --seeds 0 1 2
    python benchmarks/preset_sweep.py --quick                  # seconds: a check of the script

Runs share one cache (--cache), so a setting that only changes the student retrains nothing else.
`--quick` runs `chosen` alone, made small (QUICK_OVERRIDES: 8 + 8 tokens, 60 pretraining documents,
one or two epochs, 48 members), in a fresh temporary cache: its figures mean nothing.
"""

from __future__ import annotations

import argparse
import math
import re
import statistics
import sys
import tempfile
from pathlib import Path

import _quick  # benchmarks/_quick.py: this folder is first on sys.path

ROOT = Path(__file__).resolve().parent.parent

# name -> overrides of [presets.tiny] (top-level keys) and its role tables ("role.key")
SETTINGS: dict[str, dict[str, object]] = {
    "chosen": {},  # the shipped tiny preset (harness/config/defaults.toml): ft-3e-3-long
    "ft-lr-5e-4": {"teacher.lr": 5e-4, "baseline.lr": 5e-4, "student.lr": 5e-4,
                   "teacher.epochs": 3, "baseline.epochs": 4, "student.epochs": 4},
    "ft-lr-1e-3": {"teacher.lr": 1e-3, "baseline.lr": 1e-3, "student.lr": 1e-3,
                   "teacher.epochs": 3, "baseline.epochs": 4, "student.epochs": 4},
    "ft-lr-2e-3": {"teacher.lr": 2e-3, "baseline.lr": 2e-3, "student.lr": 2e-3,
                   "teacher.epochs": 3, "baseline.epochs": 4, "student.epochs": 4},
    "ft-2e-3-long": {"teacher.lr": 2e-3, "baseline.lr": 2e-3, "student.lr": 2e-3,
                     "teacher.epochs": 6, "baseline.epochs": 8, "student.epochs": 8},
    "ft-3e-3-long": {"teacher.lr": 3e-3, "baseline.lr": 3e-3, "student.lr": 3e-3,
                     "teacher.epochs": 4, "baseline.epochs": 6, "student.epochs": 6},
    # Towards the studies' regime: no member repeated, more members, longer fine-tuning (docs/protocol.md,
    # "Where the default's memorization comes from"). Each member is still seen once per epoch.
    "once-1k-4": {"dataset_args.repeat_share": 0.0, "dataset_args.n_members": 1024},
    "once-1k-12": {"dataset_args.repeat_share": 0.0, "dataset_args.n_members": 1024,
                   "teacher.epochs": 12, "baseline.epochs": 12, "student.epochs": 12},
    "once-1k-24": {"dataset_args.repeat_share": 0.0, "dataset_args.n_members": 1024,
                   "teacher.epochs": 24, "baseline.epochs": 24, "student.epochs": 24},
    # the teacher (4x the baseline's parameters) memorizes far faster: fewer epochs for it alone
    "once-1k-t14": {"dataset_args.repeat_share": 0.0, "dataset_args.n_members": 1024,
                    "teacher.epochs": 14, "baseline.epochs": 24, "student.epochs": 24},
    "once-1k-t16": {"dataset_args.repeat_share": 0.0, "dataset_args.n_members": 1024,
                    "teacher.epochs": 16, "baseline.epochs": 24, "student.epochs": 24},
    "once-1k-t18": {"dataset_args.repeat_share": 0.0, "dataset_args.n_members": 1024,
                    "teacher.epochs": 18, "baseline.epochs": 24, "student.epochs": 24},
    "once-2k-24": {"dataset_args.repeat_share": 0.0, "dataset_args.n_members": 2048,
                   "teacher.epochs": 24, "baseline.epochs": 24, "student.epochs": 24},
    "once-1k-48": {"dataset_args.repeat_share": 0.0, "dataset_args.n_members": 1024,
                   "teacher.epochs": 48, "baseline.epochs": 48, "student.epochs": 48},
}

# --quick: laid over each setting run, to make it a smoke run of seconds.
QUICK_OVERRIDES: dict[str, object] = {
    "prefix_len": 8, "suffix_len": 8, "approx_sample": 16, "pretrain_docs": 60,
    "teacher.epochs": 2, "baseline.epochs": 1, "student.epochs": 1,
    "dataset_args.n_members": 48, "dataset_args.n_nonmembers": 24,
}


def registry_with(base: str, overrides: dict[str, object]) -> str:
    """`base` (a registry.toml's text) with the tiny preset's keys replaced."""
    text = base
    for dotted, value in overrides.items():
        section, _, name = dotted.rpartition(".")
        header = "[presets.tiny" + (f".{section}" if section else "") + "]"
        if header not in text:  # a table the preset does not have yet (dataset_args)
            text = text.rstrip("\n") + f"\n\n{header}\n"
        start = text.index(header) + len(header)
        end = text.find("\n[", start)
        end = len(text) if end < 0 else end
        block = text[start:end]
        line = f"{name} = {value!r}".replace("'", '"')
        if re.search(rf"^{name} = .*$", block, flags=re.M):
            block = re.sub(rf"^{name} = .*$", line, block, flags=re.M)
        else:
            block = block.rstrip("\n") + f"\n{line}\n\n"
        text = text[:start] + block + text[end:]
    return text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="*", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--seeds", nargs="*", type=int, default=[0])
    parser.add_argument("--methods", nargs="*", default=["soft-kd"])
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "harness-preset-sweep")
    parser.add_argument("--registry", type=Path, default=None,
                        help="a registry whose [presets.tiny] blocks to start from (default: the shipped defaults)")
    args = _quick.options(parser, {"only": ["chosen"], "cache": None},
                          "`chosen` alone, made small, in a fresh temporary cache")
    if args.cache is None:  # --quick: a cache of its own, made only then
        args.cache = Path(tempfile.mkdtemp(prefix="harness-preset-sweep-"))

    import harness
    from harness.config import registry

    # the shipped tiny preset's blocks: a registry holding them replaces the preset by name
    text = (args.registry or registry.defaults_path()).read_text(encoding="utf-8")
    start = text.index("[presets.tiny]")
    end = text.index("\n[presets.", text.index("[presets.tiny.student]"))
    base = text[start:end] + "\n"
    args.cache.mkdir(parents=True, exist_ok=True)
    print("setting             method   seed  teacher mem/ppl   baseline mem/ppl  student mem/ppl   targets")
    for name in args.only:
        path = args.cache / f"registry-{name}.toml"
        path.write_text(registry_with(base, {**SETTINGS[name], **(QUICK_OVERRIDES if args.quick else {})}),
                        encoding="utf-8")
        for method in args.methods:
            rows = []
            for seed in args.seeds:
                req = harness.EvalRequest(method=method, seed=seed, registry=path, db=args.cache / "sweep.duckdb",
                                  cache_dir=args.cache / "cache", command=f"preset_sweep {name}")
                m = harness.evaluate(req).metrics
                rows.append(m)
                print(line(name, method, str(seed), m), flush=True)
            if len(rows) > 1:
                mean = {k: statistics.fmean(r[k] for r in rows) for k in rows[0] if not math.isnan(rows[0][k])}
                print(line(name, method, "mean", mean), flush=True)
    return 0


def line(name: str, method: str, seed: str, m: dict[str, float]) -> str:
    cells = [f"{m[f'mem_rate_{r}']:6.1%} {m[f'val_ppl_{r}']:7.2f}" for r in ("teacher", "baseline", "student")]
    return f"{name:19} {method:8} {seed:>4}  {cells[0]:16}  {cells[1]:16}  {cells[2]:16}  {verdict(m)}"


def verdict(m: dict[str, float]) -> str:
    """Which of the default's four targets hold (the last two need soft-kd)."""
    checks = {
        "T<B ppl": m["val_ppl_teacher"] < m["val_ppl_baseline"],
        "S<=B ppl": m["val_ppl_student"] <= m["val_ppl_baseline"],
        "T mem 2-60%": 0.02 <= m["mem_rate_teacher"] <= 0.60,
        "S 2x fewer": m["mem_rate_student"] * 2 <= m["mem_rate_baseline"],
    }
    return " ".join(("+" if ok else "-") + k for k, ok in checks.items())


if __name__ == "__main__":
    sys.exit(main())
