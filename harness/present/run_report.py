"""One run as text: what `harness eval` prints when it ends (one seed or several), `harness show` and
`harness predict`; its roles side by side, attacks, approximate matches and filter."""

from __future__ import annotations

import json
import math
from typing import Any

from harness import units
from harness.contract.specs import ROLES
from harness.leaderboard.run_lookup import resolve_run_id, student_recipe
from harness.measure.probabilistic import QUERIES
from harness.measure.stats import MIN_COUNT, MIN_FALSE_POSITIVES, stored_count
from harness.present import formats
from harness.store import read
from harness.store.database import Store
from harness.store.labels import family_label


def summary(metrics: dict[str, float], models: list[dict[str, Any]], n_members: int) -> str:
    """The three roles side by side, then the inheritance figures."""
    rows = []
    for m in models:
        role = m["role"]
        rate = metrics.get(f"mem_rate_{role}")
        memorized = f"{round(rate * n_members)}/{n_members}" if _finite(rate) and _finite(n_members) else "n/a"
        rows.append([formats.one_line(role), formats.one_line(m["model_name"]),
                     "n/a" if _nan(m["n_params"]) else units.count(m["n_params"]), memorized, formats.pct(rate),
                     formats.pct(metrics.get(f"nonmember_rate_{role}")), formats.num(metrics.get(f"val_ppl_{role}")),
                     "cache" if m["cached"] else f"trained {formats.num(m['train_seconds'], 0, 's')}"])
    table = formats.render(["role", "model", "params", "memorized", "mem rate", "non-member rate", "val ppl",
                            "source"], rows)
    g = metrics.get
    inheritance = (
        f"teacher-exclusive {_whole(g('teacher_exclusive') or 0)}, inherited by the student {_whole(g('inherited') or 0)} "
        f"(inheritance rate {formats.pct(g('inheritance_rate'))}); easy share {formats.pct(g('easy_share'))}; "
        f"student-only {_whole(g('student_only') or 0)}; reduction vs baseline {formats.num(g('reduction'), 2, 'x')}"
        + (f" (n/a: a ratio needs {MIN_COUNT} or more memorized members)"
           if any(_nan(g(k)) for k in ("reduction", "inheritance_rate", "easy_share")) else "")
    )
    lines = [table, "", inheritance]
    start = g("val_ppl_start_student")
    if not _nan(start):
        lines.append(f"the student's start (the small model before fine-tuning, which saw no member): validation "
                     f"perplexity {formats.num(start)}")
    losses = [f"{role} {g(f'train_loss_first_{role}'):.3f} -> {g(f'train_loss_last_{role}'):.3f}" for role in ROLES
              if not _nan(g(f"train_loss_first_{role}")) and not _nan(g(f"train_loss_last_{role}"))]
    if losses:
        lines.append("training loss, first epoch -> last: " + ", ".join(losses))
    if not _nan(g("dp_noise_multiplier")):
        eps = "infinite (no noise)" if g("dp_noise_multiplier") == 0 else (
            "none claimed (shuffled batches)" if _nan(g("dp_epsilon")) else f"{g('dp_epsilon'):.2f}")
        lines.append(f"the student trained with DP-SGD: epsilon {eps} at delta {_general(g('dp_delta'), '.2g')}; "
                     f"noise multiplier {_general(g('dp_noise_multiplier'), '.3g')}, sampling rate "
                     f"{_general(g('dp_sample_rate'), '.3g')}, {_whole(g('dp_steps'))} steps over "
                     f"{_whole(g('dp_records'))} records")
    sampled = [f"{role} {formats.fine_pct(g(f'extractable_rate_{role}'))} "
               f"({formats.fine_pct(g(f'nonmember_extractable_rate_{role}'))} of non-members)"
               for role in ROLES if not _nan(g(f"extractable_rate_{role}"))]
    if sampled:
        lines.append(f"extractable by sampling (expected share in {QUERIES:,} top-k samples, Hayes et al. 2024): "
                     + ", ".join(sampled))
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
            "no ratio is given; the roles are told apart by extractability by sampling, k-extractability at "
            "smaller k, approximate match and the membership attacks (`harness show`)")


def _nan(v) -> bool:
    return v is None or v != v


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


def _whole(v) -> str:
    """A stored count as a whole number; n/a where there is none."""
    return str(int(v)) if _finite(v) else "n/a"


def _general(v, spec: str) -> str:
    """A stored figure in a format spec (`.3g`); n/a where there is none."""
    return format(v, spec) if _finite(v) else "n/a"


