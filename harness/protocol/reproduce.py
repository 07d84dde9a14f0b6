"""`harness reproduce`: the studies' findings, measured here, side by side with the published figures.

Each finding is measured on a few runs per seed (soft KD, hard KD, reverse KL, and hard KD with the
predicted members filtered out) and given one verdict (`verdict`): "holds" only when the whole 95%
interval lies inside the claim's band at every requested seed. The band is the claim's own words
("more than 50% less" is > 2x), quoted in the row; a claim stated as a figure ("2.7x") is judged
on its direction, and the figure sets its `magnitude`. Shares and ratios come from memorized counts
pooled over seeds (Wilson and log-scale intervals, with the design effect of seeds that share their
members); a ratio whose one count is too small for an interval gives a one-sided bound
(`one_sided_ratio`). Differences and AUCs come from a bootstrap over examples and seeds
(`harness.measure.twoway`), each seed's per-example values read back from the store. A run already
in the results at the same configuration is read, not rerun.
docs/protocol.md, "Reproducing the studies", gives the rules and the claims not measured.
"""

from __future__ import annotations

import json
import math
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import TYPE_CHECKING

import numpy as np

from harness.measure import probabilistic, twoway
from harness.measure.metrics import UTILITY_SLACK
from harness.measure.seed_clusters import design, member_totals
from harness.measure.stats import MIN_COUNT, count_from_rate, enough, interval, rate_ratio, stored_count, wilson
from harness.store import connection, read

if TYPE_CHECKING:
    from harness.protocol.request import EvalRequest
    from harness.store.database import Store

# The runs a seed needs: name -> (method, filter)
# The predictor is fitted on the hard-KD student's memorized members: at the embedded default's scale
# the soft-KD student memorizes too few (2 of 512) to fit one, while the hard-KD student memorizes
# about as many as the baseline.
RUNS: dict[str, tuple[str, str | None]] = {
    "soft": ("soft-kd", None),
    "hard": ("hard-kd", None),
    "reverse": ("reverse-kl", None),
    "filtered": ("hard-kd", "predicted"),
    # the filter's controls: as many members left out at random, and at random within each repeat stratum
    "random": ("hard-kd", "random"),
    "matched": ("hard-kd", "matched"),
}
BORKAR, SINGH, ZHANG = "Borkar et al. (2026)", "Singh (2025)", "Zhang et al. (2025)"
MIN_METHODS = 4  # a rank correlation over fewer methods is almost any value by chance
INF = math.inf
PREDICTOR = ("the filtered hard-KD run, whose predictor needs a hard-KD student that memorized some members "
             "and not others")
VERDICTS = ("holds", "not established", "fails", "n/a")
EXTRACTION = ("in the share of members a sampling attacker extracts (Hayes et al., 2024: each member's chance "
              "in 10,000 top-k samples)")
EXTRACTED = ("the run's per-member sampling log-probabilities (runs stored before them have none), and a baseline "
             "fine-tuned on the members it is tested on")
FINE_TUNED = ("a baseline fine-tuned on the members it is tested on (with distill_on = public it never sees them: the "
              "leakage row measures what passes)")

Runs = Mapping[str, Mapping[str, float]]  # run name -> its figures and counts, at one seed
Counts = tuple[float, ...]


def _get(runs: Runs, run: str, name: str) -> float:
    value = runs.get(run, {}).get(name)
    return math.nan if value is None else float(value)


def _counts(*wanted: tuple[str, str]) -> Callable[[Runs], Counts | None]:
    """A seed's counts, in order; None when any is missing (the seed gives no value)."""
    def counts(runs: Runs) -> Counts | None:
        got = tuple(_get(runs, run, name) for run, name in wanted)
        return None if any(math.isnan(v) for v in got) else got
    counts.wanted = wanted  # which per-member totals the counts' design effects need (`measure`)
    return counts


def _members(run: str, *names: str) -> Callable[[Runs], Counts | None]:
    """(count, n_members) pairs of one run: what rate_ratio takes."""
    return _counts(*[pair for name in names for pair in ((run, name), (run, "n_members"))])


def _ratio_of_rates(run1: str, name1: str, run2: str, name2: str) -> Callable[[Runs], Counts | None]:
    return _counts((run1, name1), (run1, "n_members"), (run2, name2), (run2, "n_members"))


Measure = Callable[[Runs], "float | Counts | None"]


def _against_fine_tuning(run: str, measure: Measure) -> Measure:
    """`measure`, where the baseline fine-tuned on the members it is tested on; no value in Zhang et al.'s
    public setting, where it never saw them (the leakage row measures what passes there)."""
    def value(r: Runs):
        return None if _get(r, run, "public_members") > 0 else measure(r)
    value.wanted = getattr(measure, "wanted", ())
    return value


# ------------------------------------------------------------ statistics of per-example values (twoway)


def _val_loss(s: twoway.Seed, wm, wn) -> float:
    return twoway.weighted_mean(s.nonmembers["loss_student"] - s.nonmembers["loss_baseline"], wn)


def _auc_less(first: str, second: str) -> twoway.Stat:
    """The loss attack's AUC on one role less another's, members against non-members."""
    def stat(s: twoway.Seed, wm, wn) -> float:
        w = np.r_[wm, wn]
        return s.membership_auc(f"score_{first}")(w) - s.membership_auc(f"score_{second}")(w)
    return stat


def _extraction_ratio(first: str, second: str) -> twoway.Stat:
    """One role's expected share of members extracted by sampling over another's (`extract_<role>`:
    each member's chance in `probabilistic.QUERIES` samples)."""
    def stat(s: twoway.Seed, wm, wn) -> float:
        below = twoway.weighted_mean(s.members[f"extract_{second}"], wm)
        return twoway.weighted_mean(s.members[f"extract_{first}"], wm) / below if below > 0 else math.nan
    return stat


def _rates_ratio(run: str, first: str, second: str) -> Callable[[Runs], float]:
    """A seed's stored `extractable_rate_<role>` of one role over another's (where no examples are stored)."""
    def value(r: Runs) -> float:
        below = _get(r, run, f"extractable_rate_{second}")
        return _get(r, run, f"extractable_rate_{first}") / below if below > 0 else math.nan
    return value


