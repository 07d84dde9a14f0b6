"""The leaderboard the Streamlit app, `harness leaderboard`, publish and export share, testable without Streamlit.

What is not SQL: the runs that count (`read.runs`) assembled into boards, their counts pooled
over seeds, ranked (`ranking.rank`), and the headline, caveats and drill-down built from them. Every
query is in harness.store.read. Figures a file does not hold (attack AUCs of runs stored before
attacks) are looked for and left out when absent.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from harness.contract.specs import ROLES
from harness.leaderboard import measures
from harness.leaderboard.ranking import BASELINE_LABEL, DEFAULT, Ranking, rank
from harness.measure.seed_clusters import Totals, design, member_totals
from harness.measure.stats import MIN_FALSE_POSITIVES, enough, interval, rate_ratio, stored_count, wilson
from harness.store import connection, read
from harness.store.migrations import SCHEMA_VERSION
from harness.store.read import NO_FILTERS, Filters

RATES = {"mem_rate_student", "inheritance_rate", "easy_share", "mem_rate_teacher", "mem_rate_baseline"}


class BoardError(Exception):
    """Something the app shows as a friendly message: no database, an older schema, no runs."""


# ------------------------------------------------------------ opening


def said(err: connection.Refused) -> str:
    """What the app says about a file `connection.reading` refused."""
    path = err.path
    if err.kind == "missing":
        return f"No results database at {path}. Run `harness eval --method soft-kd` first, or `harness app --db FILE`."
    if err.kind in ("unopenable", "locked"):
        return f"Cannot open {path}: {err.reason}"
    if err.kind == "empty":
        return "This database is empty: no run has been stored in it yet. Run `harness eval --method soft-kd`."
    if err.kind == "newer":
        return f"This database has schema version {err.version}, newer than this app's {SCHEMA_VERSION}: update the harness."
    if err.kind in ("foreign", "version", "incomplete"):
        missing = err.missing
        return (f"This database was written by an older harness (schema version {err.version or 'unknown'}, "
                f"this app reads version {SCHEMA_VERSION}; missing {', '.join(missing[:4]) or 'nothing'}"
                f"{'…' if len(missing) > 4 else ''}). Re-run the methods with this harness, or open another --db.")
    return str(err)


def schema_problem(con) -> str | None:
    """Why this database cannot be shown, in a sentence; None when it can. `connection.reading` has refused
    what it cannot show already: this is the same check (`connection.check`) on a connection in hand."""
    try:
        connection.check(con)
    except connection.Refused as err:
        return said(err)
    return None


def best_attack(g: pd.DataFrame, aucs: list[str], role: str) -> dict:
    """The strongest attack on a role (highest mean AUC over seeds), its AUC and its TPR at 1% FPR, on all
    members and on those seen once (`once_attack_tpr`).

    The TPR is n/a where the non-members allow fewer than MIN_FALSE_POSITIVES false positives at 1%
    (runs stored before that rule carry a figure resting on five non-members of 512)."""
    means = {c: v for c, v in g[aucs].mean().items() if not math.isnan(v)}
    if not means:
        return {"best_attack_auc": math.nan, "best_attack": None, "best_attack_tpr": math.nan}
    col = max(means, key=means.get)
    name = col[len("auc_"):-len(f"_{role}")]
    resolved = "n_nonmembers" in g and g["n_nonmembers"].min() * 0.01 >= MIN_FALSE_POSITIVES

    def tpr(column: str) -> float:
        return float(g[column].mean()) if column in g and resolved and g[column].notna().all() else math.nan

    return {"best_attack_auc": means[col], "best_attack": name, "best_attack_tpr": tpr(f"tpr_1_{name}_{role}"),
            "once_attack_tpr": tpr(f"rep1_tpr_1_{name}_{role}")}


def _count(run: dict, name: str) -> float:
    """One run's count (`stats.stored_count`); 0 where none is stored or recoverable: a run stored
    before the counts were has no easy share when its student memorized nothing."""
    v = stored_count(run, name)
    return 0.0 if math.isnan(v) else v


def pooled(g: pd.DataFrame, student: str = "student", totals: Totals | None = None) -> dict:
    """Rates and ratios from counts pooled over seeds, with Wilson and log-scale intervals: a seed that
    memorized nothing counts, and no ratio rests on fewer than MIN_COUNT memorized members.

    The seeds test one sample of members, so each interval carries its design effect, from the
    members' `totals` over the seeds and, for a rate, its counts by seed (`harness.measure.seed_clusters`),
    or the number of seeds without them."""
    records = g.to_dict("records")

    def total(name: str) -> float:
        return sum(_count(r, name) for r in records)

    def effect(num: str, den: str, k: float, n: float, per_seed: list[float] | None = None) -> float:
        return design((totals or {}).get(num), (totals or {}).get(den), k, n, len(records), per_seed)

    n = float(g["n_members"].sum())
    k = {r: total(f"memorized_{r}") for r in ROLES}
    out: dict = {"memorized": k[student], "members_pooled": n}
    # a rate's counts by seed carry the seeds' own variance into its interval (seed_clusters.design)
    d = {r: effect(f"memorized_{r}", "n_members", k[r], n, [_count(rec, f"memorized_{r}") for rec in records])
         for r in ROLES}
    for r in ROLES:
        out[f"mem_rate_{r}"], out[f"mem_rate_{r}_lo"], out[f"mem_rate_{r}_hi"] = wilson(k[r], n, d[r])
    if student != "student":
        return out
    out["reduction"], out["reduction_lo"], out["reduction_hi"] = rate_ratio(k["baseline"], n, k["student"], n,
                                                                            d["baseline"], d["student"])
    exclusive = total("teacher_exclusive")
    for name, num_name, num, den_name, den in (
            ("inheritance_rate", "inherited", total("inherited"), "teacher_exclusive", exclusive),
            ("easy_share", "easy", total("easy"), "memorized_student", k["student"])):
        out[name], out[f"{name}_lo"], out[f"{name}_hi"] = (
            wilson(num, den, effect(num_name, den_name, num, den)) if enough(den) else (math.nan,) * 3)
    out["teacher_exclusive"] = exclusive
    return out


def member_clusters(con, run_ids: Sequence[str]) -> Callable[[pd.DataFrame], Totals]:
    """Reads the runs' per-member verdicts once; gives a group of them its members' totals."""
    by_run: dict[str, list] = {}
    for row in read.member_verdicts(con, run_ids):
        by_run.setdefault(row[0], []).append(row)
    return lambda g: member_totals(row for run_id in g["run_id"] for row in by_run.get(run_id, ()))


# ------------------------------------------------------------ the board


def board(con, filters: Filters = NO_FILTERS, rules: Callable[[dict], Ranking] | None = None) -> pd.DataFrame:
    """Methods as rows per board (read.BOARD_KEYS), a baseline row each, ranked by `ranking.rank`.

    The one ranking: `harness leaderboard`, the app, publish and export all read it. Boards in
    order of their keys; within one, the ranked methods, the baseline, then the methods outside
    the utility band. Rates and ratios come from counts pooled over the seeds (`pooled`);
    perplexities and attack AUCs are means with a t-interval over seeds. `rules(keys)` gives a
    board's ranking rules (a published board's spec); by default the band is 10% of the
    baseline's perplexity.
    """
    rs = read.runs(con, filters)
    if rs.empty:
        return pd.DataFrame()
    metrics = read.run_metrics(con, rs["run_id"].tolist())
    rs = rs.merge(metrics, on="run_id", how="left")
    aucs = [c for c in read.attack_auc_names(con) if c in rs.columns]
    clusters = member_clusters(con, rs["run_id"].tolist())
    groups = list(rs.groupby(read.BOARD_KEYS, dropna=False, sort=True))
    examples = read.example_values(con, rs["run_id"].tolist(),
                                   [i for _, g in groups for i in at_seed(g)["run_id"]])
    out = []
    for keys, group in groups:
        rows = []
        compared = _Paired(examples, group)
        for label, g in group.groupby("method_label", sort=False):
            row = dict(zip(read.BOARD_KEYS, keys))
            row.update(method=label, reference=False, teacher_access=g["teacher_access"].iloc[0],
                       student_size=g["student_size"].iloc[0], student_params=g["student_params"].iloc[0],
                       seeds=len(g), seed_list=", ".join(str(s) for s in sorted(g["seed"])),
                       n_members=_members(g))
            for name in ("val_ppl_student", "val_ppl_baseline", "val_ppl_teacher", "val_ppl_start_student",
                         "train_loss_first_student", "train_loss_last_student", "dp_epsilon", "dp_noise_multiplier"):
                mean, lo, hi = interval(g[name].tolist() if name in g else [])
                row[name], row[f"{name}_lo"], row[f"{name}_hi"] = mean, lo, hi
            row.update(pooled(g, totals=clusters(g)))
            row.update(compared.figures(label))
            row["own_recipe"] = next((v for v in g.get("own_recipe", []) if isinstance(v, str) and v), None)
            if aucs:
                row.update(best_attack(g, aucs, "student"))
            for col in ("run_id", "config_hash", "harness_version", "git_commit"):
                row[col] = ", ".join(sorted({str(v) for v in g[col]}))
            rows.append(row)
        base = dict(zip(read.BOARD_KEYS, keys))
        seeds = at_seed(group)
        base.update(method=BASELINE_LABEL, reference=True, teacher_access="none",
                    student_size=group["student_size"].iloc[0], student_params=group["student_params"].iloc[0],
                    seeds=len(seeds), seed_list=", ".join(str(s) for s in sorted(seeds["seed"])),
                    n_members=_members(group), run_id="", config_hash="",
                    harness_version=", ".join(sorted({str(v) for v in group["harness_version"]})),
                    git_commit=", ".join(sorted({str(v) for v in group["git_commit"]})))  # None outside a checkout
        mean, lo, hi = interval(seeds["val_ppl_baseline"].tolist() if "val_ppl_baseline" in seeds else [])
        base["val_ppl_student"], base["val_ppl_student_lo"], base["val_ppl_student_hi"] = mean, lo, hi
        base.update(pooled(seeds, student="baseline", totals=clusters(seeds)))
        for end in ("", "_lo", "_hi"):  # the baseline's own memorization, in the student's column
            base[f"mem_rate_student{end}"] = base[f"mem_rate_baseline{end}"]
        base["reduction"] = 1.0
        base.update(compared.figures(BASELINE_LABEL))
        base_aucs = [c for c in read.attack_auc_names(con, "baseline") if c in seeds]
        if base_aucs:
            base.update(best_attack(seeds, base_aucs, "baseline"))
        rows.append(base)
        out.append(rank(pd.DataFrame(rows), rules(dict(zip(read.BOARD_KEYS, keys))) if rules else DEFAULT,
                        compare=compared.ranks))
    return pd.concat(out, ignore_index=True)


def _members(runs: pd.DataFrame) -> int:
    """A board's members: its first run's count (every run of a board tests the same members); 0 where the
    file stores none (a results file is read by value: a NULL count gives no rate, not a TypeError)."""
    stored = runs["n_members"].dropna()
    return int(stored.iloc[0]) if not stored.empty else 0


def at_seed(group: pd.DataFrame) -> pd.DataFrame:
    """A board's first run at each seed: every run at a seed holds the same baseline, read from this one."""
    return group.drop_duplicates("seed")


