"""Every user error is one line on stderr and exit status 2, before anything is trained; a run that
fails after it started is marked `failed` and shows no figures."""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from unittest import mock

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from conftest import ROOT, SMALL_DATA, quick_args
from harness import cli
from harness.cli import main
from harness.errors import UsageError
from harness.protocol.run import Protocol
from harness.store.database import Store


class RunStarted(BaseException):
    """Raised instead of starting a run: no bad input may get that far. A BaseException, so that
    neither the protocol's nor the CLI's handlers swallow it."""


@pytest.fixture
def real_runs():
    """Requested by the tests that start a run on purpose."""


@pytest.fixture(autouse=True)
def no_run_starts(request, monkeypatch):
    if "real_runs" in request.fixturenames:
        return

    def refuse(self, row):
        raise RunStarted(row["run_id"])

    monkeypatch.setattr(Store, "start_run", refuse)


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    """main(argv) in-process; argparse's own errors exit through SystemExit, the rest return."""
    try:
        code = main(argv)
    except SystemExit as exit_:
        code = exit_.code
    out, err = capsys.readouterr()
    return code, out, err


def usage_error(argv: list[str], capsys) -> str:
    """Assert exit status 2, nothing on stdout and exactly one non-empty line on stderr; return it."""
    code, out, err = run(argv, capsys)
    assert code == 2, (code, out, err)
    assert out == ""
    assert err.endswith("\n") and err.count("\n") == 1, err
    line = err.rstrip("\n")
    assert line.strip() and line.startswith("harness")
    return line


def eval_error(registry: Path, capsys, *extra: str, method: str = "hard-kd") -> str:
    return usage_error(quick_args(registry, method, *extra), capsys)


def text_files_error(registry: Path, capsys, *dataset_args: str) -> str:
    argv = ["--registry", str(registry), "eval", "--method", "hard-kd", "--preset", "quick", "--dataset", "text-files"]
    for arg in dataset_args:
        argv += ["--dataset-arg", arg]
    return usage_error(argv, capsys)


def runs_in(db: Path) -> list[tuple]:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute("SELECT run_id, status, error FROM runs").fetchall()


# ---------------------------------------------------------------- unknown names


def test_unknown_method_has_did_you_mean_and_choices(quick_registry, capsys):
    line = eval_error(quick_registry, capsys, method="sof-kd")
    assert "unknown method 'sof-kd'" in line
    assert "did you mean 'soft-kd'?" in line
    assert ("choose from: dedup-ft, dp-ft, dp-kd, gkd, hard-kd, hidden-mse, imitkd, jsd, minillm, reverse-kl, rs-kd, seqkd, "
            "skew-kl, skew-rkl, soft-kd, topk-kd, tvd") in line


def test_unknown_method_without_near_name_lists_choices(quick_registry, capsys):
    line = eval_error(quick_registry, capsys, method="zzzzzz")
    assert "unknown method 'zzzzzz'" in line and "did you mean" not in line
    assert ("choose from: dedup-ft, dp-ft, dp-kd, gkd, hard-kd, hidden-mse, imitkd, jsd, minillm, reverse-kl, rs-kd, seqkd, "
            "skew-kl, skew-rkl, soft-kd, topk-kd, tvd") in line


def test_unknown_family(quick_registry, capsys):
    line = eval_error(quick_registry, capsys, "--family", "tiney")
    assert "unknown model family 'tiney'" in line and "did you mean 'tiny'?" in line
    assert "choose from: gpt2, olmo2, opt, pythia, qwen3, tiny" in line


def test_unknown_dataset(quick_registry, capsys):
    line = eval_error(quick_registry, capsys, "--dataset", "synthetic-pi")
    assert "unknown dataset 'synthetic-pi'" in line and "did you mean 'synthetic-pii'?" in line
    assert "choose from: dolly, fineweb, nemotron-cc, synthetic-pii, text-files, wikitext" in line


def test_unknown_default_family_in_the_registry(tmp_path, capsys):
    reg = tmp_path / "registry.toml"
    reg.write_text((ROOT / "registry.toml").read_text() + '\n[defaults]\nfamily = "tiney"\n')
    line = usage_error(["--registry", str(reg), "eval", "--method", "hard-kd"], capsys)
    assert "unknown model family 'tiney'" in line and "did you mean 'tiny'?" in line


