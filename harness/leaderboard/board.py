"""The leaderboard's data layer: read-only queries the Streamlit app, `harness leaderboard publish`
and `harness export` share, so all of it is testable without Streamlit.

Every filter is a query parameter, never SQL text. Figures the schema does not hold yet
(membership-attack AUCs from a later issue) are looked for and left out when absent.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from harness.contract.specs import ROLE_ORDER_SQL, ROLES
from harness.leaderboard.ranking import BASELINE_LABEL, DEFAULT, Ranking, rank
from harness.measure.stats import MIN_FALSE_POSITIVES, enough, interval, rate_ratio, stored_count, wilson
from harness.store import read
from harness.store.labels import COLUMNS, FIGURES, family_label  # noqa: F401  (the app reads them here)
from harness.store.migrations import SCHEMA_VERSION

# The app waits less for a writer's lock than a run does: a page that hangs is worse than a message.
LOCK_WAIT_SECONDS = 10.0

RATES = {"mem_rate_student", "inheritance_rate", "easy_share", "mem_rate_teacher", "mem_rate_baseline"}


class BoardError(Exception):
    """Something the app shows as a friendly message: no database, an older schema, no runs."""


@dataclass(frozen=True)
class Filters:
    family: Sequence[str] | None = None
    dataset: Sequence[str] | None = None
    method: Sequence[str] | None = None
    size: Sequence[str] | None = None
    access: Sequence[str] | None = None
    search: str | None = None

    def params(self) -> list:
        def listed(v):
            return None if not v else list(v)
        return [listed(self.family), listed(self.family), listed(self.dataset), listed(self.dataset),
                listed(self.method), listed(self.method), listed(self.access), listed(self.access),
                self.search or None, self.search or "", listed(self.size), listed(self.size)]


# ------------------------------------------------------------ opening


@contextmanager
def connect(path: str | Path):
    """`read.connect`, read-only so the app can run beside a harness that is writing; a file it
    cannot show is a BoardError in the app's words."""
    path = Path(path)
    with ExitStack() as stack:
        try:
            con = stack.enter_context(read.connect(path, LOCK_WAIT_SECONDS, empty=False))
        except read.Refused as err:
            raise BoardError(said(err)) from None
        yield con


def said(err: read.Refused) -> str:
    """What the app says about a file `read` refused."""
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


def tables(con) -> dict[str, set[str]]:
    return read.tables(con)


def schema_problem(con) -> str | None:
    """Why this database cannot be shown, in a sentence; None when it can. `connect` has refused
    what it cannot show already: this is the same check (`read.check`) on a connection in hand."""
    try:
        read.check(con)
    except read.Refused as err:
        return said(err)
    return None


def frame(con, sql: str, params: Sequence = ()) -> pd.DataFrame:
    return con.execute(sql, list(params)).df()


# ------------------------------------------------------------ runs


# What makes runs one board, for the app, `harness leaderboard`, publish and export alike: the family
# with its arguments (pretrained and from-scratch weights are different boards), the dataset and its
# content, the preset, and --limit.
BOARD_KEYS = ["family", "family_args", "dataset", "preset", "dataset_hash", "example_limit"]
# A family run with its defaults stores '{}'; runs from before family arguments existed, NULL: one board.
FAMILY_ARGS_SQL = "coalesce(CAST(r.family_args AS VARCHAR), '{}')"

# Finished runs passing the filters; where one seed of a method ran twice on a board, its latest run.
LATEST_RUNS = f"""
    SELECT r.* REPLACE ({FAMILY_ARGS_SQL} AS family_args), mo.size AS student_size, mo.n_params AS student_params
    FROM runs r LEFT JOIN models mo ON mo.run_id = r.run_id AND mo.role = 'student'
    WHERE r.status = 'finished'
      AND (? IS NULL OR list_contains(?, r.family)) AND (? IS NULL OR list_contains(?, r.dataset))
      AND (? IS NULL OR list_contains(?, r.method_label)) AND (? IS NULL OR list_contains(?, r.teacher_access))
      AND (? IS NULL OR contains(lower(r.method_label || ' ' || r.method || ' ' || r.teacher_access), lower(?)))
      AND (? IS NULL OR list_contains(?, mo.size))
    QUALIFY row_number() OVER (PARTITION BY r.family, {FAMILY_ARGS_SQL}, r.dataset, r.dataset_hash, r.preset,
                               r.example_limit, r.method_label, r.seed ORDER BY r.finished_at DESC) = 1
"""


