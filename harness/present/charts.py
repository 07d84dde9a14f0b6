"""The leaderboard app's charts (Altair): each a function from a frame to a chart, read without a legend hunt.

Every chart renders as SVG (the browser test measures its text boxes for overlaps), with wide labels
and no truncated titles (`finish`); roles keep one colour each across charts, and methods are named
on an axis or a line, not by a colour to look up.
"""

from __future__ import annotations

import math

import altair as alt
import pandas as pd

from harness.leaderboard import standings
from harness.present import formats

ROLE_COLOR = {"teacher": "#d62728", "baseline": "#7f7f7f", "student": "#1f77b4"}
BASELINE = "baseline"
SVG = {"embedOptions": {"renderer": "svg"}}  # text marks as SVG: the browser test measures their boxes


def role_scale(roles=tuple(ROLE_COLOR)) -> alt.Scale:
    return alt.Scale(domain=list(roles), range=[ROLE_COLOR[r] for r in roles])


def rate_axis(values, title: str) -> alt.Axis:
    """Percent ticks with as many decimals as the range needs: 0-25% reads 5%, 0-0.8% reads 0.2%."""
    top = max([float(v) for v in values if v is not None and not pd.isna(v)] or [0.0])
    digits = 0 if top >= 0.05 or top == 0 else min(3, max(1, -math.floor(math.log10(top * 100)) + 1))
    return alt.Axis(format=f".{digits}%", title=title, tickCount=5, titleLimit=0)


def percent(share: float) -> str:
    """A share as a label: one decimal from 1%, two below it (0.29% must not read 0.3%)."""
    return formats.pct(share) if share >= 0.01 else formats.fine_pct(share)


def rate_scale(values) -> alt.Scale:
    top = max([float(v) for v in values if v is not None and not pd.isna(v)] or [0.0])
    return alt.Scale(domain=[0, top * 1.05 if top > 0 else 0.01], nice=False, padding=12)


def finish(chart, height=None):
    """Every chart: SVG renderer, wide labels, no truncated titles."""
    if height is not None:
        chart = chart.properties(height=height)
    return chart.properties(usermeta=SVG).configure_axis(labelLimit=220, titleLimit=0).configure_legend(
        labelLimit=240, symbolLimit=0)


def chart_roles(rates: pd.DataFrame, order: list[str]) -> alt.Chart:
    """Each method's student as a bar, a row per method (every name readable, in board order); the
    teacher and the baseline, shared by all methods, as two lines labelled at the top."""
    student = rates[rates["role"] == "student"]
    refs = rates[rates["role"] != "student"].groupby("role", as_index=False)["rate"].mean()
    refs["label"] = [f"{r} {100 * v:.1f}%" for r, v in zip(refs["role"], refs["rate"])]
    axis = rate_axis([*rates["rate"], *rates["hi"]], "members memorized")
    scale = rate_scale([*rates["rate"], *rates["hi"]])
    y = alt.Y("method:N", title=None, sort=order, axis=alt.Axis(labelLimit=260))
    color = alt.Color("role:N", scale=role_scale(), legend=alt.Legend(orient="top", title=None))
    x = alt.X("rate:Q", axis=axis, scale=scale)  # one x for every layer: one axis, not one per layer
    bars = alt.Chart(student).mark_bar().encode(
        y=y, x=x, color=color, tooltip=["method", "role", alt.Tooltip("rate:Q", format=".1%"), "seeds"])
    whiskers = alt.Chart(student).mark_rule(color="black").encode(
        y=y, x=alt.X("lo:Q", axis=axis, scale=scale), x2="hi:Q")
    lines = alt.Chart(refs).mark_rule(strokeDash=[6, 3], strokeWidth=2).encode(x=x, color=color)
    # above the plot, the higher line's label to its right and the other's to its left: never stacked
    top = refs["rate"].max() if not refs.empty else 0.0
    labels = [alt.Chart(refs[(refs["rate"] == top) == right]).mark_text(
        align="left" if right else "right", dx=4 if right else -4, y=-6, fontSize=12).encode(
        x=x, text="label:N", color=color) for right in (True, False)]
    return finish(alt.layer(bars, whiskers, lines, *labels), alt.Step(22))  # 22 px a method: every name shown


DP_COLOR = {"dp-kd": "#1f77b4", "dp-ft": "#9467bd", "bound": "#444444", "soft-kd": "#ff7f0e",
            "baseline": ROLE_COLOR["baseline"]}


