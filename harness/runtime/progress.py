"""Progress bars for training, generation and extraction, on stderr, on a terminal only.

tqdm's own convention (`disable=None`): a bar redraws itself with carriage returns, which a terminal
shows as one moving line and a log file keeps as hundreds of frames in one line. So bars show only
when stderr is a terminal; a log gets the run's one line per stage (`harness.runtime.log`) instead.
HARNESS_PROGRESS=1 asks for bars anyway, HARNESS_PROGRESS=0 turns them off on a terminal too.
"""

from __future__ import annotations

import os
import sys

from tqdm.auto import tqdm

from harness.runtime import processes


def enabled() -> bool:
    wanted = os.environ.get("HARNESS_PROGRESS", "").strip()
    if wanted in ("0", "1"):
        return wanted == "1"
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # no stderr, or a closed one
        return False


def bar(total: int, desc: str, unit: str) -> tqdm:
    """A bar on the main process only: under `accelerate launch` the others work silently."""
    return tqdm(total=total, desc=desc, unit=unit, disable=not enabled() or not processes.is_main(),
                dynamic_ncols=True, leave=False)
