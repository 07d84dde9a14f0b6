"""Shared fixtures: a quick registry, isolated cache and results, no progress bars."""

from __future__ import annotations

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
SMALL_DATA = ["--dataset-arg", "n_members=48", "--dataset-arg", "n_nonmembers=24"]


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """Every test gets its own cache and results file, and no progress bars."""
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HARNESS_DB", str(tmp_path / "results" / "harness.duckdb"))
    monkeypatch.setenv("HARNESS_PROGRESS", "0")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.delenv("HARNESS_REGISTRY", raising=False)


@pytest.fixture
def quick_registry(tmp_path) -> Path:
    """The project's registry.toml plus a `quick` preset, with `quick` as the tiny family's preset."""
    text = (ROOT / "registry.toml").read_text() + QUICK_PRESET
    path = tmp_path / "registry.toml"
    path.write_text(text)
    return path


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
