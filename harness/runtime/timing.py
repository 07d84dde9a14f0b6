"""Each stage's wall-clock seconds, taken one way: `with timed(seconds, "teacher") as clock: ...`."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager


class Clock:
    """A running block's time: `so_far()` while it runs, `seconds` once it has ended."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.seconds = 0.0

    def so_far(self) -> float:
        return time.perf_counter() - self.started


@contextmanager
def timed(seconds: dict[str, float], stage: str) -> Iterator[Clock]:
    """Adds the block's seconds to `seconds[stage]` when it ends (a stage timed twice sums). A block that
    raises adds nothing: a failed stage has no time of its own to report."""
    clock = Clock()
    yield clock
    clock.seconds = clock.so_far()
    seconds[stage] = seconds.get(stage, 0.0) + clock.seconds