def runs(con, filters: Filters = Filters()) -> pd.DataFrame:
    """Finished runs passing the filters; where one seed ran twice, its latest run."""
    return frame(con, LATEST_RUNS + " ORDER BY family, dataset, method_label, seed", filters.params())


def failed_runs(con) -> pd.DataFrame:
    return frame(con, "SELECT run_id, family, dataset, method_label, seed, status, error, started_at FROM runs "
                      "WHERE status <> 'finished' ORDER BY started_at DESC")


def choices(con) -> dict[str, list[str]]:
    """The values each filter can take, from the finished runs."""
    def distinct(sql):
        return [r[0] for r in con.execute(sql).fetchall() if r[0] is not None]
    return {
        "family": distinct("SELECT DISTINCT family FROM runs WHERE status = 'finished' ORDER BY 1"),
        "dataset": distinct("SELECT DISTINCT dataset FROM runs WHERE status = 'finished' ORDER BY 1"),
        "method": distinct("SELECT DISTINCT method_label FROM runs WHERE status = 'finished' ORDER BY 1"),
        "access": distinct("SELECT DISTINCT teacher_access FROM runs WHERE status = 'finished' ORDER BY 1"),
        "size": distinct("SELECT DISTINCT mo.size FROM models mo JOIN runs r USING (run_id) "
                         "WHERE r.status = 'finished' AND mo.role = 'student' ORDER BY 1"),
    }


def run_metrics(con, run_ids: Sequence[str]) -> pd.DataFrame:
    """One row per run, one column per figure."""
    long = frame(con, "SELECT run_id, name, value FROM metrics WHERE list_contains(?, run_id)", [list(run_ids)])
    if long.empty:
        return pd.DataFrame({"run_id": list(run_ids)})
    return long.pivot_table(index="run_id", columns="name", values="value", aggfunc="first").reset_index()


def attack_auc_names(con, role: str = "student") -> list[str]:
    """A role's membership-attack AUCs (`auc_<attack>_<role>` in metrics), once attacks wrote them."""
    return [r[0] for r in con.execute("SELECT DISTINCT name FROM metrics WHERE name LIKE 'auc\\_%\\_' || ? "
                                      "ESCAPE '\\' ORDER BY 1", [role]).fetchall()]


def best_attack(g: pd.DataFrame, aucs: list[str], role: str) -> dict:
    """The strongest attack on a role (highest mean AUC over seeds), its AUC and its TPR at 1% FPR.

    The TPR is n/a where the non-members allow fewer than MIN_FALSE_POSITIVES false positives at 1%
    (runs stored before that rule carry a figure resting on five non-members of 512)."""
    means = {c: v for c, v in g[aucs].mean().items() if not math.isnan(v)}
    if not means:
        return {"best_attack_auc": math.nan, "best_attack": None, "best_attack_tpr": math.nan}
    col = max(means, key=means.get)
    name = col[len("auc_"):-len(f"_{role}")]
    tpr = f"tpr_1_{name}_{role}"
    resolved = "n_nonmembers" in g and g["n_nonmembers"].min() * 0.01 >= MIN_FALSE_POSITIVES
    return {"best_attack_auc": means[col], "best_attack": name,
            "best_attack_tpr": float(g[tpr].mean()) if tpr in g and resolved else math.nan}


def _count(run: dict, name: str) -> float:
    """One run's count (`stats.stored_count`); 0 where none is stored or recoverable: a run stored
    before the counts were has no easy share when its student memorized nothing."""
    v = stored_count(run, name)
    return 0.0 if math.isnan(v) else v


def pooled(g: pd.DataFrame, student: str = "student") -> dict:
    """Rates and ratios from counts pooled over seeds, with Wilson and log-scale intervals: a seed that
    memorized nothing counts, and no ratio rests on fewer than MIN_COUNT memorized members."""
    records = g.to_dict("records")

    def total(name: str) -> float:
        return sum(_count(r, name) for r in records)

    n = float(g["n_members"].sum())
    k = {r: total(f"memorized_{r}") for r in ROLES}
    out: dict = {"memorized": k[student], "members_pooled": n}
    for r in ROLES:
        out[f"mem_rate_{r}"], out[f"mem_rate_{r}_lo"], out[f"mem_rate_{r}_hi"] = wilson(k[r], n)
    if student != "student":
        return out
    out["reduction"], out["reduction_lo"], out["reduction_hi"] = rate_ratio(k["baseline"], n, k["student"], n)
    exclusive = total("teacher_exclusive")
    for name, num, den in (("inheritance_rate", total("inherited"), exclusive),
                           ("easy_share", total("easy"), k["student"])):
        out[name], out[f"{name}_lo"], out[f"{name}_hi"] = wilson(num, den) if enough(den) else (math.nan,) * 3
    out["teacher_exclusive"] = exclusive
    return out


