"""The estimate printed before a run: real parameter counts from the shape tables, and the warning."""

from __future__ import annotations

import pytest

from harness import estimate as estimate_mod
from harness import plugins, registry
from harness.families import train_tokenizer

# The released checkpoints' parameter counts (their safetensors), which the shape tables must reproduce.
RELEASED = {
    ("pythia", "70m"): 70_426_624, ("pythia", "410m"): 405_334_016, ("pythia", "1.4b"): 1_414_647_808,
    ("pythia", "12b"): 11_846_072_320, ("olmo2", "1B"): 1_484_916_736, ("olmo2", "7B"): 7_298_617_344,
    ("qwen3", "0.6B"): 596_049_920, ("qwen3", "8B"): 8_190_735_360, ("gpt2", "small"): 124_439_808,
    ("gpt2", "xl"): 1_557_611_200, ("opt", "125m"): 125_239_296,
}
SCRATCH = {"weights": "scratch", "shape": "real", "path": "", "vocab_size": 300, "max_length": 0}


@pytest.fixture(scope="module")
def found():
    return plugins.load(registry.load())


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer(["a small corpus for a small tokenizer"] * 20, 300, 2048)


def bound(found, name):
    family = found.family(name)
    return family.configure(SCRATCH, family.teacher, family.student)


@pytest.mark.parametrize("family, size", RELEASED)
def test_real_shapes_have_the_released_parameter_counts(found, tokenizer, family, size):
    assert bound(found, family).n_params(size, tokenizer) == RELEASED[family, size]


def test_estimate_warns_when_the_machine_cannot_hold_the_run(found, tokenizer, monkeypatch):
    family, preset = bound(found, "pythia"), registry.load().preset("pythia")
    sizes = {"teacher": "12b", "student": "1.4b"}
    monkeypatch.setattr(estimate_mod, "memory", lambda: (16 << 30, "a 16 GB machine"))
    lines = estimate_mod.estimate(family, tokenizer, sizes, preset, train_rows=1000, example_len=256)
    assert "teacher pythia-12b 11.8B params" in lines[0]
    assert "1000 sequences x 256 tokens = 256.0K tokens per epoch; epochs 3/4/4" in lines[1]
    assert lines[-1].startswith("warning: this run needs about") and "a 16 GB machine has 16.0 GB" in lines[-1]
    monkeypatch.setattr(estimate_mod, "memory", lambda: (1 << 50, "a very large machine"))
    assert not any(line.startswith("warning") for line in
                   estimate_mod.estimate(family, tokenizer, sizes, preset, train_rows=1000, example_len=256))


def test_memory_counts_weights_gradients_and_both_adam_moments(found, tokenizer):
    family, preset = bound(found, "pythia"), registry.load().preset("small")
    [first, *_] = estimate_mod.estimate(family, tokenizer, {"teacher": "410m", "student": "70m"}, preset, 10, 256)
    assert f"teacher training {estimate_mod._bytes(405_334_016 * 4 * 4)}" in first
