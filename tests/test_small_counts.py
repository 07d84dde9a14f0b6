"""No ratio from too few counts: on a generated corpus without repeats, where exact match finds next
to nothing, the run says so in one line, and every ratio is n/a, stored as NULL, on the board too."""

from __future__ import annotations

import duckdb
import pytest

from harness.cli import main
from harness.leaderboard import standings
from harness.measure.stats import MIN_COUNT
from harness.store import connection
from tests.conftest import quick_args

pytestmark = pytest.mark.slow


def test_a_corpus_without_repeats_gives_no_ratio_from_a_handful(quick_registry, tmp_path, capsys):
    db = tmp_path / "h.duckdb"
    assert main(quick_args(quick_registry, "hard-kd", "--dataset-arg", "repeat_share=0", "--db", str(db))) == 0
    out = capsys.readouterr().out
    with duckdb.connect(str(db), read_only=True) as con:
        figures = dict(con.execute("SELECT name, value FROM metrics").fetchall())
        assert con.execute("SELECT max(repeats) FROM samples").fetchone()[0] == 1  # no member is repeated
    counts = [figures[f"memorized_{role}"] for role in ("teacher", "baseline", "student")]
    assert max(counts) < MIN_COUNT  # 48 members seen once each: exact match finds a handful at most
    for name in ("reduction", "inheritance_rate", "easy_share", "containment"):
        assert figures[name] is None, name  # NULL, not 1.00x or 100%
    assert "reduction vs baseline n/a (n/a: a ratio needs 10 or more memorized members)" in out
    assert "exact match says little here: teacher" in out and "membership attacks" in out
    assert "the student's start (the small model before fine-tuning" in out
    with connection.reading(db) as con:
        row = standings.board(con).query("not reference").iloc[0]
    assert all(row[k] != row[k] for k in ("reduction", "inheritance_rate", "easy_share"))  # NaN on the board
    assert main(["leaderboard", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert "n/a: fewer than 10 memorized members" in out
    assert "comes from repeated members" not in out  # nothing is repeated here
