"""The leaderboard: which distillation method leaks least for what utility, down to the examples.

`harness app --db FILE` (or `streamlit run harness/present/app.py -- --db FILE`). Without --db it reads
the results file ($HARNESS_DB or results/harness.duckdb), and falls back to the published
snapshots in leaderboards/ when there are no local results. It reads through harness.store.read (the
queries) and harness.leaderboard.standings (the boards). Shipped in the package, so an installed harness serves it.
"""

from __future__ import annotations

import argparse
import html
import os
import re
import sys
from pathlib import Path
from urllib.parse import quote

import pandas as pd
import streamlit as st

from harness.contract.specs import ROLES
from harness.errors import UsageError
from harness.leaderboard import standings
from harness.leaderboard.board_specs import BoardSpec, find_boards, spec_of
from harness.leaderboard.measures import MEASURES
from harness.leaderboard.ranking import (
    DEFAULT as DEFAULT_RANKING,
    RECIPE_SEPARATOR as RECIPE_SEPARATOR_TEXT,
    SEPARATOR as SEPARATOR_TEXT,
    Ranking,
    measure_of,
)
from harness.measure.stats import MIN_COUNT
from harness.present import board_report, formats, reproduce_report
from harness.present.charts import (
    chart_k,
    chart_overlap,
    chart_plane,
    chart_privacy,
    chart_roc,
    chart_roles,
    chart_zlib,
)
from harness.present.serve import loopback
from harness.store import connection, labels, read
from harness.store.database import default_path

COLUMNS = labels.COLUMNS  # key -> (label, kind), shared with `harness leaderboard`
# The app waits less for a writer's lock than a run does: a page that hangs is worse than a message.
LOCK_WAIT_SECONDS = 10.0
# Utility right after memorization: a method that leaks least by not learning shows it at a glance.
# Every row is a mean over its seeds (the caption says so; a reader can add the seeds column).
DEFAULT_COLUMNS = ["extractable_rate_student", "mem_rate_student", "val_ppl_student", "once_attack_tpr",
                   "reduction", "inheritance_rate", "best_attack_auc", "teacher_access"]
PROVENANCE = ["config_hash", "dataset_hash", "seed_list", "harness_version", "git_commit"]


def db_arg() -> str | None:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--db")
    known, _ = parser.parse_known_args(sys.argv[1:])
    return known.db


def sources() -> dict[str, Path]:
    """Label -> database: the local results (if any) and every published snapshot."""
    out: dict[str, Path] = {}
    given = db_arg()
    if given:
        out[f"results: {given}"] = Path(given)
        return out
    local = default_path()
    if local.is_file():
        out[f"local results ({local})"] = local
    try:
        folder, _ = find_boards()  # the project's leaderboards/, found like registry.toml
    except UsageError as err:
        st.sidebar.warning(plain(err))
        folder = None
    for snap in sorted(folder.glob("*.duckdb")) if folder else ():
        out[f"published board: {snap.stem}"] = snap
    if not out:
        out[f"local results ({local})"] = local
    return out


SEPARATOR = "── not ranked ──"  # the reasons follow the table: SEPARATOR_TEXT and each method's
RECIPE_SEPARATOR = "── another recipe ──"  # rows whose student trained on another recipe or exposure


