"""A board's DP-SGD rows (`dp-kd`, `dp-ft`): the epsilon sweep and the check of each against its bound.

The sweep puts each private row's epsilon beside what was measured (student memorization, the
strongest attack, validation perplexity); the check (`harness.measure.dp_bound`) asks whether the
loss attack's TPR stays under what the row's (epsilon, delta) allows. `harness leaderboard` prints
both under the board (`harness.present.board_report`), and the app charts the sweep against soft-kd and the baseline.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from harness.leaderboard.standings import leak_column, run_ids
from harness.measure.dp_bound import AUDIT_FPRS, check
from harness.store import read
from harness.store.labels import COLUMNS


def private(group: pd.DataFrame) -> pd.DataFrame:
    """The board's rows trained with DP-SGD (a noise multiplier stored), by method then epsilon."""
    if "dp_noise_multiplier" not in group or group.empty:
        return group.iloc[0:0]
    rows = group[group["dp_noise_multiplier"].notna() & ~group["reference"].astype(bool)].copy()
    rows["base_method"] = rows["method"].str.split().str[0]
    rows["epsilon"] = [math.inf if noise == 0 else eps for noise, eps in zip(rows["dp_noise_multiplier"],
                                                                            rows["dp_epsilon"])]
    return rows.sort_values(["base_method", "epsilon"], kind="stable")


def epsilon_label(epsilon: float) -> str:
    """The spent epsilon as the tables and the chart's axis show it: 3 significant digits, or "inf"."""
    return "inf" if math.isinf(epsilon) else f"{epsilon:.3g}"


def _losses(con, ids: list[str], role: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """Each run's loss-attack scores (minus the per-example loss: higher, more likely a member) for a role."""
    samples = read.member_losses(con, ids, role)
    return [(-g.loc[g["split"] == "member", "loss"].to_numpy(np.float64),
             -g.loc[g["split"] == "nonmember", "loss"].to_numpy(np.float64)) for _, g in samples.groupby("run_id")]


def at_fpr(found: pd.DataFrame, fpr: float = AUDIT_FPRS[0]) -> pd.DataFrame:
    """The checks at one FPR (the board's 1% by default), one row per method, indexed by it."""
    return found[found["fpr"] == fpr].set_index("method") if not found.empty else pd.DataFrame()


def checks(con, rows: pd.DataFrame) -> pd.DataFrame:
    """The bound check per private row and FPR, from the student's stored per-member losses.

    The loss attack (a lower loss, more likely a member) is the one every run stores per example;
    each seed's threshold is its own non-members' quantile, and the TPR pools the seeds."""
    out = []
    for r in rows.to_dict("records"):
        ids = run_ids(r["run_id"])
        delta = read.metric_max(con, ids, "dp_delta")
        runs = _losses(con, ids, "student")
        if not runs or delta is None or delta != delta:
            continue
        for c in check(runs, r["epsilon"], float(delta), AUDIT_FPRS):
            out.append({"method": r["method"], "base_method": r["base_method"], "epsilon": r["epsilon"],
                        "delta": float(delta), "fpr": c.fpr, "fpr_hi": c.fpr_hi, "tpr": c.tpr, "tpr_lo": c.tpr_lo,
                        "tpr_hi": c.tpr_hi, "bound": c.bound, "verdict": c.verdict, "shown": c.shown})
    return pd.DataFrame(out)


def reference_tpr(con, group: pd.DataFrame, method: str = "soft-kd", fpr: float = AUDIT_FPRS[0]) -> dict[str, float]:
    """The loss attack's pooled TPR at `fpr` on soft-kd's students and on the baseline: the sweep's references."""
    out = {}
    row = group[group["method"] == method]
    if not row.empty:
        ids = run_ids(row["run_id"].iloc[0])
        for who, role in ((method, "student"), ("baseline", "baseline")):
            [c, *_] = check(_losses(con, ids, role), math.inf, 0.0, (fpr,)) or [None]
            if c is not None:
                out[who] = c.tpr
    return out


def chart_data(rows: pd.DataFrame, found: pd.DataFrame, group: pd.DataFrame,
               tpr_refs: dict[str, float]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The app's sweep chart: (points: one per private row and panel, panels in order; references: soft-kd and
    the baseline). The first panel plots the board's own leakage share (`standings.leak_column`)."""
    low = at_fpr(found)
    columns = panel_columns(leak_column(group))
    points, seen = [], []
    for r in rows.to_dict("records"):
        values = {p: (r[col], r.get(f"{col}_lo"), r.get(f"{col}_hi")) for p, col in columns.items() if col}
        if r["method"] in low.index:
            c = low.loc[r["method"]]
            values[TPR_PANEL] = (c["tpr"], c["tpr_lo"], c["tpr_hi"])
        for panel in columns:
            if panel in values:
                v, lo, hi = values[panel]
                points.append({"panel": panel, "scale": PANEL_SCALE.get(panel, "rate"), "method": r["base_method"],
                               "epsilon": epsilon_label(r["epsilon"]), "value": v, "lo": lo, "hi": hi})
        bound = {"panel": TPR_PANEL, "method": "bound", "epsilon": epsilon_label(r["epsilon"])}
        if r["method"] in low.index and not math.isinf(r["epsilon"]) and bound not in seen:
            seen.append(bound)  # one bound per epsilon: dp-kd's and dp-ft's (epsilon, delta) are the same
            points.append({**bound, "scale": "rate", "value": low.loc[r["method"], "bound"], "lo": None, "hi": None})
    refs = []
    for who, sel in (("soft-kd", group["method"] == "soft-kd"), ("baseline", group["reference"].astype(bool))):
        if sel.any():
            r = group[sel].iloc[0]
            refs += [{"panel": p, "who": who, "value": r[col]} for p, col in columns.items() if col]
    refs += [{"panel": TPR_PANEL, "who": who, "value": v} for who, v in tpr_refs.items()]
    return pd.DataFrame(points), pd.DataFrame(refs)


TPR_PANEL = "loss attack's TPR at 1% FPR"
# How a panel's axis reads: a share (percent from 0), an AUC, or perplexity on a log scale (one student that
# stops learning must not flatten the rest).
PANEL_SCALE = {"strongest attack's AUC": "auc", "validation perplexity": "log"}


def panel_columns(leak: str) -> dict[str, str | None]:
    """The sweep's panels, in order, each with the board's column it plots (the TPR panel's comes from the check):
    the leakage share `leak`, named as the board names it, the strongest attack, the TPR, perplexity."""
    return {COLUMNS[leak][0]: leak, "strongest attack's AUC": "best_attack_auc", TPR_PANEL: None,
            "validation perplexity": "val_ppl_student"}

