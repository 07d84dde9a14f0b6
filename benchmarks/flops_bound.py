"""Distance to the limit: the embedded default, stage by stage, against the arithmetic it cannot avoid.

    python benchmarks/flops_bound.py [--method soft-kd] [--members N] [--limit N] [--rate-rounds 3] [--rounds 2]
        [--quick]

Runs the whole protocol cold (`harness eval --method soft-kd` on tiny / synthetic-pii, a fresh
temporary cache and results file) through `harness.evaluate`, which reports the
seconds of each stage, and sets beside each stage the least time its matrix arithmetic needs on
this machine:

  pretrain            for a family without released weights, each size's pretraining on the generic
                      corpus: 6 x params x corpus tokens x epochs, once for the teacher's size and once
                      for the student's (the baseline and the student start from the same weights)
  teacher, baseline   training: 6 x params x tokens x epochs (tokens = rows of D x example length)
  student             the same, plus the teacher's outputs once per distinct member (2 x teacher
                      params x members' tokens) for a logit-level method, or, for a method that
                      makes its data (hard-kd), the teacher's greedy continuations (teacher_data)
  extraction          one pass per role over members + non-members: 2 x params x tokens
  analysis            the reference model's pass (the small model before fine-tuning, when an
                      attack needs a reference), and the greedy continuations of the
                      approximate-memorization sample for each role (prefill + one token per step);
                      the teacher-baseline KL needs no pass of its own (the extraction passes over
                      the members compute the same logits), so it is counted as free
  data, store         no matrix arithmetic: a bound of 0, shown as -

"params" is the count that costs FLOPs per token: the matrix weights of the layers plus the output
projection, without the input embedding (a lookup) and without biases and norms. Attention's
own products (scores and weighted values, 2 x layers x length x hidden per token) are left out,
which only lowers the bound.

The rate is measured in this run, after the protocol: the model's own matrix products, each
weight's (batch x length, in) x (in, out) at the batch the stage uses (for training also the two
backward products; for greedy decoding one token per prompt), each product the best of 5 timings
in each of --rate-rounds rounds, the best round kept (load from other processes only slows a
product down, and a slow timing would raise the bound). For comparison only, a 2048 x 2048 x 2048
product is timed before and after the protocol. The tiny models' products are small (hidden 96
and 192, and a decoding step is 128 rows), so some run far below the large product's rate; the
rate at the model's shapes is the honest limit for this model on this machine and is the one used.

Beside the bound, each training stage and the extraction are also timed as a bare PyTorch loop
doing the same steps on the same architecture (forward, loss, backward, AdamW; for the student
the method's own loss against fixed teacher logits, plus one teacher pass over the members; for
the extraction plain no-grad forward passes): "vs plain" is the harness's time over that loop's,
which is what the harness itself adds, while "multiple" also holds the work any eager PyTorch
loop does outside the counted products (attention, norms, activations, the vocabulary-wide
softmax and loss, the optimizer).

The harness and the bare loops run in --rounds rounds in alternating order (harness first, then
bare loops first), each stage's best kept for each: this machine drifts by tens of percent over
minutes, and a fixed order would hand the drift to whichever runs second.

The last line is `ratio R.RRx`: the protocol's whole wall time over its whole lower bound
(larger means further from the limit). `--quick` runs the same path in seconds, to check the script,
not to measure: a small preset (8 + 8 tokens, one or two epochs), 32 members, one round of each
timing, each timed briefly, and a 512 x 512 x 512 product for comparison.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

os.environ.setdefault("HARNESS_PROGRESS", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import _quick  # benchmarks/_quick.py: this folder is first on sys.path
import torch

from harness import EvalRequest, evaluate
from harness.measure.metrics import ROLES
from harness.protocol.run import Protocol  # the bare loops' data and models, as the run makes them

STAGES = ("data", "pretrain", "teacher", "baseline", "teacher_data", "student", "extraction", "analysis", "store")

# --quick: the same path in seconds (the figures then mean nothing): a small preset over the tiny one
# (in a temporary copy of registry.toml), few members, one round of each timing, each timing short.
QUICK = {"members": 32, "rate_rounds": 1, "rounds": 1}
ROOT = Path(__file__).resolve().parents[1]
# How long each timing runs: a matrix product at least MIN_TIME seconds a timing, best of REPEAT;
# a bare loop over PLAIN_SAMPLE steps, best of PLAIN_ROUNDS; the comparison product BIG_SIZE cubed.
MIN_TIME, REPEAT, PLAIN_SAMPLE, PLAIN_ROUNDS, BIG_SIZE = 0.05, 5, 12, 2, 2048


def matmul_weights(model) -> list[tuple[int, int]]:
    """(in, out) of every weight matrix a token passes through: layers and output projection, no input embedding."""
    embed_in = model.get_input_embeddings().weight
    weights = {id(p): p for p in model.parameters() if p.dim() == 2 and p is not embed_in}
    out = model.get_output_embeddings().weight  # the same tensor as embed_in when tied: counted then too
    weights[id(out)] = out
    return [(int(p.shape[1]), int(p.shape[0])) for p in weights.values()]


def seconds_per_call(fn, min_time: float | None = None, repeat: int | None = None) -> float:
    min_time = MIN_TIME if min_time is None else min_time
    repeat = REPEAT if repeat is None else repeat
    fn()
    best = float("inf")
    for _ in range(repeat):
        n, t0 = 0, time.perf_counter()
        while True:
            fn()
            n += 1
            if (elapsed := time.perf_counter() - t0) >= min_time:
                break
        best = min(best, elapsed / n)
    return best


_rates: dict[tuple, float] = {}


def rate(shapes: list[tuple[int, int]], rows: int, train: bool = False) -> float:
    """FLOP/s of one pass of the model's matrix products at `rows` tokens (with the backward products if train)."""
    k_ = (tuple(sorted(shapes)), rows, train)
    if k_ in _rates:
        return _rates[k_]
    flops = seconds = 0.0
    with torch.no_grad():
        for (k, n), count in Counter(shapes).items():
            x, w, g = torch.randn(rows, k), torch.randn(k, n), torch.randn(rows, n)
            calls = [lambda x=x, w=w: x @ w]
            if train:  # the gradients with respect to the input and to the weight
                calls += [lambda g=g, w=w: g @ w.T, lambda x=x, g=g: x.T @ g]
            for call in calls:
                seconds += count * seconds_per_call(call)
                flops += count * 2 * rows * k * n
    _rates[k_] = flops / seconds
    return _rates[k_]


