"""Sharded models, for a teacher larger than one device: torch's FSDP2, one unit per block.

Under `accelerate launch` with an FSDP config (`--use_fsdp`, or `distributed_type: FSDP`), every
model a run holds is sharded with `torch.distributed.fsdp.fully_shard` (FULL_SHARD): each
transformer block is a unit and the root holds the embeddings and the head. Each process keeps
1/N of every weight, and of the gradients and AdamW's moments while training, and gathers one
block at a time for a forward or backward pass. So the 12b teacher trains in about 16 x 12B / N
bytes per device, and in the student stage the sharded teacher gives its outputs beside the
sharded student with no whole copy on any process (Zhao et al., 2023, "PyTorch FSDP").

Why torch's `fully_shard` rather than `accelerator.prepare`: accelerate picks its FSDP mode only
for GPU processes, and its FSDP2 preparation takes a model only together with its optimizer, so a
teacher that only runs forward could not be sharded through it. accelerate still launches the
processes, and its FSDP config is what asks for sharding; its `fsdp_*` options are not read.

Checkpoints leave as ordinary `save_pretrained` folders: the full state dict is gathered to the
main process, which writes it; a sharded run loads every model back from that folder and shards
it again, so a model trained in the run and one from the cache are the same thing.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from harness.runtime import processes


def enabled() -> bool:
    return processes.sharded_training()


def shard(model):
    """`model` sharded across the processes in place (float32 weights; precision is autocast's)."""
    from torch.distributed.fsdp import fully_shard

    model.to(processes.device())
    mesh = _mesh()
    blocks = set(getattr(model, "_no_split_modules", None) or ())
    for module in model.modules():
        if type(module).__name__ in blocks:
            fully_shard(module, mesh=mesh)
    fully_shard(model, mesh=mesh)
    return model


def full_state_dict(model) -> dict[str, Any]:
    """The whole float32 state dict on the main process (on the CPU), {} on the others; every
    process must call it (it gathers)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def no_sync(model, sync: bool):
    """Gradient reduction on (`sync`) or off for this backward: micro-batches reduce once."""
    model.set_requires_gradient_sync(sync)


@cache
def _mesh():
    import torch
    from torch.distributed.device_mesh import init_device_mesh

    processes._dist()
    return init_device_mesh(torch.device(processes.device()).type, (processes.world(),))
