"""Progress bars for training, generation and extraction, on stderr; HARNESS_PROGRESS=0 turns them off."""

from __future__ import annotations

import os

from tqdm.auto import tqdm

from harness.runtime import processes


def enabled() -> bool:
    return os.environ.get("HARNESS_PROGRESS", "1") != "0"


def bar(total: int, desc: str, unit: str) -> tqdm:
    """A bar on the main process only: under `accelerate launch` the others work silently."""
    return tqdm(total=total, desc=desc, unit=unit, disable=not enabled() or not processes.is_main(),
                dynamic_ncols=True, leave=False)