def chart_privacy(points: pd.DataFrame, refs: pd.DataFrame) -> alt.Chart:
    """What each epsilon buys: a panel per figure, dp-kd and dp-ft by epsilon, soft-kd and the baseline as lines.

    One colour scale for every series, named in one legend and again on the reference lines (both labels at
    the left, where the strongest noise keeps the DP rows far from them: the higher line's above it, the
    lower's below, so two close lines' labels never overlap); the TPR panel adds the bound each epsilon's
    (epsilon, delta) allows at 1% FPR (dashed): the measured TPR must stay under it."""
    order = sorted(set(points["epsilon"]), key=lambda e: math.inf if e == "inf" else float(e))
    shown = [m for m in DP_COLOR if m in set(points["method"]) | set(refs["who"] if not refs.empty else ())]
    color = alt.Color("method:N", scale=alt.Scale(domain=shown, range=[DP_COLOR[m] for m in shown]),
                      legend=alt.Legend(orient="top", title=None, labelFontSize=12, symbolType="stroke",
                                        symbolStrokeWidth=3))
    dash = alt.StrokeDash("bound:N", scale=alt.Scale(domain=[False, True], range=[[1, 0], [5, 3]]), legend=None)
    x = alt.X("epsilon:O", sort=order, title="epsilon spent (inf: clipping, no noise)", axis=alt.Axis(labelAngle=0))
    panels = []
    for panel in points["panel"].unique():  # in the order chart_data gives them
        pts = points[points["panel"] == panel].assign(bound=lambda d: d["method"] == "bound")
        if pts["value"].notna().sum() == 0:
            continue
        ref = (refs[refs["panel"] == panel] if not refs.empty else refs).rename(columns={"who": "method"})
        values = [*pts["value"], *pts["hi"].dropna(), *(ref["value"] if not ref.empty else [])]
        rate, log = (pts["scale"].iloc[0] == kind for kind in ("rate", "log"))
        axis = rate_axis(values, panel) if rate else alt.Axis(title=panel + (", log scale" if log else ""),
                                                                titleLimit=0, tickCount=5)
        scale = (rate_scale(values) if rate else alt.Scale(type="log", nice=False, padding=12) if log
                 else alt.Scale(zero=False))
        y = alt.Y("value:Q", axis=axis, scale=scale)
        tip = ["method", "epsilon", alt.Tooltip("value:Q", format=".3f")]
        layer = (alt.Chart(pts).mark_line(strokeWidth=2).encode(x=x, y=y, color=color, strokeDash=dash, detail="method")
                 + alt.Chart(pts).mark_point(filled=True, size=60).encode(x=x, y=y, color=color, tooltip=tip)
                 + alt.Chart(pts.dropna(subset=["lo", "hi"])).mark_rule().encode(
                     x=x, y=alt.Y("lo:Q", axis=axis, scale=scale), y2="hi:Q", color=color))
        if not ref.empty:
            ref = ref.assign(label=[f"{w} {percent(v)}" if rate else f"{w} {v:.3g}"
                                    for w, v in zip(ref["method"], ref["value"])],
                             upper=ref["value"].rank(method="first", ascending=False) == 1)
            layer += alt.Chart(ref).mark_rule(strokeDash=[2, 2], strokeWidth=1.5).encode(y=y, color=color)
            for upper, dy in ((True, -7), (False, 9)):
                layer += alt.Chart(ref[ref["upper"] == upper]).mark_text(dy=dy, fontSize=11, align="left", x=2).encode(
                    y=y, text="label:N", color=color)
        panels.append(layer.properties(width=320, height=190))
    rows = [alt.hconcat(*panels[i:i + 2]) for i in range(0, len(panels), 2)]
    return finish(alt.vconcat(*rows).resolve_scale(color="shared", strokeDash="independent"))


SAMPLED = standings.SAMPLED
# The least share a log axis shows: a student no sample can make reproduce a member sits at its edge.
SHARE_FLOOR = 1e-5


def plane_points(group: pd.DataFrame) -> pd.DataFrame:
    """The board's rows as points: leakage (`standings.leak_column`), the strongest attack and perplexity, with the
    frontier over them."""
    leak = standings.leak_column(group)
    frontier = standings.frontier(group.reset_index(drop=True), y=leak, also=("best_attack_auc",)).to_numpy()
    pts = group.assign(on_frontier=frontier,
                       label=[(BASELINE if r else m) for m, r in zip(group["method"], group["reference"])])
    pts["status"] = pts["on_frontier"].map({True: "on the frontier", False: "dominated"})
    return pts


