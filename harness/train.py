"""The training loop, under Hugging Face accelerate: cross-entropy, or a KD method's loss.

One loop serves every role. On one CPU it is a plain loop; under `accelerate launch` the same
code runs data-parallel on several GPUs or machines.

The training set D repeats some members many times, so the loop takes the distinct rows and
an `order` of row indices. A logit-level method then needs the teacher's logits only once per
distinct row, not once per row per epoch: they are computed up front when they fit in
`TEACHER_LOGITS_BUDGET` bytes, and per batch otherwise.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.utils import set_seed
from torch.utils.data import DataLoader, TensorDataset
from transformers import get_scheduler

from harness import progress
from harness.errors import RunFailed
from harness.faults import fault
from harness.registry import Training
from harness.specs import LogitBatch

LossFn = Callable[[LogitBatch], torch.Tensor]

TEACHER_LOGITS_BUDGET = int(os.environ.get("HARNESS_TEACHER_LOGITS_BYTES", 2 << 30))


def train(model, rows: torch.Tensor, order: torch.Tensor, cfg: Training, *, seed: int, stage: str,
          loss_fn: LossFn | None = None, teacher=None, precompute_teacher: bool | None = None):
    """Train `model` on `rows[order]` (token ids, all rows the same length); returns the trained model.

    Without `loss_fn` the loss is next-token cross-entropy; with it, the teacher's logits for
    the same rows are handed to the method's loss. `precompute_teacher` forces (True) or
    forbids (False) computing them once up front; by default they are when they fit.
    """
    set_seed(seed)
    accelerator = Accelerator()
    loader = DataLoader(TensorDataset(order), batch_size=cfg.batch_size, shuffle=True,
                        generator=torch.Generator().manual_seed(seed))
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    total = cfg.epochs * math.ceil(len(order) / cfg.batch_size)
    scheduler = get_scheduler(cfg.schedule if cfg.schedule != "constant" else "constant_with_warmup",
                              optimizer, num_warmup_steps=int(cfg.warmup_ratio * total), num_training_steps=total)
    model, optimizer, loader, scheduler = accelerator.prepare(model, optimizer, loader, scheduler)
    rows = rows.to(accelerator.device)
    teacher_logits = None
    if loss_fn is not None:
        teacher = teacher.to(accelerator.device).eval()
        if precompute_teacher is None:
            precompute_teacher = _logits_bytes(rows, teacher) <= TEACHER_LOGITS_BUDGET
        if precompute_teacher:
            teacher_logits = _teacher_logits(teacher, rows, cfg.batch_size, stage, accelerator.is_main_process)
    model.train()
    bar = progress.bar(total, stage, "step", accelerator.is_main_process)
    step = 0
    for _ in range(cfg.epochs):
        for (index,) in loader:
            batch = rows[index]
            logits = model(input_ids=batch).logits[:, :-1]
            labels = batch[:, 1:]
            if loss_fn is None:
                loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), labels.reshape(-1))
            else:
                if teacher_logits is not None:
                    t_logits = teacher_logits[index]
                else:
                    with torch.no_grad():
                        t_logits = teacher(input_ids=batch).logits[:, :-1]
                loss = loss_fn(LogitBatch(logits, t_logits, labels))
            if not torch.isfinite(loss):
                lr = scheduler.get_last_lr()[0]
                raise RunFailed(f"{stage}: loss became {loss.item()} at step {step + 1} of {total} (lr {lr:.3g})")
            accelerator.backward(loss)
            accelerator.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            fault(f"{stage}:step")
            bar.update()
            if step % 10 == 0:
                bar.set_postfix(loss=f"{loss.item():.3f}")
    bar.close()
    model.eval()
    return accelerator.unwrap_model(model)


def _logits_bytes(rows: torch.Tensor, teacher) -> int:
    """What the teacher's float32 logits for every distinct row would take."""
    return rows.shape[0] * (rows.shape[1] - 1) * teacher.config.vocab_size * 4


@torch.no_grad()
def _teacher_logits(teacher, rows: torch.Tensor, batch_size: int, stage: str, main: bool) -> torch.Tensor:
    """The teacher's logits for every distinct row, once: the same values a per-batch pass gives."""
    out = []
    bar = progress.bar(len(rows), f"{stage}: teacher logits", "ex", main)
    for start in range(0, len(rows), batch_size):
        out.append(teacher(input_ids=rows[start : start + batch_size]).logits[:, :-1].float())
        bar.update(len(out[-1]))
    bar.close()
    return torch.cat(out)