# ------------------------------------------------------------ the board


def board(con, filters: Filters = Filters(), rules: Callable[[dict], Ranking] | None = None) -> pd.DataFrame:
    """Methods as rows per board (BOARD_KEYS), a baseline row each, ranked by `ranking.rank`.

    The one ranking: `harness leaderboard`, the app, publish and export all read it. Boards in
    order of their keys; within one, the ranked methods, the baseline, then the methods outside
    the utility band. Rates and ratios come from counts pooled over the seeds (`pooled`);
    perplexities and attack AUCs are means with a t-interval over seeds. `rules(keys)` gives a
    board's ranking rules (a published board's spec); by default the band is 10% of the
    baseline's perplexity.
    """
    rs = runs(con, filters)
    if rs.empty:
        return pd.DataFrame()
    metrics = run_metrics(con, rs["run_id"].tolist())
    rs = rs.merge(metrics, on="run_id", how="left")
    aucs = [c for c in attack_auc_names(con) if c in rs.columns]
    out = []
    for keys, group in rs.groupby(BOARD_KEYS, dropna=False, sort=True):
        rows = []
        for label, g in group.groupby("method_label", sort=False):
            row = dict(zip(BOARD_KEYS, keys))
            row.update(method=label, reference=False, teacher_access=g["teacher_access"].iloc[0],
                       student_size=g["student_size"].iloc[0], student_params=g["student_params"].iloc[0],
                       seeds=len(g), seed_list=", ".join(str(s) for s in sorted(g["seed"])),
                       n_members=int(g["n_members"].iloc[0]))
            for name in ("val_ppl_student", "val_ppl_baseline", "val_ppl_teacher", "val_ppl_start_student",
                         "train_loss_first_student", "train_loss_last_student", "dp_epsilon", "dp_noise_multiplier"):
                mean, lo, hi = interval(g[name].tolist() if name in g else [])
                row[name], row[f"{name}_lo"], row[f"{name}_hi"] = mean, lo, hi
            row.update(pooled(g))
            if aucs:
                row.update(best_attack(g, aucs, "student"))
            for col in ("run_id", "config_hash", "harness_version", "git_commit"):
                row[col] = ", ".join(sorted({str(v) for v in g[col]}))
            rows.append(row)
        base = dict(zip(BOARD_KEYS, keys))
        seeds = group.drop_duplicates("seed")
        base.update(method=BASELINE_LABEL, reference=True, teacher_access="none",
                    student_size=group["student_size"].iloc[0], student_params=group["student_params"].iloc[0],
                    seeds=len(seeds), seed_list=", ".join(str(s) for s in sorted(seeds["seed"])),
                    n_members=int(group["n_members"].iloc[0]), run_id="", config_hash="",
                    harness_version=", ".join(sorted({str(v) for v in group["harness_version"]})),
                    git_commit=", ".join(sorted({str(v) for v in group["git_commit"]})))  # None outside a checkout
        mean, lo, hi = interval(seeds["val_ppl_baseline"].tolist() if "val_ppl_baseline" in seeds else [])
        base["val_ppl_student"], base["val_ppl_student_lo"], base["val_ppl_student_hi"] = mean, lo, hi
        base.update(pooled(seeds, student="baseline"))
        for end in ("", "_lo", "_hi"):  # the baseline's own memorization, in the student's column
            base[f"mem_rate_student{end}"] = base[f"mem_rate_baseline{end}"]
        base["reduction"] = 1.0
        base_aucs = [c for c in attack_auc_names(con, "baseline") if c in seeds]
        if base_aucs:
            base.update(best_attack(seeds, base_aucs, "baseline"))
        rows.append(base)
        out.append(rank(pd.DataFrame(rows), rules(dict(zip(BOARD_KEYS, keys))) if rules else DEFAULT))
    return pd.concat(out, ignore_index=True)


def run_ids(cell: str) -> list[str]:
    """A board row's runs: its `run_id` cell holds them comma-joined (the baseline's is empty)."""
    return [i for i in str(cell).split(", ") if i]