def plain_seconds(model, steps: int, batch: int, length: int, *, train: bool, loss=None, teacher=None,
                  sample: int | None = None, rounds: int | None = None) -> float:
    """The same work as a bare PyTorch loop, timed over `sample` steps (best of `rounds`) and scaled to `steps`.

    A training step is forward, loss, backward, AdamW, on random tokens of the stage's shape; with
    `loss` (a logit method's) against fixed teacher logits of the batch's shape, else
    cross-entropy. Without `train`, a no-grad forward pass of the batch. What the harness does
    beyond this (data order, memory fitting, checks, progress, accelerate) is its own overhead;
    what this loop does beyond the bound is the model's and the loss's own non-matrix work.
    """
    from harness.contract.specs import LogitBatch

    sample = PLAIN_SAMPLE if sample is None else sample
    rounds = PLAIN_ROUNDS if rounds is None else rounds
    vocab = model.get_output_embeddings().weight.shape[0]
    ids = torch.randint(0, vocab, (batch, length))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5) if train else None
    fixed = torch.randn(batch, length - 1, vocab) if loss is not None else None

    def step():
        if not train:
            with torch.no_grad():
                model(input_ids=ids)
            return
        logits = model(input_ids=ids).logits[:, :-1]
        if loss is None:
            value = torch.nn.functional.cross_entropy(logits.reshape(-1, vocab), ids[:, 1:].reshape(-1))
        else:
            value = loss(LogitBatch(logits, fixed, ids[:, 1:]))
        value.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    model.train(train)
    step()
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(sample):
            step()
        best = min(best, (time.perf_counter() - t0) / sample)
    return best * steps