def _high_entropy(s: twoway.Seed, wm, wn) -> float:
    top = s.members["top_entropy"]
    return twoway.weighted_mean((s.members["loss_student"] - s.members["loss_baseline"])[top], wm[top])


def _predictor(s: twoway.Seed, wm, wn) -> float:
    return s.member_auc("risk", "memorized")(wm)


def _beyond_repeats(s: twoway.Seed, wm, wn) -> float:
    return s.member_auc("risk", "memorized")(wm) - s.member_auc("repeats", "memorized")(wm)


def _rank_rho(s: twoway.Seed, wm, wn) -> float:
    """Spearman's correlation, over the peer methods, of the student's memorization rate and its strongest
    attack's AUC, both from the weighted examples (`peer_examples`)."""
    peers = sorted({k[len("mem_"):] for k in s.members if k.startswith("mem_")})
    w = np.r_[wm, wn]
    mem = [twoway.weighted_mean(s.members[f"mem_{k}"], wm) for k in peers]
    auc = [s.membership_auc(f"score_{k}")(w) for k in peers]
    return spearman(mem, auc)


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rank correlation (average ranks for ties); NaN where either side is constant or undefined."""
    from scipy.stats import rankdata

    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) < 2 or not (np.isfinite(x).all() and np.isfinite(y).all()):
        return math.nan
    rx, ry = rankdata(x), rankdata(y)
    if rx.std() == 0 or ry.std() == 0:
        return math.nan
    return float(np.corrcoef(rx, ry)[0, 1])


def _filter_detail(seeds: Sequence[Runs], run: str) -> str:
    """What a filtered run left out and what it cost, over the seeds: `removed 212 of 1,536 members (13.8%);
    validation perplexity 15.30 -> 15.91`, the unfiltered student's before the arrow."""
    got = [(_get(r, run, "filter_removed"), _get(r, run, "n_members"), _get(r, run, "filter_unfiltered_val_ppl_student"),
            _get(r, run, "val_ppl_student")) for r in seeds]
    got = [g for g in got if not any(math.isnan(v) for v in g)]
    if not got:
        return ""
    removed, members = sum(g[0] for g in got), sum(g[1] for g in got)
    before, after = (sum(g[i] for g in got) / len(got) for i in (2, 3))
    return (f"{run}: removed {removed:,.0f} of {members:,.0f} members ({removed / members:.1%}); validation "
            f"perplexity {before:.2f} -> {after:.2f}")


def count_ratio(k1: float, n1: float, k2: float, n2: float, design: float = 1.0) -> tuple[float, float, float]:
    """(k1 / n1) / (k2 / n2) when k1 may be 0: the Wilson interval on k1's share of k1 + k2 (the
    conditional binomial), mapped to a ratio. The log-scale interval has no width at k1 = 0."""
    p, lo, hi = wilson(k1, k1 + k2, design)
    scale = n2 / n1
    odds = [x / (1 - x) * scale if x < 1 else INF for x in (p, lo, hi)]
    return odds[0], odds[1], odds[2]


def one_sided_ratio(k1: float, n1: float, k2: float, n2: float, design1: float = 1.0,
                    design2: float = 1.0) -> tuple[float, float, float] | None:
    """(k1 / n1) / (k2 / n2) where one count is below MIN_COUNT and the other is not: no interval, but a
    one-sided 95% bound. Given k1 + k2, the small count is binomial (the conditional binomial, as in
    `count_ratio`); its exact one-sided upper bound (Clopper and Pearson, 1934) on the effective counts
    (each divided by the larger design effect) maps to a bound on the ratio: a lower bound where the
    small count is the denominator ("at least 13x fewer": 7 of 1,536 against 228), an upper bound where
    it is the numerator. Returns (ratio, lower, upper) with the open end infinite; None where both
    counts are small (nothing to say) or both enough (`rate_ratio` gives the interval)."""
    if enough(k1) == enough(k2) or not n1 or not n2:
        return None
    from scipy.special import betaincinv

    d = max(design1, design2, 1.0)
    scale = n2 / n1  # ratio = k1 / k2 x n2 / n1
    small, large = (k1, k2) if k1 < k2 else (k2, k1)
    share = float(betaincinv(small / d + 1, large / d, 0.95))  # the small count's share of both, at most
    point = k1 / k2 * scale if k2 else INF
    if k1 < k2:
        return point, -INF, share / (1 - share) * scale
    return point, (1 - share) / share * scale, INF


# The shares a pooling function's interval rests on, as (numerator, denominator) positions in its
# counts (a denominator of two positions is their sum): each share's design effect is passed after
# the counts (`harness.measure.seed_clusters.design`).
SHARES: dict[Callable, tuple[tuple[tuple[int, ...], tuple[int, ...]], ...]] = {
    wilson: (((0,), (1,)),),
    rate_ratio: (((0,), (1,)), ((2,), (3,))),
    count_ratio: (((0,), (0, 2)),),
}


@dataclass(frozen=True)
class Finding:
    name: str
    claim: str  # the finding, with the band of values that has it
    published: str  # the study's figure as it states it
    figure: float | None  # the same as a number in this row's unit; None where the study gives a direction only
    source: str  # paper and where in it
    side: tuple[float, float]  # the published side: low < value < high
    measure: Callable[[Runs], float | Counts | None]  # one seed's value, or its counts when `pool` is set
    pool: Callable[..., tuple[float, float, float]] | None = None  # counts summed over seeds, then this
    floors: tuple[tuple[int, str], ...] = ()  # counts that must reach MIN_COUNT: (position, what it counts)
    unit: str = ""  # "%" a share, "x" a ratio, "auc" an AUC, "" a signed difference or correlation
    needs: str = "the runs it needs"  # what a seed must have to give a value
    # (run, statistic): the interval from the two-way bootstrap over that run's examples and the seeds
    # (`harness.measure.twoway`), not a t-interval over the seeds' values
    resample: tuple[str, twoway.Stat] | None = None
    # a line the row prints under the table from each seed's figures (what the filter removed and cost)
    detail: Callable[[Sequence[Runs]], str] | None = None
    # where the band's edge is not the value of no effect (a correlation's 0.5 against 0): an interval
    # wholly above this value says the two agree, whatever the verdict, and the caveat says so
    agreement: float | None = None


