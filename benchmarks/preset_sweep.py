"""How the shipped presets were chosen: each setting tried, and what it gave.

Each setting overrides a preset (`--base`: `tiny`, the embedded default, or `tiny-studies`, the
studies' regime) in its pretraining, epochs and learning rates; the script runs soft-kd (and
hard-kd with --methods) on the default dataset for each seed and prints each role's exact-match
memorization, its share extractable by sampling and its perplexity on the validation split, which
alone chooses: the non-members, the attacks' negatives, are never looked at. Then whether the
preset's targets hold (docs/protocol.md, "The embedded default" and "The studies' regime"):

  tiny:          teacher memorizes 2-60% (the memorizing model the students distil);  soft-kd
                 student's val ppl within the board's 10% utility band of the baseline's.
  tiny-studies:  teacher val ppl < baseline's;  the start's within 2x of the baseline's (light
                 fine-tuning);  teacher memorizes 1-10% by exact match or by extraction.

    python benchmarks/preset_sweep.py                      # every setting of tiny, seed 0
    python benchmarks/preset_sweep.py --base tiny-studies --only chosen lr-3e-3
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

# The tiny preset before the validation split (2026-12-06): every role a fixed budget at lr 3e-3,
# chosen, as the settings below it, by looking at the non-members (docs/protocol.md says what changed).
BEFORE_VALIDATION = {"baseline.lr": 3e-3, "baseline.epochs": 6, "baseline.patience": 0,
                     "student.lr": 3e-3, "student.epochs": 6, "student.patience": 0}

# name -> overrides of [presets.tiny] (top-level keys) and its role tables ("role.key"); the
# settings tried before the validation split are laid over BEFORE_VALIDATION (below)
_EARLIER: dict[str, dict[str, object]] = {
    "ft-3e-3-long": {},  # the preset shipped before the validation split
    "ft-lr-5e-4": {"teacher.lr": 5e-4, "baseline.lr": 5e-4, "student.lr": 5e-4,
                   "teacher.epochs": 3, "baseline.epochs": 4, "student.epochs": 4},
    "ft-lr-1e-3": {"teacher.lr": 1e-3, "baseline.lr": 1e-3, "student.lr": 1e-3,
                   "teacher.epochs": 3, "baseline.epochs": 4, "student.epochs": 4},
    "ft-lr-2e-3": {"teacher.lr": 2e-3, "baseline.lr": 2e-3, "student.lr": 2e-3,
                   "teacher.epochs": 3, "baseline.epochs": 4, "student.epochs": 4},
    "ft-2e-3-long": {"teacher.lr": 2e-3, "baseline.lr": 2e-3, "student.lr": 2e-3,
                     "teacher.epochs": 6, "baseline.epochs": 8, "student.epochs": 8},
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

TINY: dict[str, dict[str, object]] = {
    # the shipped tiny preset (harness/config/defaults.toml): the teacher as before; the baseline
    # and students at lr 1e-3 to their best validation loss
    "chosen": {},
    **{name: {**BEFORE_VALIDATION, **o} for name, o in _EARLIER.items()},
    # the baseline chosen on the validation split (2026-12-06): trained to its best validation loss
    "baseline-stop": {**BEFORE_VALIDATION, "baseline.patience": 2},
    "baseline-1e-3-stop": {**BEFORE_VALIDATION, "baseline.lr": 1e-3, "baseline.epochs": 12, "baseline.patience": 2},
    # the baseline and the students under one rule, chosen on validation; the teacher as shipped, a
    # fixed budget that memorizes the repeated members (what the students may inherit)
    "students-stop": {**BEFORE_VALIDATION, "baseline.patience": 2, "baseline.epochs": 12,
                      "student.patience": 2, "student.epochs": 12},  # as `chosen`, at lr 3e-3
    # every role to its best validation loss: the baseline's rule for the students (and teacher) too
    "all-stop": {**BEFORE_VALIDATION, "teacher.patience": 2, "baseline.patience": 2, "student.patience": 2},
    "all-1e-3-stop": {"teacher.lr": 1e-3, "baseline.lr": 1e-3, "student.lr": 1e-3, "teacher.epochs": 12,
                      "baseline.epochs": 12, "student.epochs": 12, "teacher.patience": 2, "baseline.patience": 2,
                      "student.patience": 2},
}

# name -> overrides of [presets.tiny-studies]; every setting is judged on the validation split alone.
STUDIES: dict[str, dict[str, object]] = {
    "chosen": {},  # the shipped tiny-studies preset: lr 1e-3; teacher 3 epochs, the others patience 2; 4,000 domain texts
    "teacher-stop": {"teacher.patience": 2, "teacher.epochs": 12},  # the teacher early-stopped too
    "lr-3e-3": {"teacher.lr": 3e-3, "baseline.lr": 3e-3, "student.lr": 3e-3},
    "lr-3e-4": {"teacher.lr": 3e-4, "baseline.lr": 3e-4, "student.lr": 3e-4},
    "no-domain": {"pretrain_domain_docs": 0},  # the generic start: all of the domain learned from the members
    "fixed-3": {"teacher.patience": 0, "baseline.patience": 0, "student.patience": 0,  # the studies' 3 epochs
                "teacher.epochs": 3, "baseline.epochs": 3, "student.epochs": 3},
    # the teacher trained past its best validation loss, a fixed budget: what memorizing members seen
    # once costs it in validation perplexity
    "teacher-16": {"teacher.patience": 0, "teacher.epochs": 16},
    "teacher-8": {"teacher.patience": 0, "teacher.epochs": 8},
}
BASES = {"tiny": TINY, "tiny-studies": STUDIES}
SETTINGS = {**TINY, **STUDIES}  # --only's choices: a name of the --base's settings

# --quick: laid over each setting run, to make it a smoke run of seconds.
QUICK_OVERRIDES: dict[str, object] = {
    "prefix_len": 8, "suffix_len": 8, "approx_sample": 16, "pretrain_docs": 60,
    "teacher.epochs": 2, "baseline.epochs": 1, "student.epochs": 1,
    "dataset_args.n_members": 48, "dataset_args.n_nonmembers": 24, "dataset_args.n_validation": 24,
}
QUICK_DOMAIN = {"pretrain_domain_docs": 60}  # tiny-studies' domain texts, as few


def registry_with(base: str, overrides: dict[str, object], preset: str = "tiny") -> str:
    """`base` (a registry.toml's text) with `preset`'s keys replaced."""
    text = base
    for dotted, value in overrides.items():
        section, _, name = dotted.rpartition(".")
        header = f"[presets.{preset}" + (f".{section}" if section else "") + "]"
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
    parser.add_argument("--base", default="tiny", choices=list(BASES), help="the preset whose settings are tried")
    parser.add_argument("--only", nargs="*", default=None, choices=list(SETTINGS),
                        help="settings of --base to run (default: all of them)")
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

    settings = BASES[args.base]
    only = args.only if args.only is not None else list(settings)
    unknown = [name for name in only if name not in settings]
    if unknown:
        parser.error(f"{unknown[0]} is not a setting of --base {args.base}; valid: {', '.join(settings)}")
    # the shipped preset's blocks (and tiny's, which tiny-studies inherits): a registry holding them
    # replaces the preset by name
    text = (args.registry or registry.defaults_path()).read_text(encoding="utf-8")
    base = "".join(block(text, name) for name in dict.fromkeys(("tiny", args.base)))
    args.cache.mkdir(parents=True, exist_ok=True)
    print("setting             method   seed  " + "  ".join(f"{r} mem/extr/ppl/epoch".ljust(COLUMN)
                                                            for r in ("teacher", "baseline", "student"))
          + "  start ppl  targets")
    for name in only:
        path = args.cache / f"registry-{args.base}-{name}.toml"
        quick = {**QUICK_OVERRIDES, **(QUICK_DOMAIN if args.base == "tiny-studies" else {})} if args.quick else {}
        path.write_text(registry_with(base, {**settings[name], **quick}, args.base), encoding="utf-8")
        for method in args.methods:
            rows = []
            for seed in args.seeds:
                req = harness.EvalRequest(method=method, seed=seed, registry=path, db=args.cache / "sweep.duckdb",
                                          cache_dir=args.cache / "cache", preset=args.base,
                                          command=f"preset_sweep --base {args.base} {name}")
                run = harness.evaluate(req)
                m = run.metrics
                rows.append(m)
                kept = {role: info.training.get("kept_epoch") for role, info in run.result.models.items()} \
                    if run.result is not None else {}
                print(line(name, method, str(seed), m, kept, args.base), flush=True)
            if len(rows) > 1:
                mean = {k: statistics.fmean(r[k] for r in rows) for k in rows[0] if not math.isnan(rows[0][k])}
                print(line(name, method, "mean", mean, {}, args.base), flush=True)
    return 0


COLUMN = 27


def block(text: str, preset: str) -> str:
    """`preset`'s tables in a registry's text: from its header to the next header not its own."""
    start = text.index(f"[presets.{preset}]")
    end = start
    while (end := text.find("\n[presets.", end + 1)) >= 0 and text.startswith(f"\n[presets.{preset}.", end):
        pass
    return text[start:end if end >= 0 else len(text)] + "\n"


def line(name: str, method: str, seed: str, m: dict[str, float], kept: dict, base: str) -> str:
    cells = []
    for r in ("teacher", "baseline", "student"):
        extractable = m.get(f"extractable_rate_{r}", math.nan)
        epoch = kept.get(r)
        cells.append(f"{m[f'mem_rate_{r}']:5.1%} {extractable:5.1%} {m[f'val_ppl_{r}']:6.2f} "
                     f"{epoch if epoch is not None else '-':>3}".ljust(COLUMN))
    start = m.get("val_ppl_start_student", math.nan)
    return f"{name:19} {method:8} {seed:>4}  {'  '.join(cells)}  {start:9.2f}  {verdict(m, base)}"


def verdict(m: dict[str, float], base: str) -> str:
    """Which of the preset's targets hold (tiny's band needs soft-kd)."""
    from harness.measure.metrics import UTILITY_SLACK
    if base == "tiny-studies":
        teacher = max(m["mem_rate_teacher"], m.get("extractable_rate_teacher", 0.0))
        checks = {
            "T<B ppl": m["val_ppl_teacher"] < m["val_ppl_baseline"],
            "start<=2xB": m.get("val_ppl_start_student", math.inf) <= 2 * m["val_ppl_baseline"],
            "T mem 1-10%": 0.01 <= teacher <= 0.10,
        }
    else:
        checks = {
            "T mem 2-60%": 0.02 <= m["mem_rate_teacher"] <= 0.60,
            "S ppl in band": m["val_ppl_student"] <= (1 + UTILITY_SLACK) * m["val_ppl_baseline"],
        }
    return " ".join(("+" if ok else "-") + k for k, ok in checks.items())


if __name__ == "__main__":
    sys.exit(main())
