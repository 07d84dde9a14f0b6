"""The training loop, under Hugging Face accelerate: cross-entropy, or a KD method's loss.

One loop serves every role. On one CPU it is a plain loop; under `accelerate launch` the same
code runs data-parallel on several processes, GPUs or machines, with the single-process batches
(see `harness.runtime.processes`), so the trained model does not depend on how many processes made it.

The training set D repeats some members many times, so the loop takes the distinct rows and
an `order` of row indices; a `Distiller` (see `harness.training.distill`) turns each batch of indices
into the KD method's loss, reusing what the teacher said about each distinct row.
"""

from __future__ import annotations

import math
from contextlib import nullcontext
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.utils import set_seed
from torch.utils.data import DataLoader, TensorDataset
from transformers import get_scheduler

from harness.config.registry import Training, best_epoch
from harness.errors import RunFailed
from harness.runtime import memory, processes, progress, sharding
from harness.runtime.faults import fault
from harness.runtime.precision import precision, training_autocast
from harness.training.distill import Distiller


@dataclass
class Validation:
    """The validation split's rows, scored after every epoch; what the epochs gave (`losses`, one per
    epoch) and, under early stopping (`Training.patience`), the epoch whose weights were kept."""

    rows: torch.Tensor
    batch_size: int
    losses: list[float] = field(default_factory=list)

    @property
    def best_epoch(self) -> int:
        """1-based; 0 until an epoch was scored."""
        return best_epoch(self.losses)

    def score(self, model) -> float:
        """Mean next-token loss over the rows, at the training precision: the same on every process."""
        return mean_loss(model, self.rows, self.batch_size)


def mean_loss(model, rows: torch.Tensor, batch_size: int) -> float:
    """Mean next-token cross-entropy of `model` over `rows`, every token weighted alike."""
    total, count = 0.0, 0
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for batch in rows.split(batch_size):
            logits = model(input_ids=batch).logits[:, :-1].float()
            total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1),
                                     reduction="sum").item()
            count += batch[:, 1:].numel()
    model.train(was_training)
    return total / count


