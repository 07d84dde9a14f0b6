"""`harness leaderboard` as text: each board ranked by the one query (`harness.leaderboard.standings`), the DP-SGD
rows' epsilon sweep and bound check under it, as `publish` and `import` print a board too."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import pandas as pd

from harness.leaderboard import privacy, ranking, standings
from harness.leaderboard.board_specs import REGIME_CHARS
from harness.leaderboard.measures import MEASURES
from harness.measure.dp_bound import AUDIT_FPRS
from harness.measure.stats import MIN_COUNT
from harness.present import formats
from harness.store import read
from harness.store.database import Store
from harness.store.labels import COLUMNS, FIGURES, family_label


@dataclass(frozen=True)
class Board:
    family: str
    dataset: str
    preset: str
    dataset_hash: str
    n_members: int
    rows: list[list[Any]]  # ranked methods, the baseline, then the unranked (their reason last)
    family_args: str | None = None  # pretrained or from-scratch weights are different boards
    ranked: int = 0  # how many rows are ranked (the baseline follows them)
    band: str = ranking.DEFAULT.band
    regime: str | None = None  # where the board's memorization comes from, when it is the repeats alone
    split: str | None = None  # the blind baseline over its runs (`formats.blind`): whether the split shifted
    privacy: str = ""  # the DP-SGD rows' epsilon sweep and bound check (`privacy_text`)
    recipe: int = 0  # how many rows sit in their own section: another recipe or data exposure
    primary: str = ranking.DEFAULT.primary  # the measure ranked by
    separated: str = ""  # "15 of 21": pairs of ranked rows the paired comparison separates
    stated: str = ""  # the regime its published spec states, one line under the title
    named: str = ""  # its published spec's title, above the board's own line

    @property
    def title(self) -> str:
        label = formats.one_line
        return (f"{label(family_label(self.family, self.family_args))} on {label(self.dataset)} (preset "
                f"{label(self.preset)}, {self.n_members} members, dataset {label(self.dataset_hash)})")

    def render(self) -> str:
        """The table, a separator before each section of unranked rows, and what its marks mean."""
        lines = formats.render(board_headers(self.primary), self.rows).splitlines()
        at = 2 + self.ranked + 1  # the header, its rule, the ranked rows and the baseline
        if self.recipe:
            lines.insert(at, f"-- {ranking.RECIPE_SEPARATOR} --")
            at += 1 + self.recipe
        if at < len(lines):
            lines.insert(at, f"-- {ranking.SEPARATOR} ({self.band}) --")
        notes = [f"Ranked: methods with {self.band}, by {MEASURES[self.primary]}, the rows compared "
                 "paired over the members and seeds they share; rank N: N - 1 rows leak less, separated at 95%; "
                 "=N: another row cannot be separated from it; 95% rank: its rank interval."
                 + (f" Pairs of ranked rows separated: {self.separated}." if self.separated else ""),
                 (f"{COLUMNS['mem_rate_student'][0].capitalize()} (exact match) pools the seeds' counts; its interval "
                  f"counts a member the seeds share as one cluster and carries the seeds' variance; n/a: fewer than "
                  f"{MIN_COUNT} memorized members to rest on."),
                 "Exact figures are one machine's: compare a rerun with the interval, not the digits."]
        if self.regime:
            notes.append(f"Note: {self.regime}.")
        if self.split:
            notes.append(f"{'' if self.split.startswith('SHIFT') else 'Split: '}{self.split}.")
        head = [*([formats.one_line(self.named, REGIME_CHARS)] if self.named else []), self.title,
                *([f"Regime: {formats.one_line(self.stated, REGIME_CHARS)}"] if self.stated else [])]
        return "\n".join([*head, *lines, *notes, *([self.privacy] if self.privacy else [])])


def leaderboard(store: Store, family: str | None = None, dataset: str | None = None,
                rules: ranking.Ranking = ranking.DEFAULT) -> list[Board]:
    """Methods ranked per board: `harness.leaderboard.standings.board`, the app's own ranking, printed as tables.

    Where one seed was run twice, its latest run counts; `rules` are a published board's own.
    """
    filters = read.Filters(family=[family] if family else None, dataset=[dataset] if dataset else None)
    with store.reading() as con:
        table = standings.board(con, filters, rules=lambda keys: rules)
        ids = [[i for ids in group["run_id"] for i in standings.run_ids(ids)] for _, group in standings.boards(table)]
        notes = [standings.regime(con, run_ids) for run_ids in ids]
        splits = [formats.blind(read.blind_figures(con, run_ids)) for run_ids in ids]
        private = [privacy.private(group) for _, group in standings.boards(table)]
        dp = [privacy_text(rows, privacy.checks(con, rows)) for rows in private]
    out = []
    for keys, group in standings.boards(table):
        primary = ranking.measure_of(group, rules)
        rows = []
        for r in group.to_dict("records"):
            name = formats.one_line(r["method"])  # the baseline's is ranking.BASELINE_LABEL; a file's, escaped
            rank = "-" if r["reference"] else (r["rank"] or "-")
            seeds = "-" if r["reference"] else r["seeds"]
            figures = [measure(r, primary)]
            for key in FIGURES:
                if key == primary:
                    continue
                figures.append(memorization(r) if key == "mem_rate_student" else
                               {"reduction": "1.00x", "inheritance_rate": "-"}.get(key, _cell(key, r.get(key)))
                               if r["reference"] else _cell(key, r.get(key)))
            rows.append([rank, rank_interval(r), name, formats.one_line(r["teacher_access"]), seeds, *figures,
                         epsilon(r), r["why"] or ""])
        separated = next((v for v in group.get("separated", []) if isinstance(v, str)), "")
        out.append(Board(keys["family"], keys["dataset"], keys["preset"], keys["dataset_hash"],
                         int(group["n_members"].iloc[0]), rows, keys["family_args"],
                         ranked=int(group["ranked"].sum()), band=rules.band, regime=notes[len(out)], split=splits[len(out)],
                         privacy=dp[len(out)], recipe=int((group["section"] == "recipe").sum()), primary=primary,
                         separated=separated))
    return out


def board_headers(primary: str) -> list[str]:
    """The measure ranked by, then FIGURES (exact match once, with its interval)."""
    figures = [f"{label} [95%]" if key == "mem_rate_student" else label for key, label in FIGURES.items()
               if key != primary]
    return ["rank", "95% rank", "method", COLUMNS["teacher_access"][0], COLUMNS["seeds"][0],
            f"{COLUMNS[primary][0]} [95%]", *figures, COLUMNS["dp_epsilon"][0], "not ranked because"]


def rank_interval(r: dict) -> str:
    """A ranked row's 95% rank interval, "2-5" ("3" where it is one place); "-" for the others."""
    lo, hi = r.get("rank_lo"), r.get("rank_hi")
    if not r.get("ranked") or lo is None or pd.isna(lo):
        return "-"
    return f"{int(lo)}" if lo == hi else f"{int(lo)}-{int(hi)}"