def attack_table(metrics: dict[str, float]) -> str:
    """Membership attacks: AUC and TPR at 1% and 0.1% FPR per attack and role, with 95% intervals."""
    pairs = sorted({tuple(n.split("_")[1:3]) for n in metrics if n.startswith("auc_") and not n.endswith(("_lo", "_hi"))},
                   key=lambda p: (p[0], ROLES.index(p[1]) if p[1] in ROLES else 9))
    if not pairs:
        return ""

    def cell(name: str, fmt) -> str:
        v = metrics.get(name)
        return "n/a" if _nan(v) else formats.with_interval(v, metrics.get(name + "_lo"), metrics.get(name + "_hi"), fmt)

    rows = [[attack, role, cell(f"auc_{attack}_{role}", lambda v: formats.num(v, 3)),
             cell(f"tpr_1_{attack}_{role}", formats.pct), cell(f"tpr_0.1_{attack}_{role}", formats.pct)]
            for attack, role in pairs]
    out = formats.render(["attack", "role", "AUC [95%]", "TPR at 1% FPR", "TPR at 0.1% FPR"], rows)
    if any(r[3] == "n/a" or r[4] == "n/a" for r in rows):
        out += (f"\nTPR n/a: the non-members allow fewer than {MIN_FALSE_POSITIVES} false positives at that FPR "
                f"(1% needs {MIN_FALSE_POSITIVES * 100:,} non-members, 0.1% {MIN_FALSE_POSITIVES * 1000:,})")
    return out


def blind_line(metrics: dict[str, float]) -> str:
    """The run's blind baseline, or "" for a run stored before it."""
    return formats.blind([tuple(metrics.get(f"blind_{k}") for k in ("auc", "auc_lo", "auc_hi"))]) or ""


def approx_line(metrics: dict[str, float]) -> str:
    parts = [f"{role} {formats.pct(metrics[f'approx_match_{role}'])} of tokens, edit distance "
             f"{formats.num(metrics.get(f'edit_distance_{role}'), 3)}"
             for role in ROLES if f"approx_match_{role}" in metrics]
    return "generated continuations of sampled members: " + "; ".join(parts) if parts else ""


def show(store: Store, run_id: str) -> str:
    """`harness show`: one run's provenance, figures, checkpoints and memorization by repeat count."""
    run_id = resolve_run_id(store, run_id)
    with store.reading() as con:  # one read: the row, figures, models and repeats together
        run, metrics, models = read.run_row(con, run_id), read.metrics(con, run_id), read.models(con, run_id)
        repeats = read.repeat_counts(con, run_id)
    student = next((m["artifact_path"] for m in models if m["role"] == "student"), None)
    label = formats.one_line  # every stored text is escaped and bounded: a results file comes from anyone
    lines = [f"run {label(run_id)}: {label(run['status'])}"
             + (f" ({label(run['error'], formats.CELL_CHARS)})" if run["error"] else "")]
    for name, value in (
        ("family / dataset", f"{label(family_label(run['family'], run.get('family_args')))} / {label(run['dataset'])} "
                             f"(preset {label(run['preset'])})"),
        ("method", f"{label(run['method'])} {label(run['method_args'])} (teacher access: "
                   f"{label(run['teacher_access'])})"),
        ("student recipe", student_recipe(run, student)),
        *([("own recipe", run["own_recipe"])] if run.get("own_recipe") else []),  # apart from the board's shared one
        ("seed", run["seed"]), ("examples", f"{run['n_members']} members, {run['n_nonmembers']} non-members, "
                                            f"prefix {run['prefix_len']} + suffix {run['suffix_len']} tokens"),
        ("validation", validation_line(metrics)),
        ("dataset hash", run["dataset_hash"]), ("config hash", run["config_hash"]),
        ("harness / commit", f"{run['harness_version']} / {run['git_commit']}"),
        ("torch / transformers", f"{run['torch_version']} / {run['transformers_version']} on {run['device']}"),
        ("remote code", "trusted (--trust-remote-code)" if run["trust_remote_code"] else "not trusted"),
        ("distillation filter", run.get("filter") or "none"),
        ("attack reference", run.get("reference") or default_reference(run.get("preset_values"))),
        ("started / finished", f"{run['started_at']} / {run['finished_at']}"),
        ("seconds per stage", _stage_seconds(run["stage_seconds"])),
    ):
        lines.append(f"  {name:<22}{label(value, formats.CELL_CHARS)}")
    if run["status"] != "finished":
        lines.append("\nThis run did not finish: it has no results.")
        return "\n".join(lines)
    lines += ["", summary(metrics, models, run["n_members"])]
    trained = {m["role"]: recipe_line(m.get("training")) for m in models}
    if any(trained.values()):  # a run stored before models.training has the student recipe line above alone
        lines += ["", "Recipes, as each role was trained:",
                  *(f"  {label(r)}: {label(t, formats.CELL_CHARS)}" for r, t in trained.items() if t)]
    extra = [t for t in (approx_line(metrics), attack_table(metrics), blind_line(metrics)) if t]
    lines += [x for t in extra for x in ("", t)]
    lines += ["", "Checkpoints (Hugging Face folders):"]
    lines += [f"  {label(m['role']):<9}{label(m['artifact_path'], formats.CELL_CHARS)}" for m in models]
    lines += ["", "Memorization rate by repetition count in the training set:", by_repeats(repeats)]
    return "\n".join(lines)


