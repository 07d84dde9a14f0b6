"""`harness reproduce` as text: one row per published finding, its caveats, and memorization by repeat count
(`harness.protocol.reproduce`)."""

from __future__ import annotations

import math

from harness.present import formats
from harness.protocol.reproduce import Reproduction, count_line


def measured_text(mean: float | None, lo: float | None, hi: float | None, unit: str) -> str:
    """`1.03x [0.78x, 1.36x]`; a one-sided bound (one end infinite, or NULL as the store keeps it) as
    `>= 10.87x (one-sided)`; `n/a` where nothing was measured. The CLI's table and the app's page."""
    fmt = formats.finding_value
    lo, hi = (math.nan if v is None else float(v) for v in (lo, hi))
    low, high = math.isfinite(lo), math.isfinite(hi)
    if low != high:  # a bound: the open end is infinite (NULL once stored)
        return f">= {fmt(lo, unit)} (one-sided)" if low else f"<= {fmt(hi, unit)} (one-sided)"
    if mean is None or math.isnan(mean):
        return "n/a"
    return fmt(mean, unit) + (f" [{fmt(lo, unit)}, {fmt(hi, unit)}]" if lo != hi and low else "")


def magnitude_text(figure: float | None, unit: str, word: str) -> str:
    return f"{word} ({formats.finding_value(figure, unit)} published)" if word else ""


def table(result: Reproduction) -> str:
    """The findings, one row each; the caveats (why n/a, seeds without a value) as lines below."""
    rows = [[r.finding.name, r.finding.claim, r.finding.published, r.finding.source,
             measured_text(r.mean, r.lo, r.hi, r.finding.unit), f"{r.counted} of {len(r.values)}",
             magnitude_text(r.finding.figure, r.finding.unit, r.magnitude), r.verdict] for r in result.rows]
    text = formats.render(["finding", "claim (holds if)", "published", "source", "measured here", "seeds",
                           "magnitude", "verdict"], rows, right=[False, False, False, False, True, True, False, False])
    notes = [f"  {r.finding.name}: {r.caveat}" for r in result.rows if r.caveat]
    return text + ("\n\ncaveats:\n" + "\n".join(notes) if notes else "")


def strata_table(result: Reproduction) -> str:
    """Memorization by repeat count; '' where no member repeats."""
    if not result.strata:
        return ""
    cols = ("teacher", "baseline", "soft_student", "hard_student")

    def cell(row, col):
        k, n = row.get(col), row.get("members", 0)
        return "" if k is None or not n else f"{k} ({100 * k / n:.1f}%)"

    rows = [[row["repeats"], row.get("members", 0), *(cell(row, c) for c in cols)] for row in result.strata]
    return formats.render(["repeats", "members", "teacher", "baseline", "soft-KD student", "hard-KD student"], rows,
                          right=[True] * 6)


def leakage_table(result: Reproduction) -> str:
    """The public setting's leakage by repeat count; '' elsewhere."""
    if not result.leakage:
        return ""
    rows = [[row["repeats"], row["members"], formats.num(row["student"], 3), formats.num(row["baseline"], 3),
             measured_text(row["leakage"], row["lo"], row["hi"], "")] for row in result.leakage]
    return formats.render(["repeats", "members", "soft-KD student AUC", "baseline AUC", "leakage [95%]"], rows,
                          right=[True] * 5)


def report(result: Reproduction) -> str:
    """What `harness reproduce` prints: the setting and its seeds, the findings' table, memorization by repeat
    count, and how many findings hold."""
    seeds = (f"seed {result.seeds[0]}" if len(result.seeds) == 1 else f"{len(result.seeds)} seeds: shares and ratios "
             "from counts pooled over seeds, each member one cluster, differences and AUCs a bootstrap over examples "
             "and seeds")
    out = [f"\nthe studies' findings on this harness's setting ({seeds}; reproduction {result.reproduction_id})\n",
           table(result)]
    strata = strata_table(result)
    if strata:
        out.append(f"\nmemorized members by repeat count, pooled over seeds:\n{strata}")
    leakage = leakage_table(result)
    if leakage:
        out.append("\nteacher-to-student leakage by repeat count (the loss attack on the private members of each "
                   "count against every non-member: the soft-KD student's AUC less the baseline's, trained on the "
                   f"same public half without the teacher; pooled over seeds):\n{leakage}")
    split = formats.blind(result.blind or [])
    if split:
        out.append(f"\n{split}")
    verdicts = [r.verdict for r in result.rows]
    out.append(f"\n{count_line(verdicts)}"
               + (" (docs/protocol.md, 'Reproducing the studies', gives the rules and discusses why)"
                  if set(verdicts) != {"holds"} else ""))
    return "\n".join(out)
