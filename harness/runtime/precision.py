"""Which precision each pass runs at, chosen once for the whole harness.

Training runs under `precision()`: bf16 autocast over float32 weights on a GPU, as the published
runs, else float32. The teacher's outputs that a student trains on are part of training and run
at the same precision, explicitly, so a teacher trained in this run and the same weights loaded
from the cache give the student the same numbers. Every pass that scores or decodes (extraction,
continuations, the attacks' evidence) runs at `scoring()`: bf16 where training is bf16 (a GPU that
has it), else float32, or as `HARNESS_SCORING` says. A model is scored with its float32 weights
rounded to the scoring dtype (`for_scoring`), which a model trained in the run and the same
checkpoint loaded from the cache round alike: a verdict never depends on where the weights came
from. An arg-max tie is one within `tie_tolerance` of the scoring dtype
(`harness.measure.extract`). A data-level method's teacher text is training data and is decoded
in float32. Sharded (FSDP) runs score in float32 for now: casting a sharded model's weights has
not been tried on a GPU.
"""

from __future__ import annotations

import os
from contextlib import AbstractContextManager, nullcontext

SCORINGS = ("float32", "bf16")
# Two logits this close (relative to the larger, or absolutely below 1) count as a tie: greedy
# decoding with a KV cache may pick either. float32: far above its rounding (~6e-8) and below any
# real margin; bf16 keeps 8 significant bits, so two logits within 2 of its steps (2^-7 relative)
# may swap order under another kernel's accumulation.
TIE_TOLERANCE = {"float32": 1e-4, "bf16": 2.0**-7}


def precision() -> str:
    """The training precision: accelerate's config or ACCELERATE_MIXED_PRECISION when set, else bf16
    autocast over float32 weights on a GPU that has it, as the published runs (the optimizer keeps
    full-precision weights, so lr 5e-5 updates are not rounded away), else "no" (float32)."""
    import torch

    chosen = os.environ.get("ACCELERATE_MIXED_PRECISION")
    if chosen:
        return chosen
    return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"


def scoring() -> str:
    """The scoring precision: HARNESS_SCORING (float32 or bf16) when set, else bf16 where training
    runs under bf16, else float32; float32 under sharding (see above)."""
    from harness.errors import UsageError
    from harness.runtime import sharding

    chosen = os.environ.get("HARNESS_SCORING", "").strip().lower()
    if chosen and chosen not in SCORINGS:
        raise UsageError(f"HARNESS_SCORING must be one of {', '.join(SCORINGS)}, got {chosen!r}")
    if sharding.enabled():
        return "float32"
    return chosen or ("bf16" if precision() == "bf16" else "float32")


def for_scoring(model):
    """`model` with its weights in the scoring dtype, cast in place (a run scores after it has
    trained everything, so nothing trains on the rounded weights); float32 leaves it as it is."""
    import torch

    if scoring() == "bf16" and next(model.parameters()).dtype != torch.bfloat16:
        model.to(torch.bfloat16)
    return model


def tie_tolerance(dtype) -> float:
    """The arg-max tie tolerance for logits computed in `dtype` (a torch dtype)."""
    import torch

    return TIE_TOLERANCE["bf16" if dtype in (torch.bfloat16, torch.float16) else "float32"]


def precisions() -> str:
    """How a run's numbers were computed, for its `runs.device` record."""
    return f"training {'float32' if precision() == 'no' else precision()}, scoring {scoring()}"



def training_autocast(device) -> AbstractContextManager:
    """The training precision as an explicit context, for forward passes outside the trained model
    (the teacher's outputs): the same numbers whether the teacher was trained here or loaded."""
    import torch

    mode = precision()
    if mode not in ("bf16", "fp16"):
        return nullcontext()
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16 if mode == "bf16" else torch.float16)
