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
