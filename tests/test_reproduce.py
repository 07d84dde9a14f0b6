"""`harness reproduce`: every finding in one table, stored, and nothing rerun that the results hold."""

from __future__ import annotations

import math

import duckdb
import pytest

from conftest import SMALL_DATA
from harness.cli import main
from harness.protocol.reproduce import FINDINGS, RUNS, Reproduction, Row, table
from harness.store.tables import finding_value as fmt


def test_every_finding_the_issue_names_is_measured_from_the_runs_it_needs():
    names = [f.name for f in FINDINGS]
    assert names == ["reduction", "validation loss", "easy share", "soft-KD inheritance", "hard/soft inheritance",
                     "containment", "predictor AUC", "filtering", "reverse vs forward KL", "teacher vs student MIA"]
    runs = {name: {"mem_rate_baseline": 0.4, "mem_rate_student": 0.1, "val_loss_student": 3.0,
                   "val_loss_baseline": 3.2, "easy_share": 0.9, "inheritance_rate": 0.02, "containment": 0.8,
                   "filter_predict_auc": 0.95, "filter_unfiltered_mem_rate_student": 0.2, "auc_loss_teacher": 0.9,
                   "auc_loss_student": 0.6} for name in RUNS}
    runs["hard"] = {**runs["hard"], "inheritance_rate": 0.06}
    runs["reverse"] = {**runs["reverse"], "mem_rate_student": 0.05}
    values = {f.name: f.measure(runs) for f in FINDINGS}
    assert values["reduction"] == pytest.approx(4.0) and values["hard/soft inheritance"] == pytest.approx(3.0)
    assert values["filtering"] == pytest.approx(0.5) and values["reverse vs forward KL"] == pytest.approx(0.5)
    assert values["validation loss"] == pytest.approx(-0.2)
    assert all(f.holds(values[f.name]) for f in FINDINGS if f.name != "filtering")
    assert not FINDINGS[7].holds(0.5)  # half the memorized members left is not "most removed"


def test_a_direction_that_does_not_hold_is_said_plainly():
    finding = FINDINGS[0]
    result = Reproduction("r", [0, 1, 2], {}, [Row(finding, [0.5, 0.6, 0.7], 0.6, 0.35, 0.85),
                                               Row(FINDINGS[1], [math.nan] * 3, math.nan, math.nan, math.nan)])
    text = table(result)
    assert "DOES NOT HOLD" in text and "0.60x [0.35x, 0.85x]" in text and "n/a (nothing to measure)" in text
    assert "n/a [" not in text
    partial = table(Reproduction("r", [0, 1, 2], {}, [Row(finding, [2.0, math.nan, 4.0], 3.0, 1.0, 5.0)]))
    assert "3.00x [1.00x, 5.00x] (2 of 3 seeds)" in partial
    assert "holds on the mean; the 95% interval crosses" in partial  # 1.00x is no reduction
    sure = table(Reproduction("r", [0, 1], {}, [Row(finding, [2.0, 4.0], 3.0, 1.5, 4.5)]))
    assert "holds on the mean" not in sure and "holds" in sure
    assert fmt(0.123, "%") == "12.3%" and fmt(-0.05, "") == "-0.050"


@pytest.mark.slow
def test_reproduce_runs_what_it_needs_once_and_stores_one_row_per_finding(quick_registry, tmp_path, capsys):
    db = tmp_path / "h.duckdb"
    argv = ["--registry", str(quick_registry), "reproduce", "--preset", "quick", "--seeds", "1", "--db", str(db),
            *SMALL_DATA]
    assert main(argv) == 0
    out, err = capsys.readouterr()
    assert all(f.name in out for f in FINDINGS) and "published directions hold here" in out
    assert "nothing to measure for" in out and "filtering" in out.split("nothing to measure for")[1]
    assert err.count("running it") == len(RUNS)
    # The quick preset memorizes nothing: the predictor cannot be fitted, and its findings say n/a.
    assert "filtered: could not run (" in err and "n/a (nothing to measure)" in out
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.sql("SELECT count(*), count(DISTINCT reproduction_id) FROM reproductions").fetchall() == [(10, 1)]
        assert con.sql("SELECT holds FROM reproductions WHERE finding = 'predictor AUC'").fetchall() == [(None,)]
        finished = con.sql("SELECT count(*) FROM runs WHERE status = 'finished'").fetchall()[0][0]
    assert finished == len(RUNS) - 1
    # Again: every finished run is read from the results, none is rerun.
    assert main(argv) == 0
    _, err = capsys.readouterr()
    assert err.count("from the results") == len(RUNS) - 1 and err.count("running it") == 1  # the filtered one
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.sql("SELECT count(*) FROM runs WHERE status = 'finished'").fetchall() == [(finished,)]
        assert con.sql("SELECT count(DISTINCT reproduction_id) FROM reproductions").fetchall() == [(2,)]
