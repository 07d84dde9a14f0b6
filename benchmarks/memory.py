"""Peak memory of training and extraction at 1k, 10k and 100k examples: flat, against a scorer that keeps logits.

    python benchmarks/memory.py [--sizes 1000,10000,100000] [--steps 100] [--quick]

Each measurement runs in a fresh child process and reads its peak resident memory (ru_maxrss).
The harness's way, on the tiny family's 0.6m model with the embedded default's tokenizer and
examples of 64 tokens: `harness.training.train.train` for `--steps` steps drawn from all n rows (the loop
holds the token rows and one batch at a time), then `harness.measure.extract.extract` over all n (one
batch of logits at a time; per example it keeps the verdict, losses and the per-token figures the
attacks score from, about 0.8 KB). The alternative is the simple scorer that runs the model over
every example and keeps the log-probabilities to score from afterwards: its memory grows by
positions x vocabulary x 4 bytes per example (0.5 MB here), so it runs only where that fits.

Printed: each size's peak, what the per-example results themselves take, and the rest (the
working memory, which is what must stay flat); the last line is `ratio R.RRx`, the
alternative's peak over the harness's at the largest size both ran. `--quick` (100 and 200
examples, 3 steps) runs the same path in seconds, to check the script, not to measure.
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

LENGTH = 64
# --quick: the same path in seconds (the figures then mean nothing).
QUICK = {"sizes": "100,200", "steps": 3}


def child(n: int, mode: str, steps: int) -> dict:
    os.environ["HARNESS_PROGRESS"] = "0"
    import torch
    import torch.nn.functional as F

    from harness.config.registry import Training
    from harness.measure.extract import extract
    from harness.training.train import train
    from harness_plugins.datasets import synthetic_pii
    from harness_plugins.families import tiny

    split = synthetic_pii.load({"seed": 0, "n_members": 512, "n_nonmembers": 0, "n_validation": 0, "repeat_share": 0.4,
                                "secret_share": 0.25})
    tokenizer = tiny.build_tokenizer([ex.text for ex in split.members])
    torch.manual_seed(0)
    model = tiny.build_model("0.6m", tokenizer)
    ids = torch.randint(0, len(tokenizer), (n, LENGTH), generator=torch.Generator().manual_seed(0))
    base = peak_bytes()
    t0 = time.perf_counter()
    if mode == "harness":
        order = torch.randperm(n, generator=torch.Generator().manual_seed(0))[: steps * 32]
        cfg = Training(epochs=1, lr=1e-3, batch_size=32, warmup_ratio=0.0, weight_decay=0.0, schedule="constant")
        model = train(model, ids, order, cfg, seed=0, stage="train")
        result = extract(model, ids, 32, 32, batch_size=64)
        kept = sum(t.numel() * t.element_size() for t in result.as_dict().values())
        check = float(result.loss.mean())
    else:
        model.eval()
        with torch.no_grad():
            logprobs = torch.cat([F.log_softmax(model(input_ids=ids[s : s + 64]).logits[:, :-1].float(), dim=-1)
                                  for s in range(0, n, 64)])
            token_lp = logprobs.gather(-1, ids[:, 1:, None]).squeeze(-1)
        kept = logprobs.numel() * logprobs.element_size()
        check = float(-token_lp.mean(dim=1).mean())
    return {"peak": peak_bytes(), "base": base, "kept": kept, "ids": ids.numel() * ids.element_size(),
            "seconds": time.perf_counter() - t0, "check": check, "vocab": len(tokenizer)}


def peak_bytes() -> int:
    usage = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return usage if sys.platform == "darwin" else usage * 1024  # bytes on macOS, KiB on Linux


def measure(n: int, mode: str, steps: int) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", str(n), "--mode", mode, "--steps", str(steps)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def available() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="1000,10000,100000")
    p.add_argument("--steps", type=int, default=100, help="training steps at each size (default 100)")
    p.add_argument("--child", type=int, help=argparse.SUPPRESS)
    p.add_argument("--mode", default="harness", help=argparse.SUPPRESS)
    args = _quick.options(p, QUICK, "100 and 200 examples, 3 steps")
    if args.child is not None:
        print(json.dumps(child(args.child, args.mode, args.steps)))
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    mb = 1e6
    print(f"tiny 0.6m, examples of {LENGTH} tokens; train {args.steps} steps of 32 rows drawn from all n, "
          f"then extract all n (batch 64); peak resident memory of a fresh process")
    print(f"{'examples':>9} {'way':<22} {'peak MB':>8} {'results MB':>10} {'rows MB':>8} {'working MB':>10} {'s':>6}")
    harness, simple = {}, {}
    for n in sizes:
        harness[n] = r = measure(n, "harness", args.steps)
        work = r["peak"] - r["kept"] - r["ids"]
        print(f"{n:>9} {'harness (streamed)':<22} {r['peak'] / mb:8.0f} {r['kept'] / mb:10.1f} {r['ids'] / mb:8.1f} "
              f"{work / mb:10.0f} {r['seconds']:6.1f}")
    for n in sizes:
        need = n * (LENGTH - 1) * harness[n]["vocab"] * 4
        if need > 0.5 * available():
            print(f"{n:>9} {'keep log-probs':<22} needs {need / 1e9:.1f} GB for the log-probabilities alone; not run")
            continue
        simple[n] = r = measure(n, "simple", args.steps)
        print(f"{n:>9} {'keep log-probs':<22} {r['peak'] / mb:8.0f} {r['kept'] / mb:10.1f} {r['ids'] / mb:8.1f} "
              f"{(r['peak'] - r['kept'] - r['ids']) / mb:10.0f} {r['seconds']:6.1f}")
    works = [harness[n]["peak"] - harness[n]["kept"] - harness[n]["ids"] for n in sizes]
    print(f"harness working memory from {sizes[0]} to {sizes[-1]} examples: {works[0] / mb:.0f} -> "
          f"{works[-1] / mb:.0f} MB ({works[-1] / works[0]:.2f}x for {sizes[-1] // sizes[0]}x the examples)")
    both = max(simple)
    print(f"at {both} examples: keeping log-probabilities {simple[both]['peak'] / mb:.0f} MB, "
          f"harness {harness[both]['peak'] / mb:.0f} MB")
    print(f"ratio {simple[both]['peak'] / harness[both]['peak']:.2f}x")


if __name__ == "__main__":
    main()