def measure(r: dict, key: str) -> str:
    """A row's figure on a leakage measure with its 95% interval, by the measure's kind."""
    kind = COLUMNS[key][1]
    fmt = formats.fine_pct if kind == "share" else formats.pct if kind == "rate" else formats.num
    return formats.with_interval(r.get(key), r.get(f"{key}_lo"), r.get(f"{key}_hi"), fmt)


def epsilon(r: dict) -> str:
    """A DP-SGD student's epsilon spent ("inf": no noise, clipping only); "-" for a non-private method."""
    noise = r.get("dp_noise_multiplier")
    if noise is None or noise != noise:
        return "-"
    return "inf" if noise == 0 else formats.num(r.get("dp_epsilon"), 2)


def memorization(r: dict) -> str:
    """The student's memorization with its 95% interval: what a rerun is compared against."""
    return formats.with_interval(r["mem_rate_student"], r["mem_rate_student_lo"], r["mem_rate_student_hi"])


def _cell(key: str, value: Any) -> str:
    return formats.figure(value, COLUMNS[key][1])


def privacy_text(rows: pd.DataFrame, found: pd.DataFrame) -> str:
    """The DP-SGD rows' epsilon sweep and their bound check (`harness.leaderboard.privacy`), under the board."""
    if rows.empty:
        return ""
    low = privacy.at_fpr(found)
    sweep = [[formats.one_line(r["method"]), privacy.epsilon_label(r["epsilon"]), f"{r['seeds']}",
              formats.with_interval(r["mem_rate_student"], r["mem_rate_student_lo"], r["mem_rate_student_hi"]),
              formats.num(r.get("best_attack_auc"), 3),
              formats.pct(low.loc[r["method"], "tpr"]) if r["method"] in low.index else "n/a",
              formats.num(r["val_ppl_student"]), "ranked" if r["ranked"] else "not ranked"]
             for r in rows.to_dict("records")]
    lines = ["", "DP-SGD students by epsilon (inf: clipping, no noise):",
             formats.render(["method", "epsilon", "seeds", "student memorization [95%]", "best attack AUC",
                             "loss attack TPR at 1% FPR (seeds pooled)", "validation perplexity", "board"], sweep)]
    if not found.empty:
        lines += ["", BOUND_TITLE, formats.render(BOUND_HEADERS, bound_rows(found)), BOUND_NOTE]
        broken = found[found["verdict"] == "violated"]
        if not broken.empty:
            lines.append("VIOLATED: " + "; ".join(f"{formats.one_line(c['method'])} at {c['fpr']:.0%} FPR"
                                                  for c in broken.to_dict("records")))
    return "\n".join(lines)