def boards(table: pd.DataFrame) -> list[tuple[dict, pd.DataFrame]]:
    """`board()`'s rows split into its boards, in order: (the board's keys, its rows, ranked)."""
    if table.empty:
        return []
    return [(dict(zip(BOARD_KEYS, keys)), group)
            for keys, group in table.groupby(BOARD_KEYS, dropna=False, sort=False)]


def of_board(frame: pd.DataFrame, keys: dict) -> pd.DataFrame:
    """The rows of `frame` (runs, role rates) that belong to the board with these keys."""
    if frame.empty:
        return frame
    mask = pd.Series(True, index=frame.index)
    for k in BOARD_KEYS:
        mask &= frame[k].isna() if pd.isna(keys[k]) else frame[k] == keys[k]
    return frame[mask]


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
    best: dict | None  # the board's rank 1, or None
    baseline: dict
    why: str  # how it was chosen, or why no method was


def headline(group: pd.DataFrame, rules: Ranking = DEFAULT) -> Headline:
    """"Leaks least": the board's rank 1 (`ranking.rank`), a method inside the utility band."""
    group = group.reset_index(drop=True)
    base = group[group["reference"]].iloc[0].to_dict()
    ranked = (group if "ranked" in group else rank(group, rules)).query("ranked")
    if ranked.empty:
        return Headline(None, base, f"no method has {rules.band}: none is ranked")
    best = ranked.iloc[0].to_dict()
    tied = ranked.loc[ranked["rank"] == best["rank"], "method"].tolist() if best["rank"].startswith("=") else []
    why = f"rank 1 among the methods with {rules.band}, by student memorization, then the strongest attack"
    if len(tied) > 1:
        why += f"; its 95% interval overlaps that of {', '.join(tied[1:])}, which share the rank"
    return Headline(best, base, why)


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
    row = con.execute("""
        SELECT count(*) FILTER (WHERE repeats = 1), count(*) FILTER (WHERE repeats = 1 AND memorized),
               count(*) FILTER (WHERE repeats > 1), count(*) FILTER (WHERE repeats > 1 AND memorized)
        FROM (SELECT DISTINCT r.seed, s.sample_id, s.repeats, s.memorized FROM samples s JOIN runs r USING (run_id)
              WHERE list_contains(?, s.run_id) AND s.role = 'baseline' AND s.split = 'member')""",
                      [list(run_ids)]).fetchone()
    once, once_mem, repeated, repeated_mem = row
    if not repeated or enough(once_mem) or not enough(repeated_mem):
        return None
    return (f"memorization here comes from repeated members: the baseline memorized {repeated_mem} of {repeated} "
            f"repeated members and {once_mem} of {once} seen once (pooled over seeds), where the studies' "
            "models memorize documents seen once; docs/protocol.md says what that does to each finding")


# ------------------------------------------------------------ charts' data


def role_rates(con, filters: Filters = Filters()) -> pd.DataFrame:
    """Memorization rate of teacher, baseline and student per method, from counts pooled over seeds."""
    rs = runs(con, filters)
    if rs.empty:
        return pd.DataFrame()
    m = run_metrics(con, rs["run_id"].tolist())
    rs = rs.merge(m, on="run_id", how="left")
    rows = []
    for (*keys, label), g in rs.groupby([*BOARD_KEYS, "method_label"], dropna=False):
        p = pooled(g)  # the board's own figures: pooled counts, Wilson intervals that never leave [0, 1]
        for role in ROLES:
            rows.append(dict(zip(BOARD_KEYS, keys), method=label, role=role, rate=p[f"mem_rate_{role}"],
                             lo=p[f"mem_rate_{role}_lo"], hi=p[f"mem_rate_{role}_hi"], seeds=len(g)))
    return pd.DataFrame(rows)


def overlap(con, run_id: str) -> pd.DataFrame:
    """Members by which roles memorized them (UpSet-style): one row per non-empty combination."""
    df = frame(con, f"""
        SELECT combo, count(*) AS members FROM (
            SELECT sample_id, string_agg(role, ' + ' ORDER BY {ROLE_ORDER_SQL})
                   FILTER (WHERE memorized) AS combo
            FROM samples WHERE run_id = ? AND split = 'member' GROUP BY sample_id)
        WHERE combo IS NOT NULL GROUP BY combo ORDER BY members DESC""", [run_id])
    return df


