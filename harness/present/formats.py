"""Numbers and plain-text tables, one formatter per kind: the CLI's reports and the app's page read them here."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

# How many characters of one text from a results file, a bundle or the user a line shows: a label, a
# reason, a provenance field. A table cell is bounded alike (CELL_CHARS), an error line more loosely.
LABEL_CHARS = 120
CELL_CHARS = 300
LINE_CHARS = 2000


def one_line(text: Any, limit: int | None = LABEL_CHARS) -> str:
    """Text made inert for a terminal, a table or a page: every character that is not printable (a
    newline, a terminal escape, a bidi override, a zero-width space) written as its escape (`\\n`,
    `\\x1b`, `\\u202e`), and at most `limit` characters, the rest said as "… (N more characters)".

    The one function every label, reason and stored field shown by the CLI's tables and reports, the
    app and the CLI's error lines goes through: a value read from a results file or a bundle comes
    from anyone (a colleague, a bundle's source, a download), and must not print a forged row, clear
    the screen or write megabytes. Reads at most `limit` characters of the text, however long it is.
    """
    text = str(text)
    out: list[str] = []
    size = 0
    for i, c in enumerate(text):
        piece = c if c.isprintable() else repr(c)[1:-1]
        if limit is not None and size + len(piece) > limit:
            return "".join(out) + f"… ({len(text) - i:,} more characters)"
        out.append(piece)
        size += len(piece)
    return "".join(out)


def render(headers: Sequence[str], rows: Sequence[Sequence[Any]], right: Sequence[bool] | None = None,
           limit: int | None = CELL_CHARS) -> str:
    """A plain-text table; every cell through `one_line` (escaped, at most `limit` characters)."""
    cells = [[one_line(_cell(v), limit) for v in row] for row in rows]
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


def with_interval(value: float | None, lo: float | None, hi: float | None, fmt=pct) -> str:
    """`10.0% [2.8%, 30.1%]`: a figure and its 95% interval, each formatted alike."""
    return f"{fmt(value)} [{fmt(lo)}, {fmt(hi)}]"


def blind(found: Sequence[tuple[float, float, float]]) -> str | None:
    """The blind baseline's line (`harness.measure.blind`) over the runs of one split (a board's, a
    reproduction's) as (AUC, lo, hi): "SHIFT: ..." where the interval excludes 0.5, a plain statement
    where it does not, None where no run stored one. Runs of one split differ only in the folds their
    seed draws, so their figures are averaged: the run furthest from 0.5 of several would flag a split
    far more often than 5% of the time by chance alone."""
    from harness.measure import blind  # its rule for a shift; here, not at the top: the CLI's --help imports formats

    found = [f for f in found if all(v is not None and math.isfinite(v) for v in f)]
    if not found:
        return None
    auc, lo, hi = (sum(f[i] for f in found) / len(found) for i in range(3))
    said = (f"blind baseline (the texts alone, no model; Das et al. 2024): AUC {num(auc, 3)} [{num(lo, 3)}, "
            f"{num(hi, 3)}]" + (f", the mean of {len(found)} runs' (one split, folds drawn by seed)"
                                if len(found) > 1 else ""))
    if blind.shifted(lo, hi):
        return (f"SHIFT: {said} excludes 0.5: members and non-members differ in their text, so the membership "
                "figures may measure the split rather than the model")
    return f"{said}: no shift between members and non-members that a bag of words can see"


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