FINDINGS: tuple[Finding, ...] = (
    Finding("reduction", "the soft-KD student memorizes \"more than 50% less\" than the baseline "
            "(baseline / student > 2x)", ">= 2.4x fewer", 2.4, f"{BORKAR}, finding (1); FineWeb and WikiText-103",
            (2, INF),
            _against_fine_tuning("soft", _ratio_of_rates("soft", "memorized_baseline", "soft", "memorized_student")),
            rate_ratio,
            ((0, "the baseline memorized"), (2, "the soft-KD student memorized")), "x", needs=FINE_TUNED),
    Finding("hard-KD reduction", "distillation memorizes \"more than 50% less\" than fine-tuning: the hard-KD "
            "student against the baseline (baseline / student > 2x)", "> 50% less (> 2x)", 2.0,
            f"{BORKAR}, finding (1)", (2, INF),
            _against_fine_tuning("hard", _ratio_of_rates("hard", "memorized_baseline", "hard", "memorized_student")),
            rate_ratio,
            ((0, "the baseline memorized"), (2, "the hard-KD student memorized")), "x", needs=FINE_TUNED),
    # The same two claims in the board's measure, which resolves what exact match leaves at zero: the
    # expected share of members extracted by sampling (harness.measure.probabilistic), the paper's own
    # measure being exact match. A ratio of the two roles' means over the same members and seeds.
    Finding("reduction, by extraction", "the soft-KD student memorizes \"more than 50% less\" than the "
            f"baseline, {EXTRACTION} (baseline / student > 2x)", ">= 2.4x fewer", 2.4,
            f"{BORKAR}, finding (1); measured here by probabilistic extraction", (2, INF),
            _against_fine_tuning("soft", _rates_ratio("soft", "baseline", "student")), unit="x", needs=EXTRACTED,
            resample=("soft", _extraction_ratio("baseline", "student"))),
    Finding("hard-KD reduction, by extraction", "distillation memorizes \"more than 50% less\" than fine-tuning: "
            f"the hard-KD student against the baseline, {EXTRACTION} (baseline / student > 2x)", "> 50% less (> 2x)",
            2.0, f"{BORKAR}, finding (1); measured here by probabilistic extraction", (2, INF),
            _against_fine_tuning("hard", _rates_ratio("hard", "baseline", "student")), unit="x", needs=EXTRACTED,
            resample=("hard", _extraction_ratio("baseline", "student"))),
    Finding("soft vs hard rate", "soft and hard KD students memorize at \"similar\" overall rates "
            "(hard / soft within [0.5x, 2x]: neither twice the other)", "similar rates", None,
            f"{BORKAR}, finding (4)", (0.5, 2),
            _ratio_of_rates("hard", "memorized_student", "soft", "memorized_student"), rate_ratio,
            ((0, "the hard-KD student memorized"), (2, "the soft-KD student memorized")), "x"),
    Finding("validation loss", "the soft-KD student's validation loss is below the baseline's (student - baseline < 0)",
            "student <= baseline", None, f"{BORKAR}, utility of the distilled students", (-INF, 0),
            lambda r: _get(r, "soft", "val_loss_student") - _get(r, "soft", "val_loss_baseline"),
            resample=("soft", _val_loss)),
    Finding("easy share", "\"over 95%\" of what the soft-KD student memorizes, the teacher and baseline memorize "
            "too (share > 95%)", "over 95% (95.7%)", 0.957, f"{BORKAR}, finding (2); overlap of memorized sets",
            (0.95, INF), _counts(("soft", "easy"), ("soft", "memorized_student")), wilson,
            ((1, "the soft-KD student memorized"),), "%"),
    Finding("soft-KD inheritance", "soft KD \"rarely\" passes on what only the teacher memorized: 0.9% (share "
            "of the teacher-exclusive members < 2%)", "0.9% (18 of 1,955)", 0.009,
            f"{BORKAR}, finding (4); teacher-exclusive members", (-INF, 0.02),
            _counts(("soft", "inherited"), ("soft", "teacher_exclusive")), wilson,
            ((1, "the teacher alone (not the baseline) memorized"),), "%"),
    Finding("hard/soft inheritance", "hard KD inherits \"2.7x\" more of the teacher's exclusive members than "
            "soft KD (direction: hard / soft > 1x; the figure sets the magnitude)", "2.7x", 2.7,
            f"{BORKAR}, finding (4); teacher-exclusive members", (1, INF),
            _counts(("hard", "inherited"), ("hard", "teacher_exclusive"), ("soft", "inherited"),
                    ("soft", "teacher_exclusive")), rate_ratio,
            ((0, "the hard-KD student inherited"), (2, "the soft-KD student inherited")), "x"),
    Finding("containment", "the larger model memorizes \"80%\" of what the smaller one does (direction: share "
            "of the baseline's memorized members the teacher memorized too > 50%, most; the figure sets the "
            "magnitude)", "80% (12B teacher over 1.4B student)", 0.80,
            f"{BORKAR}, memorization across model sizes", (0.5, INF),
            _counts(("soft", "both"), ("soft", "memorized_baseline")), wilson,
            ((1, "the baseline memorized"),), "%"),
    Finding("predictor AUC", "teacher and baseline perplexity, their KL and zlib entropy predict what the "
            "student memorizes, \"AUC ~ 0.99\" (here the hard-KD student's; held-out AUC > 0.9)", "AUC ~ 0.99",
            0.99,
            f"{BORKAR}, finding (3); predicting memorization", (0.9, INF),
            lambda r: _get(r, "filtered", "filter_predict_auc"), unit="auc",
            needs=PREDICTOR, resample=("filter_source", _predictor)),
    Finding("predictor beyond repeats", "the predictor ranks the hard-KD student's memorized members better than "
            "their repeat count alone does (predictor AUC - repeats-only AUC > 0)", "features, not duplication",
            None, f"{BORKAR}, finding (3); their data has no duplicates", (0, INF),
            lambda r: _get(r, "filtered", "filter_predict_auc") - _get(r, "filtered", "repeats_auc"),
            needs=f"{PREDICTOR}, and members of more than one repeat count",
            resample=("filter_source", _beyond_repeats)),
    Finding("filtering", "leaving out the predicted members before distilling leaves almost none memorized: "
            "\"1,698 -> 4\" (hard KD; memorized after / before < 0.1x, over 90% gone)", "1,698 -> 4 memorized (0.0024x)",
            4 / 1698, f"{BORKAR}, filtering experiment", (-INF, 0.1),
            _ratio_of_rates("filtered", "memorized_student", "filtered", "unfiltered_memorized_student"), count_ratio,
            ((2, "the unfiltered hard-KD student memorized"),), "x", needs=PREDICTOR,
            detail=lambda seeds: _filter_detail(seeds, "filtered")),
    Finding("filtering vs random removal", "the predictor's filter leaves fewer memorized than leaving out as "
            "many members at random (hard KD; memorized after predicted / after random < 1x)",
            "no control published", None, f"{BORKAR}, filtering experiment; the control is the harness's",
            (-INF, 1),
            _ratio_of_rates("filtered", "memorized_student", "random", "memorized_student"), count_ratio,
            ((2, "the randomly filtered hard-KD student memorized"),), "x",
            needs=f"{PREDICTOR}, and its random control", detail=lambda seeds: _filter_detail(seeds, "random")),
    Finding("filtering vs matched removal", "the predictor's filter leaves fewer memorized than leaving out as "
            "many members of each repeat count at random (hard KD; after predicted / after matched < 1x): what "
            "it learned beyond how often a member repeats", "no control published", None,
            f"{BORKAR}, filtering experiment; their data has no duplicates; the control is the harness's",
            (-INF, 1),
            _ratio_of_rates("filtered", "memorized_student", "matched", "memorized_student"), count_ratio,
            ((2, "the stratum-matched filtered hard-KD student memorized"),), "x",
            needs=f"{PREDICTOR}, and its stratum-matched control", detail=lambda seeds: _filter_detail(seeds, "matched")),
    Finding("reverse KL vs fine-tuning", "a reverse-KL student memorizes less than the fine-tuned baseline, "
            "\"6.0% vs 65.4%\" (direction: student / baseline < 1x; the figure sets the magnitude)",
            "6.0% vs 65.4% (0.092x, GPT-2)", 6.0 / 65.4,
            f"{SINGH}, memorization by KD method", (-INF, 1),
            _against_fine_tuning("reverse", _ratio_of_rates("reverse", "memorized_student", "reverse",
                                                            "memorized_baseline")),
            rate_ratio,
            ((0, "the reverse-KL student memorized"), (2, "the baseline memorized")), "x", needs=FINE_TUNED),
    Finding("reverse KL vs fine-tuning, by extraction", "a reverse-KL student memorizes less than the fine-tuned "
            f"baseline, \"6.0% vs 65.4%\", {EXTRACTION} (direction: student / baseline < 1x; the figure sets "
            "the magnitude)", "6.0% vs 65.4% (0.092x, GPT-2)", 6.0 / 65.4,
            f"{SINGH}, memorization by KD method; measured here by probabilistic extraction", (-INF, 1),
            _against_fine_tuning("reverse", _rates_ratio("reverse", "student", "baseline")), unit="x", needs=EXTRACTED,
            resample=("reverse", _extraction_ratio("student", "baseline"))),
    Finding("reverse vs forward KL", "a reverse-KL student memorizes less than a forward-KL (soft-KD) one "
            "(reverse / forward < 1x)", "reverse < forward (no figure)", None,
            f"{SINGH}, memorization by KD method", (-INF, 1),
            _ratio_of_rates("reverse", "memorized_student", "soft", "memorized_student"), rate_ratio,
            ((0, "the reverse-KL student memorized"), (2, "the soft-KD student memorized")), "x"),
    Finding("teacher vs student MIA", "membership inference (loss attack) is easier on the teacher than on "
            "its student (teacher AUC - student AUC > 0)", "teacher AUC > student AUC", None,
            f"{ZHANG}, membership inference on teacher and students", (0, INF),
            lambda r: _get(r, "soft", "auc_loss_teacher") - _get(r, "soft", "auc_loss_student"),
            resample=("soft", _auc_less("teacher", "student"))),
    Finding("teacher-to-student leakage", "a student distilled only on public data still leaks the teacher's "
            "private members to membership inference (soft-KD student's loss-attack AUC on them - the baseline's, "
            "trained on the same public half without the teacher, > 0)",
            "students inherit membership risk", None, f"{ZHANG}, distillation on a public split", (0, INF),
            lambda r: (_get(r, "soft", "auc_loss_student") - _get(r, "soft", "auc_loss_baseline")
                       if _get(r, "soft", "public_members") > 0 else math.nan),
            needs="a preset with distill_on = public (harness reproduce --preset tiny-public)",
            resample=("soft", _auc_less("student", "baseline"))),
    Finding("high-entropy confidence", "the baseline is confident on high-entropy members, the soft-KD student is "
            "not (top zlib-entropy quartile: mean loss, student - baseline > 0)", "student less confident", None,
            f"{BORKAR}, why distillation memorizes less (entropy analysis)", (0, INF),
            lambda r: _get(r, "soft", "high_entropy_gap"), needs="the soft-KD run's per-member zlib entropy (features)",
            resample=("soft", _high_entropy)),
    Finding("memorization vs MIA ranking", "KD methods rank \"differently\" by memorization and by membership risk "
            "(Spearman correlation of student memorization rate and strongest-attack AUC over the converged KD "
            "methods on the shared recipe < 0.5: the interval excludes a strong agreement)",
            "rankings disagree", None, f"{ZHANG}, memorization and MIA across KD methods", (-INF, 0.5),
            lambda r: _get(r, "board", "rank_rho"),
            needs=f"finished runs of at least {MIN_METHODS} converged KD methods on the shared recipe, on this "
                  "board at the seed, whose memorization rates differ (where every one is 0, there is no ranking "
                  "to correlate)", agreement=0.0, resample=("board", _rank_rho)),
)


