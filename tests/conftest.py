"""Shared fixtures: a quick registry, isolated cache and results, no progress bars."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def preset(name: str, train: dict[str, tuple[int, float, int]], length: int = 8, **options) -> str:
    """A registry preset as TOML: `train` gives each role's (epochs, lr, batch_size), `length` the prefix and
    the suffix, `options` anything else at the preset's top level. The tests' presets are written here alone."""
    top = {"prefix_len": length, "suffix_len": length, "eval_batch_size": 32, "generate_batch_size": 32,
           **options, "pretrain_docs": 300}
    lines = [f"[presets.{name}]", *(f"{k} = {v}" for k, v in top.items())]
    for role, (epochs, lr, batch) in train.items():
        lines += ["", f"[presets.{name}.{role}]", f"epochs = {epochs}", f"lr = {lr:g}", f"batch_size = {batch}"]
    return "\n" + "\n".join(lines) + "\n"


# The quick preset: the whole protocol on the embedded default in seconds.
QUICK_PRESET = preset("quick", {"pretrain": (1, 3e-3, 16), "teacher": (3, 3e-3, 16), "baseline": (2, 3e-3, 16),
                                "student": (2, 3e-3, 16)})

# The dataset arguments that make synthetic-pii small enough for a test.
SMALL_DATA = ["--dataset-arg", "n_members=48", "--dataset-arg", "n_nonmembers=24", "--dataset-arg", "n_validation=24"]


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """Every test gets its own cache and results file, and no progress bars."""
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HARNESS_DB", str(tmp_path / "results" / "harness.duckdb"))
    monkeypatch.setenv("HARNESS_PROGRESS", "0")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.delenv("HARNESS_REGISTRY", raising=False)


def write_quick_registry(folder: Path) -> Path:
    """folder/registry.toml: the project's registry.toml plus the `quick` preset."""
    path = folder / "registry.toml"
    path.write_text((ROOT / "registry.toml").read_text() + QUICK_PRESET)
    return path


@pytest.fixture(scope="session")
def warm_cache(tmp_path_factory) -> Path:
    """What every quick run on the embedded default shares, trained once per session: the tokenizer,
    both pretrained starts, and the seed-0 teacher and baseline on SMALL_DATA. The warming run's own
    student and its training data are dropped, so each test's student still trains."""
    root = tmp_path_factory.mktemp("warm")
    cache = root / "cache"
    # in a process of its own: whatever the first test to ask for it has patched stays out of it
    env = {**os.environ, "HARNESS_CACHE": str(cache), "HARNESS_DB": str(root / "warm.duckdb"),
           "HARNESS_PROGRESS": "0", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    for name in ("HARNESS_REGISTRY", "HARNESS_FAULT"):
        env.pop(name, None)
    done = subprocess.run([sys.executable, "-m", "harness", *quick_args(write_quick_registry(root), "hard-kd")], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    for folder in (cache / "models").iterdir():
        if json.loads((folder / "training.json").read_text())["role"] == "student":
            shutil.rmtree(folder)
    shutil.rmtree(cache / "teacher-data", ignore_errors=True)
    return cache


@pytest.fixture
def quick_registry(tmp_path, request) -> Path:
    """The project's registry.toml plus a `quick` preset; the test's cache starts as a copy of `warm_cache`
    (its own files, which it may change), or empty for a test marked `cold_cache`."""
    if request.node.get_closest_marker("cold_cache") is None:
        shutil.copytree(request.getfixturevalue("warm_cache"), os.environ["HARNESS_CACHE"], dirs_exist_ok=True)
    return write_quick_registry(tmp_path)


def quick_args(registry: Path, method: str = "hard-kd", *extra: str) -> list[str]:
    """`harness` arguments for a quick run of the protocol on the embedded default; a `--dataset-arg` in
    `extra` replaces SMALL_DATA's of its key (the CLI refuses a key given twice)."""
    given = {extra[i + 1].split("=", 1)[0] for i, a in enumerate(extra[:-1]) if a == "--dataset-arg"}
    small = [x for flag, pair in zip(SMALL_DATA[::2], SMALL_DATA[1::2]) if pair.split("=", 1)[0] not in given
             for x in (flag, pair)]
    return ["--registry", str(registry), "eval", "--method", method, "--preset", "quick", *small, *extra]


def exit_code(argv: list[str]) -> int:
    """`harness argv` in-process, as the shell sees it: argparse's own refusals exit through SystemExit."""
    from harness.cli import main

    try:
        return main(argv)
    except SystemExit as exit_:
        return exit_.code
