"""The leaderboard's ranking rules, defined once: `harness leaderboard`, the app's table and
headline, and `publish` and `import` when they print a board all order it with `rank`.

A student that leaks little because it learned nothing must not win. So a board has a utility
band: only methods whose student's validation perplexity is within `slack` of the teacher-free
baseline's are ranked, by student memorization, then by the strongest attack (TPR at 1% FPR where
the non-members resolve it, else its AUC). The others are listed after them, never ranked, with
the reason; a student that ends worse than its own starting checkpoint is marked diverged, and
one whose training loss rose over its epochs, or above NOT_CONVERGED times the baseline's
perplexity, not converged.
Memorization is a count over a few hundred members: methods whose 95% intervals overlap the
leader of their group share its rank, since the board cannot tell them apart.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

# The line between the ranked methods (and the baseline) and the rest, in the CLI and the app.
SEPARATOR = "not ranked: outside the utility band"
# The teacher-free baseline's row, in the CLI and the app alike: the student size fine-tuned on the members.
BASELINE_LABEL = "(baseline: fine-tuned)"

# A student this many times the baseline's perplexity has not learned the task: its row says so.
# Distilled from a teacher better than the baseline, a student that learned comes near the
# baseline; one half again worse learned far less than plain fine-tuning on the same members.
NOT_CONVERGED = 1.5

# What a board may order by after memorization (lowest first), in the order given.
ORDER_KEYS = ("mem_rate_student", "best_attack_tpr", "best_attack_auc", "val_ppl_student")


@dataclass(frozen=True)
class Ranking:
    """A board's rules: its utility band and its order (a published board's spec declares both)."""

    slack: float = 0.10  # ranked: validation perplexity <= (1 + slack) x the baseline's
    order: tuple[str, ...] = ("mem_rate_student", "best_attack_tpr", "best_attack_auc")

    def __post_init__(self) -> None:
        if not (0 <= self.slack <= 10):
            raise ValueError(f"utility slack must be in [0, 10], got {self.slack}")
        bad = [k for k in self.order if k not in ORDER_KEYS]
        if bad or not self.order or self.order[0] != "mem_rate_student":
            raise ValueError(f"order must start with mem_rate_student and use only {', '.join(ORDER_KEYS)}; "
                             f"got {', '.join(self.order)}")

    @property
    def band(self) -> str:
        return f"validation perplexity within {self.slack:.0%} of the baseline's"


DEFAULT = Ranking()


def _num(value) -> float:
    return math.nan if value is None or pd.isna(value) else float(value)


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


def rank(group: pd.DataFrame, rules: Ranking = DEFAULT) -> pd.DataFrame:
    """One board's rows in order: the ranked methods, the baseline, then the unranked with their reason.

    Adds `rank` ("1", "=2" for a shared rank, "" unranked), `ranked` and `why` (the reason a row is
    not ranked, or "").
    """
    if group.empty:
        return group.assign(rank=pd.Series(dtype=str), ranked=pd.Series(dtype=bool), why=pd.Series(dtype=str))
    group = group.reset_index(drop=True)
    is_base = group["reference"].astype(bool)
    base_ppl = _num(group.loc[is_base, "val_ppl_student"].iloc[0]) if is_base.any() else math.nan
    why = [("" if b else (outside(r, base_ppl, rules) or "")) for b, r in zip(is_base, group.to_dict("records"))]
    group = group.assign(why=why, ranked=[not b and not w for b, w in zip(is_base, why)])
    ranked = group[group["ranked"]].copy()
    keys = [k for k in rules.order if k in ranked and ranked[k].notna().any()] + ["method"]
    ranked = ranked.sort_values(keys, na_position="last", kind="stable")
    ranked["rank"] = _shared_ranks(ranked)
    rest = group[~group["ranked"] & ~is_base].sort_values(["val_ppl_student", "method"], na_position="last",
                                                          kind="stable")
    out = pd.concat([ranked, group[is_base], rest], ignore_index=True)
    out["rank"] = ["" if pd.isna(v) else v for v in out["rank"]]  # a float column when nothing is ranked
    return out


def _shared_ranks(ranked: pd.DataFrame) -> list[str]:
    """Competition ranks, shared while a method's memorization interval overlaps its group leader's."""
    lo = ranked.get("mem_rate_student_lo", ranked["mem_rate_student"]).tolist()
    hi = ranked.get("mem_rate_student_hi", ranked["mem_rate_student"]).tolist()
    numbers, leader = [], 0
    for i in range(len(ranked)):
        if i and not (_num(lo[i]) <= _num(hi[leader])):  # NaN never overlaps
            leader = i
        numbers.append(leader + 1)
    sizes = pd.Series(numbers).value_counts()
    return [f"={n}" if sizes[n] > 1 else str(n) for n in numbers]
