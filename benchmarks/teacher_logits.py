"""Soft-KD student training with the teacher's logits computed once per distinct member, against per batch.

    python benchmarks/teacher_logits.py [--epochs N] [--members 512] [--teacher-shape HIDDEN,LAYERS] [--rounds 2]
        [--quick]

D repeats some members up to 16 times, and every epoch sees every row again, so a teacher pass
per batch recomputes the same logits many times over. The harness computes them once
per distinct member, in memory when they fit, else into a memory-mapped file in the artifact
cache (`harness.training.distill`). This script trains the same student from the same starting weights
three ways (per batch, once in memory, once streamed from a fresh cache), on the embedded
default's data and model sizes, prints the times, checks the students agree, and ends with
`ratio R.RRx` (per-batch time / once-in-memory time).

What caching can give at most is the per-batch time over the time with the teacher's outputs
free (once-in-memory less its one pass over the distinct members): the student's own step and
the KD loss over the vocabulary are paid either way. The script prints that ceiling and the
share of it reached, and the plain cross-entropy training of the same student (the baseline's
cost) for scale. The gain grows with the teacher's size against the student's: `--teacher-shape
256,4` builds a GPT-NeoX teacher of that hidden size and depth on the tiny family's recipe, 8.8x
the student's matrix weights, as Pythia 12b is 8.6x Pythia 1.4b (the family's 2.6m is 5.2x).
`--quick` (32 members, one epoch, one round) runs the same path in seconds, to check the script,
not to measure.
"""

from __future__ import annotations

import argparse
import copy
import os
import tempfile
import time
from dataclasses import replace

import torch

os.environ.setdefault("HARNESS_PROGRESS", "0")

import _quick  # benchmarks/_quick.py: this folder is first on sys.path

from harness.config import registry  # noqa: E402
from harness.contract.specs import resolve_params  # noqa: E402
from harness.protocol.data import cut  # noqa: E402
from harness.runtime.cache import Cache  # noqa: E402
from harness.training.distill import Distiller  # noqa: E402
from harness.training.train import train  # noqa: E402
from harness_plugins.datasets import synthetic_pii  # noqa: E402
from harness_plugins.families import tiny  # noqa: E402
from harness_plugins.methods import soft_kd  # noqa: E402

# --quick: the same path in seconds (the figures then mean nothing).
QUICK = {"members": 32, "epochs": 1, "rounds": 1}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=None,
                        help="student epochs (default: the embedded default's, from registry.toml's tiny preset)")
    parser.add_argument("--members", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=2, help="rounds of the ways, the best time of each kept")
    parser.add_argument("--teacher-shape", default=None, metavar="HIDDEN,LAYERS",
                        help="a larger teacher than the family's 2.6m (192,4), e.g. 256,4")
    opts = _quick.options(parser, QUICK, "32 members, one epoch, one round")

    registered = []
    synthetic_pii.register_datasets(register=registered.append)
    dataset = registered[0]
    split = dataset.load(resolve_params(dataset.params, {"n_members": opts.members}, dataset.name))
    tokenizer = tiny.build_tokenizer([ex.text for ex in split.members])
    members = cut("member", split.members, tokenizer, 64, False, dataset.name)
    order = members.training_rows()
    torch.manual_seed(0)
    teacher_size = "2.6m"
    if opts.teacher_shape:  # a size the family does not ship, on its recipe (4 heads, 4x feed-forward)
        hidden, layers = (int(x) for x in opts.teacher_shape.split(","))
        teacher_size = f"hidden {hidden}, {layers} layers"
        tiny.SIZES[teacher_size] = (hidden, layers, 4)
    teacher = tiny.build_model(teacher_size, tokenizer).eval()  # its logits' values do not change the cost
    torch.manual_seed(0)
    start = tiny.build_model("0.6m", tokenizer)
    preset = registry.load(None).preset("tiny").training("student")  # the embedded default's student
    cfg = replace(preset, epochs=opts.epochs or preset.epochs)
    methods = []
    soft_kd.register_kd_methods(register=methods.append)
    method = methods[0]
    args = resolve_params(method.params, {}, method.name)
    weights = {role: sum(p.numel() for p in m.parameters() if p.dim() == 2 and p is not m.get_input_embeddings().weight)
               for role, m in (("teacher", teacher), ("student", start))}  # the matrix weights a token passes through
    print(f"soft KD, tiny {teacher_size} teacher -> 0.6m student ({weights['teacher'] / weights['student']:.1f}x "
          f"its matrix weights), {len(members)} distinct members, {len(order)} rows per epoch, {cfg.epochs} epochs, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")

    def teach(label: str, cache_dir: str):
        """One student trained `label`'s way; returns it and the seconds it took."""
        how = {"per batch": {"precompute_teacher": False}, "once": {"precompute_teacher": True},
               "from disk": {"teacher_budget": 0, "cache": Cache(cache_dir), "teacher_key": "benchmark"}}
        t0 = time.perf_counter()
        distiller = None if label == "no teacher" else Distiller(
            method, args, teacher, members.ids, prefix_len=32, batch_size=cfg.batch_size, stage=label, seed=0,
            **how[label])
        student = train(copy.deepcopy(start), members.ids, order, cfg, seed=0, stage=label, distiller=distiller)
        return student, time.perf_counter() - t0

    # This machine's speed drifts by tens of percent over minutes: the ways run in rounds, in
    # reverse order every other round, and each keeps its best time.
    labels = ["per batch", "once", "from disk", "no teacher"]
    students, rounds = {}, {label: [] for label in labels}
    for r in range(opts.rounds):
        for label in labels if r % 2 == 0 else labels[::-1]:
            with tempfile.TemporaryDirectory() as cache_dir:  # a fresh cache: the disk way writes its file
                students[label], t = teach(label, cache_dir)
            rounds[label].append(t)
    seconds = {label: min(times) for label, times in rounds.items()}
    for label in labels[:3]:
        print(f"teacher logits {label:<9}: {seconds[label]:7.1f} s   (rounds: "
              f"{', '.join(f'{t:.1f}' for t in rounds[label])})")
    print(f"no teacher (cross-entropy): {seconds['no teacher']:7.1f} s   the baseline's training, for scale")
    one_pass = Distiller(method, args, teacher, members.ids, prefix_len=32, batch_size=cfg.batch_size,
                         stage="one pass", seed=0, precompute_teacher=True)
    one_pass.bind(start)
    t0 = time.perf_counter()
    one_pass.outputs[torch.arange(1)]  # computes every distinct member's logits
    once_pass = time.perf_counter() - t0
    free = seconds["once"] - once_pass
    ceiling = seconds["per batch"] / free
    reached = (seconds["per batch"] - seconds["once"]) / (seconds["per batch"] - free)
    print(f"the teacher's one pass over the {len(members)} distinct members: {once_pass:.1f} s; with its outputs "
          f"free the student would take {free:.1f} s: caching can give at most {ceiling:.2f}x, and reaches "
          f"{reached:.0%} of that saving")

    diff = max((a - b).abs().max().item() for other in ("once", "from disk")
               for a, b in zip(students["per batch"].parameters(), students[other].parameters()))
    print(f"largest difference between the students' weights: {diff:.2e}")
    print(f"ratio {seconds['per batch'] / seconds['once']:.2f}x")


if __name__ == "__main__":
    main()
