"""The board's data layer, published boards, and export/import of submission bundles."""

from __future__ import annotations

import math
import os
import shutil
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from harness.cli import main
from harness.errors import UsageError
from harness.leaderboard import standings
from harness.leaderboard.board_specs import load_spec
from harness.leaderboard.ranking import BASELINE_LABEL
from harness.leaderboard.snapshot import write_subset
from harness.store import connection, read
from harness.store.database import config_hash
from tests.board_data import build
from tests.conftest import exit_code, quick_args

SHIPPED = Path(__file__).resolve().parents[1] / "leaderboards"
BOARD = """
title = "quick"
family = "tiny"
dataset = "synthetic-pii"
preset = "quick"
methods = ["soft-kd"]
dataset_args = {n_members = 48, n_nonmembers = 24, n_validation = 24}
"""


def rows(db: Path, sql: str, params=()):
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql, list(params)).fetchall()
    finally:
        con.close()


# ------------------------------------------------------------ the data layer


def test_interval_is_a_t_interval_over_seeds():
    assert standings.interval([0.2]) == (0.2, 0.2, 0.2)
    mean, lo, hi = standings.interval([0.1, 0.2, 0.3])
    assert mean == pytest.approx(0.2)
    assert hi - mean == pytest.approx(4.302653 * 0.1 / math.sqrt(3), rel=1e-5)  # t(0.975, 2) * sd / sqrt(n)
    assert all(math.isnan(v) for v in standings.interval([None, float("nan")]))


def test_frontier_marks_the_undominated_points():
    pts = pd.DataFrame({"val_ppl_student": [30.0, 29.0, 33.0, 30.0], "mem_rate_student": [0.1, 0.25, 0.4, 0.3]})
    assert standings.frontier(pts).tolist() == [True, True, False, False]


def test_filters_are_parameters_not_sql(tmp_path):
    db = build(tmp_path / "h.duckdb", methods=("soft-kd", "hard-kd"))
    with connection.reading(db) as con:
        assert standings.board(con, read.Filters(search="' OR 1=1 --")).empty
        assert standings.board(con, read.Filters(method=["x'); DROP TABLE runs; --"])).empty
        assert set(standings.board(con)["method"]) == {"soft-kd", "hard-kd", "(baseline: fine-tuned)"}
        assert set(standings.board(con, read.Filters(size=["0.6m"]))["method"]) >= {"soft-kd"}
        assert standings.board(con, read.Filters(size=["70b"])).empty


def test_board_figures_and_charts_data(tmp_path):
    db = build(tmp_path / "h.duckdb", methods=("soft-kd", "hard-kd"))
    with connection.reading(db) as con:
        b = standings.board(con).set_index("method")
        assert b.loc["soft-kd", "mem_rate_student"] == pytest.approx(0.1)
        assert b.loc["(baseline: fine-tuned)", "mem_rate_student"] == pytest.approx(0.3)
        # members 6, 7, 8 of teacher-only 6..11: 3 of 6, too few teacher-exclusive members for a rate
        assert math.isnan(b.loc["hard-kd", "inheritance_rate"]) and b.loc["hard-kd", "teacher_exclusive"] == 6
        assert "best_attack_auc" not in b.columns  # no attack figures stored yet
        ov = dict(read.overlap(con, "run-hard-kd").values.tolist())
        assert ov == {"teacher + baseline + student": 5, "teacher + student": 3, "teacher": 3, "teacher + baseline": 1}
        k = read.k_extractability(con, ["run-soft-kd"]).set_index(["role", "k"])["share"]
        assert k[("student", 2)] == 1.0 and k[("student", 3)] == pytest.approx(0.1)
        roc = standings.loss_attack_roc(con, "run-soft-kd")
        assert set(roc["role"]) == {"teacher", "baseline", "student"} and roc["auc"].between(0, 1).all()


def test_attack_aucs_show_when_stored(tmp_path):
    db = build(tmp_path / "h.duckdb", methods=("soft-kd",))
    con = duckdb.connect(str(db))
    # the student's best attack counts; the teacher's AUC and the interval bounds do not
    con.execute("INSERT INTO metrics VALUES ('run-soft-kd', 'auc_loss_student', 0.61), "
                "('run-soft-kd', 'auc_min-k_student', 0.66), ('run-soft-kd', 'auc_min-k_student_hi', 0.7), "
                "('run-soft-kd', 'auc_loss_teacher', 0.9)")
    con.close()
    with connection.reading(db) as con:
        b = standings.board(con).set_index("method")
    assert b.loc["soft-kd", "best_attack_auc"] == pytest.approx(0.66)


