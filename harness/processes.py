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
    from accelerate import PartialState

    return PartialState()  # joins the process group `accelerate launch` set up


def finish() -> None:
    """Leave the process group, if this process joined one (torch warns at exit otherwise)."""
    if world() > 1 and _state.cache_info().currsize:
        _state().destroy_process_group()


def device():
    """Where this process computes: its GPU under a GPU launch or on a GPU machine, else the CPU."""
    import torch

    if world() > 1:
        return _state().device
    use_cpu = os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true")
    return torch.device("cuda") if torch.cuda.is_available() and not use_cpu else torch.device("cpu")


def sharded_training() -> bool:
    """True under `accelerate launch` with an FSDP config: models are sharded across the processes."""
    return world() > 1 and os.environ.get("ACCELERATE_USE_FSDP", "").lower() in ("1", "true")


def barrier() -> None:
    if world() > 1:
        _state().wait_for_everyone()


@contextmanager
def main_first() -> Iterator[None]:
    """The main process runs the block first (it builds a cached artifact); the others then find it."""
    if world() == 1:
        yield
        return
    with _state().main_process_first():
        yield


def broadcast(value: T) -> T:
    """The main process's `value`, on every process (a run id, a seed drawn once)."""
    if world() == 1:
        return value
    from accelerate.utils import broadcast_object_list

    return broadcast_object_list([value])[0]


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
    from accelerate.utils import gather_object

    return _join(gather_object([part]))


def sharded(fn: Callable[[slice], T], n: int) -> T:
    """`fn` over this process's slice of n examples, gathered: what `fn(slice(0, n))` gives in one process."""
    return gather(fn(shard(n)))


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
