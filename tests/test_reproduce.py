"""`harness reproduce`: verdicts that count honestly, pooled counts, magnitudes, stored, nothing rerun."""

from __future__ import annotations

import math
from dataclasses import replace

import duckdb
import numpy as np
import pytest

from conftest import SMALL_DATA
from harness.cli import main
from harness.measure import twoway
from harness.measure.stats import MIN_COUNT, rate_ratio, wilson
from harness.present.reproduce_report import strata_table, table
from harness.protocol import reproduce as R
from harness.protocol.reproduce import (
    FINDINGS,
    RUNS,
    Reproduction,
    aggregate,
    count_line,
    count_ratio,
    magnitude,
    one_sided_ratio,
    verdict,
)
from harness.store import connection, read
from harness.store.database import Store

BY_NAME = {f.name: f for f in FINDINGS}
UP, DOWN, BAND = (1, math.inf), (-math.inf, 1), (0.5, 2)


def test_every_finding_cites_its_study_and_has_a_published_side():
    assert len(BY_NAME) == len(FINDINGS)  # each finding named once
    for name in ("hard-KD reduction", "soft vs hard rate", "predictor beyond repeats", "high-entropy confidence",
                 "memorization vs MIA ranking", "reverse KL vs fine-tuning", "teacher-to-student leakage",
                 "filtering vs random removal", "filtering vs matched removal"):
        assert name in BY_NAME
    for f in FINDINGS:
        assert f.source.split(",")[0] in (R.BORKAR, R.SINGH, R.ZHANG) and "," in f.source, f.source
        assert f.side[0] < f.side[1]
    # the quoted figure is the measured quantity: containment is a share (80%), Singh's is reverse KL / fine-tuning
    assert BY_NAME["containment"].figure == 0.80 and BY_NAME["containment"].unit == "%"
    assert BY_NAME["reverse KL vs fine-tuning"].figure == pytest.approx(6.0 / 65.4)
    assert BY_NAME["reverse vs forward KL"].figure is None and "%" not in BY_NAME["reverse vs forward KL"].published
    assert BY_NAME["soft vs hard rate"].side == (0.5, 2) and "[0.5x, 2x]" in BY_NAME["soft vs hard rate"].claim
    assert BY_NAME["easy share"].side[0] >= 0.9 and BY_NAME["soft-KD inheritance"].side[1] <= 0.02


def test_each_band_is_the_claims_own_words_quoted():
    # "more than 50% less" is > 2x, for the soft-KD reduction as for the hard-KD one
    for name in ("reduction", "hard-KD reduction"):
        assert BY_NAME[name].side == (2, math.inf) and '"more than 50% less"' in BY_NAME[name].claim
    assert BY_NAME["easy share"].side == (0.95, math.inf) and '"over 95%"' in BY_NAME["easy share"].claim
    assert BY_NAME["filtering"].side == (-math.inf, 0.1) and '"1,698 -> 4"' in BY_NAME["filtering"].claim
    # a claim stated as a figure is judged on its direction; the figure sets the magnitude
    assert BY_NAME["hard/soft inheritance"].side == (1, math.inf) and '"2.7x"' in BY_NAME["hard/soft inheritance"].claim
    assert '"80%"' in BY_NAME["containment"].claim
    assert all('"' in f.claim for f in FINDINGS if f.figure is not None)  # every figure's words, quoted


def test_each_verdict_is_reachable_from_hand_built_intervals():
    assert verdict(3.0, 1.5, 4.5, UP, 3, 3) == "holds"
    assert verdict(0.5, 0.3, 0.8, UP, 3, 3) == "fails"
    assert verdict(0.8, 0.3, 1.0, UP, 3, 3) == "fails"  # touching the line is not on the published side
    assert verdict(3.0, 0.8, 5.2, UP, 3, 3) == "not established"  # mean on the side, interval crosses
    assert verdict(0.9, 0.5, 1.3, UP, 3, 3) == "not established"  # mean off the side, interval crosses
    assert verdict(3.0, 1.5, 4.5, UP, 2, 3) == "not established"  # a seed gave no value
    assert verdict(3.0, 1.5, 4.5, UP, 1, 1) == "not established"  # one seed
    assert verdict(0.5, 0.3, 0.8, UP, 1, 1) == "not established"
    assert verdict(math.nan, math.nan, math.nan, UP, 0, 3) == "n/a"
    assert verdict(-0.2, -0.3, -0.1, (-math.inf, 0), 3, 3) == "holds"
    # an equivalence band: similar holds inside it, fails wholly outside, and not established across an edge
    assert verdict(1.1, 0.8, 1.5, BAND, 3, 3) == "holds"
    assert verdict(30.0, 13.0, 70.0, BAND, 3, 3) == "fails"
    assert verdict(0.2, 0.1, 0.4, BAND, 3, 3) == "fails"
    assert verdict(1.8, 1.2, 2.6, BAND, 3, 3) == "not established"


