"""The `harness` command: parse, call, print. Every user error is one line and exit status 2.

Each command is one block below, its parser `_NAME_parser` beside its handler `cmd_NAME`, and one
line in COMMANDS, the table `build_parser` and `main` read."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from harness.present.formats import LINE_CHARS, one_line
from harness.protocol import fields
from harness.runtime import log


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not usage + message
        # one line whatever the user typed or a file held: escaped and bounded, as every label is
        print(one_line(f"{self.prog}: error: {message} (see {self.prog} --help)", LINE_CHARS), file=sys.stderr)
        sys.exit(2)


def _whole(low: int, high: int | None = None):
    """An argparse type: a whole number from `low` (to `high`), refused in one line before any command starts,
    by the check an EvalRequest makes of its own fields (`harness.protocol.fields`)."""
    def whole(raw: str) -> int:
        n = int(raw)  # not a number: argparse says "invalid int value", as for a plain int
        problem = fields.whole_problem(n, low, high)
        if problem:
            raise argparse.ArgumentTypeError(problem)
        return n

    whole.__name__ = "int"
    return whole


MAX_SEEDS = 1000  # --seeds N, for every command that takes it


SEED_COUNT = _whole(1, MAX_SEEDS)  # `--seeds N`: eval, sweep and reproduce


SEED = _whole(*fields.SEED)  # EvalRequest.seed's range: what numpy's and torch's generators take


COUNT = _whole(*fields.LIMIT)  # --limit N: EvalRequest.limit's


def _fraction(raw: str) -> float:
    """`--mfu U`: above 0 and at most 1."""
    u = float(raw)
    if not 0 < u <= 1:
        raise argparse.ArgumentTypeError(f"must be above 0 and at most 1, got {u}")
    return u


_fraction.__name__ = "float"


def _terabytes(raw: str) -> float:
    """`--disk TB`: 0 to 1,000,000."""
    tb = float(raw)
    if not 0 <= tb <= 1e6:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1000000 TB, got {tb}")
    return tb


_terabytes.__name__ = "float"


def _shard(raw: str) -> tuple[int, int]:
    """`--shard I/N`: this machine's share I of N, 1 <= I <= N."""
    index, _, count = raw.partition("/")
    if not (index.isdigit() and count.isdigit() and 1 <= int(index) <= int(count)):
        raise argparse.ArgumentTypeError(f"expected I/N with 1 <= I <= N (this machine's share of N), got {raw!r}")
    return int(index), int(count)


def _methods(raw: str) -> list[str]:
    """`compare --methods A,B`: two or more different methods."""
    methods = [m.strip() for m in raw.split(",") if m.strip()]
    if len(methods) < 2 or len(set(methods)) != len(methods):
        raise argparse.ArgumentTypeError(f"needs two or more different methods, got {raw!r}")
    return methods


