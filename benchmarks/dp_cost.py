"""What DP-SGD costs: dp-kd's student training against soft-kd's, time and peak memory, on the embedded default's shapes.

    python benchmarks/dp_cost.py [--members 512] [--repeats 3] [--epochs 1] [--quick]

Both train the embedded default's 0.6m student (the `tiny` family's config, vocabulary 2048) under
its 2.6m teacher on `--members` random rows of the preset's 64 tokens, each repeated `--repeats`
times as the planted duplicates are, with the tiny preset's student recipe. soft-kd steps through
every occurrence in shuffled batches (`harness.training.train`); dp-kd draws Poisson batches of
members (a record each, its repeats summed), computes every record's gradient (Opacus), clips and
noises them (`harness.training.private`), so it takes fewer steps of more work. Each variant runs
in a fresh process: the rise of its resident memory during training (sampled every 5 ms), and its
training seconds. The script prints both and the ratios (dp-kd / soft-kd), per run and per step.
`--quick` (32 members, each once) runs the same path in seconds, to check the script, not to measure.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time

import _quick  # benchmarks/_quick.py: this folder is first on sys.path

# --quick: the same path in seconds (the figures then mean nothing).
QUICK = {"members": 32, "repeats": 1}


def measure(args) -> dict:
    import torch

    from harness.config import plugins, registry
    from harness.contract.specs import resolve_params
    from harness.training.distill import Distiller
    from harness.training.private import train_private
    from harness.training.train import train
    from harness_plugins.families import tiny

    torch.set_num_threads(args.threads)

    class Vocab:  # the embedded default's tokenizer is 2048 tokens: build_model reads only its length
        def __len__(self):
            return tiny.VOCAB_SIZE
        bos_token_id, eos_token_id, pad_token_id = 0, 1, 2

    reg = registry.load()
    preset = reg.presets["tiny"]
    found = plugins.load(reg)
    method = found.method(args.variant)
    cfg = preset.training("student", method)
    if args.epochs:
        cfg = type(cfg)(**{**cfg.__dict__, "epochs": args.epochs})
    torch.manual_seed(0)
    teacher, student = tiny.build_model("2.6m", Vocab()), tiny.build_model("0.6m", Vocab())
    rows = torch.randint(0, tiny.VOCAB_SIZE, (args.members, preset.example_len), generator=torch.Generator().manual_seed(0))
    order = torch.arange(args.members).repeat(args.repeats)
    params = resolve_params(method.params, {}, args.variant)
    distiller = Distiller(method, params, teacher, rows, prefix_len=preset.prefix_len, batch_size=cfg.batch_size,
                          stage="student", seed=0, layer_map=lambda s, t: (), precompute_teacher=True)
    distiller.outputs[torch.arange(1)]  # the teacher's outputs before the clock and the memory baseline
    with Peak() as peak:
        t0 = time.perf_counter()
        if method.private:
            _, spent = train_private(student, rows, order, cfg, seed=0, stage="student", distiller=distiller)
            steps = spent.steps
        else:
            train(student, rows, order, cfg, seed=0, stage="student", distiller=distiller)
            steps = cfg.epochs * -(-len(order) // cfg.batch_size)
        seconds = time.perf_counter() - t0
    return {"seconds": seconds, "peak": peak.bytes, "steps": steps, "batch": cfg.batch_size, "epochs": cfg.epochs}


class Peak:
    """The resident memory's rise over its level on entry, sampled every 5 ms on a thread (the
    process's lifetime maximum would hide training under the teacher's outputs computed before it)."""

    def __enter__(self):
        import psutil

        self.proc, self.stop = psutil.Process(), threading.Event()
        self.start = self.top = self.proc.memory_info().rss
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def _sample(self):
        while not self.stop.wait(0.005):
            self.top = max(self.top, self.proc.memory_info().rss)

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()
        self.bytes = self.top - self.start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3, help="occurrences of each member (default 3)")
    parser.add_argument("--epochs", type=int, default=1, help="student epochs (0: the preset's)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--variant", choices=("soft-kd", "dp-kd"), help=argparse.SUPPRESS)
    args = _quick.options(parser, QUICK, "32 members, each once")
    if args.variant:
        print(json.dumps(measure(args)))
        return 0
    print(f"student 0.6m under teacher 2.6m, {args.members} members x {args.repeats} occurrences, "
          f"64-token rows, {args.threads} threads")
    out = {}
    for variant in ("soft-kd", "dp-kd"):
        env = {**os.environ, "HARNESS_PROGRESS": "0"}
        result = subprocess.run([sys.executable, __file__, "--variant", variant, *sys.argv[1:]],
                                capture_output=True, text=True, env=env)
        if result.returncode:
            print(result.stderr[-2000:], file=sys.stderr)
            return 1
        r = out[variant] = json.loads(result.stdout.strip().splitlines()[-1])
        print(f"{variant:8} {r['seconds']:7.1f} s for {r['steps']:4d} steps of {r['batch']} "
              f"({r['seconds'] / r['steps']:.3f} s a step)   peak +{r['peak'] / 2**20:7,.0f} MiB")
    dp, soft = out["dp-kd"], out["soft-kd"]
    print(f"ratio (dp-kd / soft-kd): {dp['seconds'] / soft['seconds']:.2f}x time per run, "
          f"{(dp['seconds'] / dp['steps']) / (soft['seconds'] / soft['steps']):.2f}x time per step, "
          f"{dp['peak'] / max(soft['peak'], 1):.2f}x peak memory")
    return 0


if __name__ == "__main__":
    sys.exit(main())