class _Paired:
    """One board's rows compared paired on its stored examples (`harness.leaderboard.measures`): each
    row's figure and interval on every measure but exact match (pooled counts give that), and the rank
    intervals of the rows it ranks."""

    def __init__(self, examples: pd.DataFrame, group: pd.DataFrame) -> None:
        ids = set(group["run_id"])
        self.examples = examples[examples["run_id"].isin(ids)] if not examples.empty else examples
        self.rows = {label: measures.Row(label, dict(zip(g["seed"], g["run_id"])))
                     for label, g in group.groupby("method_label", sort=False)}
        anchors = at_seed(group)
        self.rows[BASELINE_LABEL] = measures.Row(BASELINE_LABEL, dict(zip(anchors["seed"], anchors["run_id"])),
                                                 role="baseline")

    def figures(self, label: str) -> dict[str, float]:
        out = {}
        for measure in measures.MEASURES:
            if measure == "mem_rate_student" or not measures.comparable(self.examples, measure):
                continue
            try:
                c = measures.compare(self.examples, measure, [self.rows[label]])
            except ValueError:  # a run of this row without the values the measure rests on
                continue
            out[measure], out[f"{measure}_lo"], out[f"{measure}_hi"] = (float(c.estimate[0]), float(c.lo[0]),
                                                                        float(c.hi[0]))
        return out

    def ranks(self, labels: Sequence[str], measure: str):
        c = measures.compare(self.examples, measure, [self.rows[label] for label in labels])
        return c.rank_lo, c.rank_hi, measures.separated_pairs(c)


