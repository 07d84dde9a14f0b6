"""Zhang et al.'s setting (`distill_on = "public"`): the teacher fine-tunes on a private half of the
members, the baseline and the student on the disjoint public half, and every role is tested on
the private half, so what the student shows of it, it inherited."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest

from harness.cli import main
from harness.contract.specs import Example
from harness.protocol.data import halves
from tests.conftest import SMALL_DATA

PUBLIC = "\n[presets.quick-public]\ninherits = \"quick\"\ndistill_on = \"public\"\n"


def test_the_halves_are_disjoint_whole_and_fixed():
    docs = [Example(text=f"document {i}", repeats=1 + i % 3) for i in range(11)]
    private, public = halves(docs)
    assert len(private) == 6 and len(public) == 5
    assert {d.text for d in private}.isdisjoint(d.text for d in public)
    assert sorted(d.text for d in private + public) == sorted(d.text for d in docs)
    assert halves(docs) == (private, public)  # the same halves for every run and method


@pytest.mark.slow
def test_the_student_never_trains_on_the_members_it_is_tested_on(quick_registry, tmp_path, capsys):
    quick_registry.write_text(quick_registry.read_text() + PUBLIC)
    db = tmp_path / "h.duckdb"
    argv = ["--registry", str(quick_registry), "eval", "--method", "soft-kd", "--preset", "quick-public",
            *SMALL_DATA, "--db", str(db)]
    assert main(argv) == 0
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("SELECT n_members FROM runs").fetchone()[0] == 24  # the private half of 48
        assert con.execute("SELECT value FROM metrics WHERE name = 'public_members'").fetchone()[0] == 24
        paths = dict(con.execute("SELECT role, artifact_path FROM models").fetchall())
        assert json.loads(con.execute("SELECT preset_values FROM runs").fetchone()[0])["distill_on"] == "public"
    data = {role: json.loads((Path(p) / "training.json").read_text())["data"] for role, p in paths.items()}
    assert data["baseline"] == data["student"] != data["teacher"]  # the public half, not the teacher's
    assert main([*argv, "--filter", "predicted"]) == 2
    assert "distill_on = public" in capsys.readouterr().err