def test_magnitude_compares_the_published_figure_with_the_interval():
    assert magnitude(1.5, 4.5, 2.4, UP) == "within"
    assert magnitude(3.0, 60.6, 2.4, UP) == "stronger"  # 31.8x against 2.4x is not agreement
    assert magnitude(1.1, 2.0, 2.4, UP) == "weaker"
    assert magnitude(0.0, 0.02, 0.0024, DOWN) == "within"
    assert magnitude(0.9, 0.95, 0.957, (0.9, math.inf)) == "weaker"
    assert magnitude(0.01, 0.05, 0.092, DOWN) == "stronger"
    assert magnitude(0.2, 0.5, 0.092, DOWN) == "weaker"
    # an interval that holds the figure but crosses the band's edge says nothing about it
    assert magnitude(0.003, 0.083, 0.009, (-math.inf, 0.02)) == "uninformative"  # 1.5% [0.3%, 8.3%] against 0.9%
    assert magnitude(0.8, 5.2, 2.4, UP) == "uninformative"
    assert magnitude(1.5, 4.5, None, UP) == ""
    assert magnitude(math.nan, math.nan, 2.4, UP) == ""


def test_ratios_pool_counts_over_seeds_and_say_na_below_min_count():
    f = BY_NAME["reduction"]  # baseline / soft student, from counts
    seeds = [(79, 512, 2, 512), (75, 512, 6, 512), (74, 512, 4, 512)]
    row = aggregate(f, seeds)  # no per-member totals: each rate's design effect is the 3 seeds, its largest
    assert (row.mean, row.lo, row.hi) == pytest.approx(rate_ratio(228, 1536, 12, 1536, 3.0, 3.0))
    per_seed_mean = sum(b / s for b, _, s, _ in seeds) / 3
    assert row.mean == pytest.approx(19.0) and per_seed_mean == pytest.approx(23.5)  # not a mean of ratios
    assert row.counted == 3 and row.verdict == "holds" and row.magnitude == "stronger"
    # one count below MIN_COUNT: no interval, a one-sided bound (at least this many times fewer)
    short = aggregate(f, [(79, 512, 2, 512), (75, 512, 2, 512), (74, 512, 4, 512)])
    assert short.one_sided and short.hi == math.inf and (short.mean, short.lo) == pytest.approx(
        one_sided_ratio(228, 1536, 8, 1536, 3.0, 3.0)[:2])
    assert 2 < short.lo < short.mean and short.verdict == "holds" and short.magnitude == "stronger"
    assert short.caveat == ("one-sided 95% bound: the soft-KD student memorized 8 members over 3 seeds, "
                            f"fewer than {MIN_COUNT}")
    one = aggregate(f, [(79, 512, 2, 512)])
    assert one.one_sided and one.verdict == "not established"  # one seed
    both = aggregate(f, [(3, 512, 2, 512)] * 3)  # both counts small: nothing to say
    assert math.isnan(both.mean) and both.verdict == "n/a" and both.reason.startswith("n/a: the baseline memorized 9")
    # a share rests on its denominator: the easy share of 8 memorized members is n/a, of 12 a Wilson interval
    assert aggregate(BY_NAME["easy share"], [(2, 2), (2, 2), (3, 4)]).verdict == "n/a"
    easy = aggregate(BY_NAME["easy share"], [(4, 4), (4, 4), (3, 4)])
    assert (easy.mean, easy.lo, easy.hi) == pytest.approx(wilson(11, 12, 3.0))
    assert easy.verdict == "not established"  # 11 of 12 may be 65% as well as 99%


