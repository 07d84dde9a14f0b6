"""What the stored figures are called: every board column's label and kind, and a family's label, defined once."""

from __future__ import annotations

import json

# Every board column, for the app, `harness leaderboard` and the CSV: key -> (label, kind). Rates and shares are
# fractions; a share is shown to a hundredth of a percent (an expected share extractable is often below 0.1%).
COLUMNS = {
    "extractable_rate_student": ("extractable by sampling", "share"),
    "mem_rate_student": ("student memorization", "rate"),
    "membership_gap_student": ("loss gap, seen once", "num"),
    "once_attack_tpr": ("TPR at 1% FPR, seen once", "rate"),
    "reduction": ("reduction vs baseline", "ratio"),
    "inheritance_rate": ("inheritance rate", "rate"),
    "easy_share": ("easy share", "rate"),
    "val_ppl_student": ("validation perplexity", "num"),
    "best_attack_auc": ("best attack AUC", "num"),
    "teacher_access": ("teacher access", "text"),
    "dp_epsilon": ("DP epsilon", "num"),  # a DP-SGD student's epsilon spent; empty for the others
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
# The figures `harness leaderboard` shows beside the measure a board ranks by (`ranking.Ranking.primary`).
FIGURES = {key: COLUMNS[key][0] for key in
           ("mem_rate_student", "once_attack_tpr", "reduction", "inheritance_rate", "val_ppl_student")}

# Figures that lie in [0, 1] whatever they are (by name prefix): a stored value outside is false, in a bundle
# (`leaderboard.validate`) as in a results file (`store.connection.check_values`).
UNIT_FIGURES = ("auc_", "tpr_", "mem_rate_", "nonmember_rate_", "approx_match_", "inheritance_rate", "easy_share",
                "extractable_rate_", "np_rate_", "nonmember_extractable_rate_", "nonmember_np_rate_", "rep", "blind_auc")
# Counts of examples (by name prefix): from 0 to the run's members and non-members.
COUNT_FIGURES = ("memorized_", "teacher_exclusive", "inherited", "easy", "student_only", "extractable_",
                 "nonmember_extractable_", "ties_", "filter_removed")
# Figures above 0 whatever they are: a perplexity is exp(a loss).
POSITIVE_FIGURES = ("val_ppl_",)


def family_label(family: str, family_args: str | None) -> str:
    """`tiny (weights=scratch)` for a family run with arguments; the name alone for one without; the stored
    text itself where it is not a JSON object (a results file is read by value)."""
    try:
        args = json.loads(family_args) if family_args else {}
    except (TypeError, ValueError, RecursionError):
        args = None
    if not isinstance(args, dict):
        return f"{family} ({family_args})"
    return f"{family} ({', '.join(f'{k}={v}' for k, v in args.items())})" if args else str(family)
