"""The validation split, early stopping and a start that knows the domain: what chooses and stops
training is held out from the members and from the non-members, whose only job is to be the
attacks' negatives."""

from __future__ import annotations

import json

import duckdb
import pytest
import torch

from conftest import SMALL_DATA, preset, quick_args
from harness.cli import main
from harness.config.registry import Training
from harness.errors import RunFailed
from harness.protocol import keys, provenance
from harness.protocol.request import EvalRequest
from harness.protocol.run import Protocol
from harness.training.train import Validation, mean_loss, train


def small_model(seed: int = 0):
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    torch.manual_seed(seed)
    return GPTNeoXForCausalLM(GPTNeoXConfig(vocab_size=64, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                            intermediate_size=64, max_position_embeddings=32))


def recipe(**given) -> Training:
    fields = {"epochs": 6, "lr": 1e-2, "batch_size": 8, "warmup_ratio": 0.0, "weight_decay": 0.0,
              "schedule": "constant"}
    return Training(**{**fields, **given})


ROWS = torch.randint(0, 64, (32, 12), generator=torch.Generator().manual_seed(1))


def test_scoring_the_validation_split_each_epoch_leaves_the_weights_as_they_were():
    plain = train(small_model(), ROWS, torch.arange(32), recipe(), seed=0, stage="t")
    checked = Validation(ROWS[:8], 4)
    scored = train(small_model(), ROWS, torch.arange(32), recipe(), seed=0, stage="t", validation=checked)
    assert len(checked.losses) == 6 and checked.best_epoch >= 1
    for (name, a), (_, b) in zip(plain.state_dict().items(), scored.state_dict().items()):
        assert torch.equal(a, b), name
    assert checked.losses[-1] == pytest.approx(mean_loss(scored, ROWS[:8], 4))


def test_early_stopping_stops_after_patience_and_keeps_the_best_epochs_weights(monkeypatch):
    scripted = iter([3.0, 2.0, 2.5, 2.6, 2.7, 1.0])  # the best at epoch 2, no lower loss in 3 and 4
    kept = []

    def score(self, model):
        kept.append({k: v.clone() for k, v in model.state_dict().items()})
        return next(scripted)

    monkeypatch.setattr(Validation, "score", score)
    checked = Validation(ROWS[:8], 4)
    model = train(small_model(), ROWS, torch.arange(32), recipe(patience=2), seed=0, stage="t", validation=checked)
    assert checked.losses == [3.0, 2.0, 2.5, 2.6] and checked.best_epoch == 2  # the sixth epoch never ran
    for name, value in model.state_dict().items():
        assert torch.equal(value, kept[1][name]), name
    assert not torch.equal(kept[1]["lm_head.weight"], kept[3]["lm_head.weight"])  # later epochs did move
    assert recipe(patience=2).kept_epoch(checked.losses) == 2
    assert recipe().kept_epoch(checked.losses) == 4  # without patience: the last
    stored = provenance.recipe(recipe(patience=2), 32, {}, False, tuple(checked.losses))
    assert (stored["epochs_run"], stored["kept_epoch"], stored["steps"], stored["patience"]) == (4, 2, 16, 2)


def test_patience_is_in_the_cache_key_only_when_set():
    """A model trained every epoch keeps the key it had before early stopping existed."""
    assert "patience" not in recipe().key() and recipe(patience=3).key()["patience"] == 3
    assert recipe().key() == {k: v for k, v in recipe().__dict__.items() if k != "patience"}
    assert "up to 6 epochs (best validation loss, patience 2)" in recipe(patience=2).describe()


