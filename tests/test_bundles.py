"""Submission bundles are untrusted: each attack that once put false figures or local files on the
board is refused in one line (exit status 2) with the snapshot byte for byte as it was."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import pytest

from harness.cli import main
from harness.leaderboard import standings
from harness.leaderboard.board_specs import load_spec
from harness.leaderboard.snapshot import write_subset
from harness.measure.stats import MIN_COUNT
from harness.store import connection
from harness.store.database import Store, config_hash
from tests.bundle_data import BOARD, add_genuine_run, genuine_bundle
from tests.conftest import write_quick_registry

SUBMITTED = "20260102-000000-bbbbbb"


@pytest.fixture(scope="session")
def world(tmp_path_factory) -> dict[str, Path]:
    """Made once: a registry, a published board holding one genuine run (seed 0), and a genuine
    bundle of another run (seed 1) that imports cleanly."""
    root = tmp_path_factory.mktemp("world")
    registry = write_quick_registry(root)
    boards = root / "boards"
    boards.mkdir()
    (boards / "small.toml").write_text(BOARD)
    (root / "pub").mkdir()
    published = genuine_bundle(root / "pub", registry)
    from harness.leaderboard.publish import import_bundle

    import_bundle(published, load_spec("small", boards), registry)
    (root / "sub").mkdir()
    bundle = genuine_bundle(root / "sub", registry, run_id=SUBMITTED, seed=1, student={0, 1, 2, 3, 4, 5, 9})
    return {"registry": registry, "snapshot": boards / "small.duckdb", "bundle": bundle, "published": published}


@pytest.fixture
def board(world, tmp_path, monkeypatch) -> Path:
    """This test's copy of the published board."""
    boards = tmp_path / "boards"
    boards.mkdir()
    shutil.copyfile(world["snapshot"].with_suffix(".toml"), boards / "small.toml")
    shutil.copyfile(world["snapshot"], boards / "small.duckdb")
    monkeypatch.setenv("HARNESS_LEADERBOARDS", str(boards))
    return boards / "small.duckdb"


def mutated(world, tmp_path, *sql: str, name: str = "hostile.duckdb") -> Path:
    out = tmp_path / name
    shutil.copyfile(world["bundle"], out)
    with duckdb.connect(str(out)) as con:
        for statement in sql:
            con.execute(statement)
    return out


def refused(world, board: Path, bundle: Path, capsys) -> str:
    """Import it: one line, exit 2, the snapshot byte for byte as it was. Returns the line."""
    before = board.read_bytes()
    code = main(["--registry", str(world["registry"]), "leaderboard", "import", str(bundle), "--board", "small"])
    out, err = capsys.readouterr()
    assert code == 2 and out == "" and err.count("\n") == 1 and "Traceback" not in err, (code, out, err)
    assert board.read_bytes() == before
    assert not board.with_name(board.name + ".import").exists()
    return err


def student_rates(snapshot: Path) -> dict[str, float]:
    with connection.reading(snapshot) as con:
        b = standings.board(con)
    return {r["method"]: r["mem_rate_student"] for _, r in b.iterrows()}