@pytest.mark.parametrize(("preset", "hint"), [("xyzzy", None), ("quik", "quick")])
def test_unknown_preset(quick_registry, capsys, preset, hint):
    argv = ["--registry", str(quick_registry), "eval", "--method", "hard-kd", "--preset", preset]
    line = usage_error(argv, capsys)
    assert f"unknown preset (in {quick_registry}) {preset!r}" in line
    assert "choose from: gpt2, olmo2, opt, pythia, quick, qwen3, small, tiny" in line
    assert (f"did you mean {hint!r}?" in line) if hint else ("did you mean" not in line)


# ---------------------------------------------------------------- method and dataset arguments


def test_misspelt_method_argument(quick_registry, capsys):
    line = eval_error(quick_registry, capsys, "--method-arg", "temprature=3", method="soft-kd")
    assert "'temprature'" in line and "did you mean 'temperature'?" in line
    assert "choose from: ce_weight, temperature" in line


@pytest.mark.parametrize(("value", "problem"), [
    ("abc", "must be float, got 'abc'"),
    ("", "must be float, got ''"),
    ("nan", "must be a finite number, got 'nan'"),
    ("-1", "must be >= 0.05, got -1.0"),
    ("0", "must be >= 0.05, got 0.0"),
    ("1000", "must be <= 100.0, got 1000.0"),
])
def test_method_argument_of_wrong_type_or_range(quick_registry, capsys, value, problem):
    line = eval_error(quick_registry, capsys, "--method-arg", f"temperature={value}", method="soft-kd")
    assert f"method soft-kd argument temperature {problem}" in line


def test_second_method_argument_is_checked_too(quick_registry, capsys):
    line = eval_error(quick_registry, capsys, "--method-arg", "temperature=2", "--method-arg", "ce_weight=1.5",
                      method="soft-kd")
    assert "argument ce_weight must be <= 1.0, got 1.5" in line


@pytest.mark.parametrize("raw", ["temperature", "=3", "temperature:3"])
def test_method_argument_without_key_value(quick_registry, capsys, raw):
    line = eval_error(quick_registry, capsys, "--method-arg", raw, method="soft-kd")
    assert "--method-arg" in line and f"expected KEY=VALUE, got {raw!r}" in line


@pytest.mark.parametrize("method", ["hard-kd", "seqkd"])
def test_a_method_without_parameters_takes_no_arguments(quick_registry, capsys, method):
    line = eval_error(quick_registry, capsys, "--method-arg", "temperature=2", method=method)
    assert "method hard-kd takes no arguments, got 'temperature'" in line


def test_misspelt_dataset_argument(quick_registry, capsys):
    line = eval_error(quick_registry, capsys, "--dataset-arg", "n_member=3")
    assert "'n_member'" in line and "did you mean 'n_members'?" in line and "repeat_share" in line


def test_dataset_argument_out_of_range(quick_registry, capsys):
    line = eval_error(quick_registry, capsys, "--dataset-arg", "secret_share=2")
    assert "dataset synthetic-pii argument secret_share must be <= 1.0, got 2.0" in line


def test_dataset_argument_not_in_choices(quick_registry, capsys, tmp_path):
    line = text_files_error(quick_registry, capsys, f"path={tmp_path}", "sample_by=sentence")
    assert "sample_by must be one of line, paragraph, document, got 'sentence'" in line


@pytest.mark.parametrize("limit", ["0", "-3"])
def test_limit_below_one(quick_registry, capsys, limit):
    line = eval_error(quick_registry, capsys, "--limit", limit)
    assert f"argument --limit: must be at least 1, got {limit}" in line


@pytest.mark.parametrize(("flag", "value"), [("--limit", "ten"), ("--seed", "1.5")])
def test_non_integer_limit_or_seed(quick_registry, capsys, flag, value):
    line = eval_error(quick_registry, capsys, flag, value)
    assert f"argument {flag}: invalid int value: {value!r}" in line


def test_unknown_command_and_missing_method(capsys):
    assert "invalid choice: 'evl'" in usage_error(["evl"], capsys)
    assert "required: --method" in usage_error(["eval"], capsys)


