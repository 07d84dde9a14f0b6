"""The GPU rehearsal: Pythia's real shapes, from scratch, at the studies' row length, in bf16, with no hub.

    python benchmarks/gpu_rehearsal.py [--members 8192] [--epochs 3] [--pairs 410m:160m,160m:70m]
        [--example-len 256] [--prefix 50] [--suffix 50] [--tokens-per-step 16384] [--cpu] [--quick]

For each pair it runs the whole protocol (`harness eval --family pythia --family-arg
weights=scratch --dataset text-files`, soft-kd) cold, through `harness.evaluate`, in a
fresh cache and results file. The members are windows of `--example-len` tokens (256, with a 50 + 50
token extraction test, as Borkar et al.) of a local corpus it writes first: the harness's generated
generic documents, joined into long ones. Each step trains on `--tokens-per-step` tokens (a token
budget, so a longer row means fewer rows). It prints per training stage the model-FLOPs utilization
(6 x parameters x tokens over the stage's seconds, against the GPU's bf16 peak from
`harness.protocol.costs`), the extraction's tokens per second, the peak GPU memory and the run's
figures, against the targets: teacher and baseline at 40% MFU or more, the student (KD loss
included) at 30%, extraction at 5x the 200k tokens/s measured before (docs/performance.md). It then
reruns the same command with everything from the cache and checks that the figures are identical:
a fresh model and a cached one score the same (`harness.runtime.precision`).

With two GPUs or more it repeats the first pair under `accelerate launch` with FSDP over two
processes, and compares its figures with the single process's.

On a machine without a GPU it says so and exits 0: there is nothing to rehearse, unless `--cpu`
runs it anyway. `--quick` runs the same path in seconds, on the CPU when there is no GPU: pythia
70m -> 70m on about 4 members of 32 tokens (8 + 8 extraction), one epoch, 16 pretraining documents, in
bf16 where accelerate is not told otherwise (so the float32 comparison runs too). It checks the
script; its figures mean nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _quick  # benchmarks/_quick.py: this folder is first on sys.path

os.environ.setdefault("HARNESS_PROGRESS", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PRESET = """
[presets.{name}]
prefix_len = {prefix}
suffix_len = {suffix}
example_len = {example_len}
eval_batch_size = 64
generate_batch_size = 64
pretrain_docs = {pretrain_docs}

[presets.{name}.sizes]
pythia = ["{teacher}", "{student}"]

