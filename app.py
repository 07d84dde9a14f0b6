"""The leaderboard: which distillation method leaks least for what utility, down to the examples.

`streamlit run app.py -- --db FILE` (or `harness app --db FILE`). Without --db it reads the
results file ($HARNESS_DB or results/harness.duckdb), and falls back to the published
snapshots in leaderboards/ when there are no local results. All reading is in harness.board.
"""

from __future__ import annotations

import argparse
import html
import math
import os
import sys
from pathlib import Path

import altair as alt
import pandas as pd
import streamlit as st

from harness import board as B

ROOT = Path(__file__).resolve().parent
ROLE_COLORS = alt.Scale(domain=["teacher", "baseline", "student"], range=["#d62728", "#7f7f7f", "#1f77b4"])
COLUMNS = {  # key -> (label, kind)
    "mem_rate_student": ("student memorization", "rate"),
    "reduction": ("reduction vs baseline", "ratio"),
    "inheritance_rate": ("inheritance rate", "rate"),
    "easy_share": ("easy share", "rate"),
    "val_ppl_student": ("validation perplexity", "num"),
    "best_attack_auc": ("best attack AUC", "num"),
    "teacher_access": ("teacher access", "text"),
    "seeds": ("seeds", "int"),
    "student_size": ("student size", "text"),
    "mem_rate_teacher": ("teacher memorization", "rate"),
    "mem_rate_baseline": ("baseline memorization", "rate"),
    "config_hash": ("config hash", "text"),
    "dataset_hash": ("dataset hash", "text"),
    "seed_list": ("seed", "text"),
    "harness_version": ("harness version", "text"),
    "git_commit": ("git commit", "text"),
    "run_id": ("run", "text"),
}
DEFAULT_COLUMNS = ["mem_rate_student", "reduction", "inheritance_rate", "easy_share", "val_ppl_student",
                   "best_attack_auc", "teacher_access", "seeds"]
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
    local = Path(os.environ.get("HARNESS_DB") or "results/harness.duckdb")
    if local.is_file():
        out[f"local results ({local})"] = local
    folder = Path(os.environ.get("HARNESS_LEADERBOARDS") or ROOT / "leaderboards")
    for snap in sorted(folder.glob("*.duckdb")):
        out[f"published board: {snap.stem}"] = snap
    if not out:
        out[f"local results ({local})"] = local
    return out