def verdict(mean: float, lo: float, hi: float, side: tuple[float, float], counted: int, requested: int) -> str:
    """One of VERDICTS: "holds" or "fails" only when every requested seed (more than one) gives a
    value and the whole interval lies on one side; anything between is "not established"."""
    if math.isnan(mean):
        return "n/a"
    if counted == requested > 1:
        if inside(lo, hi, side):
            return "holds"
        low, high = side
        if hi <= low or lo >= high:
            return "fails"
    return "not established"


def inside(lo: float, hi: float, side: tuple[float, float]) -> bool:
    """The interval lies inside the band; an open end (a one-sided bound's infinity) inside an open band."""
    low, high = side
    return (low < lo or lo == low == -INF) and (hi < high or hi == high == INF)


def magnitude(lo: float, hi: float, figure: float | None, side: tuple[float, float]) -> str:
    """"within" when the published figure lies in the measured interval and the interval inside the
    band; "uninformative" when it holds the figure but crosses the band's edge too (1.5% [0.3%, 8.3%]
    against 0.9% says nothing); "stronger" when the interval lies beyond the figure on the claim's
    side; "weaker" otherwise; "" with nothing to compare."""
    if figure is None or math.isnan(lo) or math.isnan(hi):
        return ""
    if lo <= figure <= hi:
        return "within" if inside(lo, hi, side) else "uninformative"
    upward, downward = side[1] == INF > side[0], side[0] == -INF < side[1]
    return "stronger" if (upward and lo > figure) or (downward and hi < figure) else "weaker"