BOUND_TITLE = "The loss attack against the bound (epsilon, delta) implies (Kairouz et al., 2015), seeds pooled:"
BOUND_HEADERS = ["method", "epsilon", "FPR (95% upper)", "TPR [95%]", "bound", "verdict", "epsilon shown",
                 f"shown at any FPR in {', '.join(f'{a:.0%}' for a in AUDIT_FPRS)}"]
BOUND_NOTE = ("the FPR's upper end: each seed's threshold rests on a few of its non-members, so the population FPR "
              "may be up to it (Clopper-Pearson), and the bound is taken there. epsilon shown: the smallest epsilon "
              "the TPR interval's lower end allows at that FPR; far below the spent epsilon, the bound is loose.")


def bound_rows(found: pd.DataFrame) -> list[list[str]]:
    """The bound check at the lowest FPR the non-members resolve, a row per DP method: the CLI and the app."""
    lowest = privacy.at_fpr(found, found["fpr"].min()).reset_index()
    return [[formats.one_line(c["method"]), privacy.epsilon_label(c["epsilon"]), f"{c['fpr']:.0%} (<= {c['fpr_hi']:.2%})",
             formats.with_interval(c["tpr"], c["tpr_lo"], c["tpr_hi"]),
             formats.pct(c["bound"]), c["verdict"], formats.num(c["shown"], 2),
             formats.num(max_shown(found, c["method"]), 2)]
            for c in lowest.to_dict("records")]


def max_shown(found: pd.DataFrame, method: str) -> float:
    return float(found.loc[found["method"] == method, "shown"].max())


def leaderboard_text(store: Store, family: str | None = None, dataset: str | None = None,
                     rules: ranking.Ranking = ranking.DEFAULT, regime: str = "", named: str = "") -> str:
    """What `harness leaderboard` prints: every board that matches, ranked, or how to get one; a published
    snapshot's boards under its spec's title, with the regime its spec states."""
    boards = [replace(b, stated=regime, named=named) for b in leaderboard(store, family, dataset, rules)]
    if not boards:
        return "No finished runs match. Run `harness eval --method hard-kd` first."
    return "\n".join(f"{board.render()}\n" for board in boards)


def published(spec, path, where: str) -> str:
    """What `harness leaderboard publish` prints: the snapshot written, then the board as its readers see it."""
    return _with_ranking(spec, f"board {spec.name}: snapshot written to {path} ({path.stat().st_size / 1e6:.2f} MB); "
                               f"leaderboards: {where}")


def imported(spec, bundle, ids: list[str], where: str) -> str:
    """What `harness leaderboard import` prints: the runs added, then the board as its readers see it."""
    return _with_ranking(spec, f"board {spec.name}: added {len(ids)} run(s) from {bundle} to {spec.snapshot}: "
                               f"{', '.join(ids)}; commit {spec.snapshot.name} in the pull request that adds the "
                               f"bundle (leaderboards: {where})")


def _with_ranking(spec, line: str) -> str:
    """A published board as its readers will see it ranked, after `line`: its own band and order."""
    boards = leaderboard(Store(spec.snapshot), rules=spec.ranking)
    return "\n".join([line, *(f"\n{replace(board, stated=spec.regime, named=spec.title).render()}" for board in boards)])