def test_the_genuine_bundle_imports_and_every_figure_is_its_verdicts(world, board, capsys):
    assert main(["--registry", str(world["registry"]), "leaderboard", "import", str(world["bundle"]),
                 "--board", "small"]) == 0
    assert "added 1 run(s)" in capsys.readouterr().out
    assert_board_recomputes(board)
    with duckdb.connect(str(board), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM runs").fetchall() == [(2,)]
        assert con.execute("SELECT count(*) FROM models WHERE artifact_path IS NOT NULL").fetchall() == [(0,)]


def test_a_bundle_with_its_columns_in_another_order_imports(world, board, tmp_path, capsys):
    # As one exported before the migrations were renumbered: trust_remote_code last, not after stage_seconds.
    bundle = mutated(world, tmp_path, "CREATE TABLE keep AS SELECT run_id, trust_remote_code FROM runs",
                     "ALTER TABLE runs DROP COLUMN trust_remote_code",
                     "ALTER TABLE runs ADD COLUMN trust_remote_code BOOLEAN DEFAULT false",
                     "UPDATE runs SET trust_remote_code = keep.trust_remote_code FROM keep "
                     "WHERE runs.run_id = keep.run_id", "DROP TABLE keep", name="reordered.duckdb")
    with duckdb.connect(str(bundle), read_only=True) as con:
        names = [r[0] for r in con.execute("SELECT column_name FROM duckdb_columns() WHERE table_name = 'runs' "
                                           "ORDER BY column_index").fetchall()]
    assert names[-1] == "trust_remote_code"
    assert main(["--registry", str(world["registry"]), "leaderboard", "import", str(bundle),
                 "--board", "small"]) == 0
    assert "added 1 run(s)" in capsys.readouterr().out
    assert_board_recomputes(board)


def assert_board_recomputes(snapshot: Path) -> None:
    """Every run's stored student, teacher and baseline rates are the means of its own verdicts."""
    with duckdb.connect(str(snapshot), read_only=True) as con:
        rows = con.execute("""SELECT m.run_id, m.name, m.value, v.rate FROM metrics m JOIN (
                                  SELECT run_id, 'mem_rate_' || role AS name, avg(memorized::INTEGER) AS rate
                                  FROM samples WHERE split = 'member' GROUP BY ALL) v USING (run_id, name)""").fetchall()
        n = con.execute("SELECT count(*) FROM runs").fetchall()[0][0]
    assert len(rows) == 3 * n
    for run_id, name, value, rate in rows:
        assert value == pytest.approx(rate, abs=1e-12), (run_id, name)


# ------------------------------------------------------------ attack 1: local files through views


@pytest.mark.parametrize("table", ["vocab", "snapshot_notes", "continuations", "runs"])
def test_a_view_over_a_local_file_is_refused_and_reads_nothing(world, board, tmp_path, capsys, table):
    secret = tmp_path / "secret.txt"
    secret.write_text("reviewer-secret-4711")
    with duckdb.connect(str(world["bundle"]), read_only=True) as con:
        cols = [r[0] for r in con.execute("SELECT column_name FROM duckdb_columns() WHERE table_name = ? "
                                          "ORDER BY column_index", [table]).fetchall()]
    select = ", ".join(f"content::VARCHAR AS {c}" if i == 0 else f"NULL AS {c}" for i, c in enumerate(cols))
    bundle = mutated(world, tmp_path, f"DROP TABLE {table}",
                     f"CREATE VIEW {table} AS SELECT {select} FROM read_text('{secret}')")
    assert "holds view main." + table in refused(world, board, bundle, capsys)
    assert b"reviewer-secret-4711" not in board.read_bytes()


@pytest.mark.parametrize(("sql", "shown"), [
    ("CREATE MACRO leak(x) AS x", "holds macro main.leak"),
    ("CREATE SCHEMA extra; CREATE TABLE extra.runs (run_id VARCHAR)", "holds schema extra"),
    ("CREATE SEQUENCE s", "holds sequence main.s"),
    ("CREATE TABLE extra_table (x INTEGER)", "an extra table main.extra_table"),
    ("DROP TABLE curves", "no table main.curves"),
    ("CREATE INDEX i ON runs (run_id)", "holds index main.i"),
])
def test_anything_but_the_exported_tables_is_refused(world, board, tmp_path, capsys, sql, shown):
    assert shown in refused(world, board, mutated(world, tmp_path, *sql.split("; ")), capsys)


def test_the_bundle_connection_is_locked():
    from harness.leaderboard.bundles import LOCKED

    con = duckdb.connect(config=LOCKED)
    with pytest.raises(duckdb.Error, match="disabled by configuration"):
        con.execute("SELECT * FROM read_text('/etc/hostname')")
    with pytest.raises(duckdb.Error, match="locked"):
        con.execute("SET enable_external_access = true")


# ------------------------------------------------------------ attack 2: false figures


@pytest.mark.parametrize(("sql", "shown"), [
    ("UPDATE metrics SET value = 'NaN' WHERE name = 'mem_rate_student'", "NaN or infinite"),
    ("UPDATE metrics SET value = 0 WHERE name = 'mem_rate_student'", "mem_rate_student is 0.0, its verdicts give"),
    ("UPDATE samples SET split = 'member ' WHERE split = 'member' AND role = 'student'", "'member ' is not one of"),
    ("DELETE FROM samples WHERE sample_id > 'm000000' AND split = 'member'; UPDATE runs SET n_members = 1",
     "n_members is 1, but the board's dataset yields 20"),
    ("INSERT INTO runs SELECT * FROM runs", "table runs: Constraint Error"),
    ("UPDATE samples SET memorized = NULL WHERE sample_id = 'm000003' AND role = 'student'", "no verdict"),
    ("UPDATE examples SET dataset_hash = 'another'", "examples"),
    ("UPDATE runs SET method_label = repeat('x', 2000000)", "runs.method_label holds 2000000 characters"),
    ("UPDATE runs SET finished_at = started_at - INTERVAL 1 DAY", "not a run that finished"),
    ("UPDATE runs SET finished_at = TIMESTAMP '2099-01-01'", "in the future"),
    ("UPDATE models SET val_ppl = 1.5 WHERE role = 'student'", "validation loss"),
    # scored on a validation split, whose losses are not stored per example: the figures must still agree
    ("UPDATE metrics SET value = 24 WHERE name = 'n_validation'; "
     "UPDATE models SET val_ppl = 1.5 WHERE role = 'student'", "validation loss"),
    ("UPDATE metrics SET value = 24 WHERE name = 'n_validation'; "
     "UPDATE metrics SET value = 1.5 WHERE name = 'val_ppl_student'; UPDATE models SET val_ppl = 1.5 WHERE role = "
     "'student'", "validation perplexity 1.5 is not exp of its loss"),
    ("UPDATE metrics SET value = 1.5 WHERE name = 'auc_loss_student'", "auc_loss_student is 1.5, outside [0, 1]"),
    ("UPDATE samples SET repeats = 99 WHERE sample_id = 'm000001'", "the dataset says"),
    ("INSERT INTO scores VALUES ('x', 'student', 'm000000', 'loss', 0.1)", "table scores must be empty"),
    ("UPDATE continuations SET sample_id = 'n000001' WHERE sample_id = 'm000010'", "continuation of n000001"),
])
def test_false_figures_are_refused(world, board, tmp_path, capsys, sql, shown):
    assert shown in refused(world, board, mutated(world, tmp_path, *sql.split("; ")), capsys)


def _rehash(con) -> None:
    """What an attacker does after editing a run: recompute its config hash so that it matches."""
    cur = con.execute("SELECT * FROM runs")
    names = [d[0] for d in cur.description]
    for row in cur.fetchall():
        run = dict(zip(names, row))
        con.execute("UPDATE runs SET config_hash = ? WHERE run_id = ?", [config_hash(run), run["run_id"]])


def test_a_run_never_replaces_a_published_row(world, board, tmp_path, capsys):
    before = student_rates(board)
    bundle = mutated(world, tmp_path, "UPDATE runs SET seed = 0, finished_at = finished_at + INTERVAL 1 HOUR",
                     "UPDATE samples SET memorized = false",
                     "UPDATE metrics SET value = 0 WHERE name LIKE 'mem_rate_%'")
    with duckdb.connect(str(bundle)) as con:
        _rehash(con)
    err = refused(world, board, bundle, capsys)
    assert "never replaces a published run" in err or "its verdicts give" in err
    # the same with figures that do agree with the zeroed verdicts: still refused, for the slot
    genuine = tmp_path / "same-slot"
    genuine.mkdir()
    same = genuine_bundle(genuine, world["registry"], run_id="20260103-000000-cccccc", seed=0, student=set())
    assert "already shows soft-kd at seed 0" in refused(world, board, same, capsys)
    assert student_rates(board) == before


def test_an_unregistered_method_is_refused(world, board, tmp_path, capsys):
    bundle = mutated(world, tmp_path, "UPDATE runs SET method = 'secret-kd', method_label = 'secret-kd'")
    with duckdb.connect(str(bundle)) as con:
        _rehash(con)
    assert "method 'secret-kd' is not registered here" in refused(world, board, bundle, capsys)


def test_a_label_other_than_the_methods_own_is_refused(world, board, tmp_path, capsys):
    bundle = mutated(world, tmp_path, "UPDATE runs SET method_label = 'soft-kd (best)'")
    assert "label 'soft-kd (best)'" in refused(world, board, bundle, capsys)


# ------------------------------------------------------------ attack 7: one line for malformed bundles


@pytest.mark.parametrize(("sql", "shown"), [
    ("ALTER TABLE samples ALTER memorized TYPE VARCHAR", "column memorized is VARCHAR, expected BOOLEAN"),
    ("ALTER TABLE runs ALTER seed TYPE VARCHAR", "column seed is VARCHAR, expected INTEGER"),
    ("ALTER TABLE metrics DROP COLUMN value", "column value is missing"),
    ("ALTER TABLE runs ADD COLUMN extra INTEGER", "column extra is not in it"),
    ("UPDATE samples SET memorized = NULL", "no verdict"),
    ("UPDATE runs SET seed = NULL", "is malformed: TypeError"),
    ("UPDATE runs SET method_args = '[1, 2]'", "method arguments [1, 2]"),
    ("UPDATE runs SET preset_values = '\"x\"'", "preset values differ"),
    ("DELETE FROM schema_info", "schema version"),
])
def test_malformed_bundles_are_one_line(world, board, tmp_path, capsys, sql, shown):
    assert shown in refused(world, board, mutated(world, tmp_path, sql), capsys)


def test_a_bundle_over_the_size_bound_is_refused_unread(world, board, tmp_path, capsys, monkeypatch):
    from harness.leaderboard import bundles

    monkeypatch.setattr(bundles, "MAX_BUNDLE_BYTES", world["bundle"].stat().st_size - 1)
    assert "a bundle may be" in refused(world, board, world["bundle"], capsys)


# ------------------------------------------------------------ attack 5: nothing local leaves


def test_no_exported_byte_holds_a_local_folder(tmp_path):
    registry = write_quick_registry(tmp_path)
    store = Store(tmp_path / "results.duckdb")
    add_genuine_run(store, registry)
    corpus = tmp_path / "home" / "someone" / "project-secret-name" / "corpus.txt"
    with duckdb.connect(str(store.path)) as con:
        con.execute("UPDATE runs SET dataset_args = json_merge_patch(dataset_args, ?::JSON), command = ?",
                    [json.dumps({"path": str(corpus)}), f"harness eval --dataset-arg path={corpus}"])
    bundle = tmp_path / "out" / "bundle.duckdb"
    bundle.parent.mkdir()
    _, [(run_id,)] = store.query("SELECT run_id FROM runs")
    write_subset(store.path, bundle, [run_id], {"synthetic-pii"}, [("exported", run_id, "now")])
    data = bundle.read_bytes()
    for needle in (str(tmp_path), "project-secret-name", "/home/someone"):
        assert needle.encode() not in data, needle
    with duckdb.connect(str(bundle), read_only=True) as con:
        assert json.loads(con.execute("SELECT dataset_args FROM runs").fetchall()[0][0])["path"] == "corpus.txt"


def test_the_config_hash_holds_a_corpus_file_name_not_its_folder():
    run = {"family": "tiny", "dataset": "text-files", "dataset_hash": "h", "method": "soft-kd", "method_args": "{}",
           "preset_values": "{}", "seed": 0, "example_limit": None, "harness_version": "0.1.0"}
    here = config_hash({**run, "dataset_args": json.dumps({"path": "/home/alice/work/corpus.txt"})})
    there = config_hash({**run, "dataset_args": json.dumps({"path": "/srv/bob/corpus.txt"})})
    other = config_hash({**run, "dataset_args": json.dumps({"path": "/srv/bob/other.txt"})})
    assert here == there != other


def test_the_published_boards_hashes_are_unchanged():
    spec = load_spec("default", Path(__file__).resolve().parents[1] / "leaderboards")
    with duckdb.connect(str(spec.snapshot), read_only=True) as con:
        cur = con.execute("SELECT * FROM runs")
        names = [d[0] for d in cur.description]
        runs = [dict(zip(names, r)) for r in cur.fetchall()]
    assert len(runs) >= len(spec.methods)
    for run in runs:
        assert config_hash(run) == run["config_hash"], run["method_label"]


# ------------------------------------------------------------ the hostile-bundle property test

TABLES = ("runs", "models", "examples", "samples", "metrics", "continuations", "vocab", "snapshot_notes",
          "schema_info", "curves")
COLUMNS = {"runs": ("seed", "method", "method_label", "dataset_hash", "n_members", "config_hash", "finished_at"),
           "samples": ("memorized", "split", "role", "loss", "sample_id", "repeats"),
           "metrics": ("value", "name"), "models": ("val_ppl", "role"), "examples": ("split", "dataset_hash", "text"),
           "continuations": ("token_ids", "sample_id"), "vocab": ("piece",), "snapshot_notes": ("note", "kind")}
DOUBLES = (("metrics", "value"), ("samples", "loss"), ("models", "val_ppl"), ("models", "val_loss"))
TEXTS = (("runs", "method_label"), ("snapshot_notes", "note"), ("vocab", "piece"), ("examples", "text"),
         ("runs", "git_commit"))
MUTATED: list[int] = []  # examples tried, for the report


def _mutations():
    from hypothesis import strategies as st

    table = st.sampled_from(TABLES)
    col = st.sampled_from([(t, c) for t, cs in COLUMNS.items() for c in cs])
    sid = st.sampled_from(["m000000", "m000003", "m000009", "n000001"])
    role = st.sampled_from(["teacher", "baseline", "student"])
    return st.one_of(
        table.map(lambda t: f"DROP TABLE {t}"),
        table.map(lambda t: f"ALTER TABLE {t} ADD COLUMN extra INTEGER"),
        st.just("CREATE TABLE extra (x INTEGER)"),
        col.map(lambda tc: f"ALTER TABLE {tc[0]} DROP COLUMN {tc[1]}"),
        st.tuples(col, st.sampled_from(["VARCHAR", "DOUBLE", "BIGINT", "JSON"])).map(
            lambda x: f"ALTER TABLE {x[0][0]} ALTER {x[0][1]} TYPE {x[1]}"),
        table.map(lambda t: f"DROP TABLE {t}; CREATE VIEW {t} AS SELECT content AS x FROM read_text('/etc/hostname')"),
        st.just("CREATE VIEW extra_view AS SELECT 1 AS x"),
        st.just("CREATE MACRO leak(x) AS x"),
        st.just("CREATE SCHEMA other; CREATE TABLE other.runs (run_id VARCHAR)"),
        st.tuples(st.sampled_from(DOUBLES), st.sampled_from(["'NaN'", "'inf'", "'-inf'", "1e308", "-1"]), sid).map(
            lambda x: f"UPDATE {x[0][0]} SET {x[0][1]} = {x[1]}" + (
                f" WHERE sample_id = '{x[2]}'" if x[0][0] == "samples" else "")),
        st.tuples(st.sampled_from(TEXTS), st.sampled_from([1001, 2001, 100_001, 3_000_000])).map(
            lambda x: f"UPDATE {x[0][0]} SET {x[0][1]} = repeat('x', {x[1]})"),
        st.tuples(table, st.integers(1, 3)).map(lambda x: f"INSERT INTO {x[0]} SELECT * FROM {x[0]} LIMIT {x[1]}"),
        st.tuples(st.sampled_from(["member ", "Member", "nonmember", "member", "x"]), sid, role).map(
            lambda x: f"UPDATE samples SET split = '{x[0]}' WHERE sample_id = '{x[1]}' AND role = '{x[2]}'"),
        st.tuples(st.sampled_from(["student ", "teacher", "baseline", "Student", ""]), sid).map(
            lambda x: f"UPDATE samples SET role = '{x[0]}' WHERE sample_id = '{x[1]}' AND role = 'student'"),
        st.tuples(st.sampled_from(["started_at", "finished_at"]), st.integers(-10**6, 10**6)).map(
            lambda x: f"UPDATE runs SET {x[0]} = {x[0]} + INTERVAL {x[1]} HOUR"),
        st.tuples(sid, role).map(
            lambda x: f"UPDATE samples SET memorized = NOT memorized WHERE sample_id = '{x[0]}' AND role = '{x[1]}'"),
        st.tuples(role, st.floats(-0.2, 0.2, allow_nan=False)).map(
            lambda x: f"UPDATE metrics SET value = value + {x[1]} WHERE name = 'mem_rate_{x[0]}'"),
        st.integers(0, 3).map(lambda s: f"UPDATE runs SET seed = {s}"),
        st.sampled_from(["UPDATE runs SET method = 'secret-kd'", "UPDATE runs SET n_members = 1",
                         "UPDATE examples SET dataset_hash = 'other'", "DELETE FROM samples WHERE sample_id = 'm000004'",
                         "UPDATE samples SET memorized = NULL WHERE sample_id = 'm000002'",
                         "UPDATE runs SET config_hash = 'x'", "DELETE FROM schema_info"]),
    )


def _apply(bundle: Path, statements: list[str], rehash: bool) -> None:
    with duckdb.connect(str(bundle)) as con:
        for statement in statements:
            try:
                for part in statement.split("; "):
                    con.execute(part)
            except duckdb.Error:
                pass  # a mutation DuckDB itself refuses (a type that does not convert): the bundle stays as it was
        if rehash:  # the attacker recomputes the config hash after editing the run
            try:
                _rehash(con)
            except Exception:  # noqa: BLE001 - a run row too broken to hash stays as it is
                pass


def _board_figures_recompute(snapshot: Path) -> None:
    """Every run on the board: its three memorization rates, validation perplexities and reduction
    are what its own verdicts give."""
    assert_board_recomputes(snapshot)
    with duckdb.connect(str(snapshot), read_only=True) as con:
        rows = con.execute("""SELECT m.run_id, m.role, m.val_ppl, exp(avg(s.loss)) FROM models m JOIN samples s
                              ON s.run_id = m.run_id AND s.role = m.role AND s.split = 'nonmember'
                              GROUP BY ALL""").fetchall()
        reductions = con.execute("""SELECT r.value, b.value / s.value, b.value * n_members, s.value * n_members
            FROM metrics r JOIN runs USING (run_id)
            JOIN metrics b ON b.run_id = r.run_id AND b.name = 'mem_rate_baseline'
            JOIN metrics s ON s.run_id = r.run_id AND s.name = 'mem_rate_student'
            WHERE r.name = 'reduction'""").fetchall()
        counts = con.execute("SELECT r.n_members, (SELECT count(*) FROM samples s WHERE s.run_id = r.run_id AND "
                             "s.split = 'member' AND s.role = 'student') FROM runs r").fetchall()
    for run_id, role, ppl, recomputed in rows:
        assert ppl == pytest.approx(recomputed, rel=1e-5), (run_id, role)
    for stored, recomputed, baseline, student in reductions:
        if min(baseline, student) < MIN_COUNT:  # a ratio of a handful of members is NULL, never a figure
            assert stored is None
        else:
            assert stored == pytest.approx(recomputed, rel=1e-9)
    assert all(n == got == 20 for n, got in counts)


def test_hostile_bundles_are_refused_or_recompute(world, tmp_path_factory, monkeypatch):
    """From the genuine bundle, hypothesis mutates tables, columns, types, values, labels and times.
    Each import is refused in one line with the snapshot byte-identical, or gives a board whose
    every figure recomputes from its verdicts."""
    import io
    import tempfile
    from contextlib import redirect_stderr, redirect_stdout

    from hypothesis import HealthCheck, given, settings, strategies as st

    scratch = tmp_path_factory.mktemp("hostile")

    @settings(max_examples=80, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(statements=st.lists(_mutations(), min_size=1, max_size=3), rehash=st.booleans())
    def check(statements, rehash):
        with tempfile.TemporaryDirectory(dir=scratch) as folder:
            boards = Path(folder) / "boards"
            boards.mkdir()
            shutil.copyfile(world["snapshot"].with_suffix(".toml"), boards / "small.toml")
            snapshot = boards / "small.duckdb"
            shutil.copyfile(world["snapshot"], snapshot)
            before = snapshot.read_bytes()
            bundle = Path(folder) / "hostile.duckdb"
            shutil.copyfile(world["bundle"], bundle)
            _apply(bundle, statements, rehash)
            monkeypatch.setenv("HARNESS_LEADERBOARDS", str(boards))
            out, err = io.StringIO(), io.StringIO()
            with redirect_stdout(out), redirect_stderr(err):
                code = main(["--registry", str(world["registry"]), "leaderboard", "import", str(bundle),
                             "--board", "small"])
            MUTATED.append(code)
            if code == 2:
                assert err.getvalue().count("\n") == 1 and "Traceback" not in err.getvalue(), err.getvalue()
                assert snapshot.read_bytes() == before
            else:
                assert code == 0, (code, err.getvalue())
                _board_figures_recompute(snapshot)
                with duckdb.connect(str(snapshot), read_only=True) as con:
                    assert con.execute("SELECT count(*) FROM runs").fetchall() == [(2,)]

    check()
    print(f"\nhostile bundles tried: {len(MUTATED)}, refused {MUTATED.count(2)}, imported {MUTATED.count(0)}")
    assert len(MUTATED) >= 50
