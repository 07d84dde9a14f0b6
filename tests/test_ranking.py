"""The ranking rules (harness.leaderboard.ranking): a student that learned nothing cannot win, a diverged
one is said to be, intervals that overlap share a rank; and the shipped board's rank 1 is inside its band."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from harness.leaderboard import standings
from harness.leaderboard.board_specs import load_spec
from harness.leaderboard.ranking import Ranking, rank
from harness.present import board_report
from harness.store import connection
from harness.store.database import Store

PUBLISHED = Path(__file__).resolve().parents[1] / "leaderboards"


def row(method: str, mem: float, ppl: float, lo: float | None = None, hi: float | None = None, **extra) -> dict:
    return {"method": method, "reference": False, "mem_rate_student": mem, "val_ppl_student": ppl,
            "mem_rate_student_lo": mem if lo is None else lo, "mem_rate_student_hi": mem if hi is None else hi, **extra}


def base(mem: float = 0.15, ppl: float = 14.8) -> dict:
    return {**row("(baseline: fine-tuned)", mem, ppl), "reference": True}


def test_a_student_that_learned_nothing_is_listed_after_the_ranked_ones_with_the_reason():
    board = rank(pd.DataFrame([row("minillm", 0.0, 4694.2), row("soft-kd", 0.005, 12.2), base(),
                               row("tvd", 0.0, 38.7), row("gkd", 0.003, 16.5)]))
    assert board["method"].tolist() == ["soft-kd", "(baseline: fine-tuned)", "gkd", "tvd", "minillm"]
    assert board["rank"].tolist() == ["1", "", "", "", ""]
    assert board["ranked"].tolist() == [True, False, False, False, False]
    assert board["why"].iloc[-1] == "not converged: perplexity 4,694.2 against the baseline's 14.8 (317x)"
    assert board["why"].iloc[-2] == "not converged: perplexity 38.7 against the baseline's 14.8 (2.6x)"
    assert board["why"].iloc[2] == "perplexity 16.5 against the baseline's 14.8 (+11%)"  # 16.5 > 1.1 x 14.8


def test_the_band_is_the_boards():
    wide = rank(pd.DataFrame([row("gkd", 0.003, 16.5), row("soft-kd", 0.005, 12.2), base()]), Ranking(slack=0.2))
    assert wide["rank"].tolist() == ["1", "2", ""] and wide["method"].iloc[0] == "gkd"
    with pytest.raises(ValueError, match="order must start with one of extractable_rate_student"):
        Ranking(order=("val_ppl_student",))


def test_a_student_worse_than_its_start_is_marked_diverged():
    board = rank(pd.DataFrame([row("minillm", 0.0, 4694.2, val_ppl_start_student=391.0), base(ppl=14.8)]),
                 Ranking(slack=10))  # diverged comes first, whatever the band
    assert not board["ranked"].iloc[-1]
    assert board["why"].iloc[-1] == "diverged: perplexity 4,694.2 is 12.0x its starting checkpoint's 391.0"


def test_a_student_whose_training_loss_rose_is_not_ranked():
    board = rank(pd.DataFrame([row("minillm", 0.0, 14.0, train_loss_first_student=2.5, train_loss_last_student=3.1),
                               row("soft-kd", 0.005, 14.0, train_loss_first_student=2.5, train_loss_last_student=1.2),
                               row("old", 0.001, 14.0), base()]))  # "old": stored before the loss was kept
    assert board["method"].tolist() == ["old", "soft-kd", "(baseline: fine-tuned)", "minillm"]
    assert board["why"].iloc[-1] == ("not converged: its training loss rose from 2.5 in the first epoch "
                                     "to 3.1 in the last")


def test_overlapping_intervals_share_a_rank_and_the_tie_break_is_the_attack():
    board = rank(pd.DataFrame([
        row("a", 0.002, 12.0, 0.0, 0.006, best_attack_tpr=0.30, best_attack_auc=0.9),
        row("b", 0.002, 12.0, 0.0, 0.006, best_attack_tpr=0.10, best_attack_auc=0.95),
        row("c", 0.004, 12.0, 0.001, 0.010),
        row("d", 0.050, 12.0, 0.040, 0.062), row("e", 0.060, 12.0, 0.050, 0.070), base()]))
    assert board["method"].tolist()[:5] == ["b", "a", "c", "d", "e"]  # equal memorization: the weaker attack first
    assert board["rank"].tolist()[:5] == ["=1", "=1", "=1", "=4", "=4"]


def test_a_ratio_on_the_board_rests_on_pooled_counts():
    seeds = pd.DataFrame({"n_members": [100, 100, 100], "memorized_teacher": [40, 40, 40],
                          "memorized_baseline": [20, 10, 0], "memorized_student": [5, 5, 0],
                          "teacher_exclusive": [10, 10, 10], "inherited": [1, 2, 0], "easy": [4, 4, 0],
                          "mem_rate_teacher": [.4] * 3, "mem_rate_baseline": [.2, .1, 0], "mem_rate_student": [.05, .05, 0]})
    p = standings.pooled(seeds)
    assert p["memorized"] == 10 and p["mem_rate_student"] == pytest.approx(10 / 300)  # the empty seed counts
    assert p["reduction"] == pytest.approx(30 / 10) and p["reduction_lo"] < 3 < p["reduction_hi"]
    assert p["inheritance_rate"] == pytest.approx(3 / 30) and p["easy_share"] == pytest.approx(8 / 10)
    assert math.isnan(standings.pooled(seeds.iloc[:1])["reduction"])  # 5 memorized: too few for a ratio


def test_the_shipped_boards_rank_1_is_inside_its_band_in_the_cli():
    spec = load_spec("default", PUBLISHED)
    with connection.reading(spec.snapshot) as con:
        table = standings.board(con, rules=lambda keys: spec.ranking)
    ranked = table[table["ranked"]]
    baseline = table[table["reference"]].iloc[0]
    assert not ranked.empty
    assert (ranked["val_ppl_student"] <= baseline["val_ppl_student"] * (1 + spec.ranking.slack)).all()
    assert {"minillm", "tvd"} <= set(table.loc[~table["ranked"] & ~table["reference"], "method"])
    [cli] = board_report.leaderboard(Store(spec.snapshot))
    assert cli.rows[0][2] == ranked["method"].iloc[0] and cli.rows[0][0] in ("1", "=1")
    assert "minillm" not in [r[2] for r in cli.rows[:cli.ranked]]
    # trained to their best validation loss the students memorize almost nothing by exact match, so the
    # board's automatic note on where memorization comes from has nothing to rest on, and is not printed
    assert cli.regime is None and "Note: memorization here comes from repeated" not in cli.render()