def _seed_list(raw: str) -> list[int]:
    """`compare --seeds S,S`: the seeds to compare at."""
    try:
        return [int(s) for s in raw.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {raw!r}") from None


def _key_value(raw: str) -> tuple[str, str]:
    if "=" not in raw or raw.startswith("="):
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {raw!r}")
    k, v = raw.split("=", 1)
    return k.strip(), v


def _attack_key_value(raw: str) -> tuple[str, str, str]:
    """ATTACK.KEY=VALUE: the attack's name may hold dots and dashes, the key is after the last dot."""
    key, _, value = raw.partition("=")
    name, dot, param = key.strip().rpartition(".")
    if "=" not in raw or not dot or not name or not param:
        raise argparse.ArgumentTypeError(f"expected ATTACK.KEY=VALUE, got {raw!r}")
    return name, param, value


def attack_args(given: list[tuple[str, str, str]]) -> dict[str, dict[str, str]]:
    return fields.attack_pairs(given)


def pairs(args, flag: str) -> dict[str, str]:
    """The repeated KEY=VALUE option `flag` (--method-arg) as a mapping; a key given twice is one line."""
    return fields.pairs(flag, getattr(args, flag.lstrip("-").replace("-", "_")))


DB_HELP = "DuckDB results file (default results/harness.duckdb or $HARNESS_DB)"


CACHE_HELP = "artifact cache (default ~/.cache/harness or $HARNESS_CACHE)"


def _add_target(p: argparse.ArgumentParser) -> None:
    """--family, --dataset, --preset: what every command that runs or prices the protocol takes."""
    p.add_argument("--family", help="model family (default: the registry's [defaults] family)")
    p.add_argument("--dataset", help="dataset (default: the registry's [defaults] dataset)")
    p.add_argument("--preset", help="protocol preset (default: the family's)")


def _add_where(p: argparse.ArgumentParser) -> None:
    """--db and --cache-dir: where results and artifacts go."""
    p.add_argument("--db", type=Path, help=DB_HELP)
    p.add_argument("--cache-dir", type=Path, help=CACHE_HELP)


def _add_pairs(p: argparse.ArgumentParser, *flags: tuple[str, str]) -> None:
    """Repeatable KEY=VALUE options (--method-arg, --dataset-arg, --family-arg)."""
    for flag, what in flags:
        p.add_argument(flag, type=_key_value, action="append", default=[], metavar="KEY=VALUE", help=what)


def _db(args) -> Path:
    from harness.store.database import default_path

    return args.db or default_path()


def _boards(args) -> tuple[Path, str]:
    """The leaderboards/ folder this command acts on and how it was found: a reviewer must know which checkout."""
    from harness.leaderboard import board_specs

    folder, how = board_specs.find_boards(args.leaderboards)
    return folder, f"{folder} (from {how})"


class Command(NamedTuple):
    """One `harness` command: `parser(sub, name)` adds its subparser and arguments to `sub`, `handler(args, argv)`
    runs it and returns the exit status. Each is defined below as a pair, `_NAME_parser` beside `cmd_NAME`."""
    parser: Callable[[Any, str], None]
    handler: Callable[[argparse.Namespace, list[str]], int]


# -- harness eval --
EPILOG_EVAL = """\
examples:
  harness eval --method hard-kd                      the embedded default (tiny GPT-NeoX, synthetic-pii)
  harness eval --method soft-kd --method-arg temperature=4
  harness eval --method soft-kd --dataset text-files --dataset-arg path=corpus.txt --limit 200

The teacher and the baseline are cached: a second method on the same family, dataset and seed
trains only its student. Results go to --db; see them with `harness show latest` and
`harness leaderboard`.
"""


def _eval_parser(sub, name: str) -> None:
    ev = sub.add_parser(name, help="run the standard protocol for one KD method", epilog=EPILOG_EVAL,
                        formatter_class=argparse.RawDescriptionHelpFormatter,
                        description="Train (or load from the cache) the teacher and the baseline, distil a student "
                        "with --method, test all three for memorization of the members, and store the figures.")
    ev.add_argument("--method", required=True, help="KD method (see `harness list`)")
    _add_target(ev)
    ev.add_argument("--seed", type=SEED, default=0, help="training seed (default 0)")
    _add_where(ev)
    _add_pairs(ev, ("--method-arg", "a method parameter; repeat for several (see `harness list`)"),
               ("--dataset-arg", "a dataset parameter, e.g. path=corpus.txt for text-files"),
               ("--family-arg", "a family parameter, e.g. weights=scratch (see `harness list`)"))
    ev.add_argument("--limit", type=COUNT, metavar="N", help="use only the first N members and N non-members: a "
                    "quick trial, marked as limited; a published board refuses it")
    ev.add_argument("--attack-arg", type=_attack_key_value, action="append", default=[], metavar="ATTACK.KEY=VALUE",
                    help="a membership attack's parameter, e.g. min-k.k=0.1; repeat for several (see `harness list`)")
    ev.add_argument("--seeds", type=SEED_COUNT, default=1, metavar="N",
                    help="run seeds --seed .. --seed+N-1 and store mean and 95%% interval of every figure, "
                    "and the members memorized at every seed (default 1)")
    ev.add_argument("--reference", metavar="MODEL",
                    help="a model folder or hub id (same tokenizer) as every role's reference for the "
                    "reference attack (default: the student-size model before fine-tuning, which never saw a "
                    "member)")
    ev.add_argument("--filter", metavar="predicted|random|matched",
                    help="`predicted`: fit the memorization predictor on the unfiltered run (running it if "
                    "needed), leave the members it flags out of distillation, and compare; `random` and "
                    "`matched`, its controls: leave out as many members, at random or at random within each "
                    "repeat stratum")
    ev.add_argument("--ignore-plan", action="store_true",
                    help="start even when the plan printed first says the run cannot fit this machine")
    ev.add_argument("--trust-remote-code", action="store_true",
                    help="let a hub family run the model code its checkpoints ship (off by default; "
                    "recorded in the run's provenance)")


def cmd_eval(args, argv) -> int:
    from harness.errors import UsageError

    if args.seed + args.seeds > 2**32:
        raise UsageError(f"--seed {args.seed} with --seeds {args.seeds} runs past the largest seed, 2**32 - 1")
    log.quiet_libraries()
    from harness.present.run_report import eval_report
    from harness.protocol.request import EvalRequest
    from harness.protocol.run import Protocol
    from harness.runtime.cache import default_dir

    req = EvalRequest(method=args.method, family=args.family, dataset=args.dataset, preset=args.preset,
                      seed=args.seed, db=_db(args), cache_dir=args.cache_dir or default_dir(),
                      method_args=pairs(args, "--method-arg"), dataset_args=pairs(args, "--dataset-arg"),
                      family_args=pairs(args, "--family-arg"), attack_args=attack_args(args.attack_arg), limit=args.limit,
                      registry=args.registry, command=shlex.join(["harness", *argv]),
                      trust_remote_code=args.trust_remote_code, reference=args.reference, filter=args.filter,
                      ignore_plan=args.ignore_plan)
    if args.seeds > 1:
        return _eval_seeds(req, args.seeds)
    protocol = Protocol(req)
    result = protocol.run()
    print(eval_report(protocol.setup, req, result))
    return 0


def _eval_seeds(req, count: int) -> int:
    from harness.present.run_report import seeds_report
    from harness.protocol.seeds import run_seeds

    print(seeds_report(req, run_seeds(req, count)))
    return 0


# -- harness reproduce --
def _reproduce_parser(sub, name: str) -> None:
    rp = sub.add_parser(name, help="the studies' findings measured here, beside the published figures",
                        formatter_class=argparse.RawDescriptionHelpFormatter,
                        description="Run (or read from the results) soft KD, hard KD, reverse KL, and hard KD with "
                        "the predicted members filtered out beside its two controls (as many left out at random, "
                        "and at random within each repeat stratum), at each seed; print one row per published "
                        "finding: the claim's band in its own words, the study's figure and source, the figure "
                        "measured here with its 95% interval (pooled counts, or a bootstrap over examples and "
                        "seeds), its magnitude against the published figure, and a verdict: holds, fails, not "
                        "established or n/a with the reason. Stored in the results (table reproductions).",
                        epilog="examples:\n  harness reproduce                        # the embedded default, seeds 0-2\n"
                        "  harness reproduce --seeds 1              # one seed: no interval\n"
                        "  harness reproduce --preset tiny-once     # members seen once, as in the studies\n"
                        "  harness reproduce --preset tiny-public   # Zhang et al.: students on a public half\n"
                        "  harness reproduce --family pythia --dataset fineweb --dataset-arg members=10000")
    _add_target(rp)
    rp.add_argument("--seeds", type=SEED_COUNT, default=3, metavar="N", help="seeds 0..N-1 (default 3)")
    _add_where(rp)
    _add_pairs(rp, ("--dataset-arg", "a dataset parameter"), ("--family-arg", "a family parameter, e.g. weights=scratch"))


def cmd_reproduce(args, argv) -> int:

    log.quiet_libraries()
    from harness.present.reproduce_report import report
    from harness.protocol.reproduce import reproduce
    from harness.protocol.request import EvalRequest
    from harness.runtime.cache import default_dir

    base = EvalRequest(method="soft-kd", family=args.family, dataset=args.dataset, preset=args.preset,
                       db=_db(args), cache_dir=args.cache_dir or default_dir(), dataset_args=pairs(args, "--dataset-arg"),
                       family_args=pairs(args, "--family-arg"), registry=args.registry,
                       command=shlex.join(["harness", *argv]))
    result = reproduce(base, list(range(args.seeds)), report=lambda line: print(line, file=sys.stderr))
    print(report(result))
    return 0


# -- harness list --
def _list_parser(sub, name: str) -> None:
    sub.add_parser(name, help="the registered model families, datasets, KD methods and attacks with their parameters")


def cmd_list(args, argv) -> int:
    from harness.config import plugins, registry
    from harness.present.listing import boards, listing

    reg = registry.load(args.registry)
    print(listing(reg, plugins.load(reg)))
    print(f"\n{boards(*_boards(args))}")
    return 0


# -- harness plan --
EPILOG_PLAN = """\
examples:
  harness plan                                                     the embedded default on this machine
  harness plan --family pythia --dataset fineweb --gpus 8 --gpu h100 --fsdp
  harness plan --family qwen3 --dataset fineweb --dataset-arg members=100000 --json

Times are FLOPs over the devices' peak (bf16 for training, float32 for scoring) at --mfu. `harness eval`
prints the same plan's head first, and refuses a run whose memory or disk cannot fit.
"""


def _plan_parser(sub, name: str) -> None:
    pl = sub.add_parser(name, help="what a run will cost per stage (FLOPs, memory, disk, time), before anything "
                        "downloads or trains", epilog=EPILOG_PLAN, formatter_class=argparse.RawDescriptionHelpFormatter,
                        description="The cost of one `harness eval` per stage: parameters, tokens and FLOPs, memory "
                        "per device data-parallel and sharded, disk for checkpoints and teacher outputs, and time at "
                        "a stated model-FLOPs utilization. Hub families are sized from their shape tables: no model "
                        "is downloaded. Last, the blind baseline on the split's texts, which needs no model: whether "
                        "members and non-members already differ in their text (a split cut by date or source), so "
                        "that a membership figure would measure the split rather than the model.")
    pl.add_argument("--method", default="soft-kd", help="KD method (default soft-kd; its kind decides the teacher's stage)")
    _add_target(pl)
    _add_pairs(pl, ("--method-arg", "a method parameter"), ("--dataset-arg", "a dataset parameter, e.g. members=1000"),
               ("--family-arg", "a family parameter"))
    pl.add_argument("--gpus", type=_whole(1, 100_000), default=None, metavar="N",
                    help="devices (default: this machine's GPUs, or 1)")
    pl.add_argument("--gpu", help="plan for a named GPU instead of this machine's: h100, h200 or a100")
    pl.add_argument("--fsdp", action="store_true", help="sharded training and scoring (FSDP) over the devices; "
                    "the table shows both either way")
    pl.add_argument("--mfu", type=_fraction, default=None, metavar="U",
                    help="model-FLOPs utilization the times assume (default 0.4)")
    pl.add_argument("--cache-dir", type=Path, help="artifact cache whose disk the plan checks (default ~/.cache/harness)")
    pl.add_argument("--disk", type=_terabytes, metavar="TB", help="with --gpu: the disk the target machine has free for "
                    "teacher outputs, in TB (default: this machine's budget, HARNESS_TEACHER_DISK_BYTES or half "
                    "the cache disk's free space)")
    pl.add_argument("--json", action="store_true", help="the plan as one JSON object")


def cmd_plan(args, argv) -> int:
    import json

    from harness import units
    from harness.errors import UsageError, unknown
    from harness.measure import blind
    from harness.present.run_report import blind_line
    from harness.protocol import costs
    from harness.protocol.request import EvalRequest
    from harness.protocol.run import Protocol
    from harness.runtime.cache import default_dir
    from harness.training.distill import free_disk

    if args.gpu is not None and args.gpu not in costs.GPUS:
        raise unknown("--gpu", args.gpu, costs.GPUS)
    mfu = costs.MFU if args.mfu is None else args.mfu
    log.quiet_libraries()
    req = EvalRequest(method=args.method, family=args.family, dataset=args.dataset, preset=args.preset,
                      cache_dir=args.cache_dir or default_dir(), method_args=pairs(args, "--method-arg"),
                      dataset_args=pairs(args, "--dataset-arg"), family_args=pairs(args, "--family-arg"),
                      registry=args.registry)
    protocol = Protocol(req, bind=False)  # a hub family is not bound: binding checks its tokenizers on the hub
    rows, members, nonmembers, tokenizer = costs.sizes(protocol.setup, protocol.data)
    if args.disk is not None and not args.gpu:
        raise UsageError("--disk goes with --gpu: it is the target machine's disk")
    hardware = costs.GPUS[args.gpu] if args.gpu else costs.local_hardware()
    devices = args.gpus or _local_gpus()
    disk = None if args.disk is None else int(args.disk * 1e12)
    plan = costs.of_run(protocol.setup, rows, members, nonmembers, hardware, devices, args.fsdp, mfu,
                           tokenizer=tokenizer, cache_root=protocol.cache.root,
                           training_precision="bf16" if args.gpu else None, disk=disk)
    # another machine's disk is its own: only its teacher-output budget (--disk) is known here
    free = free_disk(req.cache_dir) if not args.gpu else (disk if disk is not None else plan.disk)
    problems = costs.fits(plan, hardware.memory, max(free, plan.tier.bytes if args.gpu else 0))
    # the blind baseline needs no model: whether the split itself is shifted is known before anything trains
    # (where the plan loads the data: a hub family's plan reads nothing)
    data = None if costs.offline(protocol.setup) else protocol.data()
    found = {} if data is None else blind.figures(
        *(ex.by_document(ex.texts(data.tokenizer)) for ex in (data.members, data.nonmembers)), seed=req.seed)
    if args.json:
        print(json.dumps({**plan.as_dict(), "fits": not problems, "problems": problems, **found}, indent=2,
                         default=str))
        return 0
    print("\n".join(costs.lines(plan)))
    print("\n".join(f"does not fit: {p}" for p in problems) if problems else
          f"fits: {units.size(plan.memory())} of {units.size(hardware.memory)} per device")
    if data is not None:
        print(blind_line(found) or "blind baseline: too few texts on a side to cross-validate")
    return 0


def _local_gpus() -> int:
    import torch

    return max(1, torch.cuda.device_count())


# -- harness sweep --
def _sweep_parser(sub, name: str) -> None:
    sw = sub.add_parser(name, help="run a grid: methods x families x datasets x seeds, each teacher and "
                        "baseline trained once")
    sw.add_argument("--methods", required=True, metavar="all|A,B", help="`all`, or comma-separated methods")
    sw.add_argument("--families", metavar="F,G", help="comma-separated families (default from registry.toml)")
    sw.add_argument("--datasets", metavar="D,E", help="comma-separated datasets (default from registry.toml)")
    sw.add_argument("--seeds", type=SEED_COUNT, default=1, metavar="N", help="seeds 0..N-1 (default 1)")
    sw.add_argument("--preset", help="protocol preset (default: each family's)")
    sw.add_argument("--limit", type=COUNT, metavar="N", help="use only the first N members and N non-members")
    sw.add_argument("--shard", type=_shard, metavar="I/N", help="run only machine I's share of the grid (I = 1..N): whole "
                    "family/dataset/seed groups, so each teacher is trained on one machine")
    _add_where(sw)
    ex = sw.add_argument_group("on a scheduler (through submitit): one job per family/dataset/seed group, each "
                               "writing its own results file, merged into --db when the jobs end")
    ex.add_argument("--executor", choices=("slurm", "local"), help="`slurm`, or `local`: the same jobs as "
                    "processes here, one at a time")
    ex.add_argument("--jobs-dir", type=Path, metavar="DIR", help="the jobs' results files, logs and done markers "
                    "(default: sweep-jobs/ beside --db); rerun with the same one to resubmit what did not finish")
    ex.add_argument("--gpus", type=_whole(0, 1024), metavar="N",
                    help="GPUs per job; above 1, each job runs under "
                    "`accelerate launch --num_processes N` (default 0)")
    ex.add_argument("--time", type=_whole(1, 60 * 24 * 60), metavar="MIN",
                    help="each job's time limit in minutes "
                    "(default 240)")
    ex.add_argument("--partition", help="SLURM partition")
    ex.add_argument("--account", help="SLURM account")
    ex.add_argument("--cpus", type=_whole(1, 4096), metavar="N", help="CPUs per job (SLURM)")
    ex.add_argument("--retries", type=_whole(0, 100), metavar="N", help="times a failed or pre-empted job is "
                    "submitted again in this sweep (default 1)")


def cmd_sweep(args, argv) -> int:
    import time

    from harness.protocol import scheduler

    scheduler.watch_parent()  # a local job of another sweep: it goes when that sweep goes
    _scheduler_options(args)
    methods, families, datasets = (_names("--methods", args.methods), _names("--families", args.families),
                                   _names("--datasets", args.datasets))
    log.quiet_libraries()
    from harness.protocol import sweep
    from harness.protocol.request import EvalRequest
    from harness.runtime.cache import default_dir

    base = EvalRequest(method="", preset=args.preset, db=_db(args), cache_dir=args.cache_dir or default_dir(),
                       limit=args.limit, registry=args.registry, command=shlex.join(["harness", *argv]))
    cells = sweep.grid(base, methods, families, datasets, list(range(args.seeds)))
    if args.executor is not None:
        return _sweep_on_scheduler(args, base, cells)
    if args.shard is not None:
        index, count = args.shard
        total, cells = len(cells), sweep.shard(cells, index - 1, count)
        print(f"sweep: shard {index} of {count}: {len(cells)} of the grid's {total} cells")
    print(f"sweep: {len(cells)} cells")
    t0 = time.perf_counter()
    outcomes = sweep.run(base, cells)
    failed = [o for o in outcomes if not o.ok]
    print(f"\nsweep: {len(outcomes) - len(failed)} of {len(outcomes)} cells finished in "
          f"{time.perf_counter() - t0:.0f}s; stored in {base.db} (`harness leaderboard`)")
    return 1 if failed else 0


# `harness sweep`'s options for a scheduler, and their defaults: given without --executor, each is refused
SCHEDULER_OPTIONS = {"gpus": 0, "jobs_dir": None, "time": 240, "partition": None, "account": None, "cpus": None,
                     "retries": 1}


SLURM_OPTIONS = ("partition", "account", "cpus")


def _names(flag: str, raw: str | None) -> list[str]:
    """`--methods A,B`: the names, each once; given but naming none (`''`, `,,`) is one line, not 0 cells."""
    from harness.errors import UsageError

    if raw is None:
        return []
    names = [n.strip() for n in raw.split(",") if n.strip()]
    if not names:
        raise UsageError(f"argument {flag}: names nothing (got {raw!r}); give comma-separated names"
                         + (", or `all`" if flag == "--methods" else ", or leave it out for the registry's default"))
    twice = next((n for i, n in enumerate(names) if n in names[:i]), None)
    if twice is not None:
        raise UsageError(f"argument {flag}: {twice} given twice; name each once")
    return names


def _scheduler_options(args) -> None:
    """--gpus, --jobs-dir, --time, --partition, --account, --cpus and --retries are a scheduler's: refused
    without --executor (they would be ignored), the SLURM ones with --executor local; then their defaults."""
    from harness.errors import UsageError

    given = [k for k in SCHEDULER_OPTIONS if getattr(args, k) is not None]
    if args.executor is None and given:
        flag = "--" + given[0].replace("_", "-")
        raise UsageError(f"{flag} is for a scheduler's jobs: add --executor slurm|local" + (
            ", or run the sweep on N GPUs here with `accelerate launch --num_processes N -m harness sweep ...`"
            if given[0] == "gpus" else ""))
    slurm = [k for k in SLURM_OPTIONS if k in given]
    if args.executor == "local" and slurm:
        raise UsageError(f"--{slurm[0]} is SLURM's: --executor local runs the jobs on this machine")
    for k, default in SCHEDULER_OPTIONS.items():
        if getattr(args, k) is None:
            setattr(args, k, default)


def _sweep_on_scheduler(args, base, cells) -> int:
    """`harness sweep --executor`: the grid's groups as jobs (harness.protocol.scheduler), then one results file."""
    import shutil

    from harness.errors import UsageError
    from harness.protocol import scheduler
    from harness.store.database import Store

    if args.shard is not None:
        raise UsageError("--shard is for machines without a scheduler; with --executor each job is one group")
    scheduler.check_executor(args.executor)  # before anything is written: no SLURM here is one line, no folder left
    groups = len(dict.fromkeys((c.family, c.dataset, c.seed) for c in cells))
    jobs_dir = (args.jobs_dir or base.db.parent / "sweep-jobs").resolve()
    made = not jobs_dir.exists()
    scheduler.jobs_folder(jobs_dir)
    global_args = ["--registry", str(Path(args.registry).resolve())] if args.registry else []
    sweep_args = ["--methods", args.methods, "--seeds", str(args.seeds), "--cache-dir", str(Path(base.cache_dir).resolve())]
    for flag, value in (("--families", args.families), ("--datasets", args.datasets), ("--preset", args.preset),
                        ("--limit", args.limit)):
        if value is not None:
            sweep_args += [flag, str(value)]
    jobs = scheduler.jobs(global_args, sweep_args, groups, jobs_dir, args.gpus)
    resources = scheduler.Resources(gpus=args.gpus, time_min=args.time, partition=args.partition,
                                  account=args.account, cpus=args.cpus)
    try:
        executor = scheduler.executor_for(args.executor, jobs_dir / "submitit", resources)
    except UsageError:
        if made:  # nothing was submitted: leave nothing behind
            shutil.rmtree(jobs_dir, ignore_errors=True)
        raise
    print(f"sweep: {len(cells)} cells in {groups} job(s) on {args.executor}; their files in {jobs_dir}")
    print("sweep: the jobs stop when this sweep stops" if args.executor == "local" else
          "sweep: the jobs run on if this sweep stops: cancel them with `scancel` and the job ids below")
    local = args.executor == "local"
    failed = scheduler.submit(jobs, executor, args.retries, parallel=not local, env=scheduler.local_env() if local else None)
    added = scheduler.merge_results(jobs, Store(base.db))
    print(f"\nsweep: {len(jobs) - len(failed)} of {len(jobs)} jobs finished; {added} run(s) merged into {base.db}"
          + (f"; rerun the same command to resubmit job(s) {', '.join(str(j.index) for j in failed)}" if failed else "")
          + " (`harness leaderboard`)")
    return 1 if failed else 0


# -- harness predict --
def _predict_parser(sub, name: str) -> None:
    pr = sub.add_parser(name, help="predict which members a student memorizes from what is known before "
                        "distilling (teacher and baseline perplexity, their KL, zlib entropy)")
    pr.add_argument("run_id", metavar="RUN_ID", help="a run id, a unique prefix of one, or `latest`")
    pr.add_argument("--db", type=Path, help=DB_HELP)


def cmd_predict(args, argv) -> int:
    from harness.leaderboard.run_lookup import resolve_run_id
    from harness.present.run_report import predict_report
    from harness.protocol.filtering import predict_run
    from harness.store.database import Store

    store = Store(_db(args))
    run_id = resolve_run_id(store, args.run_id)
    print(predict_report(run_id, *predict_run(store, run_id)))
    return 0


# -- harness compare --
def _compare_parser(sub, name: str) -> None:
    cp = sub.add_parser(name, help="methods side by side: memorization, inheritance, overlap of the "
                        "students' memorized sets")
    cp.add_argument("--methods", type=_methods, required=True, metavar="A,B",
                    help="comma-separated methods, e.g. soft-kd,hard-kd")
    cp.add_argument("--family", help="model family (default from registry.toml)")
    cp.add_argument("--dataset", help="dataset (default from registry.toml)")
    cp.add_argument("--seeds", type=_seed_list, metavar="S,S", help="only these seeds (default every seed all methods have)")
    cp.add_argument("--db", type=Path, help=DB_HELP)


def cmd_compare(args, argv) -> int:
    from harness.config import registry
    from harness.leaderboard.compare import compare
    from harness.present.compare_report import report
    from harness.store.database import Store

    reg = registry.load(args.registry)
    family, dataset = args.family or reg.family, args.dataset or reg.dataset
    print(report(family, dataset, compare(Store(_db(args)), args.methods, family, dataset, args.seeds)))
    return 0


# -- harness show --
def _show_parser(sub, name: str) -> None:
    sh = sub.add_parser(name, help="one run's figures, provenance and checkpoints")
    sh.add_argument("run_id", metavar="RUN_ID", help="a run id, a unique prefix of one, or `latest`")
    sh.add_argument("--db", type=Path, help=DB_HELP)


def cmd_show(args, argv) -> int:
    from harness.present.run_report import show
    from harness.store.database import Store

    print(show(Store(_db(args)), args.run_id))
    return 0


# -- harness leaderboard --
def _leaderboard_parser(sub, name: str) -> None:
    lb = sub.add_parser(name, help="methods ranked by leakage, compared paired, per family and dataset")
    lb.add_argument("--db", type=Path, help=DB_HELP)
    lb.add_argument("--board", metavar="NAME", help="a published board: its snapshot (leaderboards/NAME.duckdb), "
                    "ranked by its own rules, under its title with its regime (`harness list` names the boards)")
    lb.add_argument("--family", help="only this family")
    lb.add_argument("--dataset", help="only this dataset")
    lb.add_argument("--rank-by", metavar="MEASURE", help="the leakage measure to rank by: extractable_rate_student "
                    "(default: the share extractable by sampling), mem_rate_student (exact match) or "
                    "membership_gap_student (the loss gap on members seen once)")
    lbsub = lb.add_subparsers(dest="board_command", parser_class=_Parser, metavar="ACTION")
    pub = lbsub.add_parser("publish", help="run what a board in leaderboards/ is missing and write its snapshot")
    pub.add_argument("name", metavar="NAME", help="a board: leaderboards/NAME.toml")
    pub.add_argument("--db", dest="publish_db", type=Path, help="DuckDB results file the runs go to and come from")
    pub.add_argument("--cache-dir", type=Path, help=CACHE_HELP)
    imp = lbsub.add_parser("import", help="check a bundle from `harness export` and add it to a board's snapshot")
    imp.add_argument("bundle", metavar="BUNDLE", type=Path, help="a .duckdb bundle made by `harness export`")
    imp.add_argument("--board", required=True, metavar="NAME", help="the board: leaderboards/NAME.toml")


def cmd_leaderboard(args, argv) -> int:
    if args.board_command == "publish":
        return _publish(args)
    if args.board_command == "import":
        return _import(args)
    from harness.errors import UsageError, unknown
    from harness.leaderboard import board_specs
    from harness.leaderboard.measures import MEASURES
    from harness.leaderboard.ranking import DEFAULT, Ranking
    from harness.present.board_report import leaderboard_text
    from harness.store.database import Store

    if args.board is not None:
        if args.db is not None:
            raise UsageError("give --board (a published board) or --db (a results file), not both")
        spec, _ = _spec(args.board, args)
        db = spec.snapshot
        if not db.is_file():
            raise UsageError(f"board {args.board} has no snapshot yet: harness leaderboard publish {args.board}")
    else:
        db = _db(args)
        spec = board_specs.spec_of(db) if Path(db).suffix == ".duckdb" else None  # a published snapshot: its rules
    rules = spec.ranking if spec else DEFAULT
    if args.rank_by is not None:  # given empty is no measure, not the default
        if args.rank_by not in MEASURES:
            raise unknown("measure (--rank-by)", args.rank_by, MEASURES)
        rules = Ranking(rules.slack, (args.rank_by, *(k for k in rules.order if k != args.rank_by)))
    print(leaderboard_text(Store(db), args.family, args.dataset, rules, *((spec.regime, spec.title) if spec else ())))
    return 0


def _spec(name: str, args):
    """The board `name` in the leaderboards folder found for `args`, and that folder said aloud."""
    from harness.errors import UsageError
    from harness.leaderboard import board_specs

    folder, where = _boards(args)
    try:
        return board_specs.load_spec(name, folder), where
    except UsageError as err:
        raise UsageError(f"{err} (leaderboards: {where})") from None


def _publish(args) -> int:
    from harness.leaderboard import publish
    from harness.present import board_report
    from harness.runtime.cache import default_dir

    spec, where = _spec(args.name, args)
    log.quiet_libraries()
    db = args.publish_db or args.db or _db(args)
    path = publish.publish(spec, db, args.cache_dir or default_dir(), args.registry,
                            log=log.info)
    print(board_report.published(spec, path, where))
    return 0


def _import(args) -> int:
    from harness.leaderboard import publish
    from harness.present import board_report

    spec, where = _spec(args.board, args)
    ids = publish.import_bundle(args.bundle, spec, args.registry)
    print(board_report.imported(spec, args.bundle, ids, where))
    return 0


# -- harness export --
def _export_parser(sub, name: str) -> None:
    ex = sub.add_parser(name, help="write runs to one bundle file to submit to a published board")
    ex.add_argument("run_ids", nargs="+", metavar="RUN_ID", help="run ids, unique prefixes of them, or `latest`")
    ex.add_argument("--db", type=Path, help=DB_HELP)
    ex.add_argument("-o", "--output", type=Path, help="bundle file (default bundle-<first run id>.duckdb)")


def cmd_export(args, argv) -> int:
    from harness.leaderboard import bundles
    from harness.store.database import Store

    log.quiet_libraries()
    store = Store(_db(args))
    out = args.output or Path(f"bundle-{args.run_ids[0]}.duckdb")
    path = bundles.export(store, args.run_ids, out, args.registry)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB): open a pull request that adds it; the board's "
          f"reviewer checks and adds it with `harness leaderboard import {path.name} --board NAME`")
    return 0


