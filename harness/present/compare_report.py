"""`harness compare` as text: each method's figures, the overlap of the students' memorized sets, the ratio of
inherited counts (`harness.leaderboard.compare`)."""

from __future__ import annotations

from harness.leaderboard.compare import Comparison
from harness.present import formats


def members(n: float | None) -> str:
    """A count of members: an integer, or a mean over seeds with one decimal when it is not whole."""
    if n is None or n != n:
        return "n/a"
    return str(int(n)) if float(n).is_integer() else f"{n:.1f}"


def render(c: Comparison) -> str:
    label = formats.one_line
    rows = [[label(m), formats.pct(f.get("mem_rate_student")), members(f.get("inherited")),
             members(f.get("teacher_exclusive")), formats.pct(f.get("inheritance_rate")),
             formats.pct(f.get("easy_share")), formats.num(f.get("val_ppl_student"))]
            for m, f in c.figures.items()]
    lines = [f"seeds {', '.join(map(str, c.seeds))} (means over seeds)", "",
             formats.render(["method", "student mem rate", "inherited", "teacher-exclusive", "inheritance rate",
                             "easy share", "val ppl"], rows), ""]
    first = c.methods[0]
    for (a, b), n in c.overlap.items():
        lines.append(f"students' memorized sets, {label(a)} and {label(b)}: {members(n)} members in common "
                     f"(Jaccard {formats.num(c.jaccard[(a, b)])})")
    for b in c.methods[1:]:
        lines.append(f"{label(b)} inherits {formats.num(c.ratio(first, b), 2, 'x')} as many teacher-exclusive members "
                     f"as {label(first)}")
    return "\n".join(lines)


def report(family: str, dataset: str, c: Comparison) -> str:
    """What `harness compare` prints: the family, dataset and methods, then `render`."""
    label = formats.one_line
    return f"{label(family)} / {label(dataset)}: {' vs '.join(label(m) for m in c.methods)}\n{render(c)}"