@dataclass
class Row:
    finding: Finding
    values: list  # per seed: its value, or its counts; None or NaN where the seed gives none
    counted: int  # seeds that give a value
    mean: float
    lo: float
    hi: float
    reason: str = ""  # why n/a, or why a bound and not an interval
    detail: str = ""  # the finding's own line (`Finding.detail`): what a filter removed and cost

    @property
    def one_sided(self) -> bool:
        """A bound, not an interval (`one_sided_ratio`): one end infinite."""
        return not math.isnan(self.lo) and (math.isinf(self.lo) or math.isinf(self.hi))

    @property
    def verdict(self) -> str:
        return verdict(self.mean, self.lo, self.hi, self.finding.side, self.counted, len(self.values))

    @property
    def magnitude(self) -> str:
        return magnitude(self.lo, self.hi, self.finding.figure, self.finding.side)

    @property
    def holds(self) -> bool | None:
        return {"holds": True, "fails": False}.get(self.verdict)

    @property
    def caveat(self) -> str:
        """Why the verdict is n/a or not established, where the figures say."""
        parts = [p for p in (self.reason, self.detail) if p]
        missing = [i for i, v in enumerate(self.values) if _missing(v)]
        if missing and self.counted:
            parts.append(f"no value at {len(missing)} of {len(self.values)} seeds")
        if len(self.values) == 1 and not self.reason:
            parts.append("one seed")
        if self.finding.agreement is not None and self.lo > self.finding.agreement:
            parts.append(f"the interval lies above {self.finding.agreement:g}: the two agree, if weakly")
        return "; ".join(parts)


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def aggregate(finding: Finding, per_seed: Sequence, members: Sequence[Sequence[int] | None] = ()) -> Row:
    """One finding over the seeds: counts pooled, or a t-interval of the seeds' values.

    `members`: for each of the counts, its per-member totals over the seeds that give a value (None
    where unknown); each pooled share's interval carries their design effect, or the number of
    seeds, its largest, without them."""
    values = list(per_seed)
    counted = sum(not _missing(v) for v in values)
    if not counted:
        return Row(finding, values, 0, math.nan, math.nan, math.nan,
                   f"n/a: no seed gives a value; it needs {finding.needs}")
    if finding.pool is None:
        mean, lo, hi = interval(values)
        if finding.unit == "auc":
            lo, hi = max(lo, 0.0), min(hi, 1.0)
        return Row(finding, values, counted, mean, lo, hi)
    totals = [sum(c) for c in zip(*(v for v in values if not _missing(v)))]
    short = [f"{what} {totals[i]:.0f} member{'s' * (totals[i] != 1)}"
             f"{f' over {counted} seeds' if counted > 1 else ''}, fewer than {MIN_COUNT}"
             for i, what in finding.floors if totals[i] < MIN_COUNT]
    designs = [_design(members, nums, dens, totals, counted) for nums, dens in SHARES[finding.pool]]
    if short:
        bound = one_sided_ratio(*totals, *designs) if finding.pool is rate_ratio and len(short) == 1 else None
        if bound is None:
            return Row(finding, values, counted, math.nan, math.nan, math.nan, "n/a: " + "; ".join(short))
        return Row(finding, values, counted, *bound, f"one-sided 95% bound: {short[0]}")
    mean, lo, hi = finding.pool(*totals, *designs)
    return Row(finding, values, counted, mean, lo, hi)


def _design(members: Sequence[Sequence[int] | None], nums: tuple[int, ...], dens: tuple[int, ...],
            totals: Sequence[float], seeds: int) -> float:
    def summed(positions):
        vectors = [members[i] if i < len(members) else None for i in positions]
        if any(v is None for v in vectors) or len({len(v) for v in vectors}) != 1:
            return None
        return [sum(column) for column in zip(*vectors)]
    return design(summed(nums), summed(dens), sum(totals[i] for i in nums), sum(totals[i] for i in dens), seeds)


def measure(figures: Mapping[int, Runs], seeds: Sequence[int],
            verdicts: Mapping[int, Mapping[str, list]] | None = None,
            examples: Mapping[int, Mapping[str, twoway.Seed]] | None = None) -> list[Row]:
    """Every finding from each seed's runs; `verdicts`, each seed's runs' per-member verdicts
    (`seed_verdicts`), give the pooled shares their design effects; `examples`, each seed's runs'
    per-example values (`seed_examples`), give the AUC and difference rows an interval over examples
    and seeds. Without them (runs stored before), those rows fall back to a t-interval over seeds."""
    totals: dict[tuple, dict[str, list[int]] | None] = {}  # (run, seeds) -> its members' totals, summed once
    rows = []
    for f in FINDINGS:
        values = [f.measure(figures.get(seed, {})) for seed in seeds]
        counted = tuple(seed for seed, v in zip(seeds, values) if not _missing(v))
        wanted = getattr(f.measure, "wanted", ())
        members = [_members_of(verdicts, counted, run, name, totals) for run, name in wanted] if verdicts else []
        row = _resampled(aggregate(f, values, members), counted, examples)
        if f.detail is not None:
            row.detail = f.detail([figures.get(seed, {}) for seed in seeds])
        rows.append(row)
    return rows


