"""Soft-KD student training with the teacher's logits computed once per distinct member, against per batch.

    python benchmarks/teacher_logits.py [--epochs N] [--members 512]

D repeats some members up to 16 times, and every epoch sees every row again, so a teacher pass
per batch recomputes the same logits many times over. The harness computes them once
per distinct member, in memory when they fit, else into a memory-mapped file in the artifact
cache (`harness.distill`). This script trains the same student from the same starting weights
three ways (per batch, once in memory, once streamed from a fresh cache), on the embedded
default's data and model sizes, prints the times, checks the students agree, and ends with
`ratio R.RRx` (per-batch time / once-in-memory time).
"""

from __future__ import annotations

import argparse
import copy
from dataclasses import replace
import os
import tempfile
import time

import torch

os.environ.setdefault("HARNESS_PROGRESS", "0")

from harness.cache import Cache  # noqa: E402
from harness.data import cut  # noqa: E402
from harness.distill import Distiller  # noqa: E402
from harness import registry  # noqa: E402
from harness.specs import resolve_params  # noqa: E402
from harness.train import train  # noqa: E402
from harness_plugins.datasets import synthetic_pii  # noqa: E402
from harness_plugins.families import tiny  # noqa: E402
from harness_plugins.methods import soft_kd  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=None,
                        help="student epochs (default: the embedded default's, from registry.toml's tiny preset)")
    parser.add_argument("--members", type=int, default=512)
    opts = parser.parse_args()

    registered = []
    synthetic_pii.register_datasets(register=registered.append)
    dataset = registered[0]
    split = dataset.load(resolve_params(dataset.params, {"n_members": opts.members}, dataset.name))
    tokenizer = tiny.build_tokenizer([ex.text for ex in split.members])
    members = cut("member", split.members, tokenizer, 64, False, dataset.name)
    order = members.training_rows()
    torch.manual_seed(0)
    teacher = tiny.build_model("2.6m", tokenizer).eval()  # its logits' values do not change the cost
    torch.manual_seed(0)
    start = tiny.build_model("0.6m", tokenizer)
    preset = registry.load(None).preset("tiny").training("student")  # the embedded default's student
    cfg = replace(preset, epochs=opts.epochs or preset.epochs)
    methods = []
    soft_kd.register_kd_methods(register=methods.append)
    method = methods[0]
    args = resolve_params(method.params, {}, method.name)
    print(f"soft KD, tiny 2.6m teacher -> 0.6m student, {len(members)} distinct members, {len(order)} rows "
          f"per epoch, {cfg.epochs} epochs, torch {torch.__version__}, {torch.get_num_threads()} threads")

    students, seconds = {}, {}
    with tempfile.TemporaryDirectory() as cache_dir:
        ways = (("per batch", {"precompute_teacher": False}), ("once", {"precompute_teacher": True}),
                ("from disk", {"teacher_budget": 0, "cache": Cache(cache_dir), "teacher_key": "benchmark"}))
        for label, how in ways:
            t0 = time.perf_counter()
            distiller = Distiller(method, args, teacher, members.ids, prefix_len=32, batch_size=cfg.batch_size,
                                  stage=label, seed=0, **how)
            students[label] = train(copy.deepcopy(start), members.ids, order, cfg, seed=0, stage=label,
                                    distiller=distiller)
            seconds[label] = time.perf_counter() - t0
            print(f"teacher logits {label:<9}: {seconds[label]:7.1f} s")

    diff = max((a - b).abs().max().item() for other in ("once", "from disk")
               for a, b in zip(students["per batch"].parameters(), students[other].parameters()))
    print(f"largest difference between the students' weights: {diff:.2e}")
    print(f"ratio {seconds['per batch'] / seconds['once']:.2f}x")


if __name__ == "__main__":
    main()