def k_extractability(con, run_ids: Sequence[str]) -> pd.DataFrame:
    """Share of members whose greedy continuation matches at least k suffix tokens, per k and role."""
    return frame(con, """
        WITH ks AS (SELECT r.run_id, r.method_label, unnest(range(1, r.suffix_len + 1)) AS k
                    FROM runs r WHERE list_contains(?, r.run_id))
        SELECT ks.method_label AS method, s.role, ks.k, avg((s.match_len >= ks.k)::INTEGER) AS share
        FROM ks JOIN samples s ON s.run_id = ks.run_id AND s.split = 'member'
        GROUP BY ks.method_label, s.role, ks.k ORDER BY method, role, k""", [list(run_ids)])


def zlib_entropy(text: str | None) -> float:
    """Bits of the zlib-compressed text: how compressible (repetitive, boilerplate) an example is."""
    return math.nan if text is None else 8.0 * len(zlib.compress(text.encode("utf-8")))


def logprob_vs_zlib(con, run_id: str) -> pd.DataFrame:
    """Per member and role: total log-probability against zlib entropy (text withheld: empty)."""
    df = frame(con, """
        SELECT s.sample_id, s.role, s.memorized, s.repeats, -s.loss * (len(e.token_ids) - 1) AS log_prob, e.text
        FROM samples s JOIN runs r USING (run_id)
        JOIN examples e ON e.dataset_hash = r.dataset_hash AND e.tokenizer_key = r.tokenizer_key
                       AND e.sample_id = s.sample_id
        WHERE s.run_id = ? AND s.split = 'member' AND e.text IS NOT NULL""", [run_id])
    df["zlib_bits"] = df["text"].map(zlib_entropy)
    return df.drop(columns="text")


def stored_attacks(con, run_id: str) -> list[str]:
    """The attacks whose ROC curves the run stored (empty for runs from before attacks existed)."""
    if "curves" not in tables(con):
        return []
    return [r[0] for r in con.execute("SELECT DISTINCT substr(curve, 5) FROM curves WHERE run_id = ? "
                                      "AND starts_with(curve, 'roc:') ORDER BY 1", [run_id]).fetchall()]


def attack_roc(con, run_id: str, attack: str) -> pd.DataFrame:
    """A stored attack's ROC per role, with the run's AUC for it."""
    df = frame(con, "SELECT c.role, c.x AS fpr, c.y AS tpr, m.value AS auc FROM curves c LEFT JOIN metrics m "
                    "ON m.run_id = c.run_id AND m.name = 'auc_' || ? || '_' || c.role "
                    "WHERE c.run_id = ? AND c.curve = 'roc:' || ? ORDER BY c.role, c.i", [attack, run_id, attack])
    return df


def loss_attack_roc(con, run_id: str) -> pd.DataFrame:
    """ROC of the loss attack (members have lower loss) per role, from the stored per-example losses."""
    from sklearn.metrics import roc_auc_score, roc_curve

    df = frame(con, "SELECT role, split, loss FROM samples WHERE run_id = ? AND loss IS NOT NULL", [run_id])
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


def examples_of(con, run_id: str, memorized_by: str | None = None, limit: int = 500) -> pd.DataFrame:
    """A run's members with each role's verdict, most-memorized first, for the drill-down picker."""
    return frame(con, """
        SELECT sample_id, any_value(repeats) AS repeats,
               bool_or(memorized) FILTER (WHERE role = 'teacher') AS teacher,
               bool_or(memorized) FILTER (WHERE role = 'baseline') AS baseline,
               bool_or(memorized) FILTER (WHERE role = 'student') AS student,
               max(match_len) FILTER (WHERE role = 'student') AS student_match
        FROM samples WHERE run_id = ? AND split = 'member' GROUP BY sample_id
        HAVING ? IS NULL OR bool_or(memorized AND role = ?)
        ORDER BY student DESC, student_match DESC, sample_id LIMIT ?""", [run_id, memorized_by, memorized_by, limit])


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
    run = frame(con, "SELECT * FROM runs WHERE run_id = ?", [run_id]).iloc[0].to_dict()
    ex = con.execute("SELECT token_ids, text FROM examples WHERE dataset_hash = ? AND tokenizer_key = ? "
                     "AND sample_id = ?", [run["dataset_hash"], run["tokenizer_key"], sample_id]).fetchone()
    scores = frame(con, "SELECT * EXCLUDE (run_id, sample_id) FROM samples WHERE run_id = ? AND sample_id = ? "
                        f"ORDER BY {ROLE_ORDER_SQL}", [run_id, sample_id])
    conts = {}
    if "continuations" in tables(con):
        for role, ids in con.execute("SELECT role, token_ids FROM continuations WHERE run_id = ? AND sample_id = ?",
                                     [run_id, sample_id]).fetchall():
            conts[role] = list(ids)
        for role in set(ROLES) - set(conts):  # a checkpoint other runs share
            row = con.execute("SELECT c.token_ids FROM continuations c JOIN models m USING (run_id, role) "
                              "WHERE c.role = ? AND c.sample_id = ? AND m.artifact_key = (SELECT artifact_key "
                              "FROM models WHERE run_id = ? AND role = ?) LIMIT 1",
                              [role, sample_id, run_id, role]).fetchone()
            if row is not None:
                conts[role] = list(row[0])
    ids, text = ex if ex else (None, None)
    ids = None if ids is None else [int(i) for i in ids]
    if ids is not None:  # published boards leave out what the verdict implies: a memorized
        # member's greedy continuation is its true suffix, token for token
        suffix = ids[int(run["prefix_len"]) : int(run["prefix_len"]) + int(run["suffix_len"])]
        for role, memorized in zip(scores["role"], scores["memorized"]):
            if memorized and role not in conts:
                conts[role] = suffix
    withheld = None
    if text is None:
        withheld = snapshot_note(con, "withheld", run["dataset"]) or (
            f"The text of this example is not in this database (dataset {run['dataset']}).")
    return Drill(run, sample_id, text, ids, scores, conts, withheld)


