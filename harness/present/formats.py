"""Numbers and plain-text tables, one formatter per kind: the CLI's reports and the app's page read them here."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any


def render(headers: Sequence[str], rows: Sequence[Sequence[Any]], right: Sequence[bool] | None = None) -> str:
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]
    if right is None:
        right = [bool(cells) and all(_numeric(r[i]) for r in cells) for i in range(len(headers))]
    def line(values):
        return "  ".join(v.rjust(w) if r else v.ljust(w) for v, w, r in zip(values, widths, right)).rstrip()
    out = [line(headers), line(["-" * w for w in widths])]
    out += [line(r) for r in cells]
    return "\n".join(out)


def pct(value: float | None) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:.1f}%"


def fine_pct(value: float | None) -> str:
    """A share to a hundredth of a percent: what separates students that exact match puts all at 0%."""
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:.2f}%"


def num(value: float | None, digits: int = 2, suffix: str = "") -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}{suffix}"


def count(n: int) -> str:
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.1f}{unit}"
    return str(n)


def with_interval(value: float | None, lo: float | None, hi: float | None, fmt=pct) -> str:
    """`10.0% [2.8%, 30.1%]`: a figure and its 95% interval, each formatted alike."""
    return f"{fmt(value)} [{fmt(lo)}, {fmt(hi)}]"


def figure(value: float | None, kind: str) -> str:
    """A board figure by its kind (`harness.store.labels.COLUMNS`): a rate in percent, a ratio with x, else two
    decimals; n/a for none (NaN included)."""
    value = None if value is None or value != value else float(value)
    return (pct(value) if kind == "rate" else fine_pct(value) if kind == "share" else num(value, 2, "x")
            if kind == "ratio" else num(value))


def figure_on_page(value, kind: str, lo=None, hi=None) -> str:
    """A board figure by its kind as the app shows it: "–" for none, a rate's interval within [0, 100%], a ratio
    with ×, perplexities and AUCs to `short` digits and never below 0."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if kind in ("rate", "share"):  # a share: its interval shown within [0, 100%]
        digits = 1 if kind == "rate" else 2
        text = f"{100 * value:.{digits}f}%"
        if lo is not None and hi is not None and not math.isnan(lo) and hi > lo:
            text += f" [{100 * max(lo, 0.0):.{digits}f}, {100 * min(hi, 1.0):.{digits}f}]"
        return text
    if kind == "ratio":
        return f"{value:.2f}×"
    if kind == "num":  # perplexities and AUCs: never below 0; three significant digits or two decimals
        text = short(value)
        if lo is not None and hi is not None and not math.isnan(lo) and hi > lo:
            text += f" [{short(max(lo, 0.0))}, {short(hi)}]"
        return text
    if kind == "int":
        return str(int(value))
    return str(value)


def short(value: float) -> str:
    """No decimals from 100, one from 10, two below: 314, 31.4, 3.14, 0.31."""
    return f"{value:.0f}" if abs(value) >= 100 else f"{value:.1f}" if abs(value) >= 10 else f"{value:.2f}"


def _cell(v: Any) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _numeric(s: str) -> bool:
    return s == "n/a" or s.replace(".", "", 1).replace("%", "").replace("x", "").replace("-", "", 1).replace(
        "/", "").replace("M", "").replace("K", "").replace("s", "").isdigit()


def finding_value(value: float | None, unit: str) -> str:
    """A `harness reproduce` figure: "%" a share, "x" a ratio, "auc" an AUC, "" a difference (signed)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if unit == "%":
        return f"{100 * value:.1f}%"
    if unit == "x":
        return f"{value:.2f}x"
    if unit == "auc":
        return f"{value:.3f}"
    return f"{value:+.3f}" if abs(value) < 10 else f"{value:.1f}"
