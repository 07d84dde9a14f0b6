"""Reading the store back: one run's report, and the leaderboard. All filters are query parameters."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from harness.contract.specs import ROLE_ORDER_SQL, ROLES
from harness.errors import UsageError, unknown
from harness.leaderboard import ranking
from harness.measure.stats import MIN_COUNT, MIN_FALSE_POSITIVES, stored_count
from harness.store import tables
from harness.store.database import Store
from harness.store.labels import COLUMNS, FIGURES, family_label


def summary(metrics: dict[str, float], models: list[dict[str, Any]], n_members: int) -> str:
    """The three roles side by side, then the inheritance figures."""
    rows = []
    for m in models:
        role = m["role"]
        rate = metrics.get(f"mem_rate_{role}")
        memorized = "n/a" if rate is None else f"{round(rate * n_members)}/{n_members}"
        rows.append([role, m["model_name"], tables.count(m["n_params"]), memorized, tables.pct(rate),
                     tables.pct(metrics.get(f"nonmember_rate_{role}")), tables.num(metrics.get(f"val_ppl_{role}")),
                     "cache" if m["cached"] else f"trained {m['train_seconds']:.0f}s"])
    table = tables.render(["role", "model", "params", "memorized", "mem rate", "non-member rate", "val ppl", "source"],
                          rows)
    g = metrics.get
    inheritance = (
        f"teacher-exclusive {int(g('teacher_exclusive') or 0)}, inherited by the student {int(g('inherited') or 0)} "
        f"(inheritance rate {tables.pct(g('inheritance_rate'))}); easy share {tables.pct(g('easy_share'))}; "
        f"student-only {int(g('student_only') or 0)}; reduction vs baseline {tables.num(g('reduction'), 2, 'x')}"
        + (f" (n/a: a ratio needs {MIN_COUNT} or more memorized members)"
           if any(_nan(g(k)) for k in ("reduction", "inheritance_rate", "easy_share")) else "")
    )
    lines = [table, "", inheritance]
    start = g("val_ppl_start_student")
    if not _nan(start):
        lines.append(f"the student's start (the small model before fine-tuning, which saw no member): validation "
                     f"perplexity {tables.num(start)}")
    losses = [f"{role} {g(f'train_loss_first_{role}'):.3f} -> {g(f'train_loss_last_{role}'):.3f}" for role in ROLES
              if not _nan(g(f"train_loss_first_{role}")) and not _nan(g(f"train_loss_last_{role}"))]
    if losses:
        lines.append("training loss, first epoch -> last: " + ", ".join(losses))
    if not _nan(g("dp_noise_multiplier")):
        eps = "infinite (no noise)" if g("dp_noise_multiplier") == 0 else (
            "none claimed (shuffled batches)" if _nan(g("dp_epsilon")) else f"{g('dp_epsilon'):.2f}")
        lines.append(f"the student trained with DP-SGD: epsilon {eps} at delta {g('dp_delta'):.2g}; noise multiplier "
                     f"{g('dp_noise_multiplier'):.3g}, sampling rate {g('dp_sample_rate'):.3g}, "
                     f"{int(g('dp_steps'))} steps over {int(g('dp_records'))} records")
    quiet = exact_match_note(metrics, n_members)
    if quiet:
        lines.append(quiet)
    return "\n".join(lines)


def exact_match_note(metrics: dict[str, float], n_members: int) -> str | None:
    """One line when exact match says too little to tell the roles apart, and where to look instead."""
    found = {role: stored_count({**metrics, "n_members": n_members}, f"memorized_{role}") for role in ROLES}
    counts = {r: int(c) for r, c in found.items() if not math.isnan(c)}
    if not counts or max(counts.values()) >= MIN_COUNT:
        return None
    said = ", ".join(f"{r} {c}" for r, c in counts.items())
    return (f"exact match says little here: {said} of {n_members} members memorized, fewer than {MIN_COUNT}, so "
            "no ratio is given; the roles are told apart by k-extractability at smaller k, approximate match and "
            "the membership attacks (`harness show`)")


def _nan(v) -> bool:
    return v is None or v != v


def attack_table(metrics: dict[str, float]) -> str:
    """Membership attacks: AUC and TPR at 1% and 0.1% FPR per attack and role, with 95% intervals."""
    pairs = sorted({tuple(n.split("_")[1:3]) for n in metrics if n.startswith("auc_") and not n.endswith(("_lo", "_hi"))},
                   key=lambda p: (p[0], ROLES.index(p[1]) if p[1] in ROLES else 9))
    if not pairs:
        return ""

    def cell(name: str, fmt) -> str:
        v = metrics.get(name)
        return "n/a" if _nan(v) else f"{fmt(v)} [{fmt(metrics.get(name + '_lo'))}, {fmt(metrics.get(name + '_hi'))}]"

    rows = [[attack, role, cell(f"auc_{attack}_{role}", lambda v: tables.num(v, 3)),
             cell(f"tpr_1_{attack}_{role}", tables.pct), cell(f"tpr_0.1_{attack}_{role}", tables.pct)]
            for attack, role in pairs]
    out = tables.render(["attack", "role", "AUC [95%]", "TPR at 1% FPR", "TPR at 0.1% FPR"], rows)
    if any(r[3] == "n/a" or r[4] == "n/a" for r in rows):
        out += (f"\nTPR n/a: the non-members allow fewer than {MIN_FALSE_POSITIVES} false positives at that FPR "
                f"(1% needs {MIN_FALSE_POSITIVES * 100:,} non-members, 0.1% {MIN_FALSE_POSITIVES * 1000:,})")
    return out


def approx_line(metrics: dict[str, float]) -> str:
    parts = [f"{role} {tables.pct(metrics[f'approx_match_{role}'])} of tokens, edit distance "
             f"{tables.num(metrics.get(f'edit_distance_{role}'), 3)}" for role in ROLES if f"approx_match_{role}" in metrics]
    return "generated continuations of sampled members: " + "; ".join(parts) if parts else ""


def resolve_run_id(store: Store, run_id: str) -> str:
    if run_id == "latest":
        _, rows = store.query("SELECT run_id FROM runs ORDER BY started_at DESC LIMIT 1")
        if not rows:
            raise UsageError(f"no runs in {store.path} yet")
        return rows[0][0]
    _, rows = store.query("SELECT run_id FROM runs WHERE starts_with(run_id, ?)", [run_id])
    if len(rows) == 1:
        return rows[0][0]
    if len(rows) > 1:
        raise UsageError(f"run id {run_id!r} is ambiguous: {', '.join(r[0] for r in rows[:5])}")
    _, recent = store.query("SELECT run_id FROM runs ORDER BY started_at DESC LIMIT 50")
    if not recent:
        raise UsageError(f"no run {run_id!r}: {store.path} holds no runs yet")
    raise unknown("run", run_id, [r[0] for r in recent])


def student_recipe(store: Store, run: dict[str, Any]) -> str:
    """How the run's student was trained: the recipe its checkpoint was trained and keyed by (its
    `training.json`), or, where that folder is not on this machine (an imported run, a cleared
    cache), the run's preset with the method's overrides as its plugin declares them here."""
    from pathlib import Path

    from harness.config.registry import Training

    _, rows = store.query("SELECT artifact_path FROM models WHERE run_id = ? AND role = 'student'", [run["run_id"]])
    written = Path(rows[0][0]) / "training.json" if rows and rows[0][0] else None
    try:
        return Training(**json.loads(written.read_text())["training"]).describe() + " (as trained)"
    except (AttributeError, OSError, KeyError, TypeError, ValueError):
        pass
    try:
        preset = Training(**json.loads(run["preset_values"])["student"])
    except (KeyError, TypeError, ValueError):
        return "unknown"
    from harness.config import plugins, registry
    from harness.contract.specs import describe_training

    try:
        method = plugins.load(registry.load()).method(run["method"])
    except UsageError:
        return f"{preset.describe()} (the preset's; method {run['method']} is not registered here to say more)"
    if not method.training:
        return f"{preset.describe()} (the preset's)"
    return (f"{preset.overlaid(method.training).describe()} (the preset's with {describe_training(method.training)}, "
            "as the method declares it)")


def show(store: Store, run_id: str) -> str:
    run_id = resolve_run_id(store, run_id)
    cols, rows = store.query("SELECT * FROM runs WHERE run_id = ?", [run_id])
    run = dict(zip(cols, rows[0]))
    lines = [f"run {run_id}: {run['status']}" + (f" ({run['error']})" if run["error"] else "")]
    for label, value in (
        ("family / dataset", f"{family_label(run['family'], run.get('family_args'))} / {run['dataset']} "
                             f"(preset {run['preset']})"),
        ("method", f"{run['method']} {run['method_args']} (teacher access: {run['teacher_access']})"),
        ("student recipe", student_recipe(store, run)),
        ("seed", run["seed"]), ("examples", f"{run['n_members']} members, {run['n_nonmembers']} non-members, "
                                            f"prefix {run['prefix_len']} + suffix {run['suffix_len']} tokens"),
        ("dataset hash", run["dataset_hash"]), ("config hash", run["config_hash"]),
        ("harness / commit", f"{run['harness_version']} / {run['git_commit']}"),
        ("torch / transformers", f"{run['torch_version']} / {run['transformers_version']} on {run['device']}"),
        ("remote code", "trusted (--trust-remote-code)" if run["trust_remote_code"] else "not trusted"),
        ("distillation filter", run.get("filter") or "none"),
        ("attack reference", run.get("reference") or "default: for every role, the small model before fine-tuning"),
        ("started / finished", f"{run['started_at']} / {run['finished_at']}"),
        ("seconds per stage", _stage_seconds(run["stage_seconds"])),
    ):
        lines.append(f"  {label:<22}{value}")
    if run["status"] != "finished":
        lines.append("\nThis run did not finish: it has no results.")
        return "\n".join(lines)
    _, metric_rows = store.query("SELECT name, value FROM metrics WHERE run_id = ?", [run_id])
    metrics = dict(metric_rows)
    mcols, mrows = store.query("SELECT * FROM models WHERE run_id = ? ORDER BY "
                               f"{ROLE_ORDER_SQL}", [run_id])
    models = [dict(zip(mcols, r)) for r in mrows]
    lines += ["", summary(metrics, models, run["n_members"])]
    extra = [t for t in (approx_line(metrics), attack_table(metrics)) if t]
    lines += [x for t in extra for x in ("", t)]
    lines += ["", "Checkpoints (Hugging Face folders):"]
    lines += [f"  {m['role']:<9}{m['artifact_path']}" for m in models]
    lines += ["", "Memorization rate by repetition count in the training set:", by_repeats(store, run_id)]
    return "\n".join(lines)


def by_repeats(store: Store, run_id: str) -> str:
    _, rows = store.query(
        "SELECT repeats, role, count(*), avg(memorized::INTEGER) FROM samples "
        "WHERE run_id = ? AND split = 'member' GROUP BY repeats, role", [run_id])
    table: dict[int, dict[str, float]] = {}
    sizes: dict[int, int] = {}
    for repeats, role, n, rate in rows:
        table.setdefault(repeats, {})[role] = rate
        sizes[repeats] = n
    return tables.render(["repeats", "members", *ROLES],
                         [[r, sizes[r], *(tables.pct(table[r].get(role)) for role in ROLES)] for r in sorted(table)])


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
    privacy: str = ""  # the DP-SGD rows' epsilon sweep and bound check (`harness.leaderboard.privacy`)

    @property
    def title(self) -> str:
        return (f"{family_label(self.family, self.family_args)} on {self.dataset} (preset {self.preset}, "
                f"{self.n_members} members, dataset {self.dataset_hash})")

    def render(self) -> str:
        """The table, a separator before the methods outside the utility band, and what its marks mean."""
        lines = tables.render(BOARD_HEADERS, self.rows).splitlines()
        cut = 2 + self.ranked + 1  # the header, its rule, the ranked rows and the baseline
        if cut < len(lines):
            lines.insert(cut, f"-- {ranking.SEPARATOR} ({self.band}) --")
        notes = [f"Ranked: methods with {self.band}, by student memorization, then the strongest attack; "
                 "=N: a rank the 95% intervals cannot separate.",
                 f"Rates and ratios pool the seeds' counts; n/a: fewer than {MIN_COUNT} memorized members to rest on.",
                 "Exact figures are one machine's: compare a rerun with the interval, not the digits."]
        if self.regime:
            notes.append(f"Note: {self.regime}.")
        return "\n".join([self.title, *lines, *notes, *([self.privacy] if self.privacy else [])])


def leaderboard(store: Store, family: str | None = None, dataset: str | None = None,
                rules: ranking.Ranking = ranking.DEFAULT) -> list[Board]:
    """Methods ranked per board: `harness.leaderboard.board.board`, the app's own ranking, printed as tables.

    Where one seed was run twice, its latest run counts; `rules` are a published board's own.
    """
    from harness.leaderboard import board as board_mod, privacy

    filters = board_mod.Filters(family=[family] if family else None, dataset=[dataset] if dataset else None)
    with store.connect(read_only=True) as con:
        table = board_mod.board(con, filters, rules=lambda keys: rules)
        notes = [board_mod.regime(con, [i for ids in group["run_id"] for i in board_mod.run_ids(ids)])
                 for _, group in board_mod.boards(table)]
        private = [privacy.private(group) for _, group in board_mod.boards(table)]
        dp = [privacy.render(rows, privacy.checks(con, rows)) for rows in private]
    out = []
    for keys, group in board_mod.boards(table):
        rows = []
        for r in group.to_dict("records"):
            name = r["method"]  # the baseline's is ranking.BASELINE_LABEL
            rank = "-" if r["reference"] else (r["rank"] or "-")
            seeds = "-" if r["reference"] else r["seeds"]
            figures = [memorization(r), *(("1.00x", "-", "-") if r["reference"] else
                                          (_cell(k, r[k]) for k in ("reduction", "inheritance_rate", "easy_share"))),
                       _cell("val_ppl_student", r["val_ppl_student"])]
            rows.append([rank, name, r["teacher_access"], seeds, *figures, epsilon(r), r["why"] or ""])
        out.append(Board(keys["family"], keys["dataset"], keys["preset"], keys["dataset_hash"],
                         int(group["n_members"].iloc[0]), rows, keys["family_args"],
                         ranked=int(group["ranked"].sum()), band=rules.band, regime=notes[len(out)],
                         privacy=dp[len(out)]))
    return out


BOARD_HEADERS = ["rank", "method", COLUMNS["teacher_access"][0], COLUMNS["seeds"][0],
                 f"{FIGURES['mem_rate_student']} [95%]", *list(FIGURES.values())[1:], COLUMNS["dp_epsilon"][0],
                 "not ranked because"]


def epsilon(r: dict) -> str:
    """A DP-SGD student's epsilon spent ("inf": no noise, clipping only); "-" for a non-private method."""
    noise = r.get("dp_noise_multiplier")
    if noise is None or noise != noise:
        return "-"
    return "inf" if noise == 0 else tables.num(r.get("dp_epsilon"), 2)


def memorization(r: dict) -> str:
    """The student's memorization with its 95% interval: what a rerun is compared against."""
    return f"{tables.pct(r['mem_rate_student'])} [{tables.pct(r['mem_rate_student_lo'])}, " \
           f"{tables.pct(r['mem_rate_student_hi'])}]"


def _cell(key: str, value: Any) -> str:
    value = None if value is None or value != value else float(value)  # NaN: no figure
    kind = COLUMNS[key][1]
    return tables.pct(value) if kind == "rate" else tables.num(value, 2, "x") if kind == "ratio" else tables.num(value)


def _stage_seconds(raw: str | None) -> str:
    if not raw:
        return "n/a"
    return ", ".join(f"{k} {v:.1f}" for k, v in json.loads(raw).items())