def attack_scores(con, run_id: str, sample_id: str) -> pd.DataFrame:
    """Each attack's score of one example, a row per role and a column per attack (empty if none stored)."""
    if "scores" not in tables(con):
        return pd.DataFrame()
    df = frame(con, "SELECT role, attack, score FROM scores WHERE run_id = ? AND sample_id = ?", [run_id, sample_id])
    if df.empty:
        return df
    return df.pivot_table(index="role", columns="attack", values="score", aggfunc="first").reset_index()


def matching(true: Sequence[int], generated: Sequence[int]) -> list[bool]:
    """Per generated token: does it equal the true token at that position."""
    return [i < len(true) and g == true[i] for i, g in enumerate(generated)]


def snapshot_note(con, kind: str, subject: str) -> str | None:
    """A published snapshot's notes (why a dataset's text was withheld, when it was published)."""
    if "snapshot_notes" not in tables(con):
        return None
    row = con.execute("SELECT note FROM snapshot_notes WHERE kind = ? AND subject = ?", [kind, subject]).fetchone()
    return row[0] if row else None


def provenance(con, filters: Filters = Filters()) -> pd.DataFrame:
    """Per run: what it is and where it came from."""
    rs = runs(con, filters)
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
    if "vocab" in tables(con):
        rows = con.execute("SELECT token_id, piece FROM vocab WHERE tokenizer_key = ? ORDER BY token_id",
                           [run["tokenizer_key"]]).fetchall()
        if rows:
            out = [""] * (rows[-1][0] + 1)
            for i, p in rows:
                out[i] = p
            return out
    paths = [r[0] for r in con.execute("SELECT artifact_path FROM models WHERE run_id = ? AND artifact_path IS NOT NULL",
                                       [run["run_id"]]).fetchall()]
    for path in paths:
        if Path(path).is_dir():
            return (loader or load_pieces)(path)
    return None


def reproduction(con) -> tuple[dict, pd.DataFrame] | None:
    """The latest `harness reproduce` stored in this database: where it ran, and a row per finding.

    A file of schema version 5 has no verdict columns: they read as NULL (a row without a verdict)."""
    found = tables(con).get("reproductions")
    if found is None:
        return None
    latest = con.execute("SELECT reproduction_id, family, dataset, preset, created_at FROM reproductions "
                         "ORDER BY created_at DESC, reproduction_id DESC LIMIT 1").fetchone()
    if latest is None:
        return None
    meta = dict(zip(("reproduction_id", "family", "dataset", "preset", "created_at"), latest))
    columns = ["finding", "claim", "published", "source", "unit", "n", "mean", "lo", "hi", "holds",
               "verdict", "requested", "figure", "magnitude", "caveat"]
    select = ", ".join(c if c in found else f"NULL AS {c}" for c in columns)
    rows = con.execute(f"SELECT {select} FROM reproductions WHERE reproduction_id = ? ORDER BY rowid",
                       [meta["reproduction_id"]]).df()
    return meta, rows