def test_a_seed_without_a_value_is_counted_never_dropped():
    row = aggregate(BY_NAME["hard-KD reduction"], [(79, 512, 76, 512), None, (74, 512, 73, 512)])
    assert row.counted == 2 and row.verdict == "not established" and "no value at 1 of 3 seeds" in row.caveat
    assert row.mean == pytest.approx(rate_ratio(153, 1024, 149, 1024)[0])
    diff = aggregate(BY_NAME["validation loss"], [-0.2, math.nan, -0.18])
    assert diff.counted == 2 and diff.verdict == "not established"
    full = aggregate(BY_NAME["validation loss"], [-0.19, -0.18, -0.20])
    assert full.verdict == "holds" and full.lo < full.mean < full.hi < 0
    none = aggregate(BY_NAME["predictor AUC"], [math.nan] * 3)
    assert none.verdict == "n/a" and none.reason.startswith("n/a: no seed gives a value; it needs the filtered")


def test_filtering_is_a_ratio_of_counts_even_when_nothing_is_left():
    row = aggregate(BY_NAME["filtering"], [(0, 512, 76, 512), (1, 512, 78, 512), (0, 512, 73, 512)])
    assert (row.mean, row.lo, row.hi) == pytest.approx(count_ratio(1, 1536, 227, 1536, 3.0))
    assert row.mean == pytest.approx(1 / 227) and 0 < row.lo < row.mean < row.hi < 0.5
    assert row.verdict == "holds" and row.magnitude == "within"
    assert aggregate(BY_NAME["filtering"], [(0, 512, 3, 512)]).verdict == "n/a"  # 3 memorized before is no base


def board_like_runs(seed: int) -> dict[str, dict[str, float]]:
    """One seed of the published board's counts (tiny / synthetic-pii), with the filtered run's figures."""
    base = [79, 75, 74][seed]
    teacher = {"n_members": 512.0, "memorized_baseline": float(base), "teacher_exclusive": [14.0, 23.0, 24.0][seed]}
    return {"soft": {**teacher, "memorized_student": [2.0, 2.0, 4.0][seed], "easy": [2.0, 2.0, 3.0][seed],
                     "inherited": [0.0, 0.0, 1.0][seed], "both": [72.0, 70.0, 66.0][seed], "val_loss_student": 3.0,
                     "val_loss_baseline": 3.19 - 0.01 * seed, "auc_loss_teacher": 0.9,
                     "auc_loss_student": 0.78 + 0.01 * seed,
                     "high_entropy_gap": 0.2 + 0.05 * seed},
            "hard": {**teacher, "memorized_student": [76.0, 78.0, 73.0][seed], "inherited": [7.0, 14.0, 11.0][seed]},
            "reverse": {**teacher, "memorized_student": 2.0},
            "filtered": {"n_members": 512.0, "memorized_student": 0.0, "unfiltered_memorized_student": 76.0,
                         "filter_predict_auc": 0.99 + 0.001 * seed, "repeats_auc": 0.99},
            "board": {"rank_rho": 0.25 + 0.05 * seed}}


def test_the_published_boards_figures_give_the_honest_verdicts():
    rows = {r.finding.name: r for r in R.measure({s: board_like_runs(s) for s in range(3)}, [0, 1, 2])}
    assert rows["hard-KD reduction"].verdict == "fails"  # 14.8% against 14.8%: 1.00x, not over 2x
    assert rows["hard-KD reduction"].mean == pytest.approx(1.0, abs=0.05)
    assert rows["reduction"].one_sided and "8 members" in rows["reduction"].reason
    assert rows["reduction"].verdict == "holds"  # 228 against 8: at least ~11x fewer, over the claim's 2x
    assert rows["soft vs hard rate"].one_sided and rows["soft vs hard rate"].lo > 2  # hard at least 2x soft
    assert rows["soft vs hard rate"].verdict == "fails"
    assert rows["containment"].verdict == "holds" and rows["containment"].magnitude == "stronger"
    assert rows["soft-KD inheritance"].verdict == "not established"  # 1 of 61: the interval reaches 8.7%
    assert rows["predictor AUC"].verdict == "holds"
    assert rows["predictor beyond repeats"].verdict != "holds"  # repetition alone ranks as well
    assert rows["memorization vs MIA ranking"].verdict == "holds"
    assert rows["high-entropy confidence"].verdict == "holds"
    assert rows["teacher-to-student leakage"].verdict == "n/a"  # only on a preset that distils on a public half
    line = count_line([r.verdict for r in rows.values()])
    assert line.startswith(f"of {len(FINDINGS)} findings: ") and " fail" in line and "published directions" not in line