# -- harness app --
def _app_parser(sub, name: str) -> None:
    ap = sub.add_parser(name, help="start the Streamlit leaderboard (streamlit run harness/present/app.py)")
    ap.add_argument("--db", type=Path, help="DuckDB results file (default the results file, else the published "
                    "snapshot in leaderboards/)")
    ap.add_argument("--port", type=_whole(1, 65535), help="port to serve on (default Streamlit's, 8501)")
    ap.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine "
                    "only; 0.0.0.0 for every interface)")
    ap.add_argument("--serve-private-text", action="store_true",
                    help="show the text of datasets not marked public to other machines too (with --host)")


def cmd_app(args, argv) -> int:
    from harness.present import serve

    folder, where = _boards(args)
    return serve.serve_app(args.host, args.port, args.db, args.serve_private_text, folder, where, args.registry)


# every command, in the order `harness --help` lists them: a new command is its block above and a line here
COMMANDS: dict[str, Command] = {
    "eval": Command(_eval_parser, cmd_eval),
    "reproduce": Command(_reproduce_parser, cmd_reproduce),
    "list": Command(_list_parser, cmd_list),
    "plan": Command(_plan_parser, cmd_plan),
    "sweep": Command(_sweep_parser, cmd_sweep),
    "predict": Command(_predict_parser, cmd_predict),
    "compare": Command(_compare_parser, cmd_compare),
    "show": Command(_show_parser, cmd_show),
    "leaderboard": Command(_leaderboard_parser, cmd_leaderboard),
    "export": Command(_export_parser, cmd_export),
    "app": Command(_app_parser, cmd_app),
}


