"""The memory and time a run will take, printed before it starts, with a warning when it cannot fit.

Rough by design: parameters x bytes for the weights, gradients and AdamW's two moments (the
student stage also holds the teacher and, when they fit the budget, its logits), and the training
arithmetic as 6 x parameters x tokens (2 x for each forward pass of a teacher), timed against a
matmul measured here. Good to an order of magnitude, which is what decides whether to start.
"""

from __future__ import annotations

import time

import torch

from harness.registry import Preset
from harness.specs import ModelFamily

ADAM_STATES = 2  # exp_avg and exp_avg_sq, in the parameters' dtype
MATMUL_EFFICIENCY = 0.5  # share of a bare matmul's speed a training step reaches, roughly


def estimate(family: ModelFamily, tokenizer, sizes: dict[str, str], preset: Preset, train_rows: int,
             example_len: int) -> list[str]:
    """Lines for the log: per model its size and memory, per role tokens x epochs and time; a warning if too big."""
    width = 4  # float32 weights, gradients and moments; on a GPU the arithmetic runs under bf16 autocast
    n = {role: n_params(family, size, tokenizer) for role, size in sizes.items()}
    tokens = train_rows * example_len
    flops = {
        "teacher": 6 * n["teacher"] * tokens * preset.teacher.epochs,
        "baseline": 6 * n["student"] * tokens * preset.baseline.epochs,
        # the teacher's forward pass on each distinct row, once, plus the student's training
        "student": 6 * n["student"] * tokens * preset.student.epochs + 2 * n["teacher"] * tokens,
    }
    train_bytes = {role: count * width * (2 + ADAM_STATES) for role, count in n.items()}
    peak = max(train_bytes["teacher"], train_bytes["student"] + n["teacher"] * width)
    speed = matmul_flops(_compute_dtype()) * MATMUL_EFFICIENCY
    lines = [
        f"estimate: teacher {family.name}-{sizes['teacher']} {_count(n['teacher'])} params, "
        f"student {family.name}-{sizes['student']} {_count(n['student'])} params, float32 "
        f"({width} bytes each; x{2 + ADAM_STATES} with gradients and AdamW): peak about {_bytes(peak)} "
        f"(teacher training {_bytes(train_bytes['teacher'])})",
        f"estimate: {train_rows} sequences x {example_len} tokens = {_count(tokens)} tokens per epoch; "
        f"epochs {preset.teacher.epochs}/{preset.baseline.epochs}/{preset.student.epochs} (teacher/baseline/student); "
        f"about {_seconds(sum(flops.values()) / speed)} of training on {_device()} "
        f"(teacher {_seconds(flops['teacher'] / speed)}, baseline {_seconds(flops['baseline'] / speed)}, "
        f"student {_seconds(flops['student'] / speed)})",
    ]
    room, where = memory()
    if peak > room:
        lines.append(f"warning: this run needs about {_bytes(peak)} but {where} has {_bytes(room)}: it will "
                     "likely run out of memory; choose a smaller preset or pair, or a bigger machine")
    return lines


def n_params(family: ModelFamily, size: str, tokenizer) -> int:
    if family.n_params is not None:
        return family.n_params(size, tokenizer)
    with torch.device("meta"):  # builds the shapes only: no memory, no time
        model = family.model(size, tokenizer)
    return sum(p.numel() for p in model.parameters())


def memory() -> tuple[int, str]:
    """Bytes the run can use, and where: the GPU's total, or the host's available memory."""
    if torch.cuda.is_available():
        return torch.cuda.get_device_properties(0).total_memory, torch.cuda.get_device_name(0)
    import psutil

    return psutil.virtual_memory().available, "this machine (available RAM)"


def matmul_flops(dtype: torch.dtype, n: int = 1024, seconds: float = 0.1) -> float:
    """Measured FLOP/s of a square matmul on the training device: a basis for the time estimate."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    a = torch.randn(n, n, dtype=dtype, device=device)
    a @ a  # warm-up
    reps, start = 0, time.perf_counter()
    while True:
        a @ a
        reps += 1
        if device == "cuda":
            torch.cuda.synchronize()
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return 2 * n**3 * reps / elapsed


def _compute_dtype() -> torch.dtype:
    return torch.bfloat16 if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else torch.float32


def _device() -> str:
    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"the CPU ({torch.get_num_threads()} threads)"


def _count(n: float) -> str:
    for unit, scale in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f}{unit}"
    return f"{n:.0f}"


def _bytes(n: float) -> str:
    for unit, scale in (("TB", 1 << 40), ("GB", 1 << 30), ("MB", 1 << 20)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n / 1024:.0f} KB"


def _seconds(s: float) -> str:
    if s >= 2 * 3600:
        return f"{s / 3600:.0f} h"
    if s >= 120:
        return f"{s / 60:.0f} min"
    return f"{s:.0f} s"