# ------------------------------------------------------------ board definitions


def test_board_definition_errors_are_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HARNESS_LEADERBOARDS", str(tmp_path))
    (tmp_path / "good.toml").write_text(BOARD)
    (tmp_path / "bad.toml").write_text("family = 'tiny'\n")
    assert main(["leaderboard", "publish", "godo"]) == 2
    assert "did you mean 'good'" in capsys.readouterr().err
    assert main(["leaderboard", "publish", "bad"]) == 2
    assert "missing dataset, preset, methods" in capsys.readouterr().err
    (tmp_path / "typo.toml").write_text(BOARD + "orderr = ['x']\n")
    assert main(["leaderboard", "publish", "typo"]) == 2
    assert "did you mean 'order'" in capsys.readouterr().err


@pytest.mark.parametrize("board", sorted(p.stem for p in SHIPPED.glob("*.toml")))
def test_a_shipped_board_is_printed_under_its_title_with_its_regime(board, capsys):
    spec = load_spec(board, SHIPPED)
    assert spec.regime and spec.title != board  # a shipped board names its regime, and not by its file name
    assert main(["leaderboard", "--board", board]) == 0
    by_name = capsys.readouterr().out
    title, own, regime = by_name.splitlines()[:3]
    assert (title, regime) == (spec.title, f"Regime: {spec.regime}")
    assert own.startswith(f"{spec.family} on {spec.dataset} (preset {spec.preset},")
    assert main(["leaderboard", "--db", str(spec.snapshot)]) == 0  # the snapshot's own spec, found beside it
    assert capsys.readouterr().out == by_name


def test_a_regime_is_one_line(tmp_path):
    for bad in ('"two\\nlines"', repr("x" * 301).replace("'", '"'), "3"):
        (tmp_path / "r.toml").write_text(BOARD + f"regime = {bad}\n")
        with pytest.raises(UsageError, match="regime must be one line of text, at most 300 characters"):
            load_spec("r", tmp_path)


def test_a_published_board_by_name_is_ranked_by_its_own_rules(tmp_path, capsys):
    boards = tmp_path / "boards"
    boards.mkdir()
    shutil.copy(SHIPPED / "default.duckdb", boards / "exact.duckdb")
    text = (SHIPPED / "default.toml").read_text()
    (boards / "exact.toml").write_text(text.replace('order = ["extractable_rate_student", "mem_rate_student"',
                                                    'order = ["mem_rate_student", "extractable_rate_student"'))
    assert main(["--leaderboards", str(boards), "leaderboard", "--board", "exact"]) == 0
    by_name = capsys.readouterr().out
    assert "by exact match by greedy decoding" in by_name  # the spec's order, not the default's
    assert main(["leaderboard", "--db", str(boards / "exact.duckdb")]) == 0  # the snapshot's own spec, beside it
    assert capsys.readouterr().out == by_name
    assert main(["--leaderboards", str(boards), "leaderboard", "--board", "exact", "--db", "x.duckdb"]) == 2
    assert "not both" in capsys.readouterr().err
    assert main(["--leaderboards", str(boards), "leaderboard", "--board", "exat"]) == 2
    assert "did you mean 'exact'" in capsys.readouterr().err