def run_ids(cell: str) -> list[str]:
    """A board row's runs: its `run_id` cell holds them comma-joined (the baseline's is empty)."""
    return [i for i in str(cell).split(", ") if i]


def boards(table: pd.DataFrame) -> list[tuple[dict, pd.DataFrame]]:
    """`board()`'s rows split into its boards, in order: (the board's keys, its rows, ranked)."""
    if table.empty:
        return []
    return [(dict(zip(read.BOARD_KEYS, keys)), group)
            for keys, group in table.groupby(read.BOARD_KEYS, dropna=False, sort=False)]


def of_board(table: pd.DataFrame, keys: dict) -> pd.DataFrame:
    """The rows of `table` (runs, role rates) that belong to the board with these keys."""
    if table.empty:
        return table
    mask = pd.Series(True, index=table.index)
    for k in read.BOARD_KEYS:
        mask &= table[k].isna() if pd.isna(keys[k]) else table[k] == keys[k]
    return table[mask]


SAMPLED = "extractable_rate_student"


def has_sampling(group: pd.DataFrame) -> bool:
    """Whether every row of a board stores the share extractable by sampling (runs before it was measured do not)."""
    return SAMPLED in group and group[SAMPLED].notna().all()


def leak_column(group: pd.DataFrame) -> str:
    """The leakage share a board's charts plot: the share extractable by sampling where every row has it (it
    resolves what exact match leaves at 0 once students stop on validation loss), else exact match."""
    return SAMPLED if has_sampling(group) else "mem_rate_student"