def _resampled(row: Row, counted: Sequence[int], examples: Mapping[int, Mapping[str, twoway.Seed]] | None) -> Row:
    """The row with its interval over examples and seeds, where the finding resamples and every seed that
    gave a value has its examples; else as it was."""
    if row.finding.resample is None or not examples or not counted:
        return row
    run, stat = row.finding.resample
    data = [examples.get(seed, {}).get(run) for seed in counted]
    if any(d is None for d in data):
        return row
    try:
        mean, lo, hi = twoway.interval(data, stat)
    except KeyError:  # a value the statistic needs was not stored for these runs (zlib entropy, risk)
        return row
    if math.isnan(mean):
        return row
    if row.finding.unit == "auc":
        lo, hi = max(lo, 0.0), min(hi, 1.0)
    return replace(row, mean=mean, lo=lo, hi=hi)


def _members_of(verdicts: Mapping[int, Mapping[str, list]], seeds: tuple[int, ...], run: str, name: str,
                totals: dict[tuple, dict[str, list[int]] | None]) -> list[int] | None:
    """The per-member totals of one run's count over the seeds, or None where a seed lacks its verdicts;
    each run's totals over a set of seeds are summed once, in `totals`, for every finding that reads them."""
    run, name = ALIASES.get((run, name), (run, name))
    if (run, seeds) not in totals:
        rows = [verdicts.get(seed, {}).get(run) for seed in seeds]
        totals[run, seeds] = (None if not seeds or any(not r for r in rows)
                              else member_totals(row for seed_rows in rows for row in seed_rows))
    found = totals[run, seeds]
    return None if found is None else found.get(name)


# Counts whose members are another run's: the filtered run's "before" is its source run's student.
ALIASES = {("filtered", "unfiltered_memorized_student"): ("filter_source", "memorized_student")}


def count_line(verdicts: Sequence[str]) -> str:
    """How many findings have each verdict, every verdict named."""
    n = {v: list(verdicts).count(v) for v in VERDICTS}
    return (f"of {len(verdicts)} findings: {n['holds']} hold, {n['not established']} not established, "
            f"{n['fails']} fail, {n['n/a']} n/a")


@dataclass
class Reproduction:
    reproduction_id: str
    seeds: list[int]
    runs: dict[int, dict[str, str]]  # seed -> run name -> run id
    rows: list[Row]
    strata: list[dict] | None = None  # memorization by repeat count, where members repeat
    blind: list[tuple[float, float, float]] | None = None  # each run's blind-baseline AUC, lo, hi (a shifted split?)
    leakage: list[dict] | None = None  # the public setting's leakage by repeat count (`leakage_by_repeats`)


def reproduce(base: EvalRequest, seeds: list[int], report=print) -> Reproduction:
    """Every run the findings need at each seed, read from the results or run now; then the findings."""
    from harness.errors import RunFailed, UsageError
    from harness.protocol.evaluate import evaluate, stored
    from harness.protocol.request import Resolved
    from harness.runtime import processes
    from harness.store.database import Store

    runs: dict[int, dict[str, str]] = {}
    for seed in seeds:
        runs[seed] = {}
        for name, (method, filter_) in RUNS.items():
            req = replace(base, method=method, seed=seed, filter=filter_,
                          command=f"{base.command}  [reproduce: {name}, seed {seed}]")
            done = stored(req)
            if done is None:
                report(f"reproduce: seed {seed}, {name} ({method}{', filtered' if filter_ else ''}): running it")
                try:
                    done = evaluate(req, rerun=True)
                except (RunFailed, UsageError) as err:  # its findings are n/a; the others still stand
                    report(f"reproduce: seed {seed}, {name}: could not run ({err}); its findings are n/a")
                    continue
            else:
                report(f"reproduce: seed {seed}, {name}: run {done.run_id} from the results")
            runs[seed][name] = done.run_id
    protocol = Resolved(base, bind=False)  # the family, dataset and preset the findings are stored under
    store = Store(base.db)
    result = processes.broadcast(_measured(store, runs, seeds) if processes.is_main() else None)
    result.reproduction_id = processes.broadcast(
        datetime.now(timezone.utc).strftime("r%Y%m%d-%H%M%S-") + secrets.token_hex(3))
    if processes.is_main():
        where = {"family": protocol.family.name, "dataset": protocol.dataset.name, "preset": protocol.preset.name}
        store.record_reproduction(result.reproduction_id, where, rows_for_store(result))
    return result


def _measured(store: Store, runs: dict[int, dict[str, str]], seeds: list[int]) -> Reproduction:
    figures = {seed: seed_figures(store, ids) for seed, ids in runs.items()}
    verdicts = {seed: seed_verdicts(store, ids) for seed, ids in runs.items()}
    examples = {seed: seed_examples(store, ids) for seed, ids in runs.items()}
    blind = _read(store, read.blind_figures, [i for ids in runs.values() for i in ids.values()])
    public = [seed for seed in seeds if _get(figures.get(seed, {}), "soft", "public_members") > 0]
    leakage = leakage_by_repeats([examples[seed].get("soft") for seed in public]) if public else None
    return Reproduction("", list(seeds), runs, measure(figures, seeds, verdicts, examples), strata(store, runs),
                        blind, leakage)


def _stratum_auc(role: str, count: int) -> twoway.Stat:
    """The loss attack's AUC on one role, the members repeated `count` times against every non-member."""
    def stat(s: twoway.Seed, wm, wn) -> float:
        return s.membership_auc(f"score_{role}")(np.r_[np.where(s.members["repeats"] == count, wm, 0.0), wn])
    return stat


def _stratum_leakage(count: int) -> twoway.Stat:
    student, baseline = _stratum_auc("student", count), _stratum_auc("baseline", count)
    return lambda s, wm, wn: student(s, wm, wn) - baseline(s, wm, wn)


