"""Quantities as text: counts, bytes and durations, one formatter each.

At the bottom of the package, beside `errors`, because every layer prints them: the training loop's
memory tiers (`training.distill`), the plan (`protocol.costs`) and the reports (`present`).
"""

from __future__ import annotations


def count(n: float) -> str:
    """Parameters or tokens: 617, 617.1K, 2.6M, 1.4B, 1.2T."""
    for unit, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f}{unit}"
    return f"{n:.0f}"


def size(n: float) -> str:
    """Bytes in decimal units, as disk and GPU makers give their sizes; nothing is 0."""
    if not n:
        return "0"
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n / 1e3:.0f} KB"


def duration(seconds: float) -> str:
    """Seconds up to two minutes, then minutes, hours from two hours, days from two days."""
    if seconds >= 2 * 86400:
        return f"{seconds / 86400:.1f} d"
    if seconds >= 2 * 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 120:
        return f"{seconds / 60:.0f} min"
    return f"{seconds:.0f} s"