STANDING = {"ranked": "#1f77b4", BASELINE: ROLE_COLOR["baseline"], "not ranked": "#c7c7c7"}


# A board ranked by a measure the chart does not plot otherwise leads with it (the studies' board: the loss gap).
GAP = "membership_gap_student"


def chart_plane(group: pd.DataFrame, primary: str = SAMPLED) -> alt.Chart:
    """Privacy against utility, a row per method in board order, named on the axis (no legend to hunt):
    the loss gap on members seen once where the board ranks by it (`primary`), the share extractable by
    sampling (log scale, where the runs store it), exact-match memorization, the best attack's AUC and
    validation perplexity side by side, each leakage figure with its 95% interval.
    Diamonds mark the frontier (no method is better on all of them); colour says ranked, the baseline,
    or not ranked; the baseline's figure is a dotted line in each panel."""
    pts = plane_points(group)
    pts["standing"] = [BASELINE if ref else ("ranked" if ranked else "not ranked")
                       for ref, ranked in zip(pts["reference"], pts["ranked"].fillna(False).astype(bool))]
    order = pts["label"].tolist()
    base = pts[pts["reference"]]
    color = alt.Color("standing:N", scale=alt.Scale(domain=list(STANDING), range=list(STANDING.values())),
                      legend=alt.Legend(orient="top", title=None, labelFontSize=12))
    shape = alt.Shape("status:N", scale=alt.Scale(domain=["on the frontier", "dominated"], range=["diamond", "circle"]),
                      legend=alt.Legend(orient="top", title=None, labelFontSize=12))
    tip = ["method", "status", alt.Tooltip("mem_rate_student:Q", format=".2%", title="memorization"),
           alt.Tooltip("val_ppl_student:Q", format=".2f", title="val perplexity"),
           alt.Tooltip("best_attack_auc:Q", format=".3f", title="best attack AUC")]
    fields = []
    if standings.has_sampling(pts):  # clipped at SHARE_FLOOR: a log axis has no 0
        for end in ("", "_lo", "_hi"):
            pts[f"{SAMPLED}{end}"] = pts.get(f"{SAMPLED}{end}", pts[SAMPLED]).clip(lower=SHARE_FLOOR)
        base = pts[pts["reference"]]
        tip.insert(2, alt.Tooltip(f"{SAMPLED}:Q", format=".3%", title="extractable by sampling"))
        fields.append((SAMPLED, alt.Axis(title="extractable by sampling, log scale", format="~%", tickCount=4),
                       alt.Scale(type="log", nice=False)))
    if primary == GAP and GAP in pts and pts[GAP].notna().all():
        tip.insert(2, alt.Tooltip(f"{GAP}:Q", format=".3f", title="loss gap, seen once"))
        fields.insert(0, (GAP, alt.Axis(title="loss gap on members seen once, nats", tickCount=4),
                          alt.Scale(zero=False)))
    panels = []
    for i, (field, axis, scale) in enumerate((
            *fields,
            ("mem_rate_student", rate_axis([*pts["mem_rate_student"], *pts["mem_rate_student_hi"]],
                                           "student memorization"),
             rate_scale([*pts["mem_rate_student"], *pts["mem_rate_student_hi"]])),
            ("best_attack_auc", alt.Axis(title="best attack's AUC (0.5: chance)", tickCount=5), alt.Scale(zero=False)),
            # log: perplexity is exp(loss), and one student that stops learning must not flatten the rest
            ("val_ppl_student", alt.Axis(title="validation perplexity, log scale", tickCount=5),
             alt.Scale(type="log", nice=False)))):
        y = alt.Y("label:N", sort=order, title=None, axis=alt.Axis(labelLimit=260) if i == 0 else None)
        x = alt.X(f"{field}:Q", axis=axis, scale=scale)
        layers = []
        if field in ("mem_rate_student", SAMPLED, GAP) and f"{field}_lo" in pts:
            layers.append(alt.Chart(pts).mark_rule(color="#555555").encode(
                y=y, x=alt.X(f"{field}_lo:Q", axis=axis, scale=scale), x2=f"{field}_hi:Q"))
        if not base.empty and field in base:
            layers.append(alt.Chart(base).mark_rule(strokeDash=[2, 2], color=ROLE_COLOR["baseline"]).encode(x=x))
        layers.append(alt.Chart(pts).mark_point(size=110, filled=True, opacity=0.9).encode(
            y=y, x=x, color=color, shape=shape, tooltip=tip,
            stroke=alt.condition("datum.on_frontier", alt.value("black"), alt.value(None))))
        panels.append(alt.layer(*layers).properties(width=(300, 240, 170)[min(len(fields), 2)], height=alt.Step(20)))
    return finish(alt.hconcat(*panels, spacing=24).resolve_scale(y="shared"))