def build_parser() -> argparse.ArgumentParser:
    from harness import __version__

    parser = _Parser(prog="harness", description="Measure how much knowledge-distilled language models memorize "
                     "their training data: teacher, baseline and student, one standard protocol.")
    parser.add_argument("--version", action="version", version=f"harness {__version__}")
    parser.add_argument("--registry", type=Path, help="registry.toml read over the harness's "
                        "defaults (default: $HARNESS_REGISTRY, else ./registry.toml if there is one)")
    parser.add_argument("--leaderboards", type=Path, metavar="DIR", help="the published boards' folder that "
                        "`leaderboard publish|import` and `app` act on (default: $HARNESS_LEADERBOARDS, "
                        "./leaderboards, or the installed harness's)")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser, metavar="COMMAND")
    for name, command in COMMANDS.items():
        command.parser(sub, name)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        try:
            return _main(argv)
        finally:
            sys.stdout.flush()  # a closed pipe shows here, not as a traceback at interpreter exit
    except BrokenPipeError:  # `harness ... | head` stopped reading: stop quietly, as other Unix tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # the exit-time flush cannot fail again
        return 1


def _main(argv: list[str] | None) -> int:
    from harness.errors import RunFailed, Terminated, UsageError
    from harness.runtime import processes

    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    log.setup()
    if not processes.is_main():  # under `accelerate launch` every process runs the command; the main one reports
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - for the life of the process
    previous = _on_sigterm()
    try:
        code = COMMANDS[args.command].handler(args, argv)
        processes.finish(wait=True)  # every process finished the command: leave the group together
        return code
    except UsageError as err:
        print(one_line(f"harness {args.command}: error: {err}", LINE_CHARS), file=sys.stderr)
        return 2
    except RunFailed as err:
        print(one_line(f"harness {args.command}: {err}", LINE_CHARS), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"harness {args.command}: interrupted", file=sys.stderr)
        return 130
    except Terminated:
        print(f"harness {args.command}: stopped by SIGTERM", file=sys.stderr)
        return 128 + 15
    finally:
        processes.finish()
        _restore_sigterm(previous)


def _on_sigterm():
    """SIGTERM raises Terminated where the command stands, so that a run on its way out is marked failed (as
    Ctrl-C's KeyboardInterrupt is) instead of staying `running` until the next run on its file. A second
    SIGTERM ends the process at once. Returns the handler it replaced (None off the main thread)."""
    import signal
    import threading

    from harness.errors import Terminated

    if threading.current_thread() is not threading.main_thread():
        return None

    def stop(signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        raise Terminated

    return signal.signal(signal.SIGTERM, stop)


def _restore_sigterm(previous) -> None:
    import signal

    if previous is not None:
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