def frontier(points: pd.DataFrame, x: str = "val_ppl_student", y: str = "mem_rate_student",
             also: Sequence[str] = ()) -> pd.Series:
    """Pareto frontier, lower is better on every column: no other point is at least as good on all, better on one.

    `also` adds leakage measures (the best attack's AUC) where every point has them, so that a
    method that memorizes nothing verbatim but is wide open to membership inference is not on it.
    """
    cols = [x, y, *(c for c in also if c in points and points[c].notna().all())]
    values = points[cols].astype(float).to_numpy()
    flags = []
    for i, p in enumerate(values):
        dominated = any((q <= p).all() and (q < p).any() for j, q in enumerate(values) if j != i)
        flags.append(not dominated and not any(math.isnan(v) for v in p[:2]))
    return pd.Series(flags, index=points.index)


@dataclass(frozen=True)
class Headline:
    best: dict | None  # the board's lowest leakage estimate among the ranked rows, or None
    baseline: dict
    why: str  # how it was chosen, or why no method was
    tied: tuple[str, ...] = ()  # the ranked rows it cannot be separated from: then no single method leaks least

    @property
    def winner(self) -> str | None:
        """The method that leaks least, named only when the paired comparison separates it from every other."""
        return None if self.best is None or self.tied else self.best["method"]