def test_the_count_line_names_every_verdict():
    assert count_line(["holds", "fails", "n/a", "not established", "holds"]) == \
        "of 5 findings: 2 hold, 1 not established, 1 fail, 1 n/a"
    assert count_line(["n/a"]) == "of 1 findings: 0 hold, 0 not established, 0 fail, 1 n/a"


def test_the_table_gives_verdict_seeds_magnitude_and_caveats():
    rows = [aggregate(BY_NAME["hard-KD reduction"], [(79, 512, 76, 512), (75, 512, 78, 512), (74, 512, 73, 512)]),
            aggregate(BY_NAME["reduction"], [(79, 512, 2, 512), None, (74, 512, 4, 512)])]
    text = table(Reproduction("r", [0, 1, 2], {}, rows))
    assert "fails" in text and "weaker (2.00x published)" in text and "3 of 3" in text and "2 of 3" in text
    assert "reduction: one-sided 95% bound: the soft-KD student memorized 6 members over 2 seeds, fewer than 10; " \
           "no value at 1 of 3 seeds" in text
    assert ">= " in text and "(one-sided)" in text
    assert "DOES NOT HOLD" not in text and "holds on the mean" not in text


def test_counts_come_from_metrics_rates_or_samples(tmp_path):
    """A run stored before the counts existed gives them from rate x n_members, and overlaps from samples."""
    db = tmp_path / "h.duckdb"
    Store(db).check_writable()
    with duckdb.connect(str(db)) as con:
        con.execute("INSERT INTO runs (run_id, n_members, status) VALUES ('old', 4, 'finished'), "
                    "('new', 4, 'finished')")
        con.execute("INSERT INTO metrics VALUES ('old', 'mem_rate_teacher', 0.75), ('old', 'mem_rate_baseline', 0.5), "
                    "('old', 'mem_rate_student', 0.5), ('new', 'memorized_teacher', 3), ('new', 'memorized_baseline', 2), "
                    "('new', 'memorized_student', 1), ('new', 'easy', 1), ('new', 'teacher_exclusive', 1), "
                    "('new', 'inherited', 0), ('new', 'containment', 1.0)")
        memorized = {"teacher": [1, 1, 1, 0], "baseline": [1, 1, 0, 0], "student": [1, 0, 1, 0]}
        con.executemany("INSERT INTO samples (run_id, role, sample_id, split, repeats, memorized, loss) "
                        "VALUES ('old', ?, ?, 'member', ?, ?, ?)",
                        [[role, f"m{i}", 2 ** i, bool(m), 1.0] for role, ms in memorized.items() for i, m in enumerate(ms)])
    store = Store(db)
    old = R.run_figures(store, "old")
    assert (old["memorized_teacher"], old["memorized_baseline"], old["memorized_student"]) == (3, 2, 2)
    assert (old["easy"], old["both"], old["teacher_exclusive"], old["inherited"]) == (1, 2, 1, 1)
    new = R.run_figures(store, "new")
    assert (new["memorized_teacher"], new["easy"], new["both"], new["inherited"]) == (3, 1, 2, 0)
    strata = R.strata(store, {0: {"soft": "old", "hard": "old"}})
    assert strata[0] == {"repeats": 1, "members": 1, "teacher": 1, "baseline": 1, "soft_student": 1, "hard_student": 1}
    assert [s["repeats"] for s in strata] == [1, 2, 4, 8] and strata[3]["teacher"] == 0
    text = strata_table(Reproduction("r", [0], {}, [], strata))
    assert "1 (100.0%)" in text and "hard-KD student" in text


