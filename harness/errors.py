"""Errors the user can fix. The CLI prints them as one line and exits with status 2."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class UsageError(Exception):
    """Bad input: an unknown name, a wrong value, a malformed file. Exit status 2."""


class RunFailed(Exception):
    """A run that started and then failed; it is marked `failed` in the store."""


class Terminated(BaseException):
    """SIGTERM (a scheduler's cancel, `kill PID`, a sweep whose parent went) raised where the process stands,
    so that a run on its way out is marked `failed` as an interrupted one is. A BaseException, as
    KeyboardInterrupt is: no `except Exception` swallows it."""


def unknown(kind: str, name: str, choices: Iterable[str]) -> UsageError:
    """`unknown method 'sof-kd' (did you mean 'soft-kd'?); choose from: hard-kd, soft-kd`."""
    choices = sorted(set(choices))
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.5)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    listed = ", ".join(choices) if choices else "none registered"
    return UsageError(f"unknown {kind} {name!r}{hint}; choose from: {listed}")