def train(model, rows: torch.Tensor, order: torch.Tensor, cfg: Training, *, seed: int, stage: str,
          distiller: Distiller | None = None, epoch_loss: list[float] | None = None,
          validation: Validation | None = None):
    """Train `model` on `rows[order]` (token ids, all rows the same length); returns the trained model.

    Without a `distiller` the loss is next-token cross-entropy on the rows. `epoch_loss`, if given,
    receives each epoch's mean training loss over the whole batches (the same in any number of
    processes): a loss that does not fall says the recipe does not suit the method. `validation`,
    if given, is scored after each epoch (it draws no random numbers, so the weights do not move);
    with `cfg.patience` the loop stops after that many epochs without a lower validation loss and
    returns the best epoch's weights.
    """
    set_seed(seed)
    sharded = sharding.enabled()
    accelerator = Accelerator(mixed_precision=precision())
    device = processes.device() if sharded else accelerator.device
    # Not prepared by accelerate: every process draws the same global batches and trains on its share.
    loader = DataLoader(TensorDataset(order), batch_size=cfg.batch_size, shuffle=True,
                        generator=torch.Generator().manual_seed(seed))
    extra = distiller.bind(model) if distiller is not None else None
    if sharded:  # weights sharded before the optimizer is made, so AdamW's moments are sharded too
        model = sharding.shard(model)
    parameters = [*model.parameters(), *(extra.parameters() if extra is not None else ())]
    # Fused AdamW (one kernel for every parameter's update) on a GPU, where the per-tensor loop is
    # launch-bound; the CPU keeps the loop, so the figures there do not move. Not under sharding:
    # FSDP2's sharded parameters keep the loop.
    fused = not sharded and accelerator.device.type == "cuda"  # prepare() moves the weights there below
    optimizer = torch.optim.AdamW(parameters, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=fused or None)
    total = cfg.epochs * math.ceil(len(order) / cfg.batch_size)
    scheduler = get_scheduler(cfg.schedule if cfg.schedule != "constant" else "constant_with_warmup",
                              optimizer, num_warmup_steps=int(cfg.warmup_ratio * total), num_training_steps=total)
    step_ = _Sharded(device) if sharded else _Accelerated(accelerator)
    if not sharded:
        model, optimizer = accelerator.prepare(model, optimizer)
        parameters = [*model.parameters(), *(extra.parameters() if extra is not None else ())]
    if extra is not None:
        distiller.modules = accelerator.prepare(extra)
        distiller.modules.train()
    if distiller is not None:
        distiller.to(device)
    rows = rows.to(device)
    model.train()
    bar = progress.bar(total, stage, "step")
    # Rows per forward pass: the batch, or micro-batches of it (gradients accumulated, the same update)
    # when a whole batch's logits would not fit, or did not. Sharded processes agree on it: each
    # forward pass is a collective, so they must make the same ones.
    copies = 5 if distiller is None else distiller.logit_copies
    chunk = memory.fit(cfg.batch_size, memory.logits_bytes(model, rows.shape[1], copies), device)
    chunk = processes.agree(chunk) if sharded else chunk
    step = 0
    best_state = None
    if validation is not None:
        validation.rows = validation.rows.to(device)
    for epoch in range(1, cfg.epochs + 1):
        running, steps = 0.0, 0  # this process's weighted share of each batch's mean loss
        for (index,) in loader:
            index, weight = processes.split_batch(index.to(device))
            while True:
                try:
                    loss = _accumulate(step_, model, rows, index, weight, chunk, distiller, step, total)
                    break
                except RuntimeError as err:
                    if sharded:  # one process cannot halve its batch alone
                        raise
                    optimizer.zero_grad(set_to_none=True)
                    chunk = memory.recover(err, min(chunk, len(index)), stage)
            if not torch.isfinite(loss):
                lr = scheduler.get_last_lr()[0]
                raise RunFailed(f"{stage}: loss became {loss.item()} at step {step + 1} of {total} (lr {lr:.3g})")
            running += loss.item() * weight
            steps += 1
            step_.clip(parameters, 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            fault(f"{stage}:step")
            bar.update()
            if step % 10 == 0:
                bar.set_postfix(loss=f"{loss.item():.3f}")
        if epoch_loss is not None and steps:
            epoch_loss.append(processes.total(running) / (processes.world() * steps))
        if validation is not None:
            loss = validation.score(model)
            validation.losses.append(loss)
            if cfg.patience and validation.best_epoch == epoch:  # a copy on the CPU, not a second model on
                # the device; sharded: each process its shard
                best_state = {k: v.detach().clone() if sharded else v.detach().to("cpu", copy=True)
                              for k, v in model.state_dict().items()}
            elif cfg.patience and epoch - validation.best_epoch >= cfg.patience:
                break
    bar.close()
    if best_state is not None and validation.best_epoch < len(validation.losses):
        model.load_state_dict(best_state)
    model.eval()
    if sharded:
        return model
    # Without accelerate's autocast wrapper: a model trained here must score exactly as the same
    # weights loaded from the cache do (in float32, see harness.runtime.precision), not under the training precision.
    return accelerator.unwrap_model(model, keep_fp32_wrapper=False)


class _Accelerated:
    """Backward, gradient sync and clipping through accelerate (one process, or DDP)."""

    def __init__(self, accelerator) -> None:
        self.accelerator = accelerator

    def forward(self):
        return nullcontext()  # accelerate's prepared model applies the training precision itself

    def backward(self, model, loss, sync: bool) -> None:
        with nullcontext() if sync else self.accelerator.no_sync(model):
            self.accelerator.backward(loss)

    def clip(self, parameters, norm: float) -> None:
        self.accelerator.clip_grad_norm_(parameters, norm)


class _Sharded:
    """The same under FSDP2 (`harness.runtime.sharding`): autocast by hand, reduction switched per micro-batch."""

    def __init__(self, device) -> None:
        self.device = device

    def forward(self):
        return training_autocast(self.device)

    def backward(self, model, loss, sync: bool) -> None:
        sharding.no_sync(model, sync)
        loss.backward()

    def clip(self, parameters, norm: float) -> None:
        torch.nn.utils.clip_grad_norm_(parameters, norm)


def _accumulate(step_, model, rows, index, weight: float, chunk: int, distiller, step: int, total: int):
    """Backward of the batch's mean loss (times `weight`), in micro-batches of `chunk` rows; returns the loss."""
    parts = index.split(chunk)
    losses = []
    for i, part in enumerate(parts):
        with step_.forward():
            if distiller is None:
                batch = rows[part]
                logits = model(input_ids=batch).logits[:, :-1]
                loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), batch[:, 1:].reshape(-1))
            else:
                loss = distiller.loss(model, part, step, total)
        if not torch.isfinite(loss):
            return loss
        share = weight * len(part) / len(index)
        step_.backward(model, loss * share if share != 1.0 else loss, sync=i == len(parts) - 1)  # reduce once
        losses.append(loss.detach() * len(part) / len(index))
    return sum(losses)
