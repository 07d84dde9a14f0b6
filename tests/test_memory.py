"""Batches sized to the memory at hand: capped before a pass, halved when an allocation fails."""

from __future__ import annotations

import copy

import pytest
import torch

from harness.config.registry import Training
from harness.measure import extract as extract_mod
from harness.measure.extract import extract
from harness.runtime import memory
from harness.training.train import train
from harness_plugins.families import tiny

CPU_OOM = "DefaultCPUAllocator: can't allocate memory: you tried to allocate 1 bytes."


@pytest.fixture(scope="module")
def model_and_ids():
    texts = [f"record {i}: name Alice{i} lives at {i} Main Street, phone 555-{i:04d}" for i in range(64)]
    tokenizer = tiny.build_tokenizer(texts)
    torch.manual_seed(0)
    model = tiny.build_model("0.6m", tokenizer).eval()
    ids = torch.randint(0, len(tokenizer), (40, 24), generator=torch.Generator().manual_seed(0))
    return model, ids


class FailsAbove:
    """Wraps a function of (logits, batch, ...) to fail like an allocator when a batch has more than `limit` rows."""

    def __init__(self, fn, limit: int, message: str = CPU_OOM):
        self.fn, self.limit, self.message, self.sizes = fn, limit, message, []

    def __call__(self, logits, batch, *args, **kwargs):
        self.sizes.append(len(batch))
        if len(batch) > self.limit:
            raise RuntimeError(self.message)
        return self.fn(logits, batch, *args, **kwargs)


def test_extraction_halves_the_batch_when_memory_runs_out(model_and_ids, monkeypatch, capsys):
    model, ids = model_and_ids
    whole = extract(model, ids, 8, 8, batch_size=32)
    failing = FailsAbove(extract_mod._scores, limit=8)
    monkeypatch.setattr(extract_mod, "_scores", failing)
    halved = extract(model, ids, 8, 8, batch_size=32)
    assert failing.sizes[:3] == [32, 16, 8] and max(failing.sizes[3:]) == 8  # then it stays at 8
    for name, value in whole.as_dict().items():
        assert torch.allclose(value.double(), getattr(halved, name).double(), atol=1e-5), name
    err = capsys.readouterr().err
    assert "out of memory at batch 32; going on with 16" in err and "at batch 16; going on with 8" in err


def test_other_errors_are_not_taken_for_memory(model_and_ids, monkeypatch):
    model, ids = model_and_ids
    monkeypatch.setattr(extract_mod, "_scores", FailsAbove(extract_mod._scores, 0, "shape mismatch"))
    with pytest.raises(RuntimeError, match="shape mismatch"):
        extract(model, ids, 8, 8, batch_size=32)


def test_out_of_memory_at_batch_one_is_raised(model_and_ids, monkeypatch):
    model, ids = model_and_ids
    monkeypatch.setattr(extract_mod, "_scores", FailsAbove(extract_mod._scores, 0))
    with pytest.raises(RuntimeError, match="can't allocate"):
        extract(model, ids, 8, 8, batch_size=4)


def test_batches_are_capped_to_the_available_memory(model_and_ids, monkeypatch):
    model, ids = model_and_ids
    per_example = memory.logits_bytes(model, ids.shape[1], copies=6)
    assert per_example >= ids.shape[1] * model.config.vocab_size * 4 * 6
    monkeypatch.setattr(memory, "available_bytes", lambda device: 10 * per_example)
    assert memory.fit(64, per_example, "cpu") == 5  # half the available memory
    assert memory.fit(3, per_example, "cpu") == 3
    monkeypatch.setattr(memory, "available_bytes", lambda device: 0)
    assert memory.fit(64, per_example, "cpu") == 1
    calls = FailsAbove(extract_mod._scores, limit=1000)
    monkeypatch.setattr(memory, "available_bytes", lambda device: 8 * per_example)
    monkeypatch.setattr(extract_mod, "_scores", calls)
    extract(model, ids, 8, 8, batch_size=32)
    assert max(calls.sizes) == 4


def test_training_goes_on_in_micro_batches_with_the_same_updates(model_and_ids, monkeypatch, capsys):
    """Out of memory mid-run, the batch is accumulated in halves: the same mean-loss gradient.

    The last batch (12 rows) splits into unequal parts (8 + 4), which only a weighted sum of the
    parts' mean losses turns into the batch's mean (Adam would hide a uniform scale error).
    """
    model, ids = model_and_ids
    order = torch.arange(len(ids)).repeat(2)[:76]
    cfg = Training(epochs=1, lr=1e-3, batch_size=16, warmup_ratio=0.0, weight_decay=0.0, schedule="constant")
    plain = train(copy.deepcopy(model), ids, order, cfg, seed=0, stage="plain")

    start = copy.deepcopy(model)
    forward = start.forward
    sizes = []

    def small_only(*args, **kwargs):
        rows = kwargs["input_ids"]
        sizes.append(len(rows))
        if len(rows) > 8 and len(sizes) > 2:  # the first steps fit; then memory gets tight
            raise RuntimeError(CPU_OOM)
        return forward(*args, **kwargs)

    monkeypatch.setattr(start, "forward", small_only)
    chunked = train(start, ids, order, cfg, seed=0, stage="chunked")
    assert sizes[:2] == [16, 16] and sizes[2:5] == [16, 8, 8] and sizes[-2:] == [8, 4]
    assert "chunked: out of memory at batch 16; going on with 8" in capsys.readouterr().err
    for a, b in zip(plain.parameters(), chunked.parameters()):
        assert torch.allclose(a, b, atol=1e-5)
