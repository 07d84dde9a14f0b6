"""The extraction stage's cost against a bare forward loop, at the board's example counts.

    python benchmarks/extraction_cost.py [--members 512] [--nonmembers 512 2048] [--repeat 3] [--quick]

`harness.measure.extract.extract` makes one teacher-forced pass per example and, from its logits,
the verdict, the losses, what the membership attacks score from (each position's log-probabilities,
their mean and spread over the vocabulary) and, since probabilistic extraction, the suffix's
probability under top-k sampling. A bare loop makes the same no-grad forward passes in the same
batches and keeps nothing. For each role (the tiny family's 2.6m teacher and 0.6m student, random
weights: the cost does not depend on them) and each non-member count, both are timed on
members + non-members of 64 random tokens, best of `--repeat` after a warm-up, alternating which runs
first. The stage scores three roles, so its seconds are the sum over them. The last line is
`ratio R.RRx`: extract's time over the bare loop's at the largest count. `--quick` (64 members and
64 non-members, one timing) runs the same path in seconds, to check the script, not to measure.
"""

from __future__ import annotations

import argparse
import os
import time

import _quick  # benchmarks/_quick.py: this folder is first on sys.path
import torch

from harness.measure.extract import extract
from harness_plugins.families import tiny

PREFIX, SUFFIX, BATCH = 32, 32, 64
# --quick: the same path in seconds (the figures then mean nothing).
QUICK = {"members": 64, "nonmembers": [64], "repeat": 1}


def bare(model, ids: torch.Tensor) -> None:
    with torch.no_grad():
        for start in range(0, len(ids), BATCH):
            model(input_ids=ids[start:start + BATCH]).logits.float()


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--members", type=int, default=512)
    p.add_argument("--nonmembers", type=int, nargs="+", default=[512, 2048])
    p.add_argument("--repeat", type=int, default=3)
    args = _quick.options(p, QUICK, "64 members and 64 non-members, one timing")
    os.environ.setdefault("HARNESS_PROGRESS", "0")
    torch.manual_seed(0)
    from tokenizers import Tokenizer, models as tk_models
    from transformers import PreTrainedTokenizerFast

    vocab = {f"t{i}": i for i in range(2048)}
    tok = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(tk_models.WordLevel(vocab, unk_token="t0")),
                                  unk_token="t0", pad_token="t0", eos_token="t1")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; batch {BATCH}, {PREFIX} + {SUFFIX} tokens")
    print(f"{'role':8}  {'examples':>8}  {'bare s':>7}  {'extract s':>9}  {'ratio':>6}")
    ratio = float("nan")
    for n_non in args.nonmembers:
        total_bare = total_extract = 0.0
        for role, size in (("teacher", "2.6m"), ("student", "0.6m")):
            model = tiny.build_model(size, tok).eval()
            ids = torch.randint(0, 2048, (args.members + n_non, PREFIX + SUFFIX))
            bare(model, ids[:BATCH])  # warm-up
            extract(model, ids[:BATCH], PREFIX, SUFFIX, BATCH)
            t_bare = best(lambda model=model, ids=ids: bare(model, ids), args.repeat)
            t_ext = best(lambda model=model, ids=ids: extract(model, ids, PREFIX, SUFFIX, BATCH), args.repeat)
            t_bare = min(t_bare, best(lambda model=model, ids=ids: bare(model, ids), args.repeat))  # the other order
            print(f"{role:8}  {len(ids):8d}  {t_bare:7.2f}  {t_ext:9.2f}  {t_ext / t_bare:5.2f}x")
            weight = 2 if role == "student" else 1  # the stage scores baseline and student at the small size
            total_bare += weight * t_bare
            total_extract += weight * t_ext
        ratio = total_extract / total_bare
        print(f"stage at {args.members} members + {n_non} non-members (teacher, baseline, student): "
              f"bare {total_bare:.1f} s, extract {total_extract:.1f} s, {ratio:.2f}x")
    print(f"ratio {ratio:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