def test_the_shipped_default_board_and_snapshot():
    spec = load_spec("default", Path(__file__).resolve().parents[1] / "leaderboards")
    assert (spec.family, spec.dataset, spec.preset) == ("tiny", "synthetic-pii", "tiny")
    assert spec.snapshot.is_file()
    with connection.reading(spec.snapshot) as con:
        n_runs = con.execute("SELECT count(*) FROM runs").fetchone()[0]
    assert n_runs == len(spec.methods) * len(spec.seeds)  # every method at every seed, once
    assert spec.snapshot.stat().st_size < 500_000 * n_runs  # per-example rows of each run, nothing more
    with connection.reading(spec.snapshot) as con:
        assert standings.schema_problem(con) is None
        board = standings.board(con)
        methods = set(board["method"])
        # every entry of the definition, once: a method, or a method with arguments ("dp-kd epsilon=1" is
        # labelled with its parsed value, "dp-kd epsilon=1.0")
        assert len(methods - {BASELINE_LABEL}) == len(spec.methods)
        assert {e.split()[0] for e in spec.methods} == {m.split()[0] for m in methods - {BASELINE_LABEL}}
        ranked = board[~board["reference"]]
        assert ranked["best_attack_auc"].notna().all()  # the runs carry the membership attacks
        assert con.execute("SELECT count(*) FROM curves WHERE curve = 'k_extractable'").fetchone()[0] > 0
        assert con.execute("SELECT count(*) FROM runs WHERE hostname IS NOT NULL OR command IS NOT NULL").fetchone()[0] == 0
        assert con.execute("SELECT count(*) FROM models WHERE artifact_path IS NOT NULL").fetchone()[0] == 0


@pytest.mark.parametrize("board", sorted(p.stem for p in SHIPPED.glob("*.toml")))
def test_a_shipped_snapshot_holds_runs_of_its_preset_as_the_registry_defines_it_now(board):
    # A board's runs are found by preset name; a preset changed without republishing would leave a snapshot
    # of another recipe under its name. Every run must carry the preset's values as they are shipped today.
    import json

    from harness.config import registry
    from harness.protocol.provenance import preset_dict

    spec = load_spec(board, SHIPPED)
    assert spec.snapshot.is_file(), f"{board}: publish it (harness leaderboard publish {board})"
    want = json.loads(json.dumps(preset_dict(registry.load().preset(spec.preset))))
    with connection.reading(spec.snapshot) as con:
        stored = {(m, v) for m, v in con.execute("SELECT method, preset_values FROM runs").fetchall()}
    stale = sorted(m for m, v in stored if json.loads(v) != want)
    assert not stale, f"{board}: runs of another recipe of preset {spec.preset}: {stale[:3]}; republish the board"


# ------------------------------------------------------------ publish, export, import


