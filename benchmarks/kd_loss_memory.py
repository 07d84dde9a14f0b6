"""The KD loss's peak memory and time at Pythia's vocabulary, chunked against plain, on this machine.

    python benchmarks/kd_loss_memory.py [--rows 8] [--positions 255] [--vocab 50304] [--chunk 1] [--method soft-kd]
        [--quick]

One training step's loss over a batch of `rows` x `positions` logits: the plain loss, whose
float32 softmaxes and logs for the whole batch autograd keeps until the backward pass, against
`harness.training.chunked`, which holds them for `--chunk` rows at a time. Each variant runs in a
fresh process (its peak resident memory is the process's, less what it held before the loss),
forward and backward, and is timed over `--repeats` steps after one warm-up. The gradients of the
two are compared, then the script ends with the peak-memory ratio and the time ratio (plain /
chunked). On a CPU the student's logits are float32; on a GPU they would be bf16, which halves
what the chunked form keeps. `--quick` (4 rows of 63 positions over 8,192 tokens, one timed step)
runs the same path in seconds, to check the script, not to measure.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import _quick  # benchmarks/_quick.py: this folder is first on sys.path

# --quick: the same path in seconds (the figures then mean nothing).
QUICK = {"rows": 4, "positions": 63, "vocab": 8192, "repeats": 1}


def measure(args) -> dict:
    import torch

    from harness.config import plugins, registry
    from harness.contract.specs import LogitBatch, resolve_params
    from harness.training.chunked import chunked_loss

    found = plugins.load(registry.load())
    method = found.method(args.method)
    params = resolve_params(method.params, {}, args.method)
    torch.manual_seed(0)
    shape = (args.rows, args.positions, args.vocab)
    student = torch.randn(shape).requires_grad_()
    teacher = torch.randn(shape)
    labels = torch.randint(0, args.vocab, shape[:2])
    rows = args.chunk if args.variant == "chunked" else args.rows

    def step():
        loss = chunked_loss(lambda s, part: method.loss(LogitBatch(s, teacher[part], labels[part]), params),
                            student, rows)
        loss.backward()
        return loss

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    step()  # warm-up: its peak is the peak
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
    t0 = time.perf_counter()
    for _ in range(args.repeats):
        student.grad = None
        loss = step()
    seconds = (time.perf_counter() - t0) / args.repeats
    digest = [float(student.grad.double().abs().sum()), float(loss)]
    return {"peak": peak, "seconds": seconds, "digest": digest}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=8)
    parser.add_argument("--positions", type=int, default=255)
    parser.add_argument("--vocab", type=int, default=50304)
    parser.add_argument("--chunk", type=int, default=1)
    parser.add_argument("--method", default="soft-kd")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--variant", choices=("plain", "chunked"), help=argparse.SUPPRESS)
    args = _quick.options(parser, QUICK, "4 x 63 x 8192 logits, one timed step")
    if args.variant:
        print(json.dumps(measure(args)))
        return 0
    logits = args.rows * args.positions * args.vocab * 4
    print(f"{args.method} over {args.rows} x {args.positions} x {args.vocab} float32 logits "
          f"({logits / 2**20:,.0f} MiB a copy); chunked: {args.chunk} row(s) at a time")
    out = {}
    for variant in ("plain", "chunked"):
        cmd = [sys.executable, __file__, "--variant", variant, *sys.argv[1:]]
        result = subprocess.run(cmd, capture_output=True, text=True, check=True, env={**os.environ})
        out[variant] = json.loads(result.stdout.strip().splitlines()[-1])
        print(f"{variant:8} peak {out[variant]['peak'] / 2**20:9,.0f} MiB ({out[variant]['peak'] / logits:4.1f} copies)"
              f"   {out[variant]['seconds']:.3f} s a step")
    a, b = out["plain"]["digest"], out["chunked"]["digest"]
    same = all(abs(x - y) <= 1e-4 * max(abs(x), 1e-12) for x, y in zip(a, b))
    print(f"loss and gradient agree: {'yes' if same else 'NO'} (|grad| sum {a[0]:.6g} vs {b[0]:.6g})")
    print(f"ratio {out['plain']['peak'] / out['chunked']['peak']:.2f}x peak memory (plain / chunked), "
          f"{out['plain']['seconds'] / out['chunked']['seconds']:.2f}x time")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
