"""DP-SGD training of a student (Abadi et al., 2016, "Deep Learning with Differential Privacy"), through Opacus.

A `private` KD method's student trains here instead of in `harness.training.train`: each step
draws a batch of records by Poisson sampling (rate q = batch size / records), computes every
record's gradient (Opacus's `GradSampleModule`), clips each to `max_grad_norm`, sums them, adds
Gaussian noise of scale `noise_multiplier x max_grad_norm` and divides by the expected batch size
(Opacus's `DPOptimizer`). The accountant (RDP or PRV) turns the noise, q and the number of steps
into the (epsilon, delta) spent. Then, as for every method, the update's norm is clipped to 1 and
AdamW steps with the preset's schedule; both are post-processing of the private gradient, which
keeps the guarantee.

What one record is (`unit`): by default a member, with all its repeats. A member repeated r
times is one record whose loss is its row's loss times r, so its whole influence is clipped
together and the guarantee is per member. With `unit=occurrence` each occurrence is a record
and a member repeated r times is protected only at group privacy for r records (about r x
epsilon).

What the guarantee covers: the student's gradient steps on the members. The teacher's soft
labels are computed from the members too, by a teacher that saw them without any noise, and
enter each record's loss: DP-SGD bounds what the student's weights reveal about a member through
its own record's gradients, not what the teacher's outputs on other records already carry (the
teacher stays non-private, as in the studies' threat model). docs/protocol.md says so.

One process only: under `accelerate launch` a private method is refused before anything trains.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass

import torch
from accelerate.utils import set_seed
from torch.utils.data import DataLoader, TensorDataset
from transformers import get_scheduler

from harness.config.registry import Training
from harness.errors import RunFailed
from harness.runtime import processes, progress
from harness.runtime.faults import fault


@dataclass(frozen=True)
class Spent:
    """What a private student's training spent, and with what: stored with the run."""

    epsilon: float  # inf with no noise; NaN with shuffled batches (no guarantee)
    delta: float
    noise_multiplier: float
    sample_rate: float
    steps: int
    records: int

    def figures(self) -> dict[str, float]:
        return {f"dp_{k}": float(v) for k, v in asdict(self).items()}


def records(order: torch.Tensor, unit: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The records and each one's weight: distinct rows weighted by their repeats, or every occurrence."""
    if unit == "member":
        ids, counts = order.unique(return_counts=True)
        return ids, counts.to(torch.float32)
    return order.clone(), torch.ones(len(order))


def delta_for(args: dict, n_records: int) -> float:
    return args["delta"] or 1.0 / (10 * n_records)


def noise_for(args: dict, sample_rate: float, steps: int, delta: float) -> float:
    """The noise multiplier: the one given, or the smallest that spends at most `epsilon` (Opacus)."""
    if args["noise_multiplier"] >= 0:
        return args["noise_multiplier"]
    from opacus.accountants.utils import get_noise_multiplier

    return get_noise_multiplier(target_epsilon=args["epsilon"], target_delta=delta, sample_rate=sample_rate,
                                steps=steps, accountant=args["accountant"])


def spent_epsilon(accountant: str, noise: float, sample_rate: float, steps: int, delta: float) -> float:
    """Epsilon after `steps` steps at this noise and sampling rate, by Opacus's accountant."""
    if noise == 0:
        return math.inf
    from opacus.accountants import PRVAccountant, RDPAccountant

    acc = RDPAccountant() if accountant == "rdp" else PRVAccountant()
    acc.history = [(noise, sample_rate, steps)]
    return float(acc.get_epsilon(delta))


def train_private(model, rows: torch.Tensor, order: torch.Tensor, cfg: Training, *, seed: int, stage: str,
                  distiller, epoch_loss: list[float] | None = None) -> tuple[torch.nn.Module, Spent]:
    """Train `model` on `rows[order]` with DP-SGD and the distiller's per-row loss; the model and what it spent."""
    from opacus import GradSampleModule
    from opacus.optimizers import DPOptimizer

    args = distiller.args
    set_seed(seed)
    device = processes.device()
    ids, weights = records(order, args["unit"])
    n = len(ids)
    batch = min(cfg.batch_size, n)
    sample_rate = batch / n
    per_epoch = max(1, round(n / batch))
    total = cfg.epochs * per_epoch
    delta = delta_for(args, n)
    noise = noise_for(args, sample_rate, total, delta)
    distiller.bind(model)
    distiller.to(device)
    rows = rows.to(device)
    sampled = GradSampleModule(model.to(device), loss_reduction="sum")
    inner = torch.optim.AdamW(sampled.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    optimizer = DPOptimizer(inner, noise_multiplier=noise, max_grad_norm=args["max_grad_norm"],
                            expected_batch_size=batch, loss_reduction="sum",
                            generator=torch.Generator(device).manual_seed(seed))
    scheduler = get_scheduler(cfg.schedule if cfg.schedule != "constant" else "constant_with_warmup", inner,
                              num_warmup_steps=int(cfg.warmup_ratio * total), num_training_steps=total)
    draw = torch.Generator().manual_seed(seed)
    # shuffled: exactly the batches `harness.training.train` draws, for the check against the non-private method
    shuffled = DataLoader(TensorDataset(torch.arange(n)), batch_size=batch, shuffle=True, generator=draw)
    sampled.train()
    # Opacus's hooks fire on modules whose inputs (token ids) need no gradient; torch warns at each one
    warnings.filterwarnings("ignore", message="Full backward hook is firing", category=UserWarning)
    bar = progress.bar(total, stage, "step")
    for _ in range(cfg.epochs):
        running, count = 0.0, 0
        picks = ([p for (p,) in shuffled] if args["sampling"] == "shuffle"
                 else [torch.nonzero(torch.rand(n, generator=draw) < sample_rate).flatten() for _ in range(per_epoch)])
        for pick in picks:
            w = weights[pick]
            if len(pick) == 0:  # an empty Poisson batch: a record of weight 0, so only the noise moves the model
                pick, w = torch.zeros(1, dtype=torch.long), torch.zeros(1)
            losses = distiller.row_losses(sampled, ids[pick].to(device))
            loss = (losses * w.to(device)).sum()
            if not torch.isfinite(loss):
                raise RunFailed(f"{stage}: loss became {loss.item()} at step {count + 1} (DP-SGD)")
            loss.backward()
            if optimizer.pre_step():  # clip each record's gradient, sum them, add the noise
                for p in sampled.parameters():  # over the expected batch (Opacus divides only a "mean" loss)
                    if p.grad is not None:
                        p.grad /= batch
                torch.nn.utils.clip_grad_norm_(sampled.parameters(), 1.0)
                inner.step()
            optimizer.zero_grad(set_to_none=True)
            scheduler.step()
            if float(w.sum()) > 0:
                running += loss.item() / float(w.sum())
                count += 1
            fault(f"{stage}:step")
            bar.update()
        if epoch_loss is not None and count:
            epoch_loss.append(running / count)
    bar.close()
    epsilon = (math.nan if args["sampling"] == "shuffle"
               else spent_epsilon(args["accountant"], noise, sample_rate, total, delta))
    model = sampled.to_standard_module() if hasattr(sampled, "to_standard_module") else sampled._module
    model.eval()
    return model, Spent(epsilon, delta, noise, sample_rate, total, n)