def test_bundle_checks_refuse_before_reading(quick_registry, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HARNESS_LEADERBOARDS", str(tmp_path / "boards"))
    (tmp_path / "boards").mkdir()
    (tmp_path / "boards" / "quick.toml").write_text(BOARD)
    junk = tmp_path / "junk.duckdb"
    junk.write_bytes(b"\x80\x04not a database at all, maybe a pickle")
    reg = ["--registry", str(quick_registry)]
    assert main([*reg, "leaderboard", "import", str(junk), "--board", "quick"]) == 2
    assert "not a DuckDB bundle" in capsys.readouterr().err
    wrong = build(tmp_path / "wrong.duckdb", methods=("soft-kd",))  # a results file, not an export of one
    assert main([*reg, "leaderboard", "import", str(wrong), "--board", "quick"]) == 2
    assert "it must hold exactly the tables `harness export` writes" in capsys.readouterr().err
    exported = tmp_path / "exported.duckdb"  # another dataset hash, another preset
    write_subset(wrong, exported, ["run-soft-kd"], {"synthetic-pii"}, [])
    assert main([*reg, "leaderboard", "import", str(exported), "--board", "quick"]) == 2
    assert "board quick needs" in capsys.readouterr().err
    assert not (tmp_path / "boards" / "quick.duckdb").exists()


@pytest.mark.slow
def test_publish_export_import_round_trip(quick_registry, tmp_path, monkeypatch, capsys):
    boards = tmp_path / "boards"
    boards.mkdir()
    monkeypatch.setenv("HARNESS_LEADERBOARDS", str(boards))
    (boards / "quick.toml").write_text(BOARD)
    db = Path(os.environ["HARNESS_DB"])
    reg = ["--registry", str(quick_registry)]

    # publish runs what is missing, then writes a snapshot without local paths or hosts
    assert main([*reg, "leaderboard", "publish", "quick"]) == 0
    snap = boards / "quick.duckdb"
    [(run_id, cfg)] = rows(snap, "SELECT run_id, config_hash FROM runs")
    # the protocol's stored continuations, each role's of every member it did not memorize (a memorized
    # member's is its true suffix); publishing loads no model
    [(kept, due)] = rows(snap, "SELECT (SELECT count(*) FROM continuations), "
                               "(SELECT count(*) FROM samples WHERE split = 'member' AND NOT memorized)")
    assert kept == due > 0
    assert rows(snap, "SELECT count(*) FROM vocab")[0][0] > 100
    assert rows(snap, "SELECT count(*) FROM examples WHERE text IS NULL")[0][0] == 0  # synthetic-pii is public
    assert rows(snap, "SELECT count(*) FROM models WHERE artifact_path IS NOT NULL")[0][0] == 0
    # the config hash recomputed from the stored row is the protocol's
    run = dict(zip(*[[d[0] for d in duckdb.connect(str(snap), read_only=True).execute(
        "SELECT * FROM runs").description], rows(snap, "SELECT * FROM runs")[0]]))
    assert config_hash(run) == cfg
    # a second publish finds the run and trains nothing
    assert main([*reg, "leaderboard", "publish", "quick"]) == 0
    assert "already in" in capsys.readouterr().err
    assert rows(db, "SELECT count(*) FROM runs")[0][0] == 1

    # a contributor runs another method and exports it
    assert main(quick_args(quick_registry, "hard-kd")) == 0
    bundle = tmp_path / "hard.duckdb"
    assert main([*reg, "export", "latest", "--output", str(bundle)]) == 0
    assert bundle.stat().st_size < 2_000_000

    # a tampered copy is refused whole
    bad = tmp_path / "tampered.duckdb"
    shutil.copyfile(bundle, bad)
    con = duckdb.connect(str(bad))
    con.execute("UPDATE runs SET method_args = '{\"temperature\": 9.0}'")
    con.close()
    capsys.readouterr()
    assert main([*reg, "leaderboard", "import", str(bad), "--board", "quick"]) == 2
    assert "method hard-kd takes no arguments, got 'temperature'" in capsys.readouterr().err
    assert len(rows(snap, "SELECT run_id FROM runs")) == 1

    # the genuine one lands on the board, once
    assert main([*reg, "leaderboard", "import", str(bundle), "--board", "quick"]) == 0
    with connection.reading(snap) as con:
        assert set(standings.board(con)["method"]) == {"soft-kd", "hard-kd", "(baseline: fine-tuned)"}
    assert main([*reg, "leaderboard", "import", str(bundle), "--board", "quick"]) == 2
    assert "already on board quick" in capsys.readouterr().err
    # re-publishing keeps the imported run
    assert main([*reg, "leaderboard", "publish", "quick"]) == 0
    assert len(rows(snap, "SELECT run_id FROM runs")) == 2


@pytest.mark.slow
def test_private_dataset_text_is_withheld(quick_registry, tmp_path, monkeypatch):
    corpus = tmp_path / "private.txt"  # a user's own corpus: text-files is not marked public
    words = "the river keeps its records of every boat that passed under the old stone bridge".split()
    corpus.write_text("\n\n".join(" ".join(words[(i + j) % len(words)] for j in range(60)) for i in range(120)))
    args = ["--registry", str(quick_registry), "eval", "--method", "soft-kd", "--preset", "quick",
            "--dataset", "text-files", "--dataset-arg", f"path={corpus}", "--limit", "40"]
    assert main(args) == 0
    out = tmp_path / "b.duckdb"
    assert main(["--registry", str(quick_registry), "export", "latest", "-o", str(out)]) == 0
    assert rows(out, "SELECT count(*) FROM examples WHERE text IS NOT NULL OR token_ids IS NOT NULL")[0][0] == 0
    assert rows(out, "SELECT count(*) FROM vocab")[0][0] == 0
    [(note,)] = rows(out, "SELECT note FROM snapshot_notes WHERE kind = 'withheld'")
    assert "not marked public" in note
    with connection.reading(out) as con:
        run_id = con.execute("SELECT run_id FROM runs").fetchone()[0]
        d = standings.drill(con, run_id, "m000000")
    assert d.text is None and "not marked public" in d.withheld


def test_app_command_checks_its_arguments(tmp_path, capsys):
    assert main(["app", "--db", str(tmp_path / "missing.duckdb")]) == 2
    assert "no results database" in capsys.readouterr().err
    assert exit_code(["app", "--port", "99999"]) == 2
    assert "argument --port: must be between 1 and 65535, got 99999" in capsys.readouterr().err