def fmt(value, kind: str, lo=None, hi=None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if kind == "rate":
        text = f"{100 * value:.1f}%"
        if lo is not None and hi is not None and not math.isnan(lo) and hi > lo:
            text += f" [{100 * lo:.1f}, {100 * hi:.1f}]"
        return text
    if kind == "ratio":
        return f"{value:.2f}×"
    if kind == "num":
        text = f"{value:.2f}"
        if lo is not None and hi is not None and not math.isnan(lo) and hi > lo:
            text += f" [{lo:.2f}, {hi:.2f}]"
        return text
    if kind == "int":
        return str(int(value))
    return str(value)


def display(board: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """The board as shown: formatted strings, intervals in brackets, the baseline marked."""
    out = pd.DataFrame({"method": [("◦ " if r else "") + m for m, r in zip(board["method"], board["reference"])]})
    for col in columns:
        if col not in board:
            continue
        label, kind = COLUMNS[col]
        lo, hi = board.get(f"{col}_lo"), board.get(f"{col}_hi")
        out[label] = [fmt(v, kind, None if lo is None else lo.iloc[i], None if hi is None else hi.iloc[i])
                      for i, v in enumerate(board[col])]
    return out


# ------------------------------------------------------------ charts


def chart_roles(rates: pd.DataFrame) -> alt.Chart:
    """Grouped bars, methods ordered by their student's rate: one chart as wide as its container."""
    student = rates[rates["role"] == "student"].sort_values("rate")
    base = alt.Chart(rates).encode(
        x=alt.X("method:N", title=None, sort=student["method"].tolist(), axis=alt.Axis(labelAngle=-30)),
        xOffset=alt.XOffset("role:N", sort=["teacher", "baseline", "student"]),
        color=alt.Color("role:N", scale=ROLE_COLORS, legend=alt.Legend(orient="top", title=None)))
    bars = base.mark_bar().encode(
        y=alt.Y("rate:Q", title="members memorized", axis=alt.Axis(format="%")),
        tooltip=["method", "role", alt.Tooltip("rate:Q", format=".1%"), "seeds"])
    rules = base.mark_rule(color="black").encode(y="lo:Q", y2="hi:Q")
    return (bars + rules).properties(height=260)


def chart_plane(points: pd.DataFrame) -> alt.Chart:
    points = points.assign(on_frontier=B.frontier(points).map({True: "on the frontier", False: "dominated"}),
                           label=[("baseline" if r else m) for m, r in zip(points["method"], points["reference"])])
    base = alt.Chart(points).encode(
        x=alt.X("val_ppl_student:Q", title="validation perplexity (lower is more useful)", scale=alt.Scale(zero=False)),
        y=alt.Y("mem_rate_student:Q", title="student memorization (lower leaks less)", axis=alt.Axis(format="%")))
    front = points[points["on_frontier"] == "on the frontier"].sort_values("val_ppl_student")
    line = alt.Chart(front).mark_line(strokeDash=[4, 3], color="#2ca02c").encode(x="val_ppl_student:Q",
                                                                                  y="mem_rate_student:Q")
    dots = base.mark_point(size=140, filled=True).encode(
        color=alt.Color("on_frontier:N", scale=alt.Scale(domain=["on the frontier", "dominated"],
                                                         range=["#2ca02c", "#bbbbbb"]), title=None),
        shape=alt.Shape("reference:N", legend=None),
        tooltip=["method", alt.Tooltip("mem_rate_student:Q", format=".1%"), alt.Tooltip("val_ppl_student:Q", format=".2f")])
    labels = base.mark_text(align="left", dx=9, dy=-6, fontSize=12).encode(text="label:N")
    return (line + dots + labels).properties(height=280)


def chart_overlap(df: pd.DataFrame) -> alt.Chart:
    return alt.Chart(df).mark_bar(color="#4c78a8").encode(
        x=alt.X("members:Q", title="members memorized by exactly these roles"),
        y=alt.Y("combo:N", sort="-x", title=None, axis=alt.Axis(labelLimit=300)),
        tooltip=["combo", "members"]).properties(height=alt.Step(28))


def chart_k(df: pd.DataFrame) -> alt.Chart:
    return alt.Chart(df).mark_line(point=False).encode(
        x=alt.X("k:Q", title="k: leading suffix tokens reproduced greedily"),
        y=alt.Y("share:Q", title="members k-extractable", axis=alt.Axis(format="%")),
        color=alt.Color("role:N", scale=ROLE_COLORS), strokeDash=alt.StrokeDash("method:N"),
        tooltip=["method", "role", "k", alt.Tooltip("share:Q", format=".1%")]).properties(height=300)


def chart_zlib(df: pd.DataFrame) -> alt.Chart:
    return alt.Chart(df).mark_circle(opacity=0.45, size=22).encode(
        x=alt.X("zlib_bits:Q", title="zlib entropy (bits)", scale=alt.Scale(zero=False)),
        y=alt.Y("log_prob:Q", title="log-probability of the example"),
        color=alt.Color("role:N", scale=ROLE_COLORS),
        tooltip=["sample_id", "role", "memorized", "repeats", alt.Tooltip("log_prob:Q", format=".1f")]
    ).properties(height=320)


def chart_roc(df: pd.DataFrame) -> alt.Chart:
    df = df[(df["fpr"] > 0) & (df["tpr"] > 0)].assign(
        label=lambda d: d["role"] + " (AUC " + d["auc"].map(lambda a: f"{a:.3f}") + ")")
    diag = alt.Chart(pd.DataFrame({"x": [1e-3, 1], "y": [1e-3, 1]})).mark_line(color="#999", strokeDash=[3, 3]).encode(
        x="x:Q", y="y:Q")
    roc = alt.Chart(df).mark_line().encode(
        x=alt.X("fpr:Q", title="false-positive rate", scale=alt.Scale(type="log", domain=[1e-3, 1])),
        y=alt.Y("tpr:Q", title="true-positive rate", scale=alt.Scale(type="log", domain=[1e-3, 1])),
        color=alt.Color("label:N", title=None), detail="role:N")
    return (diag + roc).properties(height=320)


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
    return B.load_pieces(folder)


@st.cache_data(show_spinner="generating the continuation from the local checkpoint")
def cached_continuation(artifact_path: str | None, prefix: tuple[int, ...], suffix_len: int) -> list[int] | None:
    return B.live_continuation(artifact_path, prefix, suffix_len)


def drill_down(con, runs: pd.DataFrame) -> None:
    st.subheader("Drill-down: the examples that leaked")
    labels = {f"{r.method_label} · seed {r.seed} · {r.family}/{r.dataset} · run {r.run_id}": r.run_id
              for r in runs.itertuples()}
    c1, c2, c3 = st.columns([3, 1.3, 2])
    run_label = c1.selectbox("run", list(labels), key="drill_run")
    run_id = labels[run_label]
    who = c2.selectbox("memorized by", ["student", "teacher", "baseline", "anyone (all members)"], key="drill_who")
    ex = B.examples_of(con, run_id, None if who.startswith("anyone") else who)
    if ex.empty:
        st.info(f"No member of this run was memorized by the {who}.")
        return
    options = {f"{r.sample_id} · repeated {r.repeats}× · student matched {r.student_match}": r.sample_id
               for r in ex.itertuples()}
    sample_id = options[c3.selectbox("example", list(options), key="drill_example")]
    d = B.drill(con, run_id, sample_id)
    prefix_len, suffix_len = int(d.run["prefix_len"]), int(d.run["suffix_len"])
    if d.token_ids is None:
        st.warning(d.withheld)
    else:
        pieces = B.pieces(con, d.run, loader=cached_pieces)
        prefix, suffix = d.token_ids[:prefix_len], d.token_ids[prefix_len:prefix_len + suffix_len]
        st.markdown(f"**Prefix** ({prefix_len} tokens)<br>{tokens_html(prefix, pieces)}", unsafe_allow_html=True)
        st.markdown(f"**True suffix** ({suffix_len} tokens)<br>{tokens_html(suffix, pieces)}", unsafe_allow_html=True)
        paths = dict(con.execute("SELECT role, artifact_path FROM models WHERE run_id = ?", [run_id]).fetchall())
        for role in ("teacher", "baseline", "student"):
            cont = d.continuations.get(role) or cached_continuation(paths.get(role), tuple(prefix), suffix_len)
            row = d.scores[d.scores["role"] == role]
            verdict = ""
            if not row.empty:
                r = row.iloc[0]
                verdict = (f"{'memorized' if r['memorized'] else 'not memorized'}, {int(r['match_len'])}/{suffix_len} "
                           f"leading tokens")
            if cont is None:
                st.markdown(f"**{role}** greedy continuation: not stored and no local checkpoint ({verdict})")
                continue
            hits = B.matching(suffix, cont)
            st.markdown(f"**{role}** greedy continuation: {verdict}<br>{tokens_html(cont, pieces, hits)}",
                        unsafe_allow_html=True)
    repeats = int(d.scores["repeats"].iloc[0]) if not d.scores.empty else None
    st.caption(f"Repeated {repeats}× in the training set. Scores per role:")
    st.dataframe(d.scores.drop(columns=[c for c in ("split",) if c in d.scores]), hide_index=True)


# ------------------------------------------------------------ the page


def main() -> None:
    st.set_page_config(page_title="KD memorization leaderboard", page_icon="🔐", layout="wide")
    st.title("Which distillation method leaks least?")
    st.caption("Students distilled from a teacher by each knowledge-distillation method, tested for exact "
               "extraction of their training members (greedy continuation of the prefix reproduces the suffix). "
               "Lower memorization leaks less; lower validation perplexity is more useful.")
    srcs = sources()
    source = st.sidebar.selectbox("results", list(srcs), key="source")
    path = srcs[source]
    try:
        with B.connect(path) as con:
            page(con, path)
    except B.BoardError as err:
        st.info(str(err))


def page(con, path: Path) -> None:
    problem = B.schema_problem(con)
    if problem:
        st.info(problem)
        return
    failed = B.failed_runs(con)
    opts = B.choices(con)
    if not opts["method"]:
        st.info("No finished run in this database yet" + (f" ({len(failed)} failed or still running, below)."
                                                            if len(failed) else ". Run `harness eval --method soft-kd`."))
        show_failed(failed)
        return
    sb = st.sidebar
    sb.header("Filter")
    f = B.Filters(family=sb.multiselect("family", opts["family"], key="f_family"),
                  dataset=sb.multiselect("dataset", opts["dataset"], key="f_dataset"),
                  method=sb.multiselect("method", opts["method"], key="f_method"),
                  size=sb.multiselect("student size", opts["size"], key="f_size"),
                  access=sb.multiselect("teacher access", opts["access"], key="f_access"),
                  search=sb.text_input("search methods", key="f_search").strip() or None)
    board = B.board(con, f)
    if board.empty:
        st.warning("No run matches these filters.")
        return
    available = [c for c in COLUMNS if c in board.columns]
    columns = sb.multiselect("columns", available, default=[c for c in DEFAULT_COLUMNS if c in available],
                             format_func=lambda c: COLUMNS[c][0], key="columns")
    sort = sb.selectbox("sort by", [c for c in available if COLUMNS[c][1] in ("rate", "ratio", "num", "int")],
                        format_func=lambda c: COLUMNS[c][0], key="sort")
    descending = sb.toggle("descending", value=False, key="desc")
    sb.caption(f"Reading {path} (read-only).")
    rs = B.runs(con, f)

    for (family, dataset), group in board.groupby(["family", "dataset"], sort=True):
        group = group.sort_values(sort, ascending=not descending, na_position="last", kind="stable")
        methods = group[~group["reference"]]
        best = methods.iloc[0] if not methods.empty else None
        base = group[group["reference"]].iloc[0]
        st.header(f"{family} on {dataset}")
        st.caption(f"preset {group['preset'].iloc[0]} · {int(group['n_members'].iloc[0])} members · dataset hash "
                   f"{group['dataset_hash'].iloc[0]} · mean over seeds with 95% intervals · ◦ marks the reference")
        if best is not None:
            m1, m2, m3, m4 = st.columns(4)
            m1.metric("leaks least", best["method"])
            m2.metric("its student memorizes", fmt(best["mem_rate_student"], "rate"),
                      delta=f"{100 * (best['mem_rate_student'] - base['mem_rate_student']):+.1f} pts vs baseline",
                      delta_color="inverse")
            m3.metric("baseline memorizes", fmt(base["mem_rate_student"], "rate"))
            m4.metric("its validation perplexity", fmt(best["val_ppl_student"], "num"),
                      delta=f"{best['val_ppl_student'] - base['val_ppl_student']:+.2f} vs baseline",
                      delta_color="inverse")
        shown = display(group, columns)
        st.dataframe(shown, hide_index=True, width="stretch", key=f"board_{family}_{dataset}")
        st.download_button("download this board as CSV", group.drop(columns=["reference"]).to_csv(index=False),
                           file_name=f"leaderboard-{family}-{dataset}.csv", mime="text/csv",
                           key=f"csv_{family}_{dataset}")
        with st.expander("provenance of each row"):
            st.dataframe(group[["method", *PROVENANCE, "run_id"]].rename(columns=lambda c: COLUMNS.get(c, (c,))[0]),
                         hide_index=True, width="stretch")
        charts(con, family, dataset, f, group, rs[(rs["family"] == family) & (rs["dataset"] == dataset)])
    drill_down(con, rs)
    show_failed(failed)


def charts(con, family, dataset, f: B.Filters, group: pd.DataFrame, runs: pd.DataFrame) -> None:
    sub = B.Filters(family=[family], dataset=[dataset], method=f.method, size=f.size, access=f.access, search=f.search)
    rates = B.role_rates(con, sub)
    # one under the other: a board of a dozen methods needs the page's width for each
    st.markdown("**Memorization rate by role** (95% intervals over seeds)")
    st.altair_chart(chart_roles(rates), width="stretch")
    st.markdown("**Privacy–utility plane**: the frontier in green")
    st.altair_chart(chart_plane(group.reset_index(drop=True)), width="stretch")
    tabs = ["overlap of memorized sets", "k-extractability", "log-prob vs zlib", "membership attack (ROC)"]
    t = dict(zip(tabs, st.tabs(tabs)))
    by_run = {f"{r.method_label} · seed {r.seed}": r.run_id for r in runs.itertuples()}
    with t["overlap of memorized sets"]:
        pick = st.selectbox("run", list(by_run), key=f"ov_{family}_{dataset}")
        ov = B.overlap(con, by_run[pick])
        if ov.empty:
            st.info("No role memorized any member in this run.")
        else:
            st.altair_chart(chart_overlap(ov), width="stretch")
    with t["k-extractability"]:
        st.altair_chart(chart_k(B.k_extractability(con, runs["run_id"].tolist())), width="stretch")
    with t["log-prob vs zlib"]:
        pick = st.selectbox("run", list(by_run), key=f"zl_{family}_{dataset}")
        zl = B.logprob_vs_zlib(con, by_run[pick])
        if zl.empty:
            st.info(B.snapshot_note(con, "withheld", dataset) or "The texts of this dataset are not in this database.")
        else:
            st.altair_chart(chart_zlib(zl), width="stretch")
    with t["membership attack (ROC)"]:
        pick = st.selectbox("run", list(by_run), key=f"roc_{family}_{dataset}")
        attacks = B.stored_attacks(con, by_run[pick])
        if attacks:
            attack = st.selectbox("attack", attacks, key=f"atk_{family}_{dataset}")
            roc = B.attack_roc(con, by_run[pick], attack)
            st.caption(f"The {attack} attack on each role. Log axes show the low false-positive region "
                       "that matters for privacy.")
        else:  # a run from before the attacks: the loss attack from its stored losses
            roc = B.loss_attack_roc(con, by_run[pick])
            st.caption("The loss attack: members are guessed by their lower per-example loss. "
                       "Log axes show the low false-positive region that matters for privacy.")
        if not roc.empty:
            st.altair_chart(chart_roc(roc), width="stretch")


def show_failed(failed: pd.DataFrame) -> None:
    if failed.empty:
        return
    with st.expander(f"{len(failed)} run(s) failed or did not finish: not on the board"):
        st.dataframe(failed, hide_index=True, width="stretch")


main()