# ---------------------------------------------------------------- the registry and its plugins


def test_registry_with_a_toml_syntax_error_names_file_and_line(tmp_path, capsys):
    reg = tmp_path / "registry.toml"
    reg.write_text((ROOT / "registry.toml").read_text() + "\n[defaults]\ndataset = synthetic-pii\n")
    lineno = next(i for i, text in enumerate(reg.read_text().splitlines(), 1) if text.startswith("dataset ="))
    for argv in (["--registry", str(reg), "eval", "--method", "hard-kd"], ["--registry", str(reg), "list"]):
        line = usage_error(argv, capsys)
        assert str(reg) in line and "malformed TOML" in line
        assert f"line {lineno}," in line


def test_registry_with_an_unknown_key(tmp_path, capsys):
    reg = tmp_path / "registry.toml"
    reg.write_text((ROOT / "registry.toml").read_text().replace("entry_points = true", "entry_point = true"))
    line = usage_error(["--registry", str(reg), "eval", "--method", "hard-kd"], capsys)
    assert str(reg) in line and "'entry_point'" in line and "did you mean 'entry_points'?" in line


def test_registry_with_a_bad_preset_value(tmp_path, capsys):
    reg = tmp_path / "registry.toml"
    reg.write_text((ROOT / "registry.toml").read_text() + "\n[presets.tiny]\nprefix_len = -32\n")
    line = usage_error(["--registry", str(reg), "eval", "--method", "hard-kd"], capsys)
    assert str(reg) in line and "[presets.tiny] argument prefix_len must be >= 1, got -32" in line


def test_registry_given_but_missing(tmp_path, capsys):
    line = usage_error(["--registry", str(tmp_path / "nope.toml"), "eval", "--method", "hard-kd"], capsys)
    assert f"registry file not found: {tmp_path / 'nope.toml'}" in line


def test_registry_listing_a_module_that_does_not_exist(tmp_path, capsys):
    reg = tmp_path / "registry.toml"
    reg.write_text((ROOT / "registry.toml").read_text().replace(
        "modules = []", 'modules = ["harness_plugins.methods.hard_kdd"]'))
    line = usage_error(["--registry", str(reg), "eval", "--method", "hard-kd"], capsys)
    assert "plugin 'harness_plugins.methods.hard_kdd' failed to import: ModuleNotFoundError" in line


def test_plugin_file_that_raises_at_import(tmp_path, capsys):
    plugin = tmp_path / "needs_gpu.py"
    plugin.write_text("import os\nraise ImportError('the flash_attn extension is not built')\n")
    reg = tmp_path / "registry.toml"
    reg.write_text((ROOT / "registry.toml").read_text().replace("files = []", 'files = ["needs_gpu.py"]'))
    line = usage_error(["--registry", str(reg), "eval", "--method", "hard-kd"], capsys)
    assert f"plugin {str(plugin.resolve())!r} failed to import" in line
    assert "ImportError: the flash_attn extension is not built" in line


# ---------------------------------------------------------------- the results database


def test_db_under_a_regular_file(quick_registry, capsys, tmp_path):
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("")
    db = blocker / "sub" / "x.duckdb"
    line = eval_error(quick_registry, capsys, "--db", str(db))
    assert f"cannot write results to {db}" in line and f"{blocker} is a file, not a directory" in line


def test_db_from_env_under_a_regular_file(quick_registry, capsys, tmp_path, monkeypatch):
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("")
    monkeypatch.setenv("HARNESS_DB", str(blocker / "x.duckdb"))
    line = eval_error(quick_registry, capsys)
    assert f"cannot write results to {blocker / 'x.duckdb'}" in line


def test_db_that_is_a_directory(quick_registry, capsys, tmp_path):
    line = eval_error(quick_registry, capsys, "--db", str(tmp_path))
    assert f"cannot open results database {tmp_path}" in line


def test_db_that_is_not_a_duckdb_file(quick_registry, capsys, tmp_path):
    db = tmp_path / "notes.duckdb"
    db.write_text("these are my notes, not a database\n" * 200)
    line = eval_error(quick_registry, capsys, "--db", str(db))
    assert f"cannot open results database {db}" in line
    assert db.read_text().startswith("these are my notes")


# ---------------------------------------------------------------- datasets too short for the preset


