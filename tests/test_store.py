"""The results file: schema versions and migrations, refusal of newer or foreign files, the writer lock."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from harness.cli import main
from harness.errors import UsageError
from harness.store import connection, migrations
from harness.store.database import Store
from harness.store.migrations import MIGRATIONS, SCHEMA_VERSION

V1 = Path(__file__).parent / "fixtures" / "results_v1.sql"
V1_RUN = "20261123-152741-a2d2f6"


def v1_file(path: Path) -> Path:
    """A results file exactly as schema version 1 left it."""
    with duckdb.connect(str(path)) as con:
        con.execute(V1.read_text())
    return path


def rows(path: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(sql).fetchall()


def columns(path: Path) -> dict[str, list[tuple]]:
    """Each table's (column, type), in column order."""
    return {t: [c[:2] for c in cols] for t, cols in shape(path)[0].items()}


def shape(path: Path) -> tuple[dict[str, list[tuple]], list[tuple]]:
    """Each table's columns in order (name, type, default, nullable), and every constraint."""
    with duckdb.connect(str(path), read_only=True) as con:
        tables = [r[0] for r in con.execute("SELECT table_name FROM duckdb_tables() ORDER BY 1").fetchall()]
        cols = {t: con.execute("SELECT column_name, data_type, column_default, is_nullable FROM duckdb_columns() "
                               "WHERE table_name = ? ORDER BY column_index", [t]).fetchall() for t in tables}
        constraints = sorted((t, kind, str(c)) for t, kind, c in con.execute(
            "SELECT table_name, constraint_type, constraint_column_names FROM duckdb_constraints()").fetchall())
        return cols, constraints


def one_line_exit_2(argv: list[str], capsys) -> str:
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 2 and out == "" and err.count("\n") == 1, (code, out, err)
    return err


def test_every_version_has_one_step_named_after_the_version_it_makes():
    assert list(migrations.steps()) == list(range(1, SCHEMA_VERSION + 1))
    assert [migrations.version_of(step) for step in MIGRATIONS] == list(range(1, SCHEMA_VERSION + 1))


@pytest.mark.parametrize("names", [("m001_a", "m003_c"), ("m001_a", "m002_b", "m002_c"), ("m001_a", "step_two")])
def test_steps_that_do_not_count_up_one_by_one_are_refused(monkeypatch, names):
    def named(name):
        def step(con):
            pass
        step.__name__ = name
        return step

    monkeypatch.setattr(migrations, "MIGRATIONS", [named(n) for n in names])
    with pytest.raises(ValueError, match="gap|both make version|is not named"):
        migrations.steps()


def test_the_first_step_makes_exactly_what_version_1_had(tmp_path):
    made = tmp_path / "m001.duckdb"
    with duckdb.connect(str(made)) as con:
        migrations.m001_base_tables(con)
    assert shape(made) == shape(v1_file(tmp_path / "v1.duckdb"))


