"""Property tests: whatever the command line or registry.toml holds, the answer is a result or one
clear line with exit status 2, never a traceback.

No run is started: `Protocol.run` is replaced by a marker, so an input that passes validation
shows up as `Reached` (a text-files corpus goes one step further, through its loading and
cutting, up to the moment the run would be stored).
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
from unittest import mock

import pytest
import tomli
from hypothesis import HealthCheck, given, settings, strategies as st

from harness.cli import main
from harness.protocol.run import Protocol
from harness.store.database import Store
from tests.conftest import QUICK_PRESET, ROOT

REAL_RUN = Protocol.run
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


class Reached(BaseException):
    """Validation passed: the run would start here."""


def outcome(argv: list[str]) -> tuple[object, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            result: object = main(argv)
        except SystemExit as exit_:
            result = exit_.code
        except Reached:
            result = Reached
    return result, out.getvalue(), err.getvalue()


def assert_result_or_one_line(argv: list[str]) -> object:
    result, out, err = outcome(argv)
    assert result in (0, 2, Reached), (argv, result, err)
    if result == 2:
        assert err.count("\n") == 1 and err.endswith("\n") and err.startswith("harness"), (argv, err)
        assert "Traceback" not in err
    else:
        assert "Traceback" not in err and "error" not in err, (argv, err)
    return result


@pytest.fixture(autouse=True)
def _no_run(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # a --db or --cache-dir made of random text lands here, if anywhere
    monkeypatch.setattr(Protocol, "run", mock.Mock(side_effect=Reached))


# ---------------------------------------------------------------- the command line

NAMES = ["soft-kd", "hard-kd", "seqkd", "tiny", "synthetic-pii", "text-files", "quick", "latest", ""]
FLAGS = ["--method", "--family", "--dataset", "--preset", "--seed", "--db", "--cache-dir", "--method-arg",
         "--dataset-arg", "--limit", "--registry", "--trust-remote-code", "--help", "-x"]
values = st.one_of(
    st.sampled_from(NAMES),
    st.text(max_size=12),
    st.integers(-(2**70), 2**70).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.sampled_from(["temperature=2", "temperature=-1", "ce_weight=7", "n_members=0", "n_members=99999999999",
                     "path=/nonexistent/x.txt", "path=", "=", "a=b=c", "x" * 5000, "\x00", "a\nb"]),
)
commands = st.sampled_from([["eval"], ["eval", "--method", "soft-kd"], ["list"], ["show"], ["show", "latest"],
                            ["leaderboard"], []])


@SETTINGS
@given(command=commands, rest=st.lists(st.one_of(st.sampled_from(FLAGS), values), max_size=8))
def test_any_command_line_gets_a_result_or_one_line(quick_registry, command, rest):
    assert_result_or_one_line(["--registry", str(quick_registry), *command, *rest])


@SETTINGS
@given(seed=st.integers(-(2**80), 2**80), limit=st.one_of(st.none(), st.integers(-(2**80), 2**80)))
def test_seed_and_limit_out_of_range_are_refused_before_the_run(quick_registry, seed, limit):
    argv = ["--registry", str(quick_registry), "eval", "--method", "soft-kd", "--seed", str(seed)]
    argv += [] if limit is None else ["--limit", str(limit)]
    expected = Reached if 0 <= seed < 2**32 and (limit is None or limit >= 1) else 2
    assert assert_result_or_one_line(argv) == expected


# ---------------------------------------------------------------- registry.toml

BASE = tomli.loads((ROOT / "registry.toml").read_text() + QUICK_PRESET)

toml_scalars = st.one_of(st.booleans(), st.integers(-(2**63), 2**63 - 1), st.floats(), st.text(max_size=20))
toml_values = st.recursive(toml_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)), max_leaves=6)


def _paths(table: dict, prefix=()) -> list[tuple[str, ...]]:
    out = []
    for key, value in table.items():
        out.append((*prefix, key))
        if isinstance(value, dict):
            out += _paths(value, (*prefix, key))
    return out


PATHS = _paths(BASE) + [("plugins", "surprise"), ("presets", "new"), ("presets", "quick", "student", "epochz"),
                        ("defaults", "method"), ("extra",)]


def _string(text: str) -> str:
    """A TOML basic string: JSON's escapes, minus its surrogate pairs, plus DEL, which TOML forbids raw."""
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def _scalar(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, list):
        return "[" + ", ".join(_scalar(v) for v in value) + "]"
    return "{" + ", ".join(f"{_string(k)} = {_scalar(v)}" for k, v in value.items()) + "}"