def display(board: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """The board as shown: its rank, formatted strings, intervals in brackets, the baseline marked, and a
    separator row before the methods outside the utility band, each with its reason."""
    ranks = board["rank"] if "rank" in board else pd.Series([""] * len(board), index=board.index)
    out = pd.DataFrame({"rank": ranks.fillna("").replace("", "–").where(~board["reference"], "–").tolist()})
    if "rank_lo" in board:  # the 95% rank interval of the paired comparison
        out["95% rank"] = [board_report.rank_interval(r).replace("-", "–") for r in board.to_dict("records")]
    out["method"] = [("◦ " if r else "") + short_label(m) for m, r in zip(board["method"], board["reference"])]
    for col in columns:
        if col not in board:
            continue
        label, kind = COLUMNS[col]
        lo, hi = board.get(f"{col}_lo"), board.get(f"{col}_hi")
        out[label] = [formats.figure_on_page(v, kind, None if lo is None else lo.iloc[i], None if hi is None else hi.iloc[i])
                      for i, v in enumerate(board[col])]
    sections = board["section"].fillna("").tolist() if "section" in board else [""] * len(board)
    # the reasons are listed under the table, which stays as wide as the page; a separator row per section
    for name, line in (("band", SEPARATOR), ("recipe", RECIPE_SEPARATOR)):
        if name in sections:
            first = sections.index(name)
            gap = pd.DataFrame([{c: (line if c == "method" else "") for c in out.columns}])
            out = pd.concat([out.iloc[:first], gap, out.iloc[first:]], ignore_index=True)
            sections = sections[:first] + [""] + sections[first:]
    return out


# ------------------------------------------------------------ text from a results file, made inert

MARKDOWN = re.compile(r"([\\`*_{}\[\]()<>#+\-.!|~:$^=])")


# Markdown links a bare URL even when its punctuation is escaped (GFM's literal autolinks): a
# zero-width space after the scheme or "www" leaves the text as it reads and unlinked.
AUTOLINK = re.compile(r"(?i)\b(https?|ftp|mailto|www)(?=\\?[:.])")


def plain(text, limit: int | None = formats.LINE_CHARS) -> str:
    """Text from a results file or bundle (labels, notes), made inert in markdown: no links, images, HTML;
    its control characters escaped and its length bounded (`formats.one_line`, as the CLI prints it)."""
    return AUTOLINK.sub("\\1\u200b", MARKDOWN.sub(r"\\\1", formats.one_line(text, limit)))


def short_label(text) -> str:
    """A label from a results file (a method, a run) as a table cell or a picker shows it: escaped and bounded,
    `formats.one_line`."""
    return formats.one_line(text)


def private_text_allowed() -> bool:
    """Training text of a dataset not marked public goes to loopback only, unless the user said otherwise
    (`harness app --host ... --serve-private-text`)."""
    if os.environ.get("HARNESS_APP_SERVE_PRIVATE_TEXT") == "1":
        return True
    address = st.get_option("server.address") or ""
    return loopback(address)


@st.cache_resource(show_spinner=False)
def public_datasets() -> frozenset[str]:
    """Names of the datasets the registered plugins mark public (specs.Dataset.public)."""
    try:
        from harness.config import plugins, registry

        found = plugins.load(registry.load(os.environ.get("HARNESS_REGISTRY") or None))
    except Exception:  # no registry here: treat every dataset as private
        return frozenset()
    return frozenset(name for name, d in found.datasets.items() if d.public)


def text_withheld(dataset: str) -> str | None:
    """Why this dataset's text is not shown to this viewer, or None when it may be."""
    if private_text_allowed() or dataset in public_datasets():
        return None
    return (f"The text of dataset {dataset} (not marked public) is served to this machine only: the app listens "
            "on a non-loopback address. Restart with `harness app --serve-private-text` to show it there.")


# ------------------------------------------------------------ drill-down


def tokens_html(ids: list[int], pieces: list[str] | None, hits: list[bool] | None = None) -> str:
    out = []
    for i, t in enumerate(ids):
        text = html.escape(pieces[t] if pieces and 0 <= t < len(pieces) else f"⟨{t}⟩").replace("\n", "↵")
        if hits is None:
            out.append(text)
        elif hits[i]:
            out.append(f'<span style="background:#c7f0c2">{text}</span>')
        else:
            out.append(f'<span style="background:#f6c6c6">{text}</span>')
    return "<code style='white-space:pre-wrap'>" + "".join(out) + "</code>"


@st.cache_resource(show_spinner=False)
def cached_pieces(folder: str) -> list[str] | None:
    return standings.load_pieces(folder)


def run_label(r) -> str:
    return (f"{short_label(r.method_label)} · seed {r.seed} · {short_label(r.family)}/{short_label(r.dataset)} · "
            f"run {short_label(r.run_id)}")


def inert(frame: pd.DataFrame) -> pd.DataFrame:
    """A table of a results file's rows as a page or its CSV shows it: each text cell escaped and bounded
    (`formats.one_line`, loosely: a cell may list a row's runs)."""
    return frame.apply(lambda col: col.map(lambda v: formats.one_line(v, formats.LINE_CHARS) if isinstance(v, str)
                                           else v) if col.dtype == object else col)


def ranked_first(options: list[str], top: str | None) -> int:
    """The index of the board's top-ranked method among selector options (0 when it has none)."""
    return next((i for i, o in enumerate(options) if top is not None and o.startswith(f"{short_label(top)} · ")), 0)


def drill_down(con, runs: pd.DataFrame, top: str | None) -> None:
    st.subheader("Drill-down: the examples that leaked")
    labels = {run_label(r): r.run_id for r in runs.itertuples()}
    c1, c2, c3 = st.columns([3, 1.3, 2])
    options = list(labels)
    picked = c1.selectbox("run", options, index=ranked_first(options, top), key="drill_run")
    run_id = labels[picked]
    who = c2.selectbox("memorized by", ["student", "teacher", "baseline", "anyone (all members)"], key="drill_who")
    ex = read.examples_of(con, run_id, None if who.startswith("anyone") else who)
    if ex.empty and not who.startswith("anyone"):
        st.info(f"No member of this run was memorized by the {who}: showing every member.")
        ex = read.examples_of(con, run_id, None)
    if ex.empty:
        st.info("This run stored no member verdicts.")
        return
    options = {f"{r.sample_id} · repeated {r.repeats}× · student matched {r.student_match}": r.sample_id
               for r in ex.itertuples()}
    sample_id = options[c3.selectbox("example", list(options), key="drill_example")]
    d = standings.drill(con, run_id, sample_id)
    withheld = d.withheld if d.token_ids is None else text_withheld(d.run["dataset"])
    if withheld:
        st.warning(plain(withheld))
    else:
        show_tokens(con, d)
    repeats = int(d.scores["repeats"].iloc[0]) if not d.scores.empty and pd.notna(d.scores["repeats"].iloc[0]) else None
    st.caption(f"Repeated {repeats}× in the training set. Scores per role (approximate-memorization figures "
               "exist for the sampled members only):")
    st.dataframe(score_table(d.scores, read.attack_scores(con, run_id, sample_id)), hide_index=True, key="drill_scores")


def show_tokens(con, d) -> None:
    prefix_len, suffix_len = int(d.run["prefix_len"]), int(d.run["suffix_len"])
    pieces = standings.pieces(con, d.run, loader=cached_pieces)
    prefix, suffix = d.token_ids[:prefix_len], d.token_ids[prefix_len:prefix_len + suffix_len]
    st.markdown(f"**Prefix** ({prefix_len} tokens)<br>{tokens_html(prefix, pieces)}", unsafe_allow_html=True)
    st.markdown(f"**True suffix** ({suffix_len} tokens)<br>{tokens_html(suffix, pieces)}", unsafe_allow_html=True)
    for role in ROLES:
        cont = d.continuations.get(role)  # stored by the run: the app never loads a model
        row = d.scores[d.scores["role"] == role]
        verdict = ""
        if not row.empty:
            r = row.iloc[0]
            matched = int(r["match_len"]) if pd.notna(r["match_len"]) else "?"
            verdict = f"{'memorized' if r['memorized'] else 'not memorized'}, {matched}/{suffix_len} leading tokens"
        if cont is None:
            st.markdown(f"**{role}** greedy continuation: not stored ({verdict}); a run stores those of the sampled "
                        "members and of every member some role memorized")
            continue
        hits = standings.matching(suffix, cont)
        st.markdown(f"**{role}** greedy continuation: {verdict}<br>{tokens_html(cont, pieces, hits)}",
                    unsafe_allow_html=True)


SCORE_COLUMNS = {"memorized": "memorized", "match_len": "leading tokens matched", "loss": "loss",
                 "suffix_loss": "suffix loss", "approx_match": "token match (sampled)",
                 "edit_distance": "edit distance (sampled)"}


def score_table(scores: pd.DataFrame, attacks: pd.DataFrame) -> pd.DataFrame:
    """One row per role: the verdict, the losses, and each attack's score; "not sampled" where a figure is
    computed for a sample of members only, "not stored" where the file holds no attack scores."""
    out = pd.DataFrame({"role": scores["role"]})
    for col, label in SCORE_COLUMNS.items():
        if col not in scores:
            continue
        missing = "not sampled" if col in ("approx_match", "edit_distance") else "–"
        out[label] = [missing if v is None or pd.isna(v) else ("yes" if v is True else "no" if v is False else
                      str(int(v)) if col == "match_len" else f"{v:.3f}") for v in scores[col]]
    if attacks.empty:
        out["attack scores"] = "not stored in this file"
        return out
    by_role = attacks.set_index("role")
    for attack in [c for c in attacks.columns if c != "role"]:
        out[f"{attack} score"] = [f"{by_role.at[r, attack]:.3f}" if r in by_role.index and not
                                  pd.isna(by_role.at[r, attack]) else "–" for r in scores["role"]]
    return out


# ------------------------------------------------------------ the page


def main() -> None:
    st.set_page_config(page_title="KD memorization leaderboard", page_icon="🔐", layout="wide",
                       initial_sidebar_state="collapsed")  # the board needs the width; filters are a click away
    st.title("Which distillation method leaks least?")
    st.caption("Students distilled from a teacher by each knowledge-distillation method, tested for exact "
               "extraction of their training members (greedy continuation of the prefix reproduces the suffix) "
               "and for membership inference. Lower memorization and attack AUC leak less; lower validation "
               "perplexity is more useful.")
    srcs = sources()
    source = st.sidebar.selectbox("results", list(srcs), key="source")
    path = srcs[source]
    try:
        with connection.reading(path, LOCK_WAIT_SECONDS, empty=False) as con:
            page(con, path)
    except connection.Refused as err:
        st.info(plain(standings.said(err)))
    except standings.BoardError as err:
        st.info(plain(err))


def sidebar_filters(opts: dict) -> read.Filters:
    sb = st.sidebar
    sb.header("Filter")
    return read.Filters(family=sb.multiselect("family", opts["family"], key="f_family"),
                     dataset=sb.multiselect("dataset", opts["dataset"], key="f_dataset"),
                     method=sb.multiselect("method", opts["method"], key="f_method"),
                     size=sb.multiselect("student size", opts["size"], key="f_size"),
                     access=sb.multiselect("teacher access", opts["access"], key="f_access"),
                     search=sb.text_input("search methods", key="f_search").strip() or None)


def page(con, path: Path) -> None:
    problem = standings.schema_problem(con)
    if problem:
        st.info(plain(problem))
        return
    found = read.reproduction(con)
    if st.query_params.get("page") == "reproduce":
        reproduce_view(found)
        return
    if found is not None:
        st.markdown("[Reproducing the studies: the published findings measured here →](?page=reproduce)")
    failed = read.failed_runs(con)
    opts = read.choices(con)
    if not opts["method"]:
        st.info("No finished run in this database yet" + (f" ({len(failed)} failed or still running, below)."
                                                            if len(failed) else ". Run `harness eval --method soft-kd`."))
        show_failed(failed)
        return
    f = sidebar_filters(opts)
    spec = published_spec(path)  # a published board's own band, order, columns and title
    rules = spec.ranking if spec else DEFAULT_RANKING
    board = standings.board(con, f, rules=lambda keys: rules)
    if board.empty:
        st.warning("No run matches these filters.")
        return
    sb = st.sidebar
    available = [c for c in COLUMNS if c in board.columns]
    defaults = [c for c in (spec.columns if spec and spec.columns else DEFAULT_COLUMNS) if c in available]
    columns = sb.multiselect("columns", available, default=defaults, format_func=lambda c: COLUMNS[c][0],
                             key="columns")
    sb.caption(f"Reading {path} (read-only).")
    rs = read.runs(con, f)
    focus = st.query_params.get("method")
    if focus:
        method_view(con, focus, board, rs)
        return
    top = None
    seen: dict[tuple, int] = {}
    for keys, group in standings.boards(board):  # the ranking `harness leaderboard` prints, board by board
        family, dataset = keys["family"], keys["dataset"]
        seen[(family, dataset)] = n = seen.get((family, dataset), 0) + 1
        methods = group[~group["reference"]]
        best = standings.headline(group, rules).best  # the drill-down opens on rank 1: a method that still learned
        top = top or (best["method"] if best is not None else methods["method"].iloc[0] if not methods.empty else None)
        section(con, keys, f, group, columns, standings.of_board(rs, keys), "" if n == 1 else f"_{n}", rules,
                spec.title if spec else None, spec.regime if spec else "")
    drill_down(con, rs, top)
    show_failed(failed)


def published_spec(path: Path) -> BoardSpec | None:
    try:
        return spec_of(path)
    except UsageError as err:
        st.sidebar.warning(plain(err))
        return None


def section(con, keys: dict, f: read.Filters, group: pd.DataFrame, columns: list[str], runs: pd.DataFrame,
            suffix: str = "", rules: Ranking = DEFAULT_RANKING, title: str | None = None, regime: str = "") -> None:
    """One board (a family with its arguments × a dataset, ...): its headline, its whole board, its charts."""
    family, dataset = keys["family"], keys["dataset"]
    st.header(plain(title or f"{labels.family_label(family, keys['family_args'])} on {dataset}"))
    if regime:  # the published spec's one line: where this board's figures come from
        st.markdown(f"**Regime:** {plain(regime)}")
    st.caption(plain(f"preset {group['preset'].iloc[0]} · {int(group['n_members'].iloc[0])} members · dataset hash "
                     f"{group['dataset_hash'].iloc[0]} · ranked: {rules.band}, by "
                     f"{MEASURES[measure_of(group, rules)]}, the rows compared paired; =N a rank no row is "
                     "separated from at 95% · rates pool the seeds' "
                     f"counts, each member the seeds share one cluster in the intervals (– : fewer than {MIN_COUNT} "
                     "memorized members) · ◦ marks the baseline"))
    for note in standings.caveats(group):
        st.badge(note, icon=":material/warning:", color="orange")
    note = standings.regime(con, runs["run_id"].tolist()) if not runs.empty else None
    if note:
        st.caption(plain(f"⚠ {note}"))
    split = formats.blind(read.blind_figures(con, runs["run_id"].tolist())) if not runs.empty else None
    if split and split.startswith("SHIFT"):
        st.warning(plain(split), icon=":material/warning:")
    elif split:
        st.caption(plain(split))
    key = f"{family}_{dataset}{suffix}"  # widget keys: a second board of one family and dataset gets _2
    headline_card(standings.headline(group, rules), key, rules)
    board_table(group, columns, key, rules)
    st.download_button("download this board as CSV", inert(group.drop(columns=["reference"])).to_csv(index=False),
                       file_name=f"leaderboard-{family}-{dataset}{suffix}.csv", mime="text/csv", key=f"csv_{key}")
    with st.expander("provenance of each row"):
        st.dataframe(inert(group[["method", *PROVENANCE, "run_id"]]).rename(columns=lambda c: COLUMNS.get(c, (c,))[0]),
                     hide_index=True, width="stretch")
    charts(con, keys, f, group, runs, suffix, rules)


def headline_card(h: standings.Headline, key: str, rules: Ranking = DEFAULT_RANKING) -> None:
    """Who leaks least and at what cost: the board's own leakage measure (what it ranks by), the strongest attack,
    perplexity against the baseline."""
    base = h.baseline
    with st.container(border=True, key=f"headline_{key}"):
        m1, m2, m3, m4 = st.columns([1.2, 1, 1.2, 1])
        if h.best is None:
            m1.metric("leaks least", "no method")
            m2.metric("baseline memorizes", formats.figure_on_page(base["mem_rate_student"], "rate"))
            m3.metric("baseline's best attack AUC", formats.figure_on_page(base.get("best_attack_auc"), "num"))
            m4.metric("baseline validation perplexity", formats.figure_on_page(base["val_ppl_student"], "num"))
            st.caption(plain(h.why))
            return
        b = h.best
        # a single method is named only when the paired comparison separates it from every other ranked one
        m1.metric("leaks least", short_label(h.winner) if h.winner else "not separated",
                  # a metric's delta is rendered as markdown: a label in it must be plain (no link, no image)
                  delta=None if h.winner else plain("=1: " + ", ".join(short_label(m) for m in [b["method"], *h.tied])),
                  delta_color="off")
        # the measure the board ranks by: exact match or extraction read 0 on a board decided on the loss gap
        key_ = next((k for k in (rules.primary, "extractable_rate_student", "mem_rate_student") if pd.notna(b.get(k))),
                    "mem_rate_student")
        name, kind = COLUMNS[key_]
        m2.metric(name if h.winner else f"{name}, lowest: {plain(b['method'], formats.LABEL_CHARS)}",
                  formats.figure_on_page(b[key_], kind),
                  delta=f"baseline {formats.figure_on_page(base.get(key_), kind)}", delta_color="off")
        attack = b.get("best_attack")
        if attack:
            tpr = b.get("best_attack_tpr")
            m3.metric(f"best attack ({plain(attack, formats.LABEL_CHARS)}) AUC",
                      formats.figure_on_page(b["best_attack_auc"], "num"),
                      delta=None if tpr is None or pd.isna(tpr) else f"TPR {100 * tpr:.1f}% at 1% FPR",
                      delta_color="off")
        else:
            m3.metric("best attack AUC", "not stored")
        m4.metric("validation perplexity", formats.figure_on_page(b["val_ppl_student"], "num"),
                  delta=f"{b['val_ppl_student'] - base['val_ppl_student']:+.2f} vs baseline "
                        f"({formats.figure_on_page(base['val_ppl_student'], 'num')})", delta_color="inverse")
        st.caption(plain(h.why))


ROW_PX = 35


def board_table(group: pd.DataFrame, columns: list[str], key: str, rules: Ranking = DEFAULT_RANKING) -> None:
    """Every row at once (no inner scroll), the baseline highlighted, each method linked to its own view."""
    shown = display(group, columns)
    config = {col: st.column_config.TextColumn(col, width=column_px(col, shown[col]), pinned=col in ("rank", "method"))
              for col in shown.columns}
    after = shown.index[shown["method"] == SEPARATOR]

    def style(row) -> list[str]:
        if row["method"].startswith("◦ "):
            css = "background-color: #eeeeee; font-style: italic"
        elif row["method"] == SEPARATOR:
            css = "background-color: #fff4e5; font-weight: 600"
        else:
            css = "color: #6e7781" if len(after) and row.name > after[0] else ""
        return [css] * len(row)

    styled = shown.style.apply(style, axis=1)
    st.dataframe(styled, hide_index=True, width="stretch", height=ROW_PX * (len(shown) + 1) + 3, row_height=ROW_PX,
                 column_config=config, key=f"board_{key}")
    unranked = group[group["why"].fillna("").astype(bool)] if "why" in group else group.iloc[:0]
    own = unranked[unranked["section"] == "recipe"] if "section" in unranked else unranked.iloc[:0]
    if not own.empty:
        st.markdown(f"**{plain(RECIPE_SEPARATOR_TEXT[:1].upper() + RECIPE_SEPARATOR_TEXT[1:])}**: "
                    + "; ".join(f"{plain(r['method'], formats.LABEL_CHARS)}: {plain(r['why'], formats.CELL_CHARS)}"
                                for _, r in own.iterrows()),
                    help="Compared with like: these students did not train on the recipe and data exposure the "
                         "ranked KD methods share (harness/leaderboard/ranking.py).")
    unranked = unranked.drop(own.index)
    if not unranked.empty:
        st.markdown(f"**{plain(SEPARATOR_TEXT[:1].upper() + SEPARATOR_TEXT[1:])}** " + plain(f"({rules.band}): ")
                    + "; ".join(f"{plain(r['method'], formats.LABEL_CHARS)}: {plain(r['why'], formats.CELL_CHARS)}"
                                for _, r in unranked.iterrows()),
                    help="A student that leaks little because it learned little must not lead the board "
                         "(harness/leaderboard/ranking.py).")
    # a label too long to show whole is shown cut, unlinked: its link would carry it whole
    links = [f"[{plain(m)}](?method={quote(m, safe='')})" if len(m) <= formats.LABEL_CHARS
             else plain(m, formats.LABEL_CHARS) for m in group.loc[~group["reference"], "method"]]
    st.markdown("Each method's runs, seeds, arguments and figures: " + " · ".join(links))


def column_px(label: str, values: pd.Series) -> int:
    """A column as wide as its header and its longest value, so the whole board fits the page."""
    longest = max([len(label), *(len(str(v)) for v in values)])
    return min(7 * longest + 12, 210)


def reproduce_view(found) -> None:
    """The latest `harness reproduce`, as the CLI prints it: a verdict, seeds, magnitude and caveats per finding."""
    st.markdown("[← back to the board](?)")
    st.header("Reproducing the studies")
    st.caption("Each published finding measured on this harness's setting: the study's figure and source, the "
               "figure here (95% interval: shares and ratios from counts pooled over seeds, each member one cluster, "
               "differences and AUCs a bootstrap over examples and seeds), the verdict (holds only when the whole "
               "interval is inside the claim's band at every seed), and the magnitude against the published figure. "
               "`harness reproduce` adds one.")
    if found is None:
        st.info("No `harness reproduce` in this database yet: run `harness reproduce`.")
        return
    meta, df = found
    st.markdown(plain(f"{meta['family']} / {meta['dataset']} (preset {meta['preset']}), "
                      f"{meta['created_at']:%Y-%m-%d %H:%M} UTC, reproduction {meta['reproduction_id']}"))
    verdicts = ["no verdict (stored by an older harness)" if pd.isna(v) else v for v in df["verdict"]]
    counts = {v: verdicts.count(v) for v in ("holds", "not established", "fails", "n/a")}
    st.metric(f"of {len(df)} findings, hold here", f"{counts['holds']} of {len(df)}")
    st.markdown(f"{counts['not established']} not established, {counts['fails']} fail, {counts['n/a']} n/a")

    def measured(r) -> str:
        return reproduce_report.measured_text(*(None if pd.isna(r[c]) else r[c] for c in ("mean", "lo", "hi")),
                                              r["unit"])

    def seeds(r) -> str:
        return f"{r['n']}" if pd.isna(r["requested"]) else f"{r['n']} of {r['requested']}"

    def size(r) -> str:
        if pd.isna(r["magnitude"]) or not r["magnitude"]:
            return ""
        return f"{r['magnitude']} ({formats.finding_value(r['figure'], r['unit'])} published)"

    rows = list(df.iterrows())
    shown = pd.DataFrame({"finding": df["finding"], "claim (holds if)": df["claim"], "published": df["published"],
                          "source": df["source"], "measured here": [measured(r) for _, r in rows],
                          "seeds": [seeds(r) for _, r in rows], "magnitude": [size(r) for _, r in rows],
                          "verdict": verdicts, "caveats": df["caveat"].fillna("")})
    colours = {"holds": "color: #1a7f37", "fails": "color: #cf222e; font-weight: 600",
               "not established": "color: #9a6700"}
    st.dataframe(shown.style.map(lambda v: colours.get(v, ""), subset=["verdict"]), hide_index=True,
                 width="stretch", key="reproduction")


def method_view(con, method: str, board: pd.DataFrame, runs: pd.DataFrame) -> None:
    """One method: every run and seed with its arguments and figures."""
    st.markdown("[← back to the board](?)")
    st.header(plain(f"Method {short_label(method)}"))
    mine = runs[runs["method_label"] == method]
    if mine.empty:
        st.warning(plain(f"No finished run of method {short_label(method)} passes these filters."))
        return
    rows = board[board["method"] == method]
    st.dataframe(display(rows, [c for c in COLUMNS if c in rows.columns]), hide_index=True, width="stretch",
                 key="method_board")
    metrics = read.run_metrics(con, mine["run_id"].tolist())
    cols = ["run_id", "seed", "family", "dataset", "method_args", "teacher_access", "preset", "example_limit",
            "config_hash", "finished_at"]
    st.dataframe(inert(mine[[c for c in cols if c in mine]].merge(metrics, on="run_id", how="left")), hide_index=True,
                 width="stretch", key="method_runs")


def charts(con, keys: dict, f: read.Filters, group: pd.DataFrame, runs: pd.DataFrame, suffix: str = "",
           rules: Ranking = DEFAULT_RANKING) -> None:
    family, dataset = keys["family"], keys["dataset"]
    sub = read.Filters(family=[family], dataset=[dataset], method=f.method, size=f.size, access=f.access, search=f.search)
    order = group.loc[~group["reference"], "method"].tolist()
    key = f"{family}_{dataset}{suffix}"
    st.markdown("**Memorization rate by role**: each method's student, the shared teacher and baseline as lines "
                "(95% intervals over seeds)")
    with st.container(key=f"roles_{key}"):
        st.altair_chart(chart_roles(standings.of_board(standings.role_rates(con, sub), keys), order), width="stretch")
    st.markdown("**Privacy and utility**, a row per method: its leakage (95% intervals), the best attack's AUC "
                "and validation perplexity; diamonds mark the frontier (no method is better on all of them), grey "
                "methods are outside the utility band, the dotted line is the baseline")
    with st.container(key=f"plane_{key}"):
        st.altair_chart(chart_plane(group.reset_index(drop=True), rules.primary), width="stretch")
    st.markdown("**k-extractability**: share of members whose first k suffix tokens the greedy continuation "
                "reproduces, one panel per method")
    with st.container(key=f"k_{key}"):
        st.altair_chart(chart_k(read.k_extractability(con, runs["run_id"].tolist()), order), width="content")
    privacy_section(con, group, key)
    by_run = {f"{short_label(r.method_label)} · seed {r.seed}": r.run_id for r in runs.itertuples()}
    picks = list(by_run)
    first = ranked_first(picks, order[0] if order else None)
    c1, c2 = st.columns(2)
    with c1:
        st.markdown("**Overlap of the memorized sets**")
        pick = st.selectbox("run", picks, index=first, key=f"ov_{key}")
        ov = read.overlap(con, by_run[pick])
        if ov.empty:
            st.info("No role memorized any member in this run.")
        else:
            with st.container(key=f"overlap_{key}"):
                st.altair_chart(chart_overlap(ov), width="stretch")
    with c2:
        st.markdown("**Log-probability against zlib entropy**")
        pick = st.selectbox("run", picks, index=first, key=f"zl_{key}")
        zl = standings.logprob_vs_zlib(con, by_run[pick])
        withheld = text_withheld(dataset)
        if zl.empty or withheld:
            st.info(plain(withheld or read.snapshot_note(con, "withheld", dataset)
                          or "The texts of this dataset are not in this database."))
        else:
            with st.container(key=f"zlib_{key}"):
                st.altair_chart(chart_zlib(zl), width="stretch")
    roc_section(con, by_run, picks, first, key)


def privacy_section(con, group: pd.DataFrame, key: str) -> None:
    """The DP-SGD rows by epsilon, with soft-kd and the baseline as references, and the bound check."""
    from harness.leaderboard import privacy

    rows = privacy.private(group)
    if rows.empty:
        return
    found = privacy.checks(con, rows)
    points, refs = privacy.chart_data(rows, found, group, privacy.reference_tpr(con, group))
    st.markdown("**What each epsilon buys (DP-SGD)**: dp-kd and dp-ft by the epsilon they spent, soft-kd and the "
                "baseline dotted; the loss attack's TPR (seeds pooled) against the bound its (epsilon, delta) "
                "allows, dashed")
    with st.container(key=f"privacy_{key}"):
        st.altair_chart(chart_privacy(points, refs), width="content")
    if not found.empty:
        st.caption(board_report.BOUND_TITLE)
        st.dataframe(pd.DataFrame(board_report.bound_rows(found), columns=board_report.BOUND_HEADERS),
                     hide_index=True, key=f"dpcheck_{key}")
        st.caption(board_report.BOUND_NOTE)


def roc_section(con, by_run: dict, picks: list[str], first: int, key: str) -> None:
    st.markdown("**Membership attack (ROC)**")
    c1, c2 = st.columns(2)
    pick = c1.selectbox("run", picks, index=first, key=f"roc_{key}")
    attacks = read.stored_attacks(con, by_run[pick])
    if attacks:
        attack = c2.selectbox("attack", attacks, key=f"atk_{key}")
        roc = read.attack_roc(con, by_run[pick], attack)
        st.caption(f"The {attack} attack on each role. Log axes show the low false-positive region "
                   "that matters for privacy.")
    else:  # a run from before the attacks: the loss attack from its stored losses
        roc = standings.loss_attack_roc(con, by_run[pick])
        st.caption("The loss attack: members are guessed by their lower per-example loss. "
                   "Log axes show the low false-positive region that matters for privacy.")
    if not roc.empty:
        with st.container(key=f"rocchart_{key}"):
            st.altair_chart(chart_roc(roc), width="stretch")


def show_failed(failed: pd.DataFrame) -> None:
    if failed.empty:
        return
    with st.expander(f"{len(failed)} run(s) failed or did not finish: not on the board"):
        st.dataframe(inert(failed), hide_index=True, width="stretch")


main()
