"""The artifact cache never hands back an artifact that is not exactly what was written."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.errors import UsageError
from harness.runtime.cache import MANIFEST, Cache


def _write(folder: Path) -> None:
    (folder / "model.safetensors").write_bytes(bytes(range(256)) * 40)
    (folder / "sub").mkdir()
    (folder / "sub" / "config.json").write_text('{"a": 1}')


@pytest.fixture
def built(tmp_path) -> tuple[Cache, Path]:
    cache = Cache(tmp_path / "cache")
    path = cache.build("models", "k1", {"x": 1}, _write)
    assert cache.get("models", "k1") == path
    return cache, path


def _flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(("damage", "reason"), [
    (lambda p: (p / "model.safetensors").write_bytes((p / "model.safetensors").read_bytes()[:-100]),
     "model.safetensors changed"),
    (lambda p: _flip_byte(p / "model.safetensors"), "model.safetensors changed"),
    (lambda p: (p / "sub" / "config.json").unlink(), "sub/config.json missing"),
    (lambda p: (p / MANIFEST).unlink(), f"{MANIFEST} missing or unreadable"),
    (lambda p: (p / MANIFEST).write_text("{not json"), f"{MANIFEST} missing or unreadable"),
    (lambda p: (p / MANIFEST).write_text('{"files": [1, 2]}'), f"{MANIFEST} missing or unreadable"),
    (lambda p: (p / "pytorch_model.bin").write_bytes(b"\x80\x04pickle"), "pytorch_model.bin not in the manifest"),
])
def test_damaged_artifact_is_reported_in_one_line_and_rebuilt(built, capsys, damage, reason):
    cache, path = built
    damage(path)
    assert cache.get("models", "k1") is None
    err = capsys.readouterr().err
    assert err == f"harness: cached models k1 is corrupt ({reason}); rebuilding it\n"
    assert not path.exists()
    assert cache.get("models", "k1") is None and capsys.readouterr().err == ""  # gone, not reported twice
    rebuilt = cache.build("models", "k1", {"x": 1}, _write)
    assert cache.get("models", "k1") == rebuilt
    assert json.loads((rebuilt / MANIFEST).read_text())["files"].keys() == {"model.safetensors", "sub/config.json"}


def test_a_killed_writers_temporary_folder_is_removed_and_a_live_ones_kept(tmp_path):
    cache = Cache(tmp_path / "cache")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    orphan = cache.root / "models" / f".tmp-k1-{int(dead.stdout)}-123"
    live = cache.root / "models" / f".tmp-k1-{os.getpid()}-456"
    for folder in (orphan, live):
        folder.mkdir(parents=True)
        (folder / "model.safetensors").write_bytes(b"half written")
    path = cache.build("models", "k1", {"x": 1}, _write)
    assert not orphan.exists() and live.exists()
    assert cache.get("models", "k1") == path


def test_an_entry_copied_under_another_key_is_not_that_artifact(built, capsys):
    cache, path = built
    other = cache.path("models", "k2")
    shutil.copytree(path, other)  # the baseline's checkpoint under the student's key
    assert cache.get("models", "k2") is None
    assert capsys.readouterr().err == "harness: cached models k2 is corrupt (its manifest names models k1); rebuilding it\n"
    assert not other.exists() and cache.get("models", "k1") == path


def test_a_symlinked_entry_is_moved_aside_never_followed(built, tmp_path, capsys):
    cache, path = built
    outside = tmp_path / "outside"
    shutil.copytree(path, outside)
    link = cache.path("models", "k3")
    link.symlink_to(outside, target_is_directory=True)
    assert cache.get("models", "k3") is None
    assert "k3 is corrupt (a symlink, not a folder)" in capsys.readouterr().err
    assert not os.path.lexists(link)
    assert sorted(p.name for p in outside.iterdir()) == sorted(p.name for p in path.iterdir())  # untouched
    rejected = list((cache.root / ".rejected").iterdir())
    assert len(rejected) == 1 and rejected[0].is_symlink()
    assert cache.get("models", "k3") is None and capsys.readouterr().err == ""
    assert cache.get("models", "k3") is None
    rebuilt = cache.build("models", "k3", {"x": 1}, _write)
    assert cache.get("models", "k3") == rebuilt and not rebuilt.is_symlink()


def test_a_symlinked_file_inside_an_entry_is_refused(built, tmp_path, capsys):
    cache, path = built
    secret = tmp_path / "secret.txt"
    secret.write_text("not the cache's")
    (path / "model.safetensors").unlink()
    (path / "model.safetensors").symlink_to(secret)
    assert cache.get("models", "k1") is None
    assert "model.safetensors is a symlink" in capsys.readouterr().err
    assert secret.read_text() == "not the cache's"


def test_a_cache_folder_that_cannot_be_made_is_one_line(tmp_path):
    (tmp_path / "file").write_text("a file where the cache's parent folder should be")
    with pytest.raises(UsageError, match=r"cannot write to the cache at .*file/cache: Not a directory"):
        Cache(tmp_path / "file" / "cache").build("tokenizers", "k1", {}, _write)


def test_a_read_only_cache_folder_is_one_line(tmp_path):
    root = tmp_path / "ro"
    root.mkdir()
    root.chmod(0o500)
    try:
        if os.access(root, os.W_OK):
            pytest.skip("running as a user who can write anywhere")
        with pytest.raises(UsageError, match=r"cannot write to the cache at .*ro: Permission denied"):
            Cache(root).build("tokenizers", "k1", {}, _write)
    finally:
        root.chmod(0o700)


def test_a_pickle_with_a_manifest_rewritten_to_match_is_rebuilt_not_loaded(built, capsys):
    cache, path = built
    (path / "model.safetensors").unlink()
    (path / "pytorch_model.bin").write_bytes(b"\x80\x04pickle")
    manifest = json.loads((path / MANIFEST).read_text())
    manifest["files"] = {"pytorch_model.bin": hashlib.sha256(b"\x80\x04pickle").hexdigest(),
                         "sub/config.json": manifest["files"]["sub/config.json"]}
    (path / MANIFEST).write_text(json.dumps(manifest))
    assert cache.get("models", "k1") is None
    assert "pytorch_model.bin is a pickle" in capsys.readouterr().err
    rebuilt = cache.build("models", "k1", {"x": 1}, _write)
    assert cache.get("models", "k1") == rebuilt