def to_toml(table: dict, header: tuple[str, ...] = ()) -> str:
    lines = [f"[{'.'.join(_string(h) for h in header)}]"] if header else []
    subtables = {k: v for k, v in table.items() if isinstance(v, dict)}
    lines += [f"{_string(k)} = {_scalar(v)}" for k, v in table.items() if k not in subtables]
    return "\n".join([*lines, *(to_toml(v, (*header, k)) for k, v in subtables.items())]) + "\n"


def _set(table: dict, path: tuple[str, ...], value) -> dict:
    table = json.loads(json.dumps(table))
    node = table
    for key in path[:-1]:
        node = node.setdefault(key, {}) if isinstance(node.get(key, {}), dict) else {}
    node[path[-1]] = value
    return table


@SETTINGS
@given(edits=st.lists(st.tuples(st.sampled_from(PATHS), toml_values), min_size=1, max_size=3),
       command=st.sampled_from([["list"], ["eval", "--method", "soft-kd", "--preset", "quick"]]))
def test_any_registry_content_gets_a_result_or_one_line(tmp_path, edits, command):
    table = BASE
    for path, value in edits:
        table = _set(table, path, value)
    registry = tmp_path / "registry.toml"
    registry.write_text(to_toml(table), encoding="utf-8")
    assert tomli.loads(registry.read_text(encoding="utf-8")) is not None  # the fuzzer writes valid TOML
    assert_result_or_one_line(["--registry", str(registry), *command])


@SETTINGS
@given(content=st.one_of(st.text(max_size=300), st.binary(max_size=300)))
def test_a_registry_of_arbitrary_bytes_gets_a_result_or_one_line(tmp_path, content):
    registry = tmp_path / "registry.toml"
    registry.write_bytes(content.encode("utf-8", "surrogatepass") if isinstance(content, str) else content)
    assert_result_or_one_line(["--registry", str(registry), "list"])


def test_a_registry_that_is_a_directory_or_missing(tmp_path):
    for path in (tmp_path, tmp_path / "missing.toml"):
        assert assert_result_or_one_line(["--registry", str(path), "list"]) == 2


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads any file")
def test_unreadable_registry_and_corpus_are_one_line(quick_registry, tmp_path, monkeypatch):
    locked = tmp_path / "locked.toml"
    locked.write_text(quick_registry.read_text())
    corpus = tmp_path / "locked.txt"
    corpus.write_text("some words " * 500)
    for path in (locked, corpus):
        path.chmod(0)
    assert assert_result_or_one_line(["--registry", str(locked), "list"]) == 2
    monkeypatch.setattr(Protocol, "run", REAL_RUN)
    monkeypatch.setattr(Store, "start_run", mock.Mock(side_effect=Reached))
    assert assert_result_or_one_line(["--registry", str(quick_registry), "eval", "--method", "soft-kd", "--dataset",
                                      "text-files", "--dataset-arg", f"path={corpus}"]) == 2


def test_duplicate_plugin_names_are_one_line(tmp_path):
    plugin = tmp_path / "dup.py"
    plugin.write_text((ROOT / "plugins" / "methods" / "soft_kd.py").read_text())
    registry = tmp_path / "registry.toml"
    registry.write_text((ROOT / "registry.toml").read_text().replace("files = []", 'files = ["dup.py"]'))
    assert assert_result_or_one_line(["--registry", str(registry), "list"]) == 2


# ---------------------------------------------------------------- a user's corpus (text-files)

corpus_text = st.one_of(st.just(""), st.text(max_size=400), st.text(alphabet="ab \n", min_size=500, max_size=3000),
                        st.binary(max_size=400))


@SETTINGS
@given(content=corpus_text, suffix=st.sampled_from([".txt", ".jsonl", ".json", ".parquet", ".csv", ""]),
       sample_by=st.sampled_from(["line", "paragraph", "document", "word"]))
def test_any_corpus_file_gets_a_result_or_one_line(quick_registry, tmp_path, monkeypatch, content, suffix, sample_by):
    monkeypatch.setattr(Protocol, "run", REAL_RUN)
    monkeypatch.setattr(Store, "start_run", mock.Mock(side_effect=Reached))
    corpus = tmp_path / f"corpus{suffix}"
    corpus.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8", "surrogatepass"))
    assert_result_or_one_line(["--registry", str(quick_registry), "eval", "--method", "soft-kd", "--preset", "quick",
                               "--dataset", "text-files", "--dataset-arg", f"path={corpus}",
                               "--dataset-arg", f"sample_by={sample_by}", "--limit", "8"])