def test_text_files_shorter_than_prefix_plus_suffix(quick_registry, capsys, tmp_path):
    corpus = tmp_path / "tiny.txt"
    corpus.write_text("a b\nc d\ne f\ng h\n")
    line = text_files_error(quick_registry, capsys, f"path={corpus}", "sample_by=line")
    assert "dataset text-files" in line
    match = re.search(r"none of the (\d+) member documents reaches 16 tokens .*the longest has (\d+)", line)
    assert match, line
    assert int(match[1]) == 2 and 0 < int(match[2]) < 16
    assert runs_in(tmp_path / "results" / "harness.duckdb") == []


def test_records_shorter_than_prefix_plus_suffix(tmp_path, capsys):
    reg = tmp_path / "registry.toml"
    reg.write_text((ROOT / "registry.toml").read_text() + "\n[presets.huge]\nprefix_len = 32\nsuffix_len = 4000\n")
    line = usage_error(["--registry", str(reg), "eval", "--method", "hard-kd", "--preset", "huge", *SMALL_DATA], capsys)
    match = re.search(r"dataset synthetic-pii: (\d+) of (\d+) member texts are shorter than 4032 tokens "
                      r"\(prefix \+ suffix; shortest (\d+), longest short one (\d+)\)", line)
    assert match, line
    assert match[1] == match[2] == "48"
    assert 0 < int(match[3]) <= int(match[4]) < 4032


# ---------------------------------------------------------------- harness show and leaderboard


def _db_with_runs(path: Path, *run_ids: str) -> Path:
    Store(path).check_writable()
    with duckdb.connect(str(path)) as con:
        for i, run_id in enumerate(run_ids):
            con.execute("INSERT INTO runs (run_id, status, started_at) VALUES (?, 'failed', now() + ?::INTERVAL)",
                        [run_id, f"{i} seconds"])
    return path


@pytest.mark.parametrize("command", [["show", "NOPE"], ["show", "latest"], ["leaderboard"]])
def test_missing_db(capsys, tmp_path, command):
    db = tmp_path / "missing.duckdb"
    line = usage_error([*command, "--db", str(db)], capsys)
    assert f"no results database at {db}" in line
    assert not db.exists()


def test_show_on_an_empty_db(capsys, tmp_path):
    db = _db_with_runs(tmp_path / "r.duckdb")
    assert f"no run 'NOPE': {db} holds no runs yet" in usage_error(["show", "NOPE", "--db", str(db)], capsys)
    assert f"no runs in {db}" in usage_error(["show", "latest", "--db", str(db)], capsys)


def test_show_near_miss_run_id_has_did_you_mean(capsys, tmp_path):
    db = _db_with_runs(tmp_path / "r.duckdb", "20250101-120000-abc123", "20250101-120500-fff000")
    line = usage_error(["show", "20250101-120000-abc124", "--db", str(db)], capsys)
    assert "unknown run '20250101-120000-abc124'" in line and "did you mean '20250101-120000-abc123'?" in line


def test_show_ambiguous_prefix(capsys, tmp_path):
    db = _db_with_runs(tmp_path / "r.duckdb", "20250101-120000-abc123", "20250101-120500-fff000")
    line = usage_error(["show", "20250101-12", "--db", str(db)], capsys)
    assert "ambiguous" in line and "20250101-120000-abc123" in line and "20250101-120500-fff000" in line


def test_show_by_unique_prefix_works(capsys, tmp_path):
    db = _db_with_runs(tmp_path / "r.duckdb", "20250101-120000-abc123", "20250101-120500-fff000")
    code, out, err = run(["show", "20250101-1205", "--db", str(db)], capsys)
    assert code == 0 and "run 20250101-120500-fff000: failed" in out and "did not finish" in out


# ---------------------------------------------------------------- property: validation never crashes


class Reached(BaseException):
    """Stands in for Protocol.run: validation passed and the run would start."""