def test_repeats_auc_high_entropy_gap_and_the_method_ranking(tmp_path):
    db = tmp_path / "h.duckdb"
    Store(db).check_writable()
    with duckdb.connect(str(db)) as con:
        # run r: 8 members; the student memorizes the repeated ones; the top-entropy quarter has a loss gap of 0.5
        con.executemany("INSERT INTO features (run_id, sample_id, zlib_entropy, memorized_student) VALUES ('r', ?, ?, ?)",
                        [[f"m{i}", float(i), i >= 4] for i in range(8)])
        con.executemany("INSERT INTO samples (run_id, role, sample_id, split, repeats, memorized, loss) "
                        "VALUES ('r', ?, ?, 'member', ?, ?, ?)",
                        [[role, f"m{i}", 4 if i >= 4 else 1, i >= 4, (1.5 if role == "student" else 1.0)]
                         for role in ("student", "baseline") for i in range(8)])
        board = [("a", 0.1, 0.9), ("b", 0.2, 0.6), ("c", 0.3, 0.8), ("d", 0.4, 0.7)]
        for method, mem, auc in board:
            con.execute("INSERT INTO runs (run_id, family, dataset, preset, dataset_hash, method_label, seed, status, "
                        "finished_at) VALUES (?, 'tiny', 'pii', 'p', 'h', ?, 0, 'finished', now())", [method, method])
            con.executemany("INSERT INTO metrics VALUES (?, ?, ?)", [[method, "mem_rate_student", mem],
                            [method, "auc_loss_student", auc], [method, "auc_zlib_student", auc - 0.1],
                            [method, "auc_loss_student_hi", 1.0], [method, "val_ppl_student", 10.5],
                            [method, "val_ppl_baseline", 10.0]])
        # rows that do not count: a DP student, one on its own recipe, one that did not converge
        for method, extra in (("dp", ("dp_noise_multiplier", 1.0)), ("own", None), ("lost", ("val_ppl_student", 30.0))):
            con.execute("INSERT INTO runs (run_id, family, dataset, preset, dataset_hash, method_label, seed, status, "
                        "finished_at, own_recipe) VALUES (?, 'tiny', 'pii', 'p', 'h', ?, 0, 'finished', now(), ?)",
                        [method, method, "dedup" if method == "own" else None])
            figures = {"mem_rate_student": 0.9, "auc_loss_student": 0.1, "val_ppl_student": 10.0,
                       "val_ppl_baseline": 10.0, **dict([extra] if extra else [])}
            con.executemany("INSERT INTO metrics VALUES (?, ?, ?)", [[method, k, v] for k, v in figures.items()])
    store = Store(db)
    assert R.repeats_auc(store, "r") == pytest.approx(1.0)  # repetition alone separates them here
    assert R.high_entropy_gap(store, "r") == pytest.approx(0.5)
    assert R.rank_rho(store, "a") == pytest.approx(-0.4)  # ranks 1234 against 4132 (the _hi bound ignored)
    assert len(R._read(store, read.peers_at_seed, "a")) == 7  # the three others are read, and left out

    # the same ranking from the peers' examples, and its interval over examples (one seed here)
    with duckdb.connect(str(db)) as con:
        for j, (method, hits) in enumerate((("a", 9), ("b", 6), ("c", 8), ("d", 7))):
            con.executemany("INSERT INTO samples (run_id, role, sample_id, split, repeats, memorized, loss) "
                            "VALUES (?, 'student', ?, ?, 1, ?, 1.0)",
                            [[method, f"m{i:02d}", "member", i <= j] for i in range(10)]
                            + [[method, f"n{i:02d}", "nonmember", False] for i in range(10)])
            con.executemany("INSERT INTO scores (run_id, role, sample_id, attack, score) VALUES (?, 'student', ?, "
                            "'loss', ?)", [[method, f"m{i:02d}", 1.0 if i < hits else 0.0] for i in range(10)]
                            + [[method, f"n{i:02d}", 0.5] for i in range(10)])
    seed = R.peer_examples(store, "a")
    assert sorted(k for k in seed.members if k.startswith("mem_")) == ["mem_0", "mem_1", "mem_2", "mem_3"]
    assert R._rank_rho(seed, np.ones(10), np.ones(10)) == pytest.approx(-0.4)  # the stored figures' ranking
    mean, lo, hi = twoway.interval([seed], R._rank_rho, draws=300)
    assert mean == pytest.approx(-0.4) and lo < -0.4 < hi and hi - lo > 0.5  # 10 examples: a wide interval
    with duckdb.connect(str(db)) as con:
        con.execute("UPDATE runs SET seed = 1 WHERE run_id = 'd'")
    assert math.isnan(R.rank_rho(store, "a"))  # three methods at the seed: fewer than MIN_METHODS


