"""Progress bars for training, generation and extraction, on stderr; HARNESS_PROGRESS=0 turns them off."""

from __future__ import annotations

import os

from tqdm.auto import tqdm


def enabled() -> bool:
    return os.environ.get("HARNESS_PROGRESS", "1") != "0"


def bar(total: int, desc: str, unit: str, main_process: bool = True) -> tqdm:
    return tqdm(total=total, desc=desc, unit=unit, disable=not enabled() or not main_process,
                dynamic_ncols=True, leave=False)
