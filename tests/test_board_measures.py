"""A board's rows compared paired on the stored examples: measures, rank intervals, sections, a shared teacher."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from harness.errors import UsageError
from harness.leaderboard import measures, standings
from harness.leaderboard.publish import refuse_unshared
from harness.leaderboard.ranking import BASELINE_LABEL, Ranking, rank
from harness.measure.extract import IMPOSSIBLE
from harness.runtime.cache import MANIFEST, weights_hash

N, K = 60, 80  # members, non-members


def examples(runs: dict[str, dict], seed: int = 0) -> pd.DataFrame:
    """`read.example_values` rows: per run, the student's and the baseline's value on every example.

    `runs[run_id]` gives "extractable" (members whose suffix one sample reproduces with chance 1; the rest
    cannot be sampled) and "gap" (the members' suffix loss below the non-members')."""
    rng = np.random.default_rng(seed)
    rows = []
    for run_id, spec in runs.items():
        for role in ("student", "baseline"):
            for i in range(N):
                rows.append({"run_id": run_id, "role": role, "sample_id": f"m{i:06d}", "split": "member",
                             "repeats": 1 if i % 2 else 4, "memorized": float(i < spec.get("exact", 0)),
                             "suffix_loss": 2.0 - spec.get("gap", 0.0) + rng.normal(0, 0.1),
                             "sample_logprob": 0.0 if i < spec.get("extractable", 0) else IMPOSSIBLE})
            for i in range(K):
                rows.append({"run_id": run_id, "role": role, "sample_id": f"n{i:06d}", "split": "nonmember",
                             "repeats": 1, "memorized": 0.0, "suffix_loss": 2.0 + rng.normal(0, 0.1),
                             "sample_logprob": IMPOSSIBLE})
    return pd.DataFrame(rows)


def test_extractable_share_and_gap_resolve_what_exact_match_cannot():
    ex = examples({"a0": {"extractable": 0}, "a1": {"extractable": 0}, "b0": {"extractable": 12, "gap": 0.5},
                   "b1": {"extractable": 12, "gap": 0.5}})
    rows = [measures.Row("a", {0: "a0", 1: "a1"}), measures.Row("b", {0: "b0", 1: "b1"})]
    c = measures.compare(ex, "extractable_rate_student", rows)
    assert c.estimate.tolist() == pytest.approx([0.0, 12 / N])
    assert c.separated[0, 1] and list(c.rank_lo) == [1, 2] and list(c.rank_hi) == [1, 2]
    exact = measures.compare(ex, "mem_rate_student", rows)  # no member memorized by greedy decoding: a tie
    assert exact.estimate.tolist() == [0.0, 0.0] and not exact.separated.any()
    assert list(exact.rank_lo) == [1, 1] and list(exact.rank_hi) == [2, 2]
    gap = measures.compare(ex, "membership_gap_student", rows)  # members seen once (odd ids) only
    assert gap.estimate[1] == pytest.approx(0.5, abs=0.05) and abs(gap.estimate[0]) < 0.05
    assert measures.separated_pairs(c) == (1, 1) and measures.separated_pairs(exact) == (0, 1)


def test_a_run_without_sampling_values_cannot_be_compared_on_them():
    ex = examples({"a0": {}, "b0": {}})
    ex.loc[ex["run_id"] == "b0", "sample_logprob"] = None
    with pytest.raises(ValueError, match="no member has a sample_logprob"):
        measures.compare(ex, "extractable_rate_student", [measures.Row("a", {0: "a0"}), measures.Row("b", {0: "b0"})])
    assert measures.comparable(ex, "extractable_rate_student") and not measures.comparable(ex.iloc[:0], "mem_rate_student")


def row(method: str, value: float, ppl: float = 12.0, **extra) -> dict:
    return {"method": method, "reference": False, "extractable_rate_student": value, "mem_rate_student": 0.0,
            "val_ppl_student": ppl, **extra}


def base() -> dict:
    return {"method": BASELINE_LABEL, "reference": True, "extractable_rate_student": 0.2, "mem_rate_student": 0.15,
            "val_ppl_student": 12.0}


def test_rows_with_their_own_recipe_sit_in_their_own_section():
    group = pd.DataFrame([row("soft-kd", 0.01), row("dp-ft noise_multiplier=0.0", 0.0, own_recipe="DP-SGD: ..."),
                          row("dedup-ft", 0.001, own_recipe="each member seen once per epoch (deduplicated)"),
                          row("tvd", 0.0, ppl=40.0), base()])
    out = rank(group)
    assert out["method"].tolist() == ["soft-kd", BASELINE_LABEL, "dedup-ft", "dp-ft noise_multiplier=0.0", "tvd"]
    assert out["section"].tolist() == ["ranked", "baseline", "recipe", "recipe", "band"]
    assert out["why"].iloc[2] == "each member seen once per epoch (deduplicated)"
    assert out["rank"].tolist()[:1] == ["1"] and not out["ranked"].iloc[2:].any()


def test_ranks_follow_the_paired_rank_intervals():
    group = pd.DataFrame([row("a", 0.01), row("b", 0.02), row("c", 0.05), base()])
    seen = {}

    def compare(labels, measure):
        seen["labels"], seen["measure"] = list(labels), measure
        return np.array([1, 1, 3]), np.array([2, 2, 3]), (2, 3)  # a and b not separated; c separated from both

    out = rank(group, Ranking(), compare=compare)
    assert seen == {"labels": ["a", "b", "c"], "measure": "extractable_rate_student"}
    assert out["rank"].tolist() == ["=1", "=1", "3", ""] and out["separated"].iloc[0] == "2 of 3"
    h = standings.headline(out)
    assert h.winner is None and h.tied == ("b",) and "cannot separate it from b" in h.why
    alone = rank(group, Ranking(), compare=lambda labels, m: (np.array([1, 2, 3]), np.array([1, 2, 3]), (3, 3)))
    assert alone["rank"].tolist()[:3] == ["1", "2", "3"] and standings.headline(alone).winner == "a"


def test_publish_refuses_rows_trained_against_another_teacher():
    same = [("r1", 0, "soft-kd", "teacher", "h1"), ("r2", 0, "hard-kd", "teacher", "h1"),
            ("r1", 0, "soft-kd", "baseline", "b1"), ("r2", 0, "hard-kd", "baseline", "b1")]
    refuse_unshared("default", same)  # one teacher and one baseline at the seed: accepted
    other = [*same, ("r3", 0, "dp-ft", "teacher", "h2"), ("r3", 0, "dp-ft", "baseline", "b1")]
    with pytest.raises(UsageError, match="at seed 0, dp-ft trained against another teacher than the other 2"):
        refuse_unshared("default", other)
    with pytest.raises(UsageError, match="gkd: no record of the teacher's weights"):
        refuse_unshared("default", [*same, ("r4", 0, "gkd", "teacher", None)])


def test_weights_hash_reads_the_manifest_of_the_weight_files(tmp_path):
    (tmp_path / MANIFEST).write_text(json.dumps({"files": {"model.safetensors": "aa", "config.json": "cc"}}))
    first = weights_hash(tmp_path)
    (tmp_path / MANIFEST).write_text(json.dumps({"files": {"model.safetensors": "aa", "config.json": "dd"}}))
    assert weights_hash(tmp_path) == first  # the config is not the weights
    (tmp_path / MANIFEST).write_text(json.dumps({"files": {"model.safetensors": "ab"}}))
    assert weights_hash(tmp_path) != first
    (tmp_path / MANIFEST).write_text("not json")
    assert weights_hash(tmp_path) is None and weights_hash(tmp_path / "missing") is None
