"""The artifact cache never hands back an artifact that is not exactly what was written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.cache import MANIFEST, Cache


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