def leakage_by_repeats(seeds: Sequence[twoway.Seed | None]) -> list[dict] | None:
    """Zhang et al.'s leakage at each repeat count of the teacher's private members: the soft-KD
    student's loss-attack AUC on the members of that count against every non-member, less the
    baseline's (trained on the same public half without the teacher), with the bootstrap over
    examples and seeds. It says whether what leaks is the teacher's duplicates or every member.
    None where a seed lacks its examples or no member repeats."""
    if not seeds or any(s is None or "repeats" not in s.members for s in seeds):
        return None
    counts = sorted({int(r) for s in seeds for r in s.members["repeats"]})
    if len(counts) < 2:
        return None
    rows = []
    for count in counts:
        student, baseline = (twoway.point_of(seeds, _stratum_auc(role, count)) for role in ("student", "baseline"))
        mean, lo, hi = twoway.interval(seeds, _stratum_leakage(count))
        rows.append({"repeats": count, "members": int(sum((s.members["repeats"] == count).sum() for s in seeds)),
                     "student": student, "baseline": baseline, "leakage": mean, "lo": lo, "hi": hi})
    return rows


# ------------------------------------------------------------ reading the runs back


def _read(store: Store, query: Callable, *args):
    """One `harness.store.read` query on its own read-only connection."""
    with store.reading() as con:
        return query(con, *args)


def seed_figures(store: Store, ids: Mapping[str, str]) -> dict[str, dict[str, float]]:
    """One seed's runs: each run's metrics and counts, and the figures that need per-member rows."""
    out = {name: run_figures(store, run_id) for name, run_id in ids.items()}
    if "filtered" in out:
        f = out["filtered"]
        f["unfiltered_memorized_student"] = count_from_rate(f.get("filter_unfiltered_mem_rate_student"), f.get("n_members"))
        source = _read(store, read.source_run, ids["filtered"])
        f["repeats_auc"] = repeats_auc(store, source or ids.get("hard", ""))
    if "soft" in out:
        out["soft"]["high_entropy_gap"] = high_entropy_gap(store, ids["soft"])
    anchor = ids.get("soft") or ids.get("hard")
    if anchor:
        out["board"] = {"rank_rho": rank_rho(store, anchor)}
    return out


def seed_verdicts(store: Store, ids: Mapping[str, str]) -> dict[str, list]:
    """One seed's runs' per-member verdicts (and the filtered run's source run's, as "filter_source")."""
    named = dict(ids)
    if "filtered" in ids:
        named["filter_source"] = _read(store, read.source_run, ids["filtered"]) or ids.get("hard", "")
    return {name: _read(store, read.member_verdicts, [run_id]) for name, run_id in named.items() if run_id}


def seed_examples(store: Store, ids: Mapping[str, str]) -> dict[str, twoway.Seed]:
    """One seed's per-example values for the resampled findings: the soft-KD, hard-KD and reverse-KL runs'
    losses and chances of extraction on every role (and which members are in the top quartile of zlib
    entropy), the predictor's members (the
    filtered run's source run: risk, repeats, the student's verdict), and the board's peers (`peer_examples`)."""
    out = {name: _role_losses(store, ids[name]) for name in ("soft", "hard", "reverse") if ids.get(name)}
    if ids.get("filtered"):
        source = _read(store, read.source_run, ids["filtered"]) or ids.get("hard")
        out["filter_source"] = _predictor_members(store, source) if source else None
    anchor = ids.get("soft") or ids.get("hard")
    if anchor:  # the board's peers at this seed: the rank correlation's examples
        out["board"] = peer_examples(store, anchor)
    return {name: seed for name, seed in out.items() if seed is not None}


def _role_losses(store: Store, run_id: str) -> twoway.Seed | None:
    from harness.contract.specs import ROLES
    with store.reading() as con:
        frames = {role: read.member_losses(con, [run_id], role) for role in ROLES}
        entropy = dict((sid, z) for sid, z, _ in read.features(con, run_id, ["zlib_entropy"])) \
            if "zlib_entropy" in connection.tables(con).get("features", set()) else {}
    sides = {role: {split: f[f["split"] == split] for split in ("member", "nonmember")} for role, f in frames.items()}
    first = sides[ROLES[0]]
    ids = {split: first[split]["sample_id"].tolist() for split in first}
    if not ids["member"] or any(s[split]["sample_id"].tolist() != ids[split] for s in sides.values() for split in ids):
        return None  # a role without every example: nothing to pair
    seed = twoway.Seed(ids["member"], ids["nonmember"])
    for role, s in sides.items():
        for split, values in (("member", seed.members), ("nonmember", seed.nonmembers)):
            loss = s[split]["loss"].to_numpy(float)
            values[f"loss_{role}"], values[f"score_{role}"] = loss, -loss  # the loss attack: lower, a member
        if role == ROLES[0]:  # how often each member was in the teacher's training set
            seed.members["repeats"] = s["member"]["repeats"].fillna(1).to_numpy(float)
        logprob = s["member"]["sample_logprob"].to_numpy(float)
        if not np.isnan(logprob).any():  # stored since probabilistic extraction: else its rows keep their seeds' interval
            seed.members[f"extract_{role}"] = probabilistic.chance(logprob)
    if entropy and all(sid in entropy for sid in ids["member"]):
        z = np.array([entropy[sid] for sid in ids["member"]], float)
        seed.members["top_entropy"] = z >= np.quantile(z, 0.75)  # as `read.high_entropy_loss_gap` cuts it
    return seed


def _predictor_members(store: Store, run_id: str) -> twoway.Seed | None:
    rows = _read(store, read.predictor_rows, run_id)
    if not rows:
        return None
    sid, risk, repeats, memorized = zip(*rows)
    seed = twoway.Seed(list(sid), [])
    seed.members.update(risk=np.array(risk, float), repeats=np.array([r or 1 for r in repeats], float),
                        memorized=np.array(memorized, bool))
    return seed