def default_reference(preset_values: str | None) -> str:
    """The default reference: the student-size start, and whether it knows the dataset's domain."""
    try:
        domain = int(json.loads(preset_values or "{}").get("pretrain_domain_docs", 0))
    except (TypeError, ValueError, AttributeError, OverflowError, RecursionError):
        domain = 0
    if domain > 0:
        return (f"default: for every role, the small model before fine-tuning, pretrained on the generic corpus and "
                f"{domain:,} texts of the dataset's kind that hold no member: a reference that knows the domain")
    return "default: for every role, the small model before fine-tuning (generic corpus only: it does not know the domain)"


def validation_line(metrics: dict[str, float]) -> str:
    """Which texts the validation figures (and early stopping) rest on."""
    n = metrics.get("n_validation")
    if n:
        return (f"{int(n)} held-out texts of their own: they chose where training stopped and give the validation "
                "perplexity; the non-members are only the attacks' negatives")
    return "the non-members (the dataset has no validation split): the validation perplexity is measured on them"


def recipe_line(raw: str | None) -> str | None:
    """`10 epochs, lr 0.002 constant, batch 32, 160 steps`: one role's stored recipe (`models.training`);
    None where there is none, or it is not one (an imported file is read by value)."""
    try:
        t = json.loads(raw)
        extra = "".join(f", {name} {float(t[k]):g}" for k, name in (("warmup_ratio", "warm-up"),
                                                                    ("weight_decay", "weight decay")) if t[k])
        steps = "steps unknown" if t["steps"] is None else f"{int(t['steps'])} steps"
        epochs = f"{int(t['epochs'])} epochs"
        if t.get("patience"):  # early stopping: the epochs trained and the one kept, from the validation split
            epochs = (f"stopped after epoch {int(t['epochs_run'])} of up to {int(t['epochs'])} (patience "
                      f"{int(t['patience'])}), kept epoch {int(t['kept_epoch'])}, the best validation loss")
        return f"{epochs}, lr {float(t['lr']):g} {t['schedule']}, batch {int(t['batch_size'])}{extra}, {steps}"
    except (KeyError, TypeError, ValueError, OverflowError, RecursionError):  # not one: e.g. epochs 1e400
        return None


def by_repeats(rows: list[tuple]) -> str:
    """`read.repeat_counts`'s rows as a table: a row per repetition count, a column per role."""
    table: dict[int, dict[str, float]] = {}
    sizes: dict[int, int] = {}
    for repeats, role, n, memorized in rows:
        table.setdefault(repeats, {})[role] = memorized / n
        sizes[repeats] = n
    return formats.render(["repeats", "members", *ROLES],
                          [[r, sizes[r], *(formats.pct(table[r].get(role)) for role in ROLES)] for r in sorted(table)])


def _stage_seconds(raw: str | None) -> str:
    """`data 1.2, teacher 40.1, ...`: the stored seconds per stage; n/a where they are not that (read by value)."""
    try:
        stages = json.loads(raw)
        return ", ".join(f"{k} {float(v):.1f}" for k, v in stages.items()) if stages else "n/a"
    except (AttributeError, TypeError, ValueError, OverflowError, RecursionError):
        return "n/a"


def filter_line(metrics: dict[str, float]) -> str:
    """`--filter predicted`: what was left out of distillation and what it changed; '' for an unfiltered run."""
    if "filter_removed" not in metrics:
        return ""
    n = metrics.get
    return (f"filter: {int(n('filter_removed'))} members predicted to be memorized were left out of distillation "
            f"(predictor AUC {formats.num(n('filter_predict_auc'), 3)}); student memorization "
            f"{formats.pct(n('filter_unfiltered_mem_rate_student'))} unfiltered -> {formats.pct(n('mem_rate_student'))}; "
            f"validation perplexity {formats.num(n('filter_unfiltered_val_ppl_student'))} -> "
            f"{formats.num(n('val_ppl_student'))}")