def test_verdicts_are_stored_and_a_version_5_row_reads_without_one(tmp_path):

    db = tmp_path / "h.duckdb"
    rows = [aggregate(BY_NAME["hard-KD reduction"], [(79, 512, 76, 512), (75, 512, 78, 512), (74, 512, 73, 512)])]
    result = Reproduction("r1", [0, 1, 2], {0: {"soft": "x"}}, rows)
    Store(db).record_reproduction("r1", {"family": "tiny", "dataset": "pii", "preset": "p"}, R.rows_for_store(result))
    with connection.reading(db) as con:
        _, df = read.reproduction(con)
    got = df.iloc[0]
    assert (got["verdict"], got["n"], got["requested"], got["magnitude"], got["figure"]) == ("fails", 3, 3, "weaker", 2.0)
    assert not got["holds"]
    with duckdb.connect(str(db)) as con:  # as schema version 5 left it: no verdict columns
        for column in ("verdict", "requested", "figure", "magnitude", "caveat"):
            con.execute(f"ALTER TABLE reproductions DROP COLUMN {column}")
    with connection.reading(db) as con:
        _, df = read.reproduction(con)
    assert df["verdict"].isna().all() and df["finding"].tolist() == ["hard-KD reduction"]


@pytest.mark.slow
def test_reproduce_runs_what_it_needs_once_and_stores_one_row_per_finding(quick_registry, tmp_path, capsys):
    db = tmp_path / "h.duckdb"
    argv = ["--registry", str(quick_registry), "reproduce", "--preset", "quick", "--seeds", "1", "--db", str(db),
            *SMALL_DATA]
    assert main(argv) == 0
    out, err = capsys.readouterr()
    assert all(f.name in out for f in FINDINGS) and f"of {len(FINDINGS)} findings: 0 hold, " in out
    assert err.count("running it") == len(RUNS)
    # The quick preset memorizes nothing: the predictor cannot be fitted, and its findings say n/a, with why.
    assert "filtered: could not run (" in err and "predictor AUC: n/a: no seed gives a value" in out
    assert "random: could not run (" in err and "matched: could not run (" in err  # the controls need it too
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.sql("SELECT count(*), count(DISTINCT reproduction_id) FROM reproductions").fetchall() == \
            [(len(FINDINGS), 1)]
        assert con.sql("SELECT holds, verdict, requested FROM reproductions WHERE finding = 'predictor AUC'"
                       ).fetchall() == [(None, "n/a", 1)]
        verdicts = {v for (v,) in con.sql("SELECT verdict FROM reproductions").fetchall()}
        finished = con.sql("SELECT count(*) FROM runs WHERE status = 'finished'").fetchall()[0][0]
        # one seed, yet the difference rows have an interval: the bootstrap resamples its examples
        for finding in ("validation loss", "teacher vs student MIA", "high-entropy confidence"):
            [(lo, mean, hi)] = con.execute("SELECT lo, mean, hi FROM reproductions WHERE finding = ?",
                                           [finding]).fetchall()
            assert lo < mean < hi, finding
    assert "blind baseline (the texts alone, no model" in out
    assert verdicts <= {"not established", "n/a"}  # one seed establishes nothing
    assert finished == len(RUNS) - 3
    # Again: every finished run is read from the results, none is rerun.
    assert main(argv) == 0
    _, err = capsys.readouterr()
    assert err.count("from the results") == len(RUNS) - 3 and err.count("running it") == 3  # the filtered ones
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.sql("SELECT count(*) FROM runs WHERE status = 'finished'").fetchall() == [(finished,)]
        assert con.sql("SELECT count(DISTINCT reproduction_id) FROM reproductions").fetchall() == [(2,)]