def test_a_v1_file_is_read_unchanged_and_migrated_when_written(tmp_path, capsys):
    db = v1_file(tmp_path / "old.duckdb")
    before = {t: rows(db, f"SELECT count(*) FROM {t}")[0][0] for t in ("runs", "models", "metrics", "samples", "examples")}
    assert rows(db, "SELECT version FROM schema_info") == [(1,)]
    original = db.read_bytes()
    assert main(["show", V1_RUN, "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert f"run {V1_RUN}: finished" in out and "hard-kd" in out
    assert main(["leaderboard", "--db", str(db)]) == 0
    assert "hard-kd" in capsys.readouterr().out
    assert db.read_bytes() == original  # reading neither migrates nor touches the file
    Store(db).check_writable()
    assert rows(db, "SELECT version FROM schema_info") == [(SCHEMA_VERSION,)]
    assert {t: rows(db, f"SELECT count(*) FROM {t}")[0][0] for t in before} == before
    assert rows(db, "SELECT trust_remote_code, family_args FROM runs") == [(False, None)]


def test_a_migrated_file_has_exactly_the_tables_of_a_new_one(tmp_path):
    old = v1_file(tmp_path / "old.duckdb")
    Store(old).check_writable()
    new = tmp_path / "new.duckdb"
    Store(new).check_writable()
    assert shape(old) == shape(new)  # the same tables, columns in the same order, types, defaults and keys
    rendered = tmp_path / "rendered.duckdb"  # and SCHEMA, the DDL snapshots and bundles are built from, is it
    with duckdb.connect(str(rendered)) as con:
        con.execute(migrations.SCHEMA)
    assert shape(rendered) == shape(new)


def test_a_migrated_file_takes_new_runs(tmp_path):
    store = Store(v1_file(tmp_path / "old.duckdb"))
    store.start_run({"run_id": "r2", "method": "soft-kd", "trust_remote_code": True})
    store.finish_run("r2", models=[], examples=[], samples={"role": ["student"], "sample_id": ["m000000"]},
                     metrics={"mem_rate_student": 0.5}, stage_seconds={})
    _, got = store.query("SELECT run_id, status, trust_remote_code FROM runs ORDER BY run_id")
    assert got == [(V1_RUN, "finished", False), ("r2", "finished", True)]


def test_a_failing_migration_leaves_the_file_as_it_was(tmp_path, monkeypatch):
    db = v1_file(tmp_path / "old.duckdb")
    def m002_fails_halfway(con):
        con.execute("ALTER TABLE runs ADD COLUMN x INTEGER")
        con.execute("ALTER TABLE nope ADD COLUMN y INT")

    monkeypatch.setattr(migrations, "MIGRATIONS",
                        [m002_fails_halfway if migrations.version_of(s) == 2 else s for s in MIGRATIONS])
    with pytest.raises(UsageError, match="cannot migrate results database .* from schema version 1 to 2"):
        Store(db).check_writable()
    assert rows(db, "SELECT version FROM schema_info") == [(1,)]
    assert "x" not in {c for c, _ in columns(db)["runs"]}


@pytest.mark.parametrize("command", [["show", "latest"], ["leaderboard"], ["eval", "--method", "hard-kd"]])
def test_a_newer_file_is_refused_and_left_alone(tmp_path, capsys, command):
    db = tmp_path / "new.duckdb"
    Store(db).check_writable()
    with duckdb.connect(str(db)) as con:
        con.execute("UPDATE schema_info SET version = ?", [SCHEMA_VERSION + 1])
    err = one_line_exit_2([*command, "--db", str(db)], capsys)
    assert f"has schema version {SCHEMA_VERSION + 1}, newer than this harness" in err
    assert f"understands ({SCHEMA_VERSION})" in err
    assert rows(db, "SELECT version FROM schema_info") == [(SCHEMA_VERSION + 1,)]
    assert rows(db, "SELECT count(*) FROM runs") == [(0,)]


@pytest.mark.parametrize("command", [["show", "latest"], ["eval", "--method", "hard-kd"]])
def test_a_foreign_duckdb_file_is_refused_and_left_alone(tmp_path, capsys, command):
    db = tmp_path / "mine.duckdb"
    with duckdb.connect(str(db)) as con:
        con.execute("CREATE TABLE my_notes (note VARCHAR)")
    err = one_line_exit_2([*command, "--db", str(db)], capsys)
    assert "is a DuckDB file but not a harness results database (it has tables my_notes" in err
    assert columns(db).keys() == {"my_notes"}


FOREIGN = {
    "a view": "CREATE VIEW runs AS SELECT 1 AS run_id",
    "a macro": "CREATE MACRO leak(x) AS x",
    "a table outside main": "CREATE SCHEMA other; CREATE TABLE other.runs (run_id VARCHAR)",
    "a sequence": "CREATE SEQUENCE s",
    "a type": "CREATE TYPE mood AS ENUM ('a', 'b')",
    "our tables and a view": "CREATE TABLE schema_info (version INTEGER NOT NULL); INSERT INTO schema_info VALUES (4); "
                             "CREATE VIEW v AS SELECT 1",
}


@pytest.mark.parametrize("command", [["show", "latest"], ["leaderboard"], ["compare", "--methods", "a,b"],
                                     ["predict", "latest"], ["eval", "--method", "hard-kd"]])
@pytest.mark.parametrize("what", list(FOREIGN))
def test_a_file_with_anything_not_ours_is_refused_and_never_written(tmp_path, capsys, command, what):
    db = tmp_path / "theirs.duckdb"
    with duckdb.connect(str(db)) as con:
        con.execute(FOREIGN[what])
    original = db.read_bytes()
    assert main([*command, "--db", str(db)]) == 2
    err = capsys.readouterr().err  # (compare names what it compares before it opens the file)
    assert err.count("\n") == 1 and "not a harness results database" in err, err
    assert db.read_bytes() == original


@pytest.mark.parametrize("command", [["show", "latest"], ["leaderboard"], ["eval", "--method", "hard-kd"]])
def test_a_text_schema_version_is_one_line(tmp_path, capsys, command):
    db = tmp_path / "r.duckdb"
    with duckdb.connect(str(db)) as con:
        con.execute("CREATE TABLE schema_info (version VARCHAR); INSERT INTO schema_info VALUES ('4')")
    original = db.read_bytes()
    err = one_line_exit_2([*command, "--db", str(db)], capsys)
    assert "schema_info.version is VARCHAR, not INTEGER" in err
    assert db.read_bytes() == original


@pytest.mark.parametrize("command", [["show", "latest"], ["leaderboard"], ["eval", "--method", "hard-kd"]])
@pytest.mark.parametrize("keep", [100, 12288, 0.5])
def test_a_truncated_results_file_is_one_line(tmp_path, capsys, command, keep):
    db = tmp_path / "r.duckdb"
    store = Store(db)
    store.start_run({"run_id": "r1", "method": "soft-kd"})
    with duckdb.connect(str(db)) as con:  # enough rows that half the file cuts into them
        con.execute("INSERT INTO examples (dataset_hash, tokenizer_key, sample_id, text) "
                    "SELECT 'h', 't', 'm' || range, repeat('x', 50) "
                    "FROM range(20000)")
    data = db.read_bytes()
    db.write_bytes(data[: int(len(data) * keep) if isinstance(keep, float) else keep])
    err = one_line_exit_2([*command, "--db", str(db)], capsys)
    assert "results database" in err


class _DiskFullAtCommit:
    """A connection whose COMMIT fails as on a full disk: DuckDB has ended the transaction when it raises."""

    def __init__(self, con):
        self._con = con

    def execute(self, sql, *args):
        if sql == "COMMIT":
            self._con.execute("ROLLBACK")
            raise duckdb.IOException("IO Error: Could not write file: No space left on device")
        return self._con.execute(sql, *args)

    def __getattr__(self, name):
        return getattr(self._con, name)


def test_a_commit_that_fails_reports_its_own_error(tmp_path, monkeypatch):
    db = tmp_path / "r.duckdb"
    store = Store(db)
    store.start_run({"run_id": "r1", "method": "soft-kd"})
    opened = store._open
    monkeypatch.setattr(store, "_open", lambda read_only: _DiskFullAtCommit(opened(read_only)))
    with pytest.raises(UsageError, match="No space left on device") as err:
        store.finish_run("r1", models=[], examples=[], samples={"role": ["student"], "sample_id": ["m000000"]},
                         metrics={"mem_rate_student": 0.5}, stage_seconds={})
    assert "rollback" not in str(err.value)
    assert rows(db, "SELECT status FROM runs") == [("running",)]


HOLD = """
import sys, time, duckdb
from harness.store import connection
con = duckdb.connect(sys.argv[1])
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
con.close()
"""


def _hold_lock(db: Path, seconds: float) -> subprocess.Popen:
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(db), str(seconds)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    return holder


def test_a_writer_waits_for_the_lock_then_writes(tmp_path):
    db = tmp_path / "r.duckdb"
    Store(db).check_writable()
    holder = _hold_lock(db, 2.0)
    try:
        Store(db, lock_wait=60).start_run({"run_id": "r1"})
    finally:
        holder.wait()
    assert rows(db, "SELECT run_id, status FROM runs") == [("r1", "running")]


def test_a_writer_gives_up_after_the_bound_with_a_clear_message(tmp_path, monkeypatch):
    db = tmp_path / "r.duckdb"
    Store(db).check_writable()
    holder = _hold_lock(db, 30.0)
    try:
        with pytest.raises(UsageError, match=r"results database .* stayed locked by another process for 1s"):
            Store(db, lock_wait=1).start_run({"run_id": "r1"})
    finally:
        holder.kill()
        holder.wait()
    assert rows(db, "SELECT count(*) FROM runs") == [(0,)]


def test_a_reader_waits_for_the_lock_and_the_app_says_when_it_gave_up(tmp_path, monkeypatch):
    from harness.leaderboard import standings

    db = tmp_path / "r.duckdb"
    Store(db).check_writable()
    holder = _hold_lock(db, 2.0)
    try:
        _, got = Store(db, lock_wait=60).query("SELECT count(*) FROM runs")  # the CLI's reads wait as its writes do
    finally:
        holder.wait()
    assert got == [(0,)]
    holder = _hold_lock(db, 30.0)
    try:
        with pytest.raises(connection.Refused) as refused:
            with connection.reading(db, lock_wait=1, empty=False):
                pass
        assert re.match(r"Cannot open .*r\.duckdb: IO Error: .*lock", standings.said(refused.value))
    finally:
        holder.kill()
        holder.wait()


SHIPPED = sorted((Path(__file__).resolve().parents[1] / "leaderboards").glob("*.duckdb"))


@pytest.mark.parametrize("snapshot", SHIPPED, ids=[p.name for p in SHIPPED])
def test_the_shipped_snapshots_open_and_read_unchanged(snapshot):
    from harness.leaderboard import standings

    original = snapshot.read_bytes()
    with connection.reading(snapshot) as con:
        assert connection.check(con, snapshot) == SCHEMA_VERSION
        assert con.execute("SELECT count(*) FROM runs WHERE status = 'finished'").fetchone()[0] > 0
    with connection.reading(snapshot) as con:
        assert standings.schema_problem(con) is None and not standings.board(con).empty
    assert snapshot.read_bytes() == original
