"""Untrusted files and secrets: no unpickling, no remote code unless asked, no environment in provenance."""

from __future__ import annotations

import ast
import json
import os
from pathlib import Path

import duckdb
import pytest

from harness.cli import main
from tests.conftest import ROOT, SMALL_DATA

SOURCES = sorted([*(ROOT / "harness").rglob("*.py"), *(ROOT / "plugins").rglob("*.py")])
UNPICKLERS = {"pickle", "cPickle", "dill", "cloudpickle", "joblib", "shelve", "marshal"}


def _calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            yield name, {k.arg: k.value for k in node.keywords}, node


@pytest.mark.parametrize("source", [p for p in SOURCES if p.is_file()], ids=lambda p: str(p.relative_to(ROOT)))
def test_source_never_unpickles_or_trusts_remote_code(source):
    tree = ast.parse(source.read_text(), filename=str(source))
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] + ([node.module] if isinstance(node, ast.ImportFrom) else [])
            assert not {str(n).split(".")[0] for n in names} & UNPICKLERS, f"{source}:{node.lineno} imports {names}"
    for name, kwargs, node in _calls(tree):
        where = f"{source.relative_to(ROOT)}:{node.lineno}"
        if name == "load" and isinstance(node.func, ast.Attribute) and getattr(node.func.value, "id", "") == "torch":
            flag = kwargs.get("weights_only")
            assert isinstance(flag, ast.Constant) and flag.value is True, f"{where}: torch.load without weights_only=True"
        if "allow_pickle" in kwargs:
            assert isinstance(kwargs["allow_pickle"], ast.Constant) and kwargs["allow_pickle"].value is False, where
        if "trust_remote_code" in kwargs:
            value = kwargs["trust_remote_code"]
            assert not (isinstance(value, ast.Constant) and value.value is True), f"{where}: trust_remote_code=True"
        if name == "from_pretrained" and isinstance(node.func.value, ast.Name) and "Model" in node.func.value.id:
            assert "use_safetensors" in kwargs, f"{where}: a model loaded without use_safetensors=True"


def test_trust_remote_code_is_refused_for_a_family_that_runs_no_hub_code(quick_registry, capsys):
    argv = ["--registry", str(quick_registry), "eval", "--method", "soft-kd", "--preset", "quick",
            "--trust-remote-code"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err == ("harness eval: error: model family tiny runs no code from the hub, so --trust-remote-code "
                   "does not apply to it\n")


SECRETS = {"HF_TOKEN": "secret-xyz-hf", "HUGGING_FACE_HUB_TOKEN": "secret-xyz-hub", "OPENAI_API_KEY": "secret-xyz-oa",
           "AWS_SECRET_ACCESS_KEY": "secret-xyz-aws", "WANDB_API_KEY": "secret-xyz-wandb", "MY_DB_PASSWORD": "secret-xyz-pw"}


def _run_id(db: Path, method: str) -> str:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute("SELECT run_id FROM runs WHERE method = ?", [method]).fetchone()[0]


def _everything_stored(db: Path) -> str:
    """Every value of every column of every table, as text."""
    with duckdb.connect(str(db), read_only=True) as con:
        tables = [r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()]
        return "\n".join(str(row) for t in tables for row in con.execute(f"SELECT * FROM {t}").fetchall())


@pytest.mark.slow
def test_remote_code_flag_reaches_the_loaders_and_provenance_holds_no_secrets(quick_registry, tmp_path, monkeypatch,
                                                                              capsys):
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    log = tmp_path / "calls.jsonl"
    monkeypatch.setenv("REMOTE_FAMILY_LOG", str(log))
    plugin = ROOT / "tests" / "fixtures" / "remote_family.py"
    quick_registry.write_text(quick_registry.read_text().replace("files = []", f"files = [{str(plugin)!r}]"))
    db, cache = Path(os.environ["HARNESS_DB"]), Path(os.environ["HARNESS_CACHE"])
    base = ["--registry", str(quick_registry), "eval", "--family", "remote-tiny", *SMALL_DATA, "--limit", "16"]

    assert main([*base, "--method", "hard-kd", "--trust-remote-code"]) == 0
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    assert {c["call"] for c in calls} == {"tokenizer", "model 2.6m", "model 0.6m"}
    assert all(c["trust_remote_code"] is True for c in calls)
    log.unlink()
    # teacher and baseline cached: only the small size is built, for the student and as the small model
    # before fine-tuning (the baseline's reference for the reference attack)
    assert main([*base, "--method", "soft-kd"]) == 0
    assert [json.loads(line) for line in log.read_text().splitlines()] == [
        {"call": "model 0.6m", "trust_remote_code": False}] * 2

    with duckdb.connect(str(db), read_only=True) as con:
        got = con.execute("SELECT method, trust_remote_code, command FROM runs ORDER BY started_at").fetchall()
    assert [(m, t) for m, t, _ in got] == [("hard-kd", True), ("soft-kd", False)]
    assert "--trust-remote-code" in got[0][2]
    capsys.readouterr()
    assert main(["show", "latest"]) == 0
    assert "remote code           not trusted" in capsys.readouterr().out
    assert main(["show", _run_id(db, "hard-kd")]) == 0
    assert "remote code           trusted (--trust-remote-code)" in capsys.readouterr().out

    stored = _everything_stored(db)
    assert "remote-tiny" in stored  # the check reads what was written
    cached = [p for p in cache.rglob("*") if p.is_file()]
    assert any(p.name == "training.json" for p in cached)
    for name, value in SECRETS.items():
        assert value not in stored, f"{name} leaked into the results database"
        for path in cached:
            assert value.encode() not in path.read_bytes(), f"{name} leaked into {path}"


# ---------------------------------------------------------------- a corpus path that is a symlink (issue 37)

CORPUS = "first document here, long enough\n\nsecond document here, long enough\n\nthird one, long enough too\n"


def _text_files(path) -> list[str]:
    from plugins.datasets import text_files

    split = text_files.load({"path": str(path), "text_field": "text", "sample_by": "paragraph", "member_share": 0.5,
                             "seed": 0})
    return [e.text for e in split.members] + ["|"] + [e.text for e in split.nonmembers]


@pytest.mark.parametrize("linked", ["file", "folder"])
def test_a_symlinked_corpus_is_followed_as_a_path_to_its_target_would_be(tmp_path, linked):
    data = tmp_path / "data"
    data.mkdir()
    (data / "corpus.txt").write_text(CORPUS)
    target = data / "corpus.txt" if linked == "file" else data
    link = tmp_path / ("link.txt" if linked == "file" else "link")
    link.symlink_to(target, target_is_directory=linked == "folder")
    assert _text_files(link) == _text_files(target)


@pytest.mark.parametrize("kind", ["fifo", "broken link", "link to a fifo"])
def test_a_corpus_path_to_something_that_is_not_a_file_is_one_line(tmp_path, kind):
    from harness.errors import UsageError

    fifo = tmp_path / "pipe.txt"
    path = tmp_path / "corpus.txt"
    if kind == "fifo":
        os.mkfifo(path)  # read, it would wait for a writer forever
    elif kind == "broken link":
        path.symlink_to(tmp_path / "gone.txt")
    else:
        os.mkfifo(fifo)
        path.symlink_to(fifo)
    with pytest.raises(UsageError) as err:
        _text_files(path)
    said = str(err.value)
    assert ("which does not exist" if kind == "broken link" else "is not a regular file or a folder") in said