def test_a_one_sided_bound_covers_the_true_ratio():
    """The bound's promise, by simulation: at least 95% of draws put the true ratio inside it."""
    rng = np.random.default_rng(0)
    n, p_big, p_small = 1536, 0.15, 0.004  # true ratio 37.5x; the small count averages 6
    covered = total = 0
    for _ in range(2000):
        k_big, k_small = rng.binomial(n, p_big), rng.binomial(n, p_small)
        bound = one_sided_ratio(k_big, n, k_small, n)
        if bound is not None:
            total += 1
            covered += bound[1] <= p_big / p_small
    assert total > 1500 and covered / total >= 0.95
    upper = one_sided_ratio(6, 1536, 228, 1536)  # the small count on top: an upper bound
    assert upper[1] == -math.inf and upper[0] < upper[2] < 0.1


def test_measured_text_shows_a_bound_as_a_bound():
    from harness.present.reproduce_report import measured_text

    assert measured_text(32.6, 10.87, math.inf, "x") == ">= 10.87x (one-sided)"
    assert measured_text(None, 10.87, None, "x") == ">= 10.87x (one-sided)"  # as the store keeps it: NULL ends
    assert measured_text(0.03, -math.inf, 0.058, "x") == "<= 0.06x (one-sided)"
    assert measured_text(1.03, 0.78, 1.36, "x") == "1.03x [0.78x, 1.36x]"
    assert measured_text(math.nan, math.nan, math.nan, "x") == "n/a"


def test_a_correlation_wholly_above_zero_is_said_to_agree():
    """'Disagree' holds when the interval excludes a strong agreement (0.5); above 0 the caveat says they agree."""
    row = aggregate(BY_NAME["memorization vs MIA ranking"], [0.30, 0.31, 0.32])
    assert row.verdict == "holds" and "the two agree, if weakly" in row.caveat
    near = aggregate(BY_NAME["memorization vs MIA ranking"], [-0.3, 0.1, 0.2])
    assert "agree" not in near.caveat
    assert "converged KD methods on the shared recipe" in BY_NAME["memorization vs MIA ranking"].claim


def test_a_ranking_of_ties_is_na_with_the_reason():
    """Where every peer memorizes 0 (members seen once, the studies' preset), memorization ranks nothing: the
    correlation is undefined, and the caveat says so rather than blaming missing runs alone."""
    from harness.protocol.reproduce import spearman

    assert math.isnan(spearman([0.0] * 5, [0.55, 0.56, 0.57, 0.58, 0.59]))
    row = aggregate(BY_NAME["memorization vs MIA ranking"], [spearman([0.0] * 5, [0.5, 0.6, 0.7, 0.8, 0.9])] * 3)
    assert row.verdict == "n/a" and "whose memorization rates differ" in row.caveat


def test_the_filters_controls_leave_out_as_many_members(monkeypatch):
    """--filter random and matched: the predictor's count, at random or per repeat stratum; the same at a seed."""
    import torch

    from harness.protocol import filtering
    from harness.protocol.data import Examples

    repeats = torch.tensor([1] * 60 + [4] * 20 + [16] * 20)
    members = Examples("member", torch.zeros(100, 4, dtype=torch.long), repeats, ["plain"] * 100, 0)
    flagged = [85, 86, 87, 90, 95, 99, 70, 75]  # six 16x members and two 4x ones
    monkeypatch.setattr(filtering, "predicted", lambda store, source, m: {
        "source_run": "s", "rows": flagged, "figures": {"removed": 8.0, "predict_auc": 0.9}})
    random_rows = filtering.control(None, "s", members, "random", seed=0)["rows"]
    matched = filtering.control(None, "s", members, "matched", seed=0)
    assert len(random_rows) == 8 == len(set(random_rows)) and matched["figures"]["removed"] == 8.0
    assert sorted(repeats[matched["rows"]].tolist()) == [4, 4] + [16] * 6  # each stratum's flagged count
    assert filtering.control(None, "s", members, "random", seed=0)["rows"] == random_rows  # reproducible
    assert filtering.control(None, "s", members, "random", seed=1)["rows"] != random_rows
    assert repeats[random_rows].tolist().count(1) > 2  # at random: mostly the 60 members seen once


