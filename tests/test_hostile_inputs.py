"""Hostile local inputs: each is one line with exit status 2, or a bounded result, never a hang or a traceback."""

from __future__ import annotations

import pytest

from harness.cli import main
from harness.contract.sources import expand_glob
from tests.conftest import ROOT

NESTED = "[presets.x]\nprefix_len = " + "[" * 1000 + "]" * 1000 + "\n"


def _one_line(argv: list[str], capsys) -> str:
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, (code, err)
    return err


def test_a_registry_nested_past_the_toml_limit_is_one_line(tmp_path, capsys):
    reg = tmp_path / "registry.toml"
    reg.write_text(NESTED)
    err = _one_line(["--registry", str(reg), "list"], capsys)
    assert "malformed TOML" in err and "nested" in err


def test_a_board_definition_nested_past_the_toml_limit_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HARNESS_LEADERBOARDS", str(tmp_path))
    (tmp_path / "deep.toml").write_text("family = " + "[" * 1000 + "]" * 1000 + "\n")
    assert "not valid TOML" in _one_line(["leaderboard", "publish", "deep"], capsys)


@pytest.mark.parametrize("name", ["plugin.txt", "plugin", "plugin.pyc"])
def test_a_plugin_file_that_is_not_python_source_is_one_line(tmp_path, capsys, name):
    (tmp_path / name).write_text("from harness.contract.hookspecs import hookimpl\n")
    reg = tmp_path / "registry.toml"
    reg.write_text((ROOT / "registry.toml").read_text().replace("files = []", f'files = ["{name}"]'))
    assert "is not a .py file" in _one_line(["--registry", str(reg), "list"], capsys)


