"""The processes one run is spread over: one in a plain run, N under `accelerate launch`.

Every process runs the whole protocol in step with the others. Training is data-parallel with
the single-process batches: each global batch is split across the processes and the loss
weighted so that the averaged gradient is the single-process one. Extraction and the other
per-example passes give each process a contiguous slice of the examples and gather the results
on every process, in order. Only the main process writes the cache and the results database.

In a plain run nothing here initializes torch.distributed: the world size comes from the
environment `accelerate launch` (or `torchrun`) sets, and every helper is the identity.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache
from typing import Any, TypeVar

T = TypeVar("T")


def world() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def is_main() -> bool:
    return rank() == 0


@cache
def _state():
    """accelerate's view of the launch; joins the process group `accelerate launch` set up, if it set one up."""
    import torch
    from accelerate import PartialState

    # cpu=True for CPU processes: accelerate's own state reads ACCELERATE_USE_CPU, but a bare
    # PartialState does not, and without it CPU processes stay apart (no gloo group, no DDP).
    use_cpu = os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true") or not torch.cuda.is_available()
    return PartialState(cpu=use_cpu)


@cache
def _dist():
    """torch.distributed, joined. accelerate sets up no group for CPU processes launched with an FSDP
    config (its FSDP type is GPU-only), so the harness joins one itself there (gloo)."""
    import torch
    import torch.distributed as dist

    _state()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return dist


def finish(wait: bool = False) -> None:
    """Leave the process group, if this process joined one (torch warns at exit otherwise).

    `wait`: every process got here, so first wait for the others: one that leaves while another's
    last gloo message is in flight tears down its threads mid-message and aborts ("terminate called
    without an active exception"). Not on an error path, where the others may never arrive."""
    if world() > 1 and _dist.cache_info().currsize:
        import torch.distributed as dist

        if dist.is_initialized():
            if wait:
                dist.barrier()
            dist.destroy_process_group()


def device():
    """Where this process computes: its GPU under a GPU launch or on a GPU machine, else the CPU."""
    import torch

    if world() > 1:
        _dist()
        return _state().device
    use_cpu = os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true")
    return torch.device("cuda") if torch.cuda.is_available() and not use_cpu else torch.device("cpu")


def sharded_training() -> bool:
    """True under `accelerate launch` with an FSDP config: models are sharded across the processes."""
    return world() > 1 and os.environ.get("ACCELERATE_USE_FSDP", "").lower() in ("1", "true")


def layout() -> str:
    """How the run is spread, for the log and `runs.device`."""
    if world() == 1:
        return "one process"
    return f"{world()} processes, " + ("models sharded (FSDP2)" if sharded_training() else "data-parallel")


def barrier() -> None:
    if world() > 1:
        _dist().barrier()


@contextmanager
def main_first() -> Iterator[None]:
    """The main process runs the block first (it builds a cached artifact); the others then find it."""
    if world() == 1:
        yield
        return
    if not is_main():
        barrier()
    yield
    if is_main():
        barrier()


def broadcast(value: T) -> T:
    """The main process's `value`, on every process (a run id, a seed drawn once)."""
    if world() == 1:
        return value
    box = [value]
    _dist().broadcast_object_list(box, src=0)
    return box[0]


def agree(value: int) -> int:
    """The smallest of every process's `value`: a batch size all of them can hold. Sharded
    processes must make the same number of forward passes, each a collective."""
    if world() == 1:
        return value
    values: list = [None] * world()
    _dist().all_gather_object(values, value)
    return min(values)


def total(value: float) -> float:
    """The sum of every process's `value`, added in rank order (the same on every process)."""
    if world() == 1:
        return value
    values: list = [None] * world()
    _dist().all_gather_object(values, value)
    return sum(values)


def shard(n: int) -> slice:
    """This process's contiguous slice of n examples; the slices cover 0..n in rank order."""
    w, r = world(), rank()
    return slice(r * n // w, (r + 1) * n // w)


def gather(part: T) -> T:
    """Every process's part, joined in rank order along the first axis, on every process.

    `part` is a tensor, or a tuple or dict of tensors (None stays None).
    """
    if world() == 1:
        return part
    parts: list = [None] * world()
    _dist().all_gather_object(parts, _to_cpu(part))
    return _join(parts)


def sharded(fn: Callable[[Any], T], n: int) -> T:
    """`fn` over this process's share of n examples, gathered: what `fn(slice(0, n))` gives in one process.

    With sharded models every forward pass is a collective, so every process must make the same
    passes: each then gets ceil(n / world) rows (an index tensor), the last ones padded with
    copies of its final row, and the padding is dropped after the gather.
    """
    if world() == 1 or not sharded_training():
        return gather(fn(shard(n)))
    import torch

    w, r = world(), rank()
    size = -(-n // w)
    real = [max(0, min(size, n - i * size)) for i in range(w)]
    index = torch.arange(r * size, r * size + size).clamp(max=n - 1)
    parts: list = [None] * w
    _dist().all_gather_object(parts, _to_cpu(fn(index)))
    return _join([_head(part, k) for part, k in zip(parts, real)])


def _head(part: Any, k: int) -> Any:
    if part is None:
        return None
    if isinstance(part, tuple):
        return tuple(_head(p, k) for p in part)
    if isinstance(part, dict):
        return {key: _head(v, k) for key, v in part.items()}
    return part[:k]


def _to_cpu(part: Any) -> Any:
    import torch

    if isinstance(part, torch.Tensor):
        return part.cpu()
    if isinstance(part, tuple):
        return tuple(_to_cpu(p) for p in part)
    if isinstance(part, dict):
        return {k: _to_cpu(v) for k, v in part.items()}
    return part


def split_batch(index) -> tuple[Any, float]:
    """This process's rows of a global batch and the weight of its mean loss.

    With weight n_local * world / n_global, the average of the processes' gradients (what DDP
    computes) is the gradient of the mean loss over the whole batch. A process left without a
    row trains on one with weight 0, so it still joins the gradient reduction.
    """
    w = world()
    if w == 1:
        return index, 1.0
    part = index[shard(len(index))]
    if len(part) == 0:
        return index[:1], 0.0
    return part, len(part) * w / len(index)


def _join(parts: list[Any]) -> Any:
    import torch

    first = parts[0]
    if first is None:
        return None
    if isinstance(first, torch.Tensor):
        return torch.cat([p.cpu() for p in parts])
    if isinstance(first, tuple):
        return tuple(_join(list(column)) for column in zip(*parts))
    if isinstance(first, dict):
        return {k: _join([p[k] for p in parts]) for k in first}
    raise TypeError(f"cannot gather a {type(first).__name__}")
