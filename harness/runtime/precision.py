"""Which precision each pass runs at, chosen once for the whole harness.

Training runs under `precision()`: bf16 autocast over float32 weights on a GPU, as the published
runs, else float32. The teacher's outputs that a student trains on are part of training and run
at the same precision, explicitly, so a teacher trained in this run and the same weights loaded
from the cache give the student the same numbers. Every pass that scores or decodes
(extraction, continuations, a data-level method's teacher text) runs float32 (`SCORING`): a
verdict then never depends on what trained the weights, and an arg-max tie means a float32 tie
(`harness.measure.extract.TIE_TOLERANCE`).
"""

from __future__ import annotations

import os
from contextlib import AbstractContextManager, nullcontext

SCORING = "float32"


def precision() -> str:
    """The training precision: accelerate's config or ACCELERATE_MIXED_PRECISION when set, else bf16
    autocast over float32 weights on a GPU that has it, as the published runs (the optimizer keeps
    full-precision weights, so lr 5e-5 updates are not rounded away), else "no" (float32)."""
    import torch

    chosen = os.environ.get("ACCELERATE_MIXED_PRECISION")
    if chosen:
        return chosen
    return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"


def precisions() -> str:
    """How a run's numbers were computed, for its `runs.device` record."""
    return f"training {'float32' if precision() == 'no' else precision()}, scoring {SCORING}"



def training_autocast(device) -> AbstractContextManager:
    """The training precision as an explicit context, for forward passes outside the trained model
    (the teacher's outputs): the same numbers whether the teacher was trained here or loaded."""
    import torch

    mode = precision()
    if mode not in ("bf16", "fp16"):
        return nullcontext()
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16 if mode == "bf16" else torch.float16)