@pytest.mark.timeout(60)
def test_a_glob_over_symlink_loops_ends_and_finds_each_file_once(tmp_path, monkeypatch):
    loop = tmp_path / "loop"
    (loop / "a" / "b").mkdir(parents=True)
    (loop / "a" / "one.txt").write_text("one")
    (loop / "a" / "b" / "two.txt").write_text("two")
    (loop / "a" / "b" / "up").symlink_to("..", target_is_directory=True)
    (loop / "a" / "b" / "top").symlink_to(tmp_path, target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    assert expand_glob("loop/**/*.txt", "test") == ["loop/a/b/two.txt", "loop/a/one.txt"]
    assert expand_glob(f"{loop}/**/*.txt", "test") == [str(loop / "a/b/two.txt"), str(loop / "a/one.txt")]


def test_a_glob_matching_too_many_files_is_refused(tmp_path):
    for i in range(5):
        (tmp_path / f"{i}.txt").write_text("x")
    with pytest.raises(Exception, match="matches more than 3 files"):
        expand_glob(f"{tmp_path}/*.txt", "test", limit=3)


@pytest.mark.timeout(120)
def test_text_files_over_a_symlink_loop_reads_the_real_files(tmp_path):
    from plugins.datasets import text_files

    loop = tmp_path / "loop"
    (loop / "d").mkdir(parents=True)
    (loop / "d" / "a.txt").write_text("first document here\n\nsecond document here\n")
    (loop / "d" / "back").symlink_to("..", target_is_directory=True)
    files = text_files._files(f"{loop}/**/*.txt")
    assert files == [loop / "d" / "a.txt"]


def test_a_cache_dir_that_cannot_be_written_is_one_line_from_the_tokenizer_step(quick_registry, tmp_path, capsys):
    (tmp_path / "file").write_text("a file where the cache folder should be")
    argv = ["--registry", str(quick_registry), "eval", "--method", "hard-kd", "--preset", "quick",
            "--dataset-arg", "n_members=8", "--dataset-arg", "n_nonmembers=4", "--cache-dir", str(tmp_path / "file" / "c")]
    err = _one_line(argv, capsys)
    assert "cannot write to the cache at" in err and "Not a directory" in err


# ---------------------------------------------------------------- a results file's values (issue 37)

LABEL = "soft\x1b[2J\n1 FAKE-ROW"  # a clear-screen, then a newline that would print a forged row
BIG = 5_000_000


@pytest.fixture(scope="module")
def results_file(tmp_path_factory):
    """A results file of three runs built without training, with sampling log-probabilities: copied per test."""
    import duckdb

    from tests import board_data

    db = board_data.build(tmp_path_factory.mktemp("results") / "base.duckdb", methods=("soft-kd", "hard-kd", "topk-kd"))
    with duckdb.connect(str(db)) as con:
        con.execute("UPDATE samples SET sample_logprob = -2.0 - (hash(sample_id || role || run_id) % 50) / 10.0")
    return db


def _altered(results_file, tmp_path, *sql: str):
    import shutil

    import duckdb

    db = tmp_path / "altered.duckdb"
    shutil.copyfile(results_file, db)
    with duckdb.connect(str(db)) as con:
        for statement in sql:
            con.execute(statement)
    return db


def _reads(argv: list[str], capsys) -> str:
    """main(argv) exits 0 with no traceback and nothing raw: no control character but newlines; returns stdout."""
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 0 and "Traceback" not in err, (code, err)
    assert not [c for c in out + err if not c.isprintable() and c != "\n"], "a raw control character was printed"
    return out


def test_one_line_escapes_every_control_character_and_bounds_the_length():
    from harness.present.formats import one_line

    assert one_line(LABEL) == "soft\\x1b[2J\\n1 FAKE-ROW"
    assert one_line("a\u202eb\u200bc\td\r") == "a\\u202eb\\u200bc\\td\\r"  # bidi override, zero-width space, tab, CR
    cut = one_line("x" * BIG)
    assert cut.startswith("x" * 100) and cut.endswith("(4,999,880 more characters)") and len(cut) < 160
    assert one_line("\n" * 100, limit=10) == "\\n" * 5 + "… (95 more characters)"  # an escape is never cut in two
    assert one_line("plain label") == "plain label"


@pytest.mark.parametrize("value", ["'NaN'::DOUBLE", "'-inf'::DOUBLE", "'inf'::DOUBLE"])
@pytest.mark.parametrize("figure", ["mem_rate_student", "memorized_student", "val_ppl_baseline"])
@pytest.mark.parametrize("command", [["show", "run-soft-kd"], ["leaderboard"], ["compare", "--methods",
                                                                                 "soft-kd,hard-kd"]])
def test_a_non_finite_figure_is_one_line_from_every_reader(results_file, tmp_path, capsys, value, figure, command):
    db = _altered(results_file, tmp_path, f"UPDATE metrics SET value = {value} WHERE run_id = 'run-soft-kd' "
                                          f"AND name = '{figure}'")
    before = db.read_bytes()
    err = _one_line([*command, "--db", str(db)], capsys)
    assert "NaN or infinite" in err and figure in err and "run-soft-kd" in err
    assert db.read_bytes() == before


@pytest.mark.parametrize(("sql", "said"), [
    ("UPDATE samples SET sample_logprob = 'nan'::DOUBLE WHERE run_id = 'run-soft-kd' AND sample_id = 'm000001'",
     "NaN or infinite (samples"),
    ("UPDATE samples SET sample_logprob = 1e308 WHERE run_id = 'run-soft-kd'", "outside [-1e6, 0]"),
    ("UPDATE samples SET sample_logprob = 5.0 WHERE run_id = 'run-hard-kd'", "outside [-1e6, 0]"),
    ("ALTER TABLE samples ALTER sample_logprob TYPE VARCHAR", "samples.sample_logprob is VARCHAR, not DOUBLE"),
    ("ALTER TABLE metrics ALTER value TYPE VARCHAR", "metrics.value is VARCHAR, not DOUBLE"),
    ("ALTER TABLE models ALTER training TYPE VARCHAR", "models.training is VARCHAR, not JSON"),
    ("INSERT INTO metrics VALUES ('run-soft-kd', 'extractable_rate_student', 7)", "rate outside [0, 1]"),
    ("INSERT INTO metrics VALUES ('run-soft-kd', 'rep1_auc_loss_student', -0.5)", "rate outside [0, 1]"),
    ("UPDATE metrics SET value = 1e300 WHERE name = 'memorized_student'", "count below 0 or above"),
    ("UPDATE metrics SET value = -3 WHERE name = 'inherited'", "count below 0 or above"),
    ("UPDATE metrics SET value = 0 WHERE name = 'val_ppl_baseline'", "perplexity that is not above 0"),
    ("UPDATE runs SET n_members = 0 WHERE run_id = 'run-soft-kd'", "members, non-members, prefix, suffix, seed or"),
    ("UPDATE runs SET suffix_len = 2147483647 WHERE run_id = 'run-soft-kd'", "prefix, suffix, seed or limit out of"),
    ("UPDATE models SET weights_sha256 = E'\\x1b[2J'", "weights hash that is not hex digits"),
    ("UPDATE samples SET suffix_loss = 'inf'::DOUBLE WHERE sample_id = 'm000002'", "NaN or infinite (samples"),
    # the blind baseline's figures (a run's blind_auc, _lo, _hi): in [0, 1] and finite, as every AUC
    ("INSERT INTO metrics VALUES ('run-soft-kd', 'blind_auc', 2.5)", "rate outside [0, 1]"),
    ("INSERT INTO metrics VALUES ('run-soft-kd', 'blind_auc_lo', 'nan'::DOUBLE)", "NaN or infinite"),
    ("INSERT INTO metrics VALUES ('run-soft-kd', 'blind_auc_hi', '-inf'::DOUBLE)", "NaN or infinite"),
])
def test_a_value_no_harness_writes_is_one_line_and_the_file_is_left_alone(results_file, tmp_path, capsys, sql, said):
    db = _altered(results_file, tmp_path, sql)
    before = db.read_bytes()
    for command in (["leaderboard"], ["leaderboard", "--rank-by", "membership_gap_student"], ["show", "run-soft-kd"],
                    ["export", "run-soft-kd", "-o", str(tmp_path / "b.duckdb")]):
        assert said in _one_line([*command, "--db", str(db)], capsys)
    assert db.read_bytes() == before and not (tmp_path / "b.duckdb").exists()


def test_a_hostile_label_is_escaped_and_bounded_by_every_table(results_file, tmp_path, capsys):
    import duckdb

    db = _altered(results_file, tmp_path)

    with duckdb.connect(str(db)) as con:
        con.execute("UPDATE runs SET method_label = ?, teacher_access = ? WHERE run_id = 'run-soft-kd'", [LABEL, LABEL])
        con.execute("UPDATE runs SET method_label = ?, own_recipe = ? WHERE run_id = 'run-topk-kd'",
                    ["y" * BIG, LABEL + "x" * BIG])
    out = _reads(["leaderboard", "--db", str(db)], capsys)
    assert "soft\\x1b[2J\\n1 FAKE-ROW" in out and not any(line.startswith("1 FAKE") for line in out.splitlines())
    assert len(out) < 20_000 and "(4,999,880 more characters)" in out  # the 5 MB label, cut
    out = _reads(["show", "run-soft-kd", "--db", str(db)], capsys)
    assert "teacher access: soft\\x1b[2J\\n1 FAKE-ROW" in out
    out = _reads(["show", "run-topk-kd", "--db", str(db)], capsys)
    assert "own recipe" in out and len(out) < 20_000
    out = _reads(["compare", "--methods", f"{LABEL},hard-kd", "--db", str(db)], capsys)
    assert "FAKE-ROW" in out


@pytest.mark.parametrize("sql", [
    "UPDATE models SET training = '{\"epochs\": 1e400, \"lr\": 0.1, \"batch_size\": 2, \"warmup_ratio\": 0, "
    "\"weight_decay\": 0, \"steps\": 3, \"schedule\": \"cosine\"}'",
    "UPDATE models SET training = (repeat('[', 5000) || repeat(']', 5000))::JSON",
    "UPDATE models SET training = '[1, 2]'",
    "UPDATE models SET training = json_object('epochs', 1, 'lr', 0.1, 'batch_size', 2, 'warmup_ratio', 0, "
    "'weight_decay', 0, 'steps', 3, 'schedule', repeat(chr(27) || '[2J', 1000000))",
    "UPDATE runs SET stage_seconds = '[1, 2]', family_args = '[1]'",
    "UPDATE models SET n_params = NULL, train_seconds = NULL",
    "UPDATE runs SET n_members = NULL, n_nonmembers = NULL, prefix_len = NULL, suffix_len = NULL",  # sparse, old rows
    "INSERT INTO metrics VALUES ('run-soft-kd', 'dp_noise_multiplier', 1.0)",  # a DP run's other figures missing
])
def test_stored_text_or_figures_that_are_not_what_they_should_be_show_as_na(results_file, tmp_path, capsys, sql):
    db = _altered(results_file, tmp_path, sql)
    out = _reads(["show", "run-soft-kd", "--db", str(db)], capsys)
    assert "run run-soft-kd: finished" in out and len(out) < 20_000
    _reads(["leaderboard", "--db", str(db)], capsys)


@pytest.mark.timeout(60)
def test_a_checkpoint_path_holding_a_fifo_is_never_read(results_file, tmp_path, capsys):
    import os

    import duckdb

    folder = tmp_path / "checkpoint"
    folder.mkdir()
    os.mkfifo(folder / "training.json")  # reading it would wait for a writer forever
    db = _altered(results_file, tmp_path)
    with duckdb.connect(str(db)) as con:
        con.execute("UPDATE models SET artifact_path = ? WHERE run_id = 'run-soft-kd'", [str(folder)])
    assert "student recipe" in _reads(["show", "run-soft-kd", "--db", str(db)], capsys)


def test_rank_by_given_empty_or_hostile_is_one_line(results_file, capsys):
    for value in ("", "val_ppl_student", "\x1b[2J\nFAKE", "x" * 1_000_000):
        err = _one_line(["leaderboard", "--rank-by", value, "--db", str(results_file)], capsys)
        assert "unknown measure (--rank-by)" in err and len(err) < 2500
    for value in ("extractable_rate_student", "mem_rate_student", "membership_gap_student"):
        assert "tiny on synthetic-pii" in _reads(["leaderboard", "--rank-by", value, "--db", str(results_file)], capsys)


def test_wilson_and_rate_ratio_give_no_figure_for_counts_no_harness_writes():
    import math

    from harness.measure.stats import rate_ratio, wilson

    for k, n in ((-math.inf, 20), (math.nan, 20), (25, 20), (3, -5), (None, 3), (1, math.inf)):
        assert all(math.isnan(v) for v in wilson(k, n)), (k, n)
    assert all(math.isnan(v) for v in rate_ratio(math.inf, 20, 15, 20))
    assert wilson(5, 20)[0] == 0.25


def test_a_non_finite_per_example_value_is_stored_as_null(tmp_path):
    import math

    from harness.store.database import Store

    store = Store(tmp_path / "r.duckdb")
    sizes = {"seed": 0, "n_members": 1, "n_nonmembers": 1, "prefix_len": 4, "suffix_len": 4}
    store.start_run({"run_id": "r1", "method": "soft-kd", **sizes})
    store.finish_run("r1", models=[], examples=[], samples={"role": ["student", "student"],
                                                           "sample_id": ["m000000", "n000000"],
                                                           "loss": [math.nan, 1.0], "suffix_loss": [math.inf, 2.0]},
                     metrics={"mem_rate_student": 0.0}, stage_seconds={})
    _, rows = store.query("SELECT loss, suffix_loss FROM samples ORDER BY sample_id")  # read through the value check
    assert rows == [(None, None), (1.0, 2.0)]


def test_the_app_shows_a_hostile_label_escaped_and_a_non_finite_figure_as_one_message(results_file, tmp_path,
                                                                                        monkeypatch):
    import duckdb
    from streamlit.testing.v1 import AppTest

    (tmp_path / "boards").mkdir()
    monkeypatch.setenv("HARNESS_LEADERBOARDS", str(tmp_path / "boards"))
    db = _altered(results_file, tmp_path)
    with duckdb.connect(str(db)) as con:
        con.execute("UPDATE runs SET method_label = ? WHERE run_id = 'run-soft-kd'", [LABEL])
        con.execute("UPDATE runs SET method_label = ? WHERE run_id = 'run-hard-kd'", ["z" * BIG])
    monkeypatch.setenv("HARNESS_DB", str(db))
    at = AppTest.from_file(str(ROOT / "harness" / "present" / "app.py"), default_timeout=120)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    methods = at.dataframe[0].value["method"].tolist()
    assert "soft\\x1b[2J\\n1 FAKE-ROW" in methods and all(len(m) < 200 for m in methods)
    shown = [e.value for e in [*at.markdown, *at.caption, *at.header, *at.selectbox]] + [str(o) for s in at.selectbox
                                                                                       for o in s.options]
    assert not [t for t in shown if isinstance(t, str) and ("\x1b" in t or len(t) > 10_000)]
    with duckdb.connect(str(db)) as con:
        con.execute("UPDATE metrics SET value = 'nan'::DOUBLE WHERE name = 'mem_rate_student'")
    at = AppTest.from_file(str(ROOT / "harness" / "present" / "app.py"), default_timeout=120)
    at.run()
    assert not at.exception and "NaN or infinite" in at.info[0].value


# ---------------------------------------------------------------- bundles carrying the newest columns (issue 37)

SUBMITTED = "20260102-000000-bbbbbb"


@pytest.fixture(scope="module")
def bundle_world(tmp_path_factory):
    """A board of one genuine run (a registry, its definition and snapshot) and a genuine bundle of another."""
    from harness.leaderboard.board_specs import load_spec
    from harness.leaderboard.publish import import_bundle
    from tests.bundle_data import BOARD, genuine_bundle
    from tests.conftest import write_quick_registry

    root = tmp_path_factory.mktemp("bundles")
    registry = write_quick_registry(root)
    (root / "boards").mkdir()
    (root / "boards" / "small.toml").write_text(BOARD)
    (root / "pub").mkdir()
    import_bundle(genuine_bundle(root / "pub", registry), load_spec("small", root / "boards"), registry)
    (root / "sub").mkdir()
    bundle = genuine_bundle(root / "sub", registry, run_id=SUBMITTED, seed=1, student={0, 1, 2, 3, 4, 5, 9})
    return {"registry": registry, "boards": root / "boards", "bundle": bundle}


@pytest.mark.parametrize(("sql", "said"), [
    ("UPDATE runs SET own_recipe = E'x\\x1b[2J\\n1 FAKE'", "own recipe 'x\\x1b[2J\\n1 FAKE' is not what soft-kd gives"),
    ("UPDATE runs SET own_recipe = repeat('x', 5000000)", "runs.own_recipe holds 5000000 characters"),
    (f"INSERT INTO metrics VALUES ('{SUBMITTED}', 'extractable_rate_student', 0.5)",
     "extractable_rate_student is 0.5, but its verdicts give none"),
    ("UPDATE samples SET sample_logprob = -5.0", "extractable_teacher is None, its verdicts give"),
    ("UPDATE samples SET sample_logprob = 3.0", "values out of range"),
    ("UPDATE samples SET sample_logprob = 'inf'::DOUBLE", "NaN or infinite"),
    ("ALTER TABLE samples ALTER sample_logprob TYPE VARCHAR", "column sample_logprob is VARCHAR, expected DOUBLE"),
    (f"INSERT INTO metrics VALUES ('{SUBMITTED}', 'rep1_auc_loss_student', 2)", "rep1_auc_loss_student is 2.0"),
    (f"INSERT INTO metrics VALUES ('{SUBMITTED}', 'val_ppl_start_student', 0)", "a perplexity that is not above 0"),
    ("UPDATE models SET weights_sha256 = E'\\x1b[2J\\nFAKE'", "a weights hash that is not hex digits"),
    ("UPDATE models SET training = json_object('schedule', repeat('y', 100000))", "models.training holds 100015"),
    ("ALTER TABLE models ALTER training TYPE VARCHAR", "column training is VARCHAR, expected JSON"),
])
def test_a_bundle_carrying_a_hostile_new_value_is_refused_in_one_line(bundle_world, tmp_path, capsys, monkeypatch,
                                                                      sql, said):
    import shutil

    import duckdb

    boards = tmp_path / "boards"
    shutil.copytree(bundle_world["boards"], boards)
    monkeypatch.setenv("HARNESS_LEADERBOARDS", str(boards))
    bundle = tmp_path / "hostile.duckdb"
    shutil.copyfile(bundle_world["bundle"], bundle)
    with duckdb.connect(str(bundle)) as con:
        con.execute(sql)
    before = (boards / "small.duckdb").read_bytes()
    err = _one_line(["--registry", str(bundle_world["registry"]), "leaderboard", "import", str(bundle), "--board",
                     "small"], capsys)
    assert said in err and (boards / "small.duckdb").read_bytes() == before