def big_rate(size: int | None = None) -> float:
    size = BIG_SIZE if size is None else size
    a, b = torch.randn(size, size), torch.randn(size, size)
    return 2 * size**3 / seconds_per_call(lambda: a @ b, min_time=4 * MIN_TIME)


def plain_stages(proto, loaded, members, nonmembers) -> dict[str, float]:
    """The training stages and the extraction as bare PyTorch loops doing the same steps."""
    from harness.measure.metrics import ROLES

    p, t = proto.preset, "teacher"
    L, m, n, rows = p.example_len, len(members), len(nonmembers), len(members.training_rows())
    plain: dict[str, float] = {}
    for role in ("teacher", "baseline", "student"):
        cfg = p.training(role)
        logit_loss = proto.method.loss if role == "student" and proto.method.kind == "loss" else None
        plain[role] = plain_seconds(loaded[role], cfg.epochs * math.ceil(rows / cfg.batch_size), cfg.batch_size, L,
                                    train=True, loss=None if logit_loss is None else
                                    (lambda batch, f=logit_loss: f(batch, proto.method_args)))
    if proto.method.kind == "loss":
        batch = p.training("student").batch_size
        plain["student"] += plain_seconds(loaded[t], math.ceil(m / batch), batch, L, train=False)
    plain["extraction"] = sum(plain_seconds(loaded[role], math.ceil(m / p.eval_batch_size)
                                            + math.ceil(n / p.eval_batch_size), p.eval_batch_size, L, train=False)
                              for role in ROLES)
    return plain


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--method", default="soft-kd", help="an off-policy method (default soft-kd)")
    parser.add_argument("--members", type=int, help="synthetic-pii members and non-members (default: the dataset's, 512)")
    parser.add_argument("--limit", type=int, help="use only the first N members and N non-members")
    parser.add_argument("--rate-rounds", type=int, default=3, help="rounds of matmul timings, the best kept (default 3)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of harness and bare loops, in alternating "
                        "order, the best of each kept (default 2)")
    opts = _quick.options(parser, QUICK, "a small preset, 32 members, one round of each timing, each timed briefly")
    registry = preset = None
    if opts.quick:
        global MIN_TIME, REPEAT, PLAIN_SAMPLE, PLAIN_ROUNDS, BIG_SIZE
        MIN_TIME, REPEAT, PLAIN_SAMPLE, PLAIN_ROUNDS, BIG_SIZE = 0.005, 1, 2, 1, 512
        registry, preset = Path(tempfile.mkdtemp(prefix="bench-flops-")) / "registry.toml", _quick.SMALL
        registry.write_text((ROOT / "registry.toml").read_text() + _quick.SMALL_PRESET)
    from harness.runtime.log import quiet_libraries

    quiet_libraries()

    dataset_args = {} if opts.members is None else {"n_members": str(opts.members), "n_nonmembers": str(opts.members)}

    def request(tmp: str) -> EvalRequest:
        return EvalRequest(method=opts.method, db=Path(tmp) / "harness.duckdb", cache_dir=Path(tmp) / "cache",
                           dataset_args=dataset_args, limit=opts.limit, registry=registry, preset=preset,
                           command="benchmarks/flops_bound.py")

    setup = tempfile.mkdtemp(prefix="bench-flops-")
    runner = Protocol(request(setup))
    proto = runner.setup  # the resolved plugins, preset and sizes
    if proto.method.kind == "step":
        sys.exit(f"{proto.method.name} samples from the student as it trains; this bound covers off-policy methods")
    data = runner.data()
    members, nonmembers = data.members, data.nonmembers
    torch.manual_seed(0)
    loaded = {role: proto.family.model(size, data.tokenizer) for role, size in
              (("teacher", proto.teacher_size), ("baseline", proto.student_size), ("student", proto.student_size))}
    shapes = {role: matmul_weights(model) for role, model in loaded.items()}

    # The harness (a cold protocol in a fresh cache) and the bare loops in alternating order, --rounds
    # times, the best of each kept per stage: this machine's speed drifts by tens of percent over
    # minutes, and whichever runs second in a fixed order would carry the drift.
    runs, plains, big = [], [], []
    for r in range(opts.rounds):
        for way in (("harness", "plain") if r % 2 == 0 else ("plain", "harness")):
            if way == "plain":
                plains.append(plain_stages(proto, loaded, members, nonmembers))
                continue
            with tempfile.TemporaryDirectory(prefix="bench-flops-") as tmp:
                big.append(big_rate())
                t0 = time.perf_counter()
                result = evaluate(request(tmp), rerun=True).result
                runs.append((result, time.perf_counter() - t0))
                big.append(big_rate())
    result = min(runs, key=lambda run: run[1])[0]
    seconds = {stage: min(run.stage_seconds.get(stage, 0.0) for run, _ in runs) for stage in result.stage_seconds}
    wall = min(w for _, w in runs)
    plain = {stage: min(p[stage] for p in plains) for stage in plains[0]}
    big_before = big_after = max(big)

    p = proto.preset
    L, m, n, rows = p.example_len, len(members), len(nonmembers), len(members.training_rows())
    params = {role: sum(k * o for k, o in s) for role, s in shapes.items()}
    t, s = "teacher", "student"  # the student's size is also the baseline's and the reference's

    def training(role, stage=None, n_rows=rows):
        cfg = p.training(stage or role)
        return (f"{role} {stage or 'training'}, 6 x {params[role] / 1e6:.2f}M x {n_rows} rows x {L} x {cfg.epochs} epochs",
                6 * params[role] * n_rows * L * cfg.epochs, shapes[role], cfg.batch_size * L, True)

    def forward(role, what, examples, batch):
        return (f"{what}, 2 x {params[role] / 1e6:.2f}M x {examples} x {L}",
                2 * params[role] * examples * L, shapes[role], batch * L, False)

    def generation(role, what, examples, prefix, new, batch):
        b = min(batch, examples)
        return [(f"{what} prefill, 2 x {params[role] / 1e6:.2f}M x {examples} x {prefix}",
                 2 * params[role] * examples * prefix, shapes[role], b * prefix, False),
                (f"{what} decoding, 2 x {params[role] / 1e6:.2f}M x {examples} x {new - 1} steps",
                 2 * params[role] * examples * (new - 1), shapes[role], b, False)]

    work: dict[str, list] = {stage: [] for stage in STAGES}
    if not proto.family.released:  # each size pretrained once on the generic corpus, before its first role
        corpus_rows = len(runner.corpus_rows(data))
        work["pretrain"] += [training(t, "pretrain", corpus_rows), training(s, "pretrain", corpus_rows)]
    work["teacher"].append(training("teacher"))
    work["baseline"].append(training("baseline"))
    work["student"].append(training("student"))
    if proto.method.kind == "make_data":
        work["teacher_data"] += generation(t, "teacher's continuations", m, p.prefix_len, L - p.prefix_len,
                                           p.generate_batch_size)
    else:
        work["student"].append(forward(t, "teacher's logits once per member", m, p.training("student").batch_size))
    for role in ROLES:
        work["extraction"].append(forward(role, f"{role} extraction", m + n, p.eval_batch_size))
    if any(a.needs_reference for a in proto.found.attacks.values()) and not proto.req.reference:
        work["analysis"].append(forward(s, "reference (small model before fine-tuning)", m + n, p.eval_batch_size))
    approx = min(p.approx_sample, m)
    if approx:
        for role in ROLES:
            work["analysis"] += generation(role, f"{role} continuations", approx, p.prefix_len, p.suffix_len,
                                           p.generate_batch_size)

    # Each rate measured in --rate-rounds rounds (each product best of 5 in each), the best round kept: load
    # from other processes only ever slows a product down, and a slow measurement would raise the bound.
    best: dict[tuple, float] = {}
    for _ in range(opts.rate_rounds):
        _rates.clear()
        for items in work.values():
            for _, _, sh, r, tr in items:
                rate(sh, r, tr)
        rate(shapes[t], p.eval_batch_size * L)
        best = {k_: max(v, best.get(k_, 0.0)) for k_, v in _rates.items()}
    _rates.update(best)
    bound = {stage: sum(f / rate(sh, r, tr) for _, f, sh, r, tr in items) for stage, items in work.items()}

    print(f"harness eval --method {proto.method.name}: {proto.family.name} {proto.teacher_size} -> "
          f"{proto.student_size}, {proto.dataset.name}, preset {p.name}; {m} members ({rows} rows of D), "
          f"{n} non-members, {L} tokens; torch {torch.__version__}, {torch.get_num_threads()} threads")
    for role, info in result.models.items():
        print(f"  {role:<8} {info.size}: {info.n_params / 1e6:.2f}M parameters, {params[role] / 1e6:.2f}M in "
              f"matrix products (layers + output projection, no input embedding)")
    print(f"float32 matmul: {BIG_SIZE} x {BIG_SIZE} x {BIG_SIZE} {max(big_before, big_after) / 1e9:6.1f} GFLOP/s; "
          "at the models' shapes (used for the bound):")
    for (sh, r, tr), v in sorted(_rates.items(), key=lambda kv: (kv[0][2], kv[0][1])):
        hidden = min(k for k, _ in sh)
        print(f"  hidden {hidden:>4}, {r:>5} rows, {'forward + backward' if tr else 'forward':<18} {v / 1e9:6.1f} GFLOP/s")

    print(f"\n{'stage':<13}{'GFLOP':>9}{'lower bound s':>15}{'plain loop s':>14}{'actual s':>10}{'multiple':>10}"
          f"{'vs plain':>10}")
    total_flops = total_bound = 0.0
    for stage in STAGES:
        if stage not in seconds and not work[stage]:
            continue
        flops = sum(f for _, f, *_ in work[stage])
        actual = seconds.get(stage, 0.0)
        total_flops += flops
        total_bound += bound[stage]
        bare = (f"{plain[stage]:14.1f}", f"{actual / plain[stage]:9.2f}x") if stage in plain else (f"{'-':>14}", "")
        if flops:
            print(f"{stage:<13}{flops / 1e9:8.1f} {bound[stage]:14.2f}{bare[0]}{actual:10.1f}"
                  f"{actual / bound[stage]:9.1f}x{bare[1]}")
        else:
            print(f"{stage:<13}{'-':>9}{'-':>15}{'-':>14}{actual:10.1f}{'-':>10}")
        for what, f, *_ in work[stage]:
            print(f"    {what}: {f / 1e9:.1f} GFLOP")
    other = min(w - sum(run.stage_seconds.values()) for run, w in runs)  # within one run, not across
    print(f"{'(other)':<13}{'-':>9}{'-':>15}{'-':>14}{other:10.1f}{'-':>10}   plan, run rows, model building")
    print(f"{'protocol':<13}{total_flops / 1e9:8.1f} {total_bound:14.2f}{'-':>14}{wall:10.1f}{wall / total_bound:9.1f}x")
    covered = sum(seconds.get(stage, 0.0) for stage in plain)
    print(f"\nthe stages with a plain loop ({', '.join(plain)}): {covered:.1f} s in the harness, "
          f"{sum(plain.values()):.1f} s as bare PyTorch loops ({covered / sum(plain.values()):.2f}x), "
          f"{sum(bound[stage] for stage in plain):.1f} s at the matrix-multiply bound")
    if proto.method.kind != "make_data":
        shared = work["student"][1][1] / rate(shapes[t], p.eval_batch_size * L)
        print(f"(the teacher's logits on the members serve both distillation and extraction; counted once, "
              f"the bound would be {total_bound - shared:.2f} s, {wall / (total_bound - shared):.1f}x)")
    print("# ratio = the protocol's wall time / its FLOPs lower bound: larger means further from the limit")
    print(f"ratio {wall / total_bound:.2f}x")


if __name__ == "__main__":
    main()