def _call(argv: list[str]) -> tuple[object, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            outcome: object = main(argv)
        except SystemExit as exit_:
            outcome = exit_.code
        except Reached:
            outcome = Reached
    return outcome, err.getvalue()


def _valid_temperature(text: str) -> bool:
    try:
        value = float(text)
    except ValueError:
        return False
    return math.isfinite(value) and 0.05 <= value <= 100.0


@settings(max_examples=75, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=st.one_of(st.text(max_size=10), st.floats(allow_nan=True).map(str), st.integers(-200, 200).map(str)),
       limit=st.one_of(st.none(), st.integers(-10**6, 10**6)))
def test_temperature_and_limit_either_validate_or_exit_2(quick_registry, value, limit):
    argv = ["--registry", str(quick_registry), "eval", "--method", "soft-kd", "--method-arg", f"temperature={value}"]
    if limit is not None:
        argv += ["--limit", str(limit)]
    with mock.patch.object(Protocol, "run", side_effect=Reached):
        outcome, err = _call(argv)
    valid = _valid_temperature(value) and (limit is None or limit >= 1)
    if valid:
        assert outcome is Reached, err
        assert err == ""
    else:
        assert outcome == 2
        assert err.count("\n") == 1 and err.endswith("\n") and err.strip()


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(method=st.one_of(st.sampled_from(["soft-kd", "hard-kd", "seqkd"]), st.text(min_size=1, max_size=8)),
       key=st.one_of(st.sampled_from(["temperature", "ce_weight"]), st.text(max_size=8)),
       value=st.text(max_size=8))
def test_arbitrary_method_arguments_never_crash(quick_registry, method, key, value):
    argv = ["--registry", str(quick_registry), "eval", f"--method={method}", f"--method-arg={key}={value}"]
    with mock.patch.object(Protocol, "run", side_effect=Reached):
        outcome, err = _call(argv)
    assert outcome is Reached or outcome == 2
    if outcome == 2:
        assert err.count("\n") == 1 and err.endswith("\n") and err.strip()


# ---------------------------------------------------------------- a run that fails after it started

BROKEN_FAMILY = textwrap.dedent("""\
    from harness.contract.hookspecs import hookimpl
    from harness.contract.specs import ModelFamily
    from harness_plugins.families.tiny import build_tokenizer


    def model(size, tokenizer):
        raise RuntimeError("CUDA out of memory (simulated)")


    @hookimpl
    def register_model_families(register):
        register(ModelFamily(name="broken", description="fails to build a model", sizes=("big", "small"),
                             teacher="big", student="small", tokenizer=build_tokenizer, model=model,
                             preset="quick"))
    """)


def test_a_run_that_fails_is_marked_failed_with_no_figures(quick_registry, capsys, tmp_path, real_runs):
    (tmp_path / "broken.py").write_text(BROKEN_FAMILY)
    quick_registry.write_text(quick_registry.read_text().replace("files = []", 'files = ["broken.py"]'))
    db = tmp_path / "runs.duckdb"
    code, out, err = run(["--registry", str(quick_registry), "eval", "--method", "hard-kd", "--family", "broken",
                          "--db", str(db), *SMALL_DATA], capsys)
    assert code == 1
    last = err.strip().splitlines()[-1]
    assert re.fullmatch(r"harness eval: run \S+ failed: RuntimeError: CUDA out of memory \(simulated\)", last), err
    [(run_id, status, error)] = runs_in(db)
    assert status == "failed" and error == "RuntimeError: CUDA out of memory (simulated)"
    assert run_id in last
    with duckdb.connect(str(db), read_only=True) as con:
        for table in ("models", "samples", "metrics"):
            assert con.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 0, table
    code, out, _ = run(["show", run_id, "--db", str(db)], capsys)
    assert code == 0 and f"run {run_id}: failed (RuntimeError: CUDA out of memory (simulated))" in out
    assert "This run did not finish: it has no results." in out
    code, out, _ = run(["leaderboard", "--db", str(db)], capsys)
    assert code == 0 and out.startswith("No finished runs match")


def test_a_failed_finish_writes_none_of_its_rows(tmp_path, real_runs):
    store = Store(tmp_path / "r.duckdb")
    store.start_run({"run_id": "r1", "method": "hard-kd"})
    model = {"run_id": "r1", "role": "teacher", "model_name": "tiny-2.6m", "n_params": 1}
    samples = {"role": ["teacher", "teacher"], "sample_id": ["m000000"]}  # ragged: the insert fails
    with pytest.raises(Exception):  # noqa: B017 - whatever Arrow raises
        store.finish_run("r1", models=[model], examples=[], samples=samples, metrics={"mem_rate_teacher": 0.5},
                         stage_seconds={})
    with duckdb.connect(str(store.path), read_only=True) as con:
        assert con.execute("SELECT status FROM runs").fetchall() == [("running",)]
        for table in ("models", "samples", "metrics"):
            assert con.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 0, table
    store.fail_run("r1", "ArrowInvalid: ragged", {"data": 1.0})
    _, rows = store.query("SELECT status, error, stage_seconds FROM runs")
    assert rows[0][:2] == ("failed", "ArrowInvalid: ragged") and json.loads(rows[0][2]) == {"data": 1.0}


def test_usage_error_is_exit_2_not_a_traceback(capsys, monkeypatch):
    """The CLI's contract for any UsageError raised below it, whatever the command."""
    def boom(args, argv):
        raise UsageError("something the user can fix")

    monkeypatch.setitem(cli.COMMANDS, "list", cli.COMMANDS["list"]._replace(handler=boom))
    assert usage_error(["list"], capsys) == "harness list: error: something the user can fix"


@pytest.mark.parametrize("command", [["list"], ["--help"], ["eval", "--help"]])
def test_a_reader_that_stops_early_gets_no_traceback(command, tmp_path):
    """`harness list | head -1`: the pipe closes before the output is written, as other Unix tools allow."""
    env = {**os.environ, "HARNESS_DB": str(tmp_path / "none.duckdb")}
    proc = subprocess.Popen([sys.executable, "-m", "harness", *command], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env, cwd=tmp_path)
    proc.stdout.close()  # before the interpreter has started: every write meets a closed pipe
    err = proc.stderr.read().decode()
    proc.wait(timeout=120)
    assert "Traceback" not in err and "BrokenPipe" not in err, err
    # 1 when our write met the closed pipe; argparse's --help swallows its own write error and exits 0
    assert proc.returncode == (0 if "--help" in command else 1)


# ---------------------------------------------------------------- the Python API checks what the CLI checks (issue 37)

@pytest.mark.parametrize(("given", "line"), [
    ({"method": 5}, "argument --method: must be text, got 5"),
    ({"seed": -1}, "argument --seed: must be between 0 and 4294967295, got -1"),
    ({"seed": "zero"}, "argument --seed: must be a whole number, got 'zero'"),
    ({"seed": True}, "argument --seed: must be a whole number, got True"),
    ({"seed": 2**32}, "argument --seed: must be between 0 and 4294967295, got 4294967296"),
    ({"limit": -5}, "argument --limit: must be at least 1, got -5"),
    ({"limit": 0}, "argument --limit: must be at least 1, got 0"),
    ({"limit": 2.5}, "argument --limit: must be a whole number, got 2.5"),
    ({"method_args": "temperature=2"}, "argument --method-arg: must be a mapping of names to values"),
    ({"dataset_args": {"n_members": [1]}}, "argument --dataset-arg: n_members's value must be text or a number"),
    ({"family_args": {5: "x"}}, "argument --family-arg: a key must be a non-empty name, got 5"),
    ({"attack_args": {"min-k": "k=0.1"}}, "argument --attack-arg: must be a mapping of names to values"),
    ({"db": 5}, "argument --db: must be a path (text or pathlib.Path), got 5"),
    ({"db": ""}, "argument --db: must be a path, got ''"),
    ({"cache_dir": "c\0d"}, "argument --cache-dir: must be a path, got one holding a NUL character"),
    ({"registry": b"registry.toml"}, "argument --registry: must be a path"),
    ({"family": ""}, "argument --family: must be a name, got ''"),
    ({"trust_remote_code": "yes"}, "argument --trust-remote-code: must be True or False, got 'yes'"),
    ({"filter": "predictd"}, "unknown --filter 'predictd' (did you mean 'predicted'?)"),
    ({"filter": "randm"}, "unknown --filter 'randm' (did you mean 'random'?); choose from: matched, predicted, random"),
    ({"filter": 1}, "argument --filter: must be text, got 1"),
])
def test_the_api_checks_each_field_with_the_line_the_cli_prints(given, line):
    from harness import EvalRequest

    with pytest.raises(UsageError) as err:
        EvalRequest(**{"method": "soft-kd", **given})
    assert str(err.value).startswith(line) and "\n" not in str(err.value)


@pytest.mark.parametrize(("flag", "value", "line"), [
    ("--seed", "-1", "argument --seed: must be between 0 and 4294967295, got -1"),
    ("--limit", "-5", "argument --limit: must be at least 1, got -5"),
    ("--family", "", "argument --family: must be a name, got ''"),
    ("--filter", "predictd", "unknown --filter 'predictd' (did you mean 'predicted'?)"),
])
def test_the_cli_prints_the_line_the_api_raises(quick_registry, capsys, flag, value, line):
    assert line in eval_error(quick_registry, capsys, flag, value)


def test_the_api_takes_paths_as_text_and_checks_a_changed_request_again(tmp_path):
    from harness import EvalRequest
    from harness.protocol.request import Resolved

    req = EvalRequest(method="soft-kd", db=str(tmp_path / "r.duckdb"), cache_dir=str(tmp_path / "c"),
                      registry=str(ROOT / "registry.toml"), method_args={"temperature": 2.0})
    assert req.db == tmp_path / "r.duckdb" and isinstance(req.cache_dir, Path) and isinstance(req.registry, Path)
    req.seed = -1
    with pytest.raises(UsageError, match="argument --seed: must be between 0"):
        Resolved(req)


@pytest.mark.parametrize(("argv", "line"), [
    (["--method-arg", "temperature=1", "--method-arg", "temperature=2"],
     "argument --method-arg: temperature given twice ('1', then '2'); give each key once"),
    (["--method-arg", "temperature=1", "--method-arg", " temperature=1"], "temperature given twice"),
    (["--dataset-arg", "n_members=8", "--dataset-arg", "n_members=9"], "argument --dataset-arg: n_members given twice"),
    (["--family-arg", "weights=scratch", "--family-arg", "weights=pretrained"], "argument --family-arg: weights given"),
    (["--attack-arg", "min-k.k=0.1", "--attack-arg", "min-k.k=0.2"], "argument --attack-arg: min-k.k given twice"),
])
def test_a_key_given_twice_is_refused_not_the_last_kept(quick_registry, capsys, argv, line):
    assert line in eval_error(quick_registry, capsys, *argv, method="soft-kd")
    plan = ["--registry", str(quick_registry), "plan", "--method", "soft-kd", *argv]
    if "--attack-arg" not in argv:
        assert line in usage_error(plan, capsys)


SIGTERM_FAMILY = textwrap.dedent("""\
    import inspect, os, signal, time
    from harness.contract.hookspecs import hookimpl
    from harness.contract.specs import ModelFamily
    from harness_plugins.families.tiny import build_tokenizer


    def model(size, tokenizer):
        if any(f.function == "_check_plan" for f in inspect.stack()):  # sized before the run starts: not sized
            raise RuntimeError("no size")
        os.kill(os.getpid(), signal.SIGTERM)  # in the teacher's stage, as a scheduler's cancel or `kill PID` would
        time.sleep(30)


    @hookimpl
    def register_model_families(register):
        register(ModelFamily(name="stopped", description="stopped by SIGTERM while it builds", sizes=("big", "small"),
                             teacher="big", student="small", tokenizer=build_tokenizer, model=model, preset="quick"))
    """)


def test_a_run_stopped_by_sigterm_is_marked_failed_on_its_way_out(quick_registry, tmp_path, real_runs):
    (tmp_path / "stopped.py").write_text(SIGTERM_FAMILY)
    quick_registry.write_text(quick_registry.read_text().replace("files = []", 'files = ["stopped.py"]'))
    db = tmp_path / "runs.duckdb"
    proc = subprocess.run([sys.executable, "-m", "harness", "--registry", str(quick_registry), "eval", "--method",
                           "hard-kd", "--family", "stopped", "--db", str(db), *SMALL_DATA],
                          capture_output=True, text=True, timeout=300, env={**os.environ})
    assert proc.returncode == 128 + 15, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and proc.stderr.strip().splitlines()[-1] == "harness eval: stopped by SIGTERM"
    [(run_id, status, error)] = runs_in(db)
    assert status == "failed" and error == "stopped by SIGTERM"