def chart_overlap(df: pd.DataFrame) -> alt.Chart:
    return finish(alt.Chart(df).mark_bar(color="#555555").encode(
        x=alt.X("members:Q", title="members memorized by exactly these roles", axis=alt.Axis(format="d")),
        y=alt.Y("combo:N", sort="-x", title=None),
        tooltip=["combo", "members"]).properties(height=alt.Step(28)))


def chart_k(df: pd.DataFrame, order: list[str]) -> alt.Chart:
    """Small multiples, one panel per method in board order: its student against the shared teacher and baseline."""
    columns = 4 if len(order) > 3 else max(1, len(order))
    base = alt.Chart(df).mark_line(strokeWidth=2).encode(
        x=alt.X("k:Q", title="k (suffix tokens)"),
        y=alt.Y("share:Q", title="k-extractable", axis=alt.Axis(format=".0%", tickCount=4)),
        color=alt.Color("role:N", scale=role_scale(), legend=alt.Legend(orient="top", title=None)),
        tooltip=["method", "role", "k", alt.Tooltip("share:Q", format=".1%")]).properties(width=230, height=130)
    return finish(base.facet(facet=alt.Facet("method:N", sort=order, title=None,
                                             header=alt.Header(labelFontSize=13, labelFontWeight="bold")),
                             columns=columns))


def chart_zlib(df: pd.DataFrame) -> alt.Chart:
    return finish(alt.Chart(df).mark_circle(opacity=0.45, size=22).encode(
        x=alt.X("zlib_bits:Q", title="zlib entropy (bits)", scale=alt.Scale(zero=False)),
        y=alt.Y("log_prob:Q", title="log-probability of the example"),
        color=alt.Color("role:N", scale=role_scale(), legend=alt.Legend(orient="top", title=None)),
        tooltip=["sample_id", "role", "memorized", "repeats", alt.Tooltip("log_prob:Q", format=".1f")]), 320)


def chart_roc(df: pd.DataFrame) -> alt.Chart:
    """Log axes with headroom above TPR 1, so a perfect attack's curve is drawn, not hidden on the frame;
    roles in their colours, each with its AUC in the legend."""
    df = df[(df["fpr"] > 0) & (df["tpr"] > 0)]
    roles = [r for r in ROLE_COLOR if r in set(df["role"])]
    auc = df.groupby("role")["auc"].first()
    names = ", ".join(f"'{r}': '{r} (AUC {auc[r]:.3f})'" for r in roles)
    lo = max(1e-4, min(1e-3, float(df["fpr"].min()) if len(df) else 1e-3, float(df["tpr"].min()) if len(df) else 1e-3))
    diag = alt.Chart(pd.DataFrame({"x": [lo, 1], "y": [lo, 1]})).mark_line(color="#999", strokeDash=[3, 3]).encode(
        x="x:Q", y="y:Q")
    roc = alt.Chart(df).mark_line(strokeWidth=2.5, interpolate="step-after").encode(
        x=alt.X("fpr:Q", title="false-positive rate", scale=alt.Scale(type="log", domain=[lo, 1], nice=False)),
        y=alt.Y("tpr:Q", title="true-positive rate", scale=alt.Scale(type="log", domain=[lo, 1.6], nice=False),
                axis=alt.Axis(values=[v for v in (1e-4, 1e-3, 1e-2, 1e-1, 1) if v >= lo], format="~g")),
        color=alt.Color("role:N", scale=role_scale(roles),
                        legend=alt.Legend(title=None, orient="top", labelExpr=f"{{{names}}}[datum.label]")),
        strokeDash=alt.StrokeDash("role:N", scale=alt.Scale(domain=roles, range=[[1, 0], [8, 3], [2, 2]][:len(roles)]),
                                  legend=None),
        tooltip=["role", alt.Tooltip("fpr:Q", format=".4f"), alt.Tooltip("tpr:Q", format=".3f"),
                 alt.Tooltip("auc:Q", format=".3f")])
    return finish(diag + roc, 320)


# ------------------------------------------------------------ plain text and private text
