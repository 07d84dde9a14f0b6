"""The blind baseline (harness.measure.blind): silent on a split drawn from one distribution, firing on a
shifted one, and never scoring a text with a classifier that trained on it."""

from __future__ import annotations

import random

import numpy as np

from harness.contract.specs import resolve_params
from harness.measure import blind
from harness.present import formats
from harness.present.run_report import blind_line


def _dataset(name):
    from harness.config import plugins, registry

    return plugins.load(registry.load(None)).dataset(name)


def test_silent_on_the_embedded_defaults_split():
    dataset = _dataset("synthetic-pii")
    split = dataset.load(resolve_params(dataset.params, {}, "dataset synthetic-pii"))
    found = blind.figures([e.text for e in split.members], [e.text for e in split.nonmembers])
    assert found["blind_auc_lo"] < 0.5 < found["blind_auc_hi"], found
    assert blind.shifted(found["blind_auc_lo"], found["blind_auc_hi"]) is False
    assert formats.blind([tuple(found[f"blind_{k}"] for k in ("auc", "auc_lo", "auc_hi"))]).startswith("blind baseline")


def _two_periods(folder):
    """A corpus of two periods, one file each: what a split cut in file order (`split=order`) shifts."""
    rng = random.Random(0)
    words = ["market", "report", "council", "river", "season", "league", "museum", "station", "harbour", "festival"]

    def article(year: int, topic: str) -> str:
        body = " ".join(rng.choice(words) for _ in range(30))
        return f"In {year} the {topic} said: {body}."

    folder.mkdir(exist_ok=True)
    (folder / "a_2019.txt").write_text("\n\n".join(article(2019, "ministry") for _ in range(300)))
    (folder / "b_2024.txt").write_text("\n\n".join(article(2024, "agency") for _ in range(300)))
    return folder


def test_fires_on_a_corpus_split_by_period(tmp_path):
    """Members from one period, non-members from a later one (Duan et al. 2024): text-files `split=order`."""
    _two_periods(tmp_path)
    dataset = _dataset("text-files")
    args = resolve_params(dataset.params, {"path": str(tmp_path), "split": "order"}, "dataset text-files")
    split = dataset.load(args)
    assert all("2019" in e.text for e in split.members) and all("2024" in e.text for e in split.nonmembers)
    found = blind.figures([e.text for e in split.members], [e.text for e in split.nonmembers])
    assert found["blind_auc_lo"] > 0.9 and blind.shifted(found["blind_auc_lo"], found["blind_auc_hi"]) is True
    line = blind_line(found)
    assert line.startswith("SHIFT: ") and "may measure the split rather than the model" in line
    # the same corpus cut at random: the periods fall on both sides, and the flag is silent
    shuffled = dataset.load(resolve_params(dataset.params, {"path": str(tmp_path)}, "dataset text-files"))
    again = blind.figures([e.text for e in shuffled.members], [e.text for e in shuffled.nonmembers])
    assert blind.shifted(again["blind_auc_lo"], again["blind_auc_hi"]) is False, again


def test_scores_are_out_of_fold():
    """Unique random texts, labels at random: a classifier scoring its own training texts would reach AUC 1."""
    rng = np.random.default_rng(0)
    vocab = [f"w{i}" for i in range(5000)]
    texts = [" ".join(rng.choice(vocab, 20)) for _ in range(600)]
    found = blind.figures(texts[:150], texts[150:])
    assert found["blind_auc_lo"] < 0.5 < found["blind_auc_hi"], found


def test_too_few_texts_give_no_figure():
    assert blind.figures(["a b", "c d"], ["e f"] * 10) == {}
    assert blind.shifted(None, None) is None and formats.blind([]) is None and blind_line({}) == ""


def test_the_plan_says_before_anything_trains_whether_the_split_is_shifted(tmp_path, capsys):
    from harness.cli import main

    corpus = _two_periods(tmp_path / "corpus")
    argv = ["plan", "--dataset", "text-files", "--dataset-arg", f"path={corpus}", "--cache-dir", str(tmp_path / "c")]
    assert main([*argv, "--dataset-arg", "split=order"]) == 0
    last = capsys.readouterr().out.splitlines()[-1]
    assert last.startswith("SHIFT: blind baseline") and "may measure the split rather than the model" in last
    assert main(argv) == 0  # cut at random: silent
    assert capsys.readouterr().out.splitlines()[-1].startswith("blind baseline (the texts alone, no model")
    assert not list((tmp_path / "c").glob("models/*"))  # nothing trained


def test_a_documents_windows_never_straddle_the_folds(tmp_path, capsys):
    """A corpus cuts each document into several windows. Scored window by window, a classifier trained on
    some windows of a document knows its words when it scores the others, and a split drawn at random
    looks shifted; the blind baseline classifies whole documents, and stays silent."""
    from harness.cli import main
    from harness.protocol.request import EvalRequest
    from harness.protocol.run import Protocol

    rng = random.Random(0)
    syllables = ["ka", "lo", "mi", "ru", "te", "zo", "pa", "ne", "vi", "su", "da", "fo"]
    docs = []
    for _ in range(240):  # each document with its own names, said again and again: long enough for many windows
        names = ["".join(rng.choice(syllables) for _ in range(4)) for _ in range(6)]
        docs.append(" ".join(f"the {rng.choice(names)} met the {rng.choice(names)} by the river." for _ in range(60)))
    (tmp_path / "corpus.txt").write_text("\n\n".join(docs))
    args = {"path": str(tmp_path / "corpus.txt")}
    data = Protocol(EvalRequest(method="soft-kd", dataset="text-files", dataset_args=args,
                                cache_dir=tmp_path / "c"), bind=False).data()
    assert len(data.members) > 3 * len(set(data.members.documents))  # several windows a document
    windows = blind.figures(data.members.texts(data.tokenizer), data.nonmembers.texts(data.tokenizer))
    assert windows["blind_auc_lo"] > 0.5  # window by window: a shift that is not there
    assert main(["plan", "--dataset", "text-files", "--dataset-arg", f"path={args['path']}",
                 "--cache-dir", str(tmp_path / "c")]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("blind baseline (the texts alone, no model")


def test_the_runs_of_one_split_are_averaged_not_searched_for_the_furthest():
    # one split, its folds drawn by three seeds: the furthest of them would flag chance (0.539 [0.501, 0.575])
    seeds = [(0.539, 0.501, 0.575), (0.516, 0.479, 0.553), (0.512, 0.474, 0.549)]
    line = formats.blind(seeds)
    assert line.startswith("blind baseline") and "AUC 0.522 [0.485, 0.559], the mean of 3 runs'" in line
    assert formats.blind([seeds[0]]).startswith("SHIFT: ")  # that run alone would
    assert formats.blind([(0.96, 0.95, 0.98)] * 3).startswith("SHIFT: ")