{roles}
"""
ROLE = """[presets.{name}.{role}]
epochs = {epochs}
lr = 1e-3
batch_size = {batch}
warmup_ratio = 0.05
schedule = "cosine"
"""
TARGETS = {"teacher": 0.40, "baseline": 0.40, "student": 0.30}  # bf16 MFU on one H100 or H200
EXTRACTION_BEFORE = 200_000  # tokens/s, float32 scoring at 64-token rows (docs/performance.md, 2026)
# --quick: the same path in seconds (the figures then mean nothing).
QUICK = {"cpu": True, "pairs": "70m:70m", "members": 4, "epochs": 1, "example_len": 32, "prefix": 8, "suffix": 8,
         "tokens_per_step": 256, "pretrain_docs": 16}
FIGURES = ("mem_rate_teacher", "mem_rate_baseline", "mem_rate_student", "val_ppl_teacher", "val_ppl_baseline",
           "val_ppl_student", "inheritance_rate")


def main() -> int:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=8192)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--pairs", default="410m:160m,160m:70m")
    parser.add_argument("--method", default="soft-kd")
    parser.add_argument("--example-len", type=int, default=256)
    parser.add_argument("--prefix", type=int, default=50)
    parser.add_argument("--suffix", type=int, default=50)
    parser.add_argument("--tokens-per-step", type=int, default=16384)
    parser.add_argument("--pretrain-docs", type=int, default=2000,
                        help="generic documents each size is pretrained on first (random weights, no hub)")
    parser.add_argument("--cpu", action="store_true", help="run anyway on the CPU (to check this script; slow)")
    args = _quick.options(parser, QUICK, "on the CPU without a GPU: 70m -> 70m, about 4 members of 32 tokens, "
                          "one epoch, bf16")
    if args.quick:
        os.environ.setdefault("ACCELERATE_MIXED_PRECISION", "bf16")
    from harness.runtime.log import quiet_libraries

    quiet_libraries()
    if not torch.cuda.is_available() and not args.cpu:
        print("gpu rehearsal: no GPU on this machine; nothing to rehearse")
        return 0
    work = Path(tempfile.mkdtemp(prefix="rehearsal-"))
    pairs = [tuple(p.split(":")) for p in args.pairs.split(",")]
    registry = work / "registry.toml"
    batch = max(1, args.tokens_per_step // args.example_len)
    presets = "".join(PRESET.format(name=_preset(t, s), teacher=t, student=s, prefix=args.prefix, suffix=args.suffix,
                                    example_len=args.example_len, pretrain_docs=args.pretrain_docs,
                                    roles="\n".join(ROLE.format(name=_preset(t, s), role=r, batch=batch,
                                                                epochs=1 if r == "pretrain" else args.epochs)
                                                    for r in ("pretrain", "teacher", "baseline", "student")))
                      for t, s in pairs)
    args.corpus = write_corpus(work / "corpus.jsonl", args.members, args.example_len)
    registry.write_text((ROOT / "registry.toml").read_text() + presets)
    os.environ.update(HARNESS_CACHE=str(work / "cache"), HARNESS_DB=str(work / "harness.duckdb"))
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "the CPU"
    print(f"gpu rehearsal: {device} x {torch.cuda.device_count()}, torch {torch.__version__}, "
          f"about {args.members} members of {args.example_len} tokens ({args.prefix} + {args.suffix} extraction), "
          f"{batch} rows a step, {args.epochs} epochs, {args.method}", flush=True)
    single = {}
    for teacher, student in pairs:
        single[teacher, student] = rehearse(registry, teacher, student, args)
    if torch.cuda.device_count() >= 2:
        sharded(registry, pairs[0], args, single[pairs[0]], work)
    else:
        print("\nsharded: one GPU here; the two-process FSDP rehearsal needs two")
    return 0


def write_corpus(path: Path, members: int, example_len: int) -> Path:
    """Long documents of the generated generic corpus, one per line: each about one window of
    `example_len` tokens, twice as many as `members` (text-files makes half of them members)."""
    from harness.protocol import corpus

    per = max(1, -(-example_len // 40))  # generated documents of about 30 words: a window must fit in one line
    docs = corpus.documents(2 * members * per)
    with path.open("w", encoding="utf-8") as f:
        for i in range(0, len(docs) - per + 1, per):
            f.write(json.dumps({"text": " ".join(docs[i:i + per])}) + "\n")
    return path


def _preset(teacher: str, student: str) -> str:
    return f"rehearsal-{teacher}-{student}".replace(".", "_")


def request(registry: Path, teacher: str, student: str, args):
    from harness import EvalRequest

    return EvalRequest(method=args.method, family="pythia", dataset="text-files", preset=_preset(teacher, student),
                       family_args={"weights": "scratch"}, registry=registry, db=Path(os.environ["HARNESS_DB"]),
                       cache_dir=Path(os.environ["HARNESS_CACHE"]), dataset_args={"path": str(args.corpus)})


def rehearse(registry: Path, teacher: str, student: str, args) -> dict[str, float]:
    import torch

    import harness
    from harness.protocol import costs
    from harness.runtime.precision import precisions

    print(f"\n== pythia {teacher} -> {student} (real shapes, random weights), one GPU", flush=True)
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    req = request(registry, teacher, student, args)
    t0 = time.perf_counter()
    result = harness.evaluate(req, rerun=True).result
    wall = time.perf_counter() - t0
    peak = torch.cuda.max_memory_allocated() if torch.cuda.is_available() else 0
    length = args.example_len  # the preset this script wrote; text-files repeats no member: one row each
    tokens = result.n_members * length
    hardware = costs.local_hardware()
    print(f"{'stage':<10}{'params':>8}{'tokens':>12}{'seconds':>9}{'TFLOP/s':>9}{'MFU':>7}{'target':>8}")
    for role, info in result.models.items():
        flops = 6 * info.n_params * tokens * args.epochs
        seconds = result.stage_seconds.get(role, 0.0)
        if info.cached or not seconds:  # the same size and recipe as a role trained before it
            print(f"{role:<10}{info.n_params / 1e6:>7.0f}M  from the cache")
            continue
        mfu = flops / seconds / hardware.bf16_flops
        print(f"{role:<10}{info.n_params / 1e6:>7.0f}M{tokens * args.epochs:>12,}{seconds:>9.1f}"
              f"{flops / seconds / 1e12:>9.1f}{mfu:>7.1%}{TARGETS[role]:>7.0%}{' ' if mfu >= TARGETS[role] else '!'}")
    scored = (result.n_members + result.n_nonmembers) * length * 3
    rate = scored / result.stage_seconds["extraction"]
    print(f"extraction: {scored:,} tokens (3 models, {precisions()}) in {result.stage_seconds['extraction']:.1f} s: "
          f"{rate:,.0f} tokens/s, {rate / EXTRACTION_BEFORE:.1f}x the 200k before (target 5x); "
          f"analysis {result.stage_seconds['analysis']:.1f} s")
    print(f"pretrain (both sizes, {args.pretrain_docs} generic documents, not in the MFU table): "
          f"{result.stage_seconds.get('pretrain', 0.0):.1f} s")
    print(f"peak GPU memory {peak / 1e9:.2f} GB of {hardware.memory / 1e9:.0f} GB; whole run {wall:.0f} s")
    figures = {k: result.metrics[k] for k in FIGURES if k in result.metrics}
    print("figures: " + ", ".join(f"{k} {v:.4g}" for k, v in figures.items()))

    again = harness.evaluate(request(registry, teacher, student, args), rerun=True).result
    assert all(info.cached for info in again.models.values()), "the rerun should load every model"
    differ = {k: (v, again.metrics.get(k)) for k, v in result.metrics.items() if not _same(v, again.metrics.get(k))}
    print(f"cached rerun: {len(result.metrics) - len(differ)} of {len(result.metrics)} figures identical"
          + (f"; differ: {json.dumps(differ)[:400]}" if differ else ""), flush=True)
    if precisions().endswith("bf16"):
        against_float32(registry, teacher, student, args, result, scored)
    return figures


def against_float32(registry: Path, teacher: str, student: str, args, bf16, scored: int) -> None:
    """The same cached models scored again in float32 (HARNESS_SCORING): the share of verdicts that
    bf16 scoring decides otherwise, and what float32 costs in tokens per second."""
    import dataclasses

    import duckdb

    import harness

    os.environ["HARNESS_SCORING"] = "float32"
    try:
        req = dataclasses.replace(request(registry, teacher, student, args),
                                  db=Path(os.environ["HARNESS_DB"]).with_name("float32.duckdb"))
        f32 = harness.evaluate(req, rerun=True).result
    finally:
        del os.environ["HARNESS_SCORING"]
    con = duckdb.connect(str(req.db), read_only=True)
    con.execute("ATTACH ? AS b (READ_ONLY)", [os.environ["HARNESS_DB"]])
    rows = con.execute(
        "SELECT f.role, f.split, count(*), count(*) FILTER (f.memorized <> b.memorized), "
        "count(*) FILTER (f.memorized), count(*) FILTER (b.memorized) FROM samples f JOIN b.samples b "
        "USING (role, sample_id) WHERE f.run_id = ? AND b.run_id = ? GROUP BY ALL ORDER BY ALL",
        [f32.run_id, bf16.run_id]).fetchall()
    rate = scored / f32.stage_seconds["extraction"]
    print(f"float32 scoring of the same models: extraction {rate:,.0f} tokens/s "
          f"(bf16 {scored / bf16.stage_seconds['extraction']:,.0f})")
    for role, split, n, differ, memorized32, memorized16 in rows:
        print(f"  {role:<9}{split:<11}{differ} of {n} verdicts differ ({differ / n:.3%}); "
              f"memorized {memorized32} in float32, {memorized16} in bf16")
    total, changed = sum(r[2] for r in rows), sum(r[3] for r in rows)
    print(f"verdicts bf16 decides otherwise than float32: {changed} of {total} ({changed / max(total, 1):.3%})",
          flush=True)


def _same(a, b) -> bool:
    return a == b or (a != a and b != b)  # NaN (an undefined ratio) equals NaN here


def sharded(registry: Path, pair: tuple[str, str], args, single: dict[str, float], work: Path) -> None:
    teacher, student = pair
    print(f"\n== pythia {teacher} -> {student} under FSDP, two processes", flush=True)
    env = {**os.environ, "HARNESS_CACHE": str(work / "cache-fsdp"), "HARNESS_DB": str(work / "fsdp.duckdb")}
    command = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "2", "--use_fsdp",
               "--fsdp_version", "2", "--fsdp_reshard_after_forward", "true", "--mixed_precision", "bf16",
               "-m", "harness", "--registry", str(registry), "eval", "--method", args.method, "--family", "pythia",
               "--family-arg", "weights=scratch", "--dataset", "text-files", "--preset", _preset(teacher, student),
               "--dataset-arg", f"path={args.corpus}"]
    t0 = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    print(f"exit {done.returncode} in {time.perf_counter() - t0:.0f} s")
    if done.returncode != 0:
        print(done.stderr[-3000:])
        return
    import duckdb

    con = duckdb.connect(env["HARNESS_DB"], read_only=True)
    figures = dict(con.execute("SELECT name, value FROM metrics").fetchall())
    print("figures: " + ", ".join(f"{k} {figures.get(k, float('nan')):.4g} (one GPU {v:.4g})" for k, v in single.items()))


if __name__ == "__main__":
    sys.exit(main())