def eval_report(setup, req, result) -> str:
    """What `harness eval` prints when its run ends: the setting, the roles side by side, the attacks, the filter,
    and where the run is stored. `setup` is the run's resolved plugins and preset (`Protocol.setup`)."""
    models = [{"role": i.role, "model_name": f"{setup.family.name}-{i.size}", "n_params": i.n_params,
               "cached": i.cached, "train_seconds": i.train_seconds} for i in result.models.values()]
    out = [f"\n{setup.family.name} / {setup.dataset.name} / {setup.method.name} (seed {req.seed}): "
           f"memorization of {result.n_members} members, prefix {setup.preset.prefix_len} + suffix "
           f"{setup.preset.suffix_len} tokens\n",
           summary(result.metrics, models, result.n_members)]
    out += [f"\n{text}" for text in (approx_line(result.metrics), attack_table(result.metrics),
                                     blind_line(result.metrics), filter_line(result.metrics)) if text]
    total = sum(result.stage_seconds.values())
    out.append(f"\nrun {result.run_id} finished in {total:.0f}s; stored in {req.db} (`harness show {result.run_id}`)")
    return "\n".join(out)


SEED_FIGURES = ("mem_rate_teacher", "mem_rate_baseline", "mem_rate_student", "reduction", "inheritance_rate",
                "easy_share", "val_ppl_student", "auc_loss_student")


def seeds_report(req, group) -> str:
    """`harness eval --seeds N`: each figure's mean, 95% interval and per-seed values over the group's runs, the
    members memorized at every seed, and the attacks over seeds (`harness.protocol.seeds`)."""
    rows = []
    for name in SEED_FIGURES:
        if name in group.summary:
            n, mean, lo, hi = group.summary[name]
            fmt = formats.pct if name.startswith(("mem_rate", "inheritance", "easy")) else formats.num
            per_seed = ", ".join(fmt(r.metrics.get(name)) for r in group.runs.values())
            rows.append([name, fmt(mean), f"[{fmt(lo)}, {fmt(hi)}]", per_seed])
    seeds = list(group.runs)
    out = [f"\n{req.method} over seeds {seeds[0]}..{seeds[-1]} (group {group.group_id}): mean, 95% interval, per seed\n",
           formats.render(["figure", "mean", "95% interval", "per seed"], rows, right=[False, True, True, False]),
           "\nmembers memorized at every seed: " + ", ".join(f"{role} {len(ids)}" for role, ids in group.always.items())]
    last = list(group.runs.values())[-1]
    over_seeds = {}
    for name, (_, mean, lo, hi) in group.summary.items():
        if name.startswith(("auc_", "tpr_")) and not name.endswith(("_lo", "_hi")):
            over_seeds.update({name: mean, f"{name}_lo": lo, f"{name}_hi": hi})
    table = attack_table(over_seeds)
    if table:
        out.append(f"\nmembership attacks, mean over seeds [95% interval over seeds]:\n{table}")
    out.append(f"\nruns {', '.join(r.run_id for r in group.runs.values())}; stored in {req.db} "
               f"(`harness show {last.run_id}`)")
    return "\n".join(out)


def predict_report(run_id: str, report, ids, risk) -> str:
    """`harness predict`: the predictor's cross-validated figures and coefficients, and the members it flags
    (`harness.measure.predict`)."""
    from harness.measure.predict import FEATURES, THRESHOLD  # scikit-learn: loaded by the command that needs it

    flagged = int((risk >= THRESHOLD).sum())
    return "\n".join([
        f"run {run_id}: predicting the student's memorized members from what is known before distilling\n"
        f"{report.n} members, {report.n_positive} memorized by the student; logistic regression, "
        f"{report.splits} stratified 70/30 splits\n",
        formats.render(["figure", "mean", "spread (sd)"], [
            ["AUC", formats.num(report.auc_mean, 3), formats.num(report.auc_std, 3)],
            ["precision", formats.num(report.precision_mean, 3), formats.num(report.precision_std, 3)],
            ["recall", formats.num(report.recall_mean, 3), formats.num(report.recall_std, 3)]]),
        "\nstandardized coefficients (per sd; perplexities as logs):",
        formats.render(["feature", "coefficient"], [[f, formats.num(report.coefficients[f], 3)] for f in FEATURES]),
        f"\nout-of-fold risk stored for {len(ids)} members (features.risk); {flagged} at or above {THRESHOLD}: "
        f"what `harness eval --filter predicted` leaves out"])