def test_the_default_dataset_has_a_validation_split_and_the_run_scores_on_it(quick_registry, tmp_path, capsys):
    db = tmp_path / "h.duckdb"
    assert main(quick_args(quick_registry, "soft-kd", "--db", str(db))) == 0
    con = duckdb.connect(str(db), read_only=True)
    metrics = dict(con.execute("SELECT name, value FROM metrics").fetchall())
    assert metrics["n_validation"] == 24  # SMALL_DATA's
    nonmember_loss = con.execute("SELECT avg(loss) FROM samples WHERE role = 'student' AND split = 'nonmember'"
                                 ).fetchone()[0]
    assert metrics["val_loss_student"] != pytest.approx(nonmember_loss, abs=1e-9)  # another split's loss
    curves = con.execute("SELECT role, count(*) FROM curves WHERE curve = 'validation_loss' GROUP BY role").fetchall()
    assert dict(curves)["student"] == 2  # the quick preset's two student epochs
    capsys.readouterr()
    assert main(["show", "latest", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert "24 held-out texts of their own" in out and "the non-members are only the attacks' negatives" in out


def refusal_on_text_files(tmp_path, capsys, name: str, registry_text: str) -> list[str]:
    """`harness eval` with preset `name` on a text-files corpus (no validation split, no domain texts):
    its exit status must be 2; the lines it printed on stderr."""
    corpus = tmp_path / "texts"
    corpus.mkdir()
    for i in range(30):
        (corpus / f"{i:02d}.txt").write_text(f"document {i} " + "word " * 60)
    registry = tmp_path / "registry.toml"
    registry.write_text(registry_text)
    argv = ["--registry", str(registry), "eval", "--method", "soft-kd", "--preset", name, "--dataset", "text-files",
            "--dataset-arg", f"path={corpus}"]
    assert main(argv) == 2
    return capsys.readouterr().err.strip().splitlines()


def test_patience_without_a_validation_split_is_refused_in_one_line(tmp_path, capsys):
    err = refusal_on_text_files(tmp_path, capsys, "stop", preset("stop", {"teacher": (3, 3e-3, 16)},
                                                                  **{"pretrain_docs": 50}) + "patience = 2\n")
    assert len(err) == 1 and "stops the teacher's training early on a validation split" in err[0], err


@pytest.mark.slow
@pytest.mark.cold_cache
def test_a_start_that_knows_the_domain_is_pretrained_on_its_texts_and_keyed_by_them(quick_registry, tmp_path):
    quick_registry.write_text(quick_registry.read_text().replace("[presets.quick]\n",
                                                                 "[presets.quick]\npretrain_domain_docs = 40\n"))
    args = dict(a.split("=") for a in SMALL_DATA[1::2])
    req = EvalRequest(method="soft-kd", preset="quick", registry=quick_registry, db=tmp_path / "h.duckdb",
                      cache_dir=tmp_path / "cache", dataset_args=args)
    protocol = Protocol(req)
    data = protocol.data()
    assert len(data.domain) == 40 and data.domain_hash == provenance.texts_hash(data.domain)
    generic = protocol.corpus_rows(data)
    protocol.run()
    built = [json.loads(p.read_text()) for p in (tmp_path / "cache").glob("models/*/training.json")]
    starts = [t for t in built if t["stage"] == "pretrain"]
    assert len(starts) == 2 and all(t["domain"] == data.domain_hash for t in starts)
    assert protocol.corpus_rows(data) is generic  # MiniLLM's language-modelling corpus stays the generic one
    assert keys.pretrain(protocol.setup, "0.6m", data.tokenizer_key)["stage"] == "pretrain"
    assert "domain" not in keys.pretrain(protocol.setup, "0.6m", data.tokenizer_key)

    # a domain that hands back a member is refused: the start would hold what the run tests
    leaky = Protocol(req)
    dataset = leaky.setup.dataset
    member = dataset.load(leaky.setup.dataset_args).members[0].text
    object.__setattr__(leaky.setup, "dataset", type(dataset)(**{**dataset.__dict__,
                                                                "domain": lambda args, n: [member] * n}))
    with pytest.raises(RunFailed, match="40 of its 40 domain texts are members"):
        leaky.data()


def test_a_domain_preset_on_a_dataset_without_one_is_refused(tmp_path, capsys):
    err = refusal_on_text_files(tmp_path, capsys, "dom", preset("dom", {"teacher": (1, 3e-3, 16)},
                                                                pretrain_domain_docs=10))
    assert len(err) == 1 and "gives none (no `domain`)" in err[0], err


def test_the_plan_prices_the_domain_texts_and_the_validation_passes(capsys):
    """tiny-studies pretrains its starts on 4,000 domain texts beside the generic corpus, and every
    fine-tuned role scores the validation split after each epoch: the plan counts both."""
    stages = {}
    for name, extra in (("tiny", []), ("tiny-studies", []), ("none", ["--dataset-arg", "n_validation=0"])):
        preset = "tiny" if name == "none" else name
        assert main(["plan", "--method", "soft-kd", "--preset", preset, "--json", *extra]) == 0
        stages[name] = {s["name"]: s for s in json.loads(capsys.readouterr().out)["stages"]}
    generic, domain = stages["tiny"]["pretrain 0.6m"]["tokens"], stages["tiny-studies"]["pretrain 0.6m"]["tokens"]
    assert domain > 1.5 * generic  # 4,000 records of about 130 tokens beside 2,500 generic documents
    checked = stages["tiny"]["baseline"]["tokens"] - stages["none"]["baseline"]["tokens"]
    assert checked == 512 * 64 * 12  # 512 validation texts of 64 tokens, after each of the baseline's up to 12 epochs