def test_the_reductions_by_extraction_are_ratios_of_mean_chances_over_examples_and_seeds():
    # the board's measure, where exact match counts too few: each member's chance of extraction by sampling
    rng = np.random.default_rng(0)
    seeds = []
    for _ in range(3):
        s = twoway.Seed([f"m{i}" for i in range(300)], [])
        s.members["extract_baseline"] = rng.uniform(0, 0.02, 300)  # mean 1%
        s.members["extract_student"] = rng.uniform(0, 0.004, 300)  # mean 0.2%: 5x fewer
        seeds.append(s)
    finding = BY_NAME["reduction, by extraction"]
    assert finding.side == (2, math.inf) and '"more than 50% less"' in finding.claim
    run, stat = finding.resample
    assert run == "soft"
    mean, lo, hi = twoway.interval(seeds, stat, draws=300)
    assert mean == pytest.approx(5.0, rel=0.15) and 2 < lo < mean < hi  # an interval over the examples, not 0 wide
    assert verdict(mean, lo, hi, finding.side, 3, 3) == "holds"
    # no chance at all on the denominator's side: no ratio, never an infinity
    seeds[0].members["extract_student"] = np.zeros(300)
    assert math.isnan(stat(seeds[0], np.ones(300), np.zeros(0)))
    # runs stored before the per-member chances: the seeds' stored rates, a t-interval over them
    per_seed = [finding.measure({"soft": {"extractable_rate_baseline": 0.01, "extractable_rate_student": s}})
                for s in (0.002, 0.0025, 0.0)]
    assert per_seed[:2] == [pytest.approx(5.0), pytest.approx(4.0)] and math.isnan(per_seed[2])
    assert BY_NAME["reverse KL vs fine-tuning, by extraction"].side == (-math.inf, 1)


def test_no_reduction_against_a_baseline_that_never_saw_the_tested_members():
    # Zhang et al.'s public setting: the baseline trains on the public half and is tested on the private one
    figures = {"memorized_baseline": 30.0, "memorized_student": 5.0, "n_members": 256.0,
               "extractable_rate_baseline": 1e-9, "extractable_rate_student": 0.01}
    runs = {"reduction": "soft", "hard-KD reduction": "hard", "reverse KL vs fine-tuning": "reverse"}
    for name, run in [*runs.items(), *((f"{n}, by extraction", r) for n, r in runs.items())]:
        finding = BY_NAME[name]
        assert finding.measure({run: figures}) is not None, name  # fine-tuned on the members: a value
        assert finding.measure({run: {**figures, "public_members": 256.0}}) is None, name
        row = aggregate(finding, [None, None, None])
        assert row.verdict == "n/a" and "a baseline fine-tuned on the members it is tested on" in row.reason, name


def test_leakage_by_repeat_count_compares_the_student_with_the_baseline_in_each_stratum():
    rng = np.random.default_rng(0)
    seeds = []
    for _ in range(2):
        s = twoway.Seed([f"m{i}" for i in range(300)], [f"n{i}" for i in range(300)])
        repeats = np.repeat([1.0, 16.0], 150)
        s.members["repeats"] = repeats
        # the student leaks only the teacher's 16x members; the baseline, which never saw them, nothing
        s.members["score_student"] = rng.normal(0, 1, 300) + 2.0 * (repeats == 16)
        s.members["score_baseline"] = rng.normal(0, 1, 300)
        s.nonmembers["score_student"] = rng.normal(0, 1, 300)
        s.nonmembers["score_baseline"] = rng.normal(0, 1, 300)
        seeds.append(s)
    once, sixteen = R.leakage_by_repeats(seeds)
    assert (once["repeats"], once["members"], sixteen["members"]) == (1, 300, 300)
    assert once["lo"] < 0 < once["hi"]  # nothing leaks of the members seen once
    assert sixteen["lo"] > 0.3 and sixteen["leakage"] == pytest.approx(sixteen["student"] - sixteen["baseline"])
    # no repeats, or a seed without its examples: no table
    flat = [replace(s, members={**s.members, "repeats": np.ones(300)}) for s in seeds]
    assert R.leakage_by_repeats(flat) is None and R.leakage_by_repeats([seeds[0], None]) is None
