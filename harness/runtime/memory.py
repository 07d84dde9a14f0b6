"""Batches sized to the memory at hand, and smaller batches instead of a failure when it runs out.

A pass over a batch holds a few copies of its logits (batch x positions x vocabulary floats),
which dominate with a large vocabulary. Before a pass, the batch is capped so that those fit in
a share of the memory available now (the GPU's free memory, or the machine's available RAM);
if an allocation still fails, the batch is halved and the same examples retried. On a CPU the
kernel may kill a process before any allocation fails, which is why the cap comes first.
"""

from __future__ import annotations

import os

from harness.runtime import log

SHARE = float(os.environ.get("HARNESS_MEMORY_SHARE", 0.5))  # of the available memory one batch may use


def available_bytes(device) -> int:
    import torch

    if getattr(device, "type", str(device)) == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free
    try:
        with open("/proc/meminfo") as f:  # Linux: MemAvailable counts reclaimable page cache, as `free` does
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def logits_bytes(model, positions: int, copies: int) -> int:
    """What `copies` float32 tensors of one example's logits take, plus its activations (0: unknown)."""
    config = getattr(model, "config", None)
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if config is None or head is None:
        return 0
    vocab = head.weight.shape[0]
    hidden = getattr(config, "hidden_size", 0) * getattr(config, "num_hidden_layers", 0)
    return positions * (vocab * 4 * copies + hidden * 4 * 16)


def fit(requested: int, per_example: int, device) -> int:
    """The largest batch up to `requested` whose working memory fits the available share."""
    return max(1, min(requested, int(SHARE * available_bytes(device)) // max(per_example, 1)))


def is_oom(err: BaseException) -> bool:
    from accelerate.utils.memory import should_reduce_batch_size

    return should_reduce_batch_size(err) or type(err).__name__ == "OutOfMemoryError"


def recover(err: BaseException, batch: int, what: str) -> int:
    """The next batch size after `err`, or `err` raised again when it is no memory error or batch is 1."""
    if not is_oom(err) or batch <= 1:
        raise err
    from accelerate.utils.memory import clear_device_cache

    clear_device_cache(garbage_collection=True)
    log.info(f"{what}: out of memory at batch {batch}; going on with {batch // 2}")
    return batch // 2
