"""The leaderboard's ranking rules, defined once: `harness leaderboard`, the app's table and
headline, and `publish` and `import` when they print a board all order it with `rank`.

A student that leaks little because it learned nothing must not win. So a board has a utility
band: only methods whose student's validation perplexity is within `slack` of the teacher-free
baseline's are ranked, by student memorization, then by the strongest attack (TPR at 1% FPR where
the non-members resolve it, else its AUC). The others are listed after them, never ranked, with
the reason; a student that ends worse than its own starting checkpoint is marked diverged, and
one whose training loss rose over its epochs, or above NOT_CONVERGED times the baseline's
perplexity, not converged.
The KD methods are ranked against one another only when they trained on the same recipe and saw
each member as often: a row whose student did not (DP-SGD clips a member with all its repeats as one
record, in effect deduplicating; a deduplicated baseline; a method with its own recipe) is listed in
a section of its own with the reason (`own_recipe`, stored with the run).

The order's first key is the leakage measure (`harness.leaderboard.measures`). Ranks come from the
rows compared paired, member by member and seed by seed: a row's rank is 1 + the rows separated
from it at 95% and leaking less, and "=N" marks a row some other row cannot be separated from (its
95% rank interval, `rank_lo`-`rank_hi`, is wider than one place). Without the per-example values
(a board stored before them), rows whose intervals overlap their group leader's share its rank.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from harness.leaderboard.measures import MEASURES
from harness.measure.metrics import UTILITY_SLACK

# The lines between the ranked methods (and the baseline) and the rest, in the CLI and the app.
SEPARATOR = "not ranked: outside the utility band"
RECIPE_SEPARATOR = "not ranked with the KD methods: another recipe or data exposure"
# Where a row sits: ranked, the baseline, its own recipe, outside the band; in this order.
SECTIONS = ("ranked", "baseline", "recipe", "band")
# The teacher-free baseline's row, in the CLI and the app alike: the student size fine-tuned on the members.
BASELINE_LABEL = "(baseline: fine-tuned)"

# A student this many times the baseline's perplexity has not learned the task: its row says so.
# Distilled from a teacher better than the baseline, a student that learned comes near the
# baseline; one half again worse learned far less than plain fine-tuning on the same members.
NOT_CONVERGED = 1.5

# What a board may order by (lowest first), in the order given; the first is a leakage measure (MEASURES).
ORDER_KEYS = (*MEASURES, "best_attack_tpr", "once_attack_tpr", "best_attack_auc", "val_ppl_student")


@dataclass(frozen=True)
class Ranking:
    """A board's rules: its utility band and its order (a published board's spec declares both)."""

    slack: float = UTILITY_SLACK  # ranked: validation perplexity <= (1 + slack) x the baseline's
    order: tuple[str, ...] = ("extractable_rate_student", "mem_rate_student", "best_attack_tpr", "best_attack_auc")

    def __post_init__(self) -> None:
        if not (0 <= self.slack <= 10):
            raise ValueError(f"utility slack must be in [0, 10], got {self.slack}")
        bad = [k for k in self.order if k not in ORDER_KEYS]
        if bad or not self.order or self.order[0] not in MEASURES or len(set(self.order)) < len(self.order):
            raise ValueError(f"order must start with one of {', '.join(MEASURES)} and use only "
                             f"{', '.join(ORDER_KEYS)}, each once; got {', '.join(self.order)}")

    @property
    def primary(self) -> str:
        """The leakage measure the board ranks by."""
        return self.order[0]

    @property
    def band(self) -> str:
        return f"validation perplexity within {self.slack:.0%} of the baseline's"


DEFAULT = Ranking()


def _num(value) -> float:
    return math.nan if value is None or pd.isna(value) else float(value)


def measure_of(rows: pd.DataFrame, rules: Ranking = DEFAULT) -> str:
    """The leakage measure `rows` are ranked and shown by: the first of the order's MEASURES they hold a
    value for (a board stored before the per-example sampling values has exact match only)."""
    return next((k for k in rules.order if k in MEASURES and k in rows and rows[k].notna().any()), "mem_rate_student")


def outside(row: dict, baseline_ppl: float, rules: Ranking = DEFAULT) -> str | None:
    """Why a method is not ranked (None: it is): outside the utility band, or diverged from its start."""
    ppl, start = _num(row.get("val_ppl_student")), _num(row.get("val_ppl_start_student"))
    if math.isnan(ppl) or math.isinf(ppl):
        return "no validation perplexity"
    if not math.isnan(start) and ppl > start:
        return (f"diverged: perplexity {ppl:,.1f} is {ppl / start:.1f}x its starting checkpoint's {start:,.1f}")
    first, last = _num(row.get("train_loss_first_student")), _num(row.get("train_loss_last_student"))
    if last > first:  # False when either is NaN (a run stored before the loss was kept)
        return f"not converged: its training loss rose from {first:.3g} in the first epoch to {last:.3g} in the last"
    if math.isnan(baseline_ppl) or ppl <= baseline_ppl * (1 + rules.slack):
        return None
    times = ppl / baseline_ppl
    said = f"perplexity {ppl:,.1f} against the baseline's {baseline_ppl:,.1f} " + (
        f"({times - 1:+.0%})" if times < 2 else f"({times:.1f}x)" if times < 10 else f"({times:,.0f}x)")
    return f"not converged: {said}" if times > NOT_CONVERGED else said


# (rows' labels, measure) -> their 95% rank intervals and (pairs separated, pairs), compared paired
# (`board.board` builds it from the stored examples)
Compare = Callable[[Sequence[str], str], "tuple[np.ndarray, np.ndarray, tuple[int, int]]"]


def rank(group: pd.DataFrame, rules: Ranking = DEFAULT, compare: Compare | None = None) -> pd.DataFrame:
    """One board's rows in order: the ranked methods, the baseline, the rows with their own recipe, then
    those outside the band, each unranked row with its reason.

    Adds `rank` ("1", "=2" where the rank is shared), `rank_lo` and `rank_hi` (the 95% rank interval),
    `separated` ("15 of 21": the pairs of ranked rows the paired comparison separates), `ranked`,
    `section` and `why` (the reason a row is not ranked, or ""). `compare(labels)` gives the ranked
    rows' rank intervals and the separated pairs; without it (or where it cannot: runs stored before the
    per-example values), shared ranks come from overlapping intervals.
    """
    if group.empty:
        return group.assign(rank=pd.Series(dtype=str), ranked=pd.Series(dtype=bool), why=pd.Series(dtype=str),
                            section=pd.Series(dtype=str))
    group = group.reset_index(drop=True)
    is_base = group["reference"].astype(bool)
    base_ppl = _num(group.loc[is_base, "val_ppl_student"].iloc[0]) if is_base.any() else math.nan
    own = [str(v) if isinstance(v, str) and v else "" for v in group.get("own_recipe", pd.Series([None] * len(group)))]
    why, section = [], []
    for b, recipe, r in zip(is_base, own, group.to_dict("records")):
        reason = "" if b else recipe or outside(r, base_ppl, rules) or ""
        why.append(reason)
        section.append("baseline" if b else "recipe" if recipe else "band" if reason else "ranked")
    group = group.assign(why=why, section=section, ranked=[s == "ranked" for s in section])
    ranked = group[group["ranked"]].copy()
    keys = [k for k in rules.order if k in ranked and ranked[k].notna().any()] + ["method"]
    ranked = ranked.sort_values(keys, na_position="last", kind="stable")
    ranked = _ranks(ranked, measure_of(ranked, rules), compare)
    rest = group[~group["ranked"] & ~is_base].assign(order=lambda d: d["section"].map(SECTIONS.index))
    rest = rest.sort_values(["order", "val_ppl_student", "method"], na_position="last",
                            kind="stable").drop(columns="order")
    out = pd.concat([ranked, group[is_base], rest], ignore_index=True)
    out["rank"] = ["" if pd.isna(v) else v for v in out["rank"]]  # a float column when nothing is ranked
    return out


def _ranks(ranked: pd.DataFrame, key: str, compare: Compare | None) -> pd.DataFrame:
    """The ranked rows' ranks on the measure `key`: from the paired comparison where it can be made,
    else `_shared_ranks`."""
    found = None
    if compare is not None and len(ranked) > 1:
        try:
            found = compare(ranked["method"].tolist(), key)
        except ValueError:  # runs without the per-example values the measure rests on
            found = None
    if found is None:
        ranked["rank"] = _shared_ranks(ranked, key)
        return ranked
    lo, hi, (separated, pairs) = found
    return ranked.assign(rank=[f"={a}" if a < b else str(a) for a, b in zip(lo, hi)],
                         rank_lo=lo, rank_hi=hi, separated=f"{separated} of {pairs}")


def _shared_ranks(ranked: pd.DataFrame, key: str) -> list[str]:
    """Competition ranks, shared while a method's interval on `key` overlaps its group leader's."""
    lo = ranked.get(f"{key}_lo", ranked[key]).tolist()
    hi = ranked.get(f"{key}_hi", ranked[key]).tolist()
    numbers, leader = [], 0
    for i in range(len(ranked)):
        if i and not (_num(lo[i]) <= _num(hi[leader])):  # NaN never overlaps
            leader = i
        numbers.append(leader + 1)
    sizes = pd.Series(numbers).value_counts()
    return [f"={n}" if sizes[n] > 1 else str(n) for n in numbers]