def headline(group: pd.DataFrame, rules: Ranking = DEFAULT) -> Headline:
    """"Leaks least": the board's rank 1 (`ranking.rank`), a method inside the utility band, named only when
    no other ranked row shares its rank."""
    group = group.reset_index(drop=True)
    base = group[group["reference"]].iloc[0].to_dict()
    ranked = (group if "ranked" in group else rank(group, rules)).query("ranked")
    if ranked.empty:
        return Headline(None, base, f"no method has {rules.band}: none is ranked")
    best = ranked.iloc[0].to_dict()
    if not best["rank"].startswith("="):
        tied: tuple[str, ...] = ()
    elif "rank_hi" in ranked and pd.notna(best.get("rank_hi")):  # the rows whose rank interval meets its own
        tied = tuple(ranked.loc[ranked["rank_lo"] <= best["rank_hi"], "method"].tolist()[1:])
    else:
        tied = tuple(ranked.loc[ranked["rank"] == best["rank"], "method"].tolist()[1:])
    measure = measures.MEASURES.get(rules.primary, rules.primary)
    why = f"rank 1 among the methods with {rules.band}, by {measure}, compared paired over members and seeds"
    if tied:
        why = (f"no single method: {best['method']} has the lowest estimate, but the 95% intervals cannot separate "
               f"it from {', '.join(tied)}, which share rank 1 ({rules.band}; by {measure})")
    return Headline(best, base, why, tied)


def caveats(group: pd.DataFrame) -> list[str]:
    """What makes a board a small sample: runs on --limit examples, a single seed."""
    out = []
    limits = sorted({int(v) for v in group["example_limit"] if v is not None and not pd.isna(v)})
    if limits:
        out.append(f"limited run (--limit {', '.join(map(str, limits))}): {int(group['n_members'].iloc[0])} members, "
                   "a small sample; rerun without --limit for a result")
    if int(group["seeds"].max()) <= 1:
        out.append("single seed: no interval over seeds; rerun with --seeds 3 or more")
    return out


def regime(con, run_ids: Sequence[str]) -> str | None:
    """What a board's memorization comes from, when it is the repeated members alone: the baseline's
    memorized members among those seen once and those repeated, pooled over the runs' seeds."""
    once, once_mem, repeated, repeated_mem = read.baseline_repeats(con, run_ids)
    if not repeated or enough(once_mem) or not enough(repeated_mem):
        return None
    return (f"memorization here comes from repeated members: the baseline memorized {repeated_mem} of {repeated} "
            f"repeated members and {once_mem} of {once} seen once (pooled over seeds), where the studies' "
            "models memorize documents seen once; docs/protocol.md says what that does to each finding")


# ------------------------------------------------------------ charts' data


def role_rates(con, filters: Filters = NO_FILTERS) -> pd.DataFrame:
    """Memorization rate of teacher, baseline and student per method, from counts pooled over seeds."""
    rs = read.runs(con, filters)
    if rs.empty:
        return pd.DataFrame()
    m = read.run_metrics(con, rs["run_id"].tolist())
    rs = rs.merge(m, on="run_id", how="left")
    clusters = member_clusters(con, rs["run_id"].tolist())
    rows = []
    for (*keys, label), g in rs.groupby([*read.BOARD_KEYS, "method_label"], dropna=False):
        p = pooled(g, totals=clusters(g))  # the board's own figures: pooled counts, Wilson intervals in [0, 1]
        for role in ROLES:
            rows.append(dict(zip(read.BOARD_KEYS, keys), method=label, role=role, rate=p[f"mem_rate_{role}"],
                             lo=p[f"mem_rate_{role}_lo"], hi=p[f"mem_rate_{role}_hi"], seeds=len(g)))
    return pd.DataFrame(rows)