def run_figures(store: Store, run_id: str) -> dict[str, float]:
    """A run's metrics, n_members and memorized counts: stored counts first, then rate x n_members
    (runs stored before the counts were), then its per-member rows."""
    with store.reading() as con:
        stored, n = read.metrics(con, run_id), read.run_row(con, run_id)["n_members"]
    fig = {name: (math.nan if value is None else value) for name, value in stored.items()}
    fig["n_members"] = float(n)
    for name in ("memorized_teacher", "memorized_baseline", "memorized_student", "easy"):
        fig[name] = stored_count(fig, name)
    fig["both"] = count_from_rate(fig.get("containment"), fig["memorized_baseline"])
    needed = ("easy", "both", "teacher_exclusive", "inherited")
    if any(math.isnan(fig.get(k, math.nan)) for k in needed):
        fig.update({k: v for k, v in member_counts(store, run_id).items() if math.isnan(fig.get(k, math.nan))})
    return fig


def member_counts(store: Store, run_id: str) -> dict[str, float]:
    """The overlap counts from the run's per-member verdicts (samples)."""
    n, *counts = _read(store, read.member_overlap, run_id)
    if not n:
        return {}
    return dict(zip(("easy", "both", "teacher_exclusive", "inherited"), map(float, counts)))


def repeats_auc(store: Store, run_id: str) -> float:
    """How well a member's repeat count alone ranks the student's memorized members (AUC), on the
    members the predictor saw: what the predictor must beat to show it learned more than repetition."""
    from sklearn.metrics import roc_auc_score

    rows = _read(store, read.repeats_and_verdicts, run_id)
    labels = {bool(m) for _, m in rows}
    if len(labels) < 2 or len({r for r, _ in rows}) < 2:
        return math.nan
    return float(roc_auc_score([bool(m) for _, m in rows], [r for r, _ in rows]))


def high_entropy_gap(store: Store, run_id: str) -> float:
    """Among members in the top quartile of zlib entropy, the student's mean loss minus the baseline's."""
    value = _read(store, read.high_entropy_loss_gap, run_id)
    return math.nan if value is None else float(value)


def rank_rho(store: Store, run_id: str) -> float:
    """Spearman correlation of student memorization rate and the student's strongest-attack AUC over the
    peers: the KD methods with a finished unfiltered run on this run's board at its seed (the runs that
    count, `read.peers_at_seed`) that share the board's recipe and data exposure (no own recipe), train
    without DP-SGD, and converged (validation perplexity within UTILITY_SLACK of the baseline's): the
    rows a board ranks. Noise-swamped DP rows and students that did not learn would correlate the two
    through failure alone."""
    pairs = [(mem, auc) for mem, auc, _ in _peers(store, run_id)]
    if len(pairs) < MIN_METHODS:
        return math.nan
    return spearman([p[0] for p in pairs], [p[1] for p in pairs])  # NaN when one ranking is all ties


def _peers(store: Store, run_id: str) -> list[tuple[float, float, str]]:
    """(memorization rate, strongest-attack AUC, run id) of the peers `rank_rho` correlates."""
    rows = _read(store, read.peers_at_seed, run_id)
    return [(mem, auc, rid) for _, mem, auc, ppl, base, dp, own, rid in rows
            if mem is not None and auc is not None and not dp and not own and _converged(ppl, base)]


def peer_examples(store: Store, run_id: str) -> twoway.Seed | None:
    """The peers' per-example values at this run's seed, for the rank correlation's interval over examples
    and seeds: each peer's student verdicts on the members (`mem_<i>`) and its strongest attack's scores
    on members and non-members (`score_<i>`). None with fewer than MIN_METHODS peers, or where their
    examples differ."""
    peers = _peers(store, run_id)
    if len(peers) < MIN_METHODS:
        return None
    values = [_read(store, read.strongest_attack_values, rid) for _, _, rid in peers]
    if any(v is None or not v[1] for v in values):
        return None
    split = {side: [r[0] for r in values[0][1] if r[1] == side] for side in ("member", "nonmember")}
    seed = twoway.Seed(split["member"], split["nonmember"])
    for i, (_, rows) in enumerate(values):
        if [r[0] for r in rows if r[1] == "member"] != split["member"] \
                or [r[0] for r in rows if r[1] == "nonmember"] != split["nonmember"]:
            return None  # not the same examples: nothing to pair
        members = [r for r in rows if r[1] == "member"]
        seed.members[f"mem_{i}"] = np.array([bool(r[2]) for r in members], float)
        seed.members[f"score_{i}"] = np.array([r[3] for r in members], float)
        seed.nonmembers[f"score_{i}"] = np.array([r[3] for r in rows if r[1] == "nonmember"], float)
    return seed


def _converged(ppl: float | None, baseline: float | None) -> bool:
    return ppl is not None and baseline is not None and ppl <= baseline * (1 + UTILITY_SLACK)


def strata(store: Store, runs: Mapping[int, Mapping[str, str]]) -> list[dict] | None:
    """Members and memorized counts by repeat count, pooled over seeds: the teacher and baseline (from
    the soft-KD runs), the soft- and hard-KD students. None where no member repeats."""
    table: dict[int, dict[str, int]] = {}
    for ids in runs.values():
        for name, roles in (("soft", ("teacher", "baseline", "student")), ("hard", ("student",))):
            if name not in ids:
                continue
            rows = _read(store, read.repeat_counts, ids[name])
            for repeats, role, n, k in rows:
                if role not in roles:
                    continue
                row = table.setdefault(int(repeats or 1), {})
                key = f"{name}_student" if role == "student" else role
                row[key] = row.get(key, 0) + k
                if name == "soft" and role == "teacher":
                    row["members"] = row.get("members", 0) + n
    if max(table, default=1) <= 1:
        return None
    return [{"repeats": r, **table[r]} for r in sorted(table)]


# ------------------------------------------------------------ output


def rows_for_store(result: Reproduction) -> list[dict]:
    def seed_value(v):
        return None if _missing(v) else list(v) if isinstance(v, tuple) else v

    return [{"finding": r.finding.name, "claim": r.finding.claim, "published": r.finding.published,
             "source": r.finding.source, "unit": r.finding.unit, "n": r.counted, "requested": len(r.values),
             "mean": r.mean, "lo": r.lo, "hi": r.hi, "holds": r.holds, "verdict": r.verdict,
             "figure": r.finding.figure, "magnitude": r.magnitude, "caveat": r.caveat,
             "per_seed": json.dumps([seed_value(v) for v in r.values]),
             "runs": json.dumps({str(s): ids for s, ids in result.runs.items()})} for r in result.rows]

