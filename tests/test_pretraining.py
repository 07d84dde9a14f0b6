"""The pretraining stage: each size of a family without released weights is pretrained once on the
generic corpus, every role is fine-tuned from it, and calibrated attacks use it as their reference."""

from __future__ import annotations

import json

import pytest
import torch

from conftest import SMALL_DATA
from harness.cli import main
from harness.config import plugins, registry
from harness.measure.extract import extract
from harness.protocol.request import EvalRequest
from harness.protocol.run import Protocol


def test_hub_families_keep_their_released_weights_and_scratch_ones_are_pretrained():
    found = plugins.load(registry.load(None))
    assert found.family("tiny").released is False
    pythia = found.family("pythia")
    assert pythia.released is True
    args = {p.name: p.default for p in pythia.params} | {"weights": "scratch", "shape": "tiny"}
    assert pythia.configure(args, "410m", "70m").released is False


def trainings(cache) -> list[dict]:
    return [json.loads(p.read_text()) | {"key": p.parent.name} for p in cache.glob("models/*/training.json")]


@pytest.mark.slow
def test_each_size_is_pretrained_once_and_every_role_starts_from_it(quick_registry, tmp_path):
    cache = tmp_path / "cache"
    req = EvalRequest(method="soft-kd", preset="quick", registry=quick_registry, db=tmp_path / "h.duckdb",
                      cache_dir=cache, dataset_args=dict(a.split("=") for a in SMALL_DATA[1::2]))
    protocol = Protocol(req)
    seen = {}
    references = protocol._references

    def spy(*args):
        seen["refs"] = references(*args)
        return seen["refs"]

    protocol._references = spy
    protocol.run()

    built = trainings(cache)
    pretrained = {t["size"]: t for t in built if t["stage"] == "pretrain"}
    assert set(pretrained) == {"2.6m", "0.6m"}
    assert all(t["corpus"] and t["seed"] == 0 for t in pretrained.values())
    roles = {t["role"]: t for t in built if t["stage"] == "model"}
    assert roles["teacher"]["start"] == pretrained["2.6m"]["key"]
    assert roles["baseline"]["start"] == roles["student"]["start"] == pretrained["0.6m"]["key"]
    tokenizer_deps = [json.loads(p.read_text()) for p in cache.glob("tokenizers/*/artifact.json")]
    # the tokenizer was trained on the corpus, never on the members
    assert tokenizer_deps and all(d["deps"].get("corpus") and "dataset_hash" not in d["deps"] for d in tokenizer_deps)

    # Every role's calibrated reference is that student-size checkpoint, which never saw a member.
    refs, start_loss = seen["refs"]
    assert refs["teacher"] is refs["baseline"] is refs["student"]
    data = protocol.data()
    start = protocol.start(protocol.setup.student_size, data)
    p = protocol.setup.preset
    expected = extract(start, data.members.ids, p.prefix_len, p.suffix_len, p.eval_batch_size, desc="test")
    torch.testing.assert_close(refs["student"][0].loss, expected.loss)
    # the same start scores the validation split: the start's validation perplexity is on it
    on_validation = extract(start, data.validation.ids, p.prefix_len, p.suffix_len, p.eval_batch_size, desc="test")
    assert start_loss == pytest.approx(on_validation.loss.mean().item())

    # Another method and seed: nothing is pretrained again.
    assert main(["--registry", str(quick_registry), "eval", "--method", "hard-kd", "--preset", "quick", "--seed", "1",
                 "--cache-dir", str(cache), "--db", str(tmp_path / "h.duckdb"), *SMALL_DATA]) == 0
    assert sum(t["stage"] == "pretrain" for t in trainings(cache)) == 2