def logprob_vs_zlib(con, run_id: str) -> pd.DataFrame:
    """Per member and role: total log-probability against zlib entropy (text withheld: empty)."""
    from harness.measure.membership import zlib_entropy

    df = read.member_log_probs(con, run_id)
    df["zlib_bits"] = df["text"].map(lambda text: math.nan if text is None else zlib_entropy(text))
    return df.drop(columns="text")


def loss_attack_roc(con, run_id: str) -> pd.DataFrame:
    """ROC of the loss attack (members have lower loss) per role, from the stored per-example losses."""
    from sklearn.metrics import roc_auc_score, roc_curve

    df = read.losses(con, run_id)
    parts = []
    for role, g in df.groupby("role"):
        truth = (g["split"] == "member").astype(int)
        if truth.nunique() < 2:
            continue
        fpr, tpr, _ = roc_curve(truth, -g["loss"])
        auc = roc_auc_score(truth, -g["loss"])
        parts.append(pd.DataFrame({"role": role, "fpr": fpr, "tpr": tpr, "auc": auc}))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


# ------------------------------------------------------------ drill-down


@dataclass(frozen=True)
class Drill:
    run: dict
    sample_id: str
    text: str | None
    token_ids: list[int] | None
    scores: pd.DataFrame  # one row per role: memorized, match_len, loss, suffix_loss
    continuations: dict[str, list[int]]  # role -> the greedy continuation's token ids, where stored
    withheld: str | None  # why the text is missing


def drill(con, run_id: str, sample_id: str) -> Drill:
    run = read.run_row(con, run_id)
    ids, text = read.example(con, run, sample_id)
    scores = read.verdicts(con, run_id, sample_id)
    conts = read.continuations(con, run_id, sample_id)
    ids = None if ids is None else [int(i) for i in ids]
    uncut = run["prefix_len"] is None or run["suffix_len"] is None  # a file that stores no cut cannot show one
    if uncut:
        ids = None
    if ids is not None:  # published boards leave out what the verdict implies: a memorized
        # member's greedy continuation is its true suffix, token for token
        suffix = ids[int(run["prefix_len"]) : int(run["prefix_len"]) + int(run["suffix_len"])]
        for role, memorized in zip(scores["role"], scores["memorized"]):
            if memorized and role not in conts:
                conts[role] = suffix
    withheld = "This run stored no prefix or suffix length: its example cannot be cut." if uncut else None
    if text is None and not uncut:
        withheld = read.snapshot_note(con, "withheld", run["dataset"]) or (
            f"The text of this example is not in this database (dataset {run['dataset']}).")
    return Drill(run, sample_id, text, ids, scores, conts, withheld)


def matching(true: Sequence[int], generated: Sequence[int]) -> list[bool]:
    """Per generated token: does it equal the true token at that position."""
    return [i < len(true) and g == true[i] for i, g in enumerate(generated)]


def provenance(con, filters: Filters = NO_FILTERS) -> pd.DataFrame:
    """Per run: what it is and where it came from."""
    rs = read.runs(con, filters)
    cols = ["run_id", "family", "dataset", "method_label", "seed", "teacher_access", "preset", "config_hash",
            "dataset_hash", "harness_version", "git_commit", "finished_at"]
    return rs[cols] if not rs.empty else pd.DataFrame(columns=cols)


def load_pieces(folder: str | Path) -> list[str] | None:
    """Every token id's text, from a saved tokenizer (a checkpoint folder holds one)."""
    try:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(str(folder))
    except (OSError, ValueError):
        return None
    return [tok.decode([i]) for i in range(len(tok))]


def pieces(con, run: dict, loader=None) -> list[str] | None:
    """The run's tokenizer as text pieces: from a snapshot's vocab, else the local checkpoint."""
    stored = read.vocab(con, run["tokenizer_key"])
    if stored:
        return stored
    for path in read.artifact_paths(con, run["run_id"]):
        if Path(path).is_dir():
            return (loader or load_pieces)(path)
    return None
