"""The training loop, under Hugging Face accelerate: cross-entropy, or a KD method's loss.

One loop serves every role. On one CPU it is a plain loop; under `accelerate launch` the same
code runs data-parallel on several GPUs or machines.
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
from tqdm.auto import tqdm
from transformers import get_scheduler

from harness.errors import RunFailed
from harness.registry import Training
from harness.specs import LogitBatch

LossFn = Callable[[LogitBatch], torch.Tensor]


def progress_enabled() -> bool:
    return os.environ.get("HARNESS_PROGRESS", "1") != "0"


def train(model, sequences: torch.Tensor, cfg: Training, *, seed: int, stage: str,
          loss_fn: LossFn | None = None, teacher=None) -> None:
    """Train `model` in place on `sequences` (rows of token ids, all the same length).

    Without `loss_fn` the loss is next-token cross-entropy; with it, the teacher's logits for
    the same batch are computed without gradient and handed to the method's loss.
    """
    set_seed(seed)
    accelerator = Accelerator()
    loader = DataLoader(TensorDataset(sequences), batch_size=cfg.batch_size, shuffle=True,
                        generator=torch.Generator().manual_seed(seed))
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    total = cfg.epochs * math.ceil(len(sequences) / cfg.batch_size)
    scheduler = get_scheduler(cfg.schedule if cfg.schedule != "constant" else "constant_with_warmup",
                              optimizer, num_warmup_steps=int(cfg.warmup_ratio * total), num_training_steps=total)
    model, optimizer, loader, scheduler = accelerator.prepare(model, optimizer, loader, scheduler)
    if teacher is not None:
        teacher = teacher.to(accelerator.device).eval()
    model.train()
    bar = tqdm(total=total, desc=stage, unit="step", disable=not progress_enabled() or not accelerator.is_main_process,
               dynamic_ncols=True, leave=False)
    step = 0
    for _ in range(cfg.epochs):
        for (batch,) in loader:
            logits = model(input_ids=batch).logits[:, :-1]
            labels = batch[:, 1:]
            if loss_fn is None:
                loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), labels.reshape(-1))
            else:
                with torch.no_grad():
                    teacher_logits = teacher(input_ids=batch).logits[:, :-1]
                loss = loss_fn(LogitBatch(logits, teacher_logits, labels))
            if not torch.isfinite(loss):
                lr = scheduler.get_last_lr()[0]
                raise RunFailed(f"{stage}: loss became {loss.item()} at step {step + 1} of {total} (lr {lr:.3g})")
            accelerator.backward(loss)
            accelerator.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            bar.update()
            if step % 10 == 0:
                bar.set_postfix(loss=f"{loss.item():.3f}")
    bar.close()
    model.eval()
    return accelerator.unwrap_model(model)
