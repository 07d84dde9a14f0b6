"""The hub datasets' loaders on local fixtures in each source's real format, and their offline failure.

The fixtures (tests/fixtures/sources, made by make_fixtures.py from WikiText-2 text) have the hub's
file layout and column names, so the parsing here is the parsing a hub download gets.
"""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from harness.contract.families import train_tokenizer
from harness.contract.specs import Dataset, Example, Split, resolve_params
from harness.errors import UsageError
from harness.protocol.data import cut
from harness.runtime import hub
from harness_plugins.datasets import dolly, fineweb, nemotron_cc, wikitext
from tests.conftest import ROOT

SOURCES = ROOT / "tests" / "fixtures" / "sources"


def registered(module) -> Dataset:
    found: list[Dataset] = []
    module.register_datasets(register=found.append)
    [dataset] = found
    return dataset


def load(module, **given) -> Split:
    ds = registered(module)
    return ds.load(resolve_params(ds.params, given, ds.name))


def test_wikitext_joins_lines_into_articles_train_members_test_nonmembers():
    split = load(wikitext, path=str(SOURCES / "wikitext"))
    train = pq.read_table(SOURCES / "wikitext" / "train-00000-of-00001.parquet").column("text").to_pylist()
    titles = [line for line in train if wikitext.TITLE.match(line)]
    assert len(split.members) == len(titles) == 3
    assert len(split.nonmembers) == 2
    for article, title in zip(split.members, titles):
        assert article.text.startswith(title.strip())  # each article opens with its title line
        assert not any(wikitext.TITLE.match(line) for line in article.text.splitlines()[1:])  # one article each
    assert split.members[0].text.startswith("= Homarus gammarus =")
    assert not {m.text for m in split.members} & {n.text for n in split.nonmembers}


def test_wikitext_counts_and_section_titles_stay_inside_articles():
    assert wikitext.articles([" \n", " = A = \n", " x \n", " = = S = = \n", " y \n", " = B = \n", " z \n"]) == [
        "= A = \n x \n = = S = = \n y", "= B = \n z"]
    split = load(wikitext, path=str(SOURCES / "wikitext"), members=2, nonmembers=1)
    assert (len(split.members), len(split.nonmembers)) == (2, 1)


def test_fineweb_takes_the_first_long_documents_members_then_nonmembers():
    table = pq.read_table(SOURCES / "fineweb" / "000_00000.parquet").to_pylist()
    long = [r["text"] for r in table if r["token_count"] >= 64]
    assert len(long) < len(table)  # the fixture has short documents to skip
    split = load(fineweb, path=str(SOURCES / "fineweb"), members=5, nonmembers=4, min_tokens=64)
    assert [e.text for e in split.members] == long[:5]
    assert [e.text for e in split.nonmembers] == long[5:9]
    assert {e.kind for e in split.members} == {"CC-MAIN-2013-20"}  # the crawl, for breakdowns


def test_nemotron_cc_reads_jsonl_with_its_columns_and_filters_by_length():
    records = [json.loads(line) for line in (SOURCES / "nemotron-cc.jsonl").read_text().splitlines()]
    split = load(nemotron_cc, path=str(SOURCES / "nemotron-cc.jsonl"), members=6, nonmembers=3, min_tokens=40)
    long = [r["text"] for r in records if len(r["text"]) >= 4 * 40]
    assert [e.text for e in split.members + split.nonmembers] == long[:9]


def test_dolly_prompt_is_the_prefix_and_the_response_the_text():
    split = load(dolly, path=str(SOURCES / "databricks-dolly-15k.jsonl"), train_pairs=10, heldout_pairs=5)
    assert (len(split.members), len(split.nonmembers)) == (10, 5)
    records = [json.loads(line) for line in (SOURCES / "databricks-dolly-15k.jsonl").read_text().splitlines()]
    for ex in split.members + split.nonmembers:
        [record] = [r for r in records if r["response"].strip() == ex.text
                    and ex.prompt.startswith("### Instruction:\n" + r["instruction"] + "\n\n")]
        assert ex.kind == record["category"]
        assert ex.prompt.endswith("### Response:\n")
        if record["context"]:
            assert f"### Context:\n{record['context']}\n\n" in ex.prompt
        else:
            assert "### Context:" not in ex.prompt
    # the split is a seeded shuffle: reproducible, and another seed gives another split
    again = load(dolly, path=str(SOURCES / "databricks-dolly-15k.jsonl"), train_pairs=10, heldout_pairs=5)
    other = load(dolly, path=str(SOURCES / "databricks-dolly-15k.jsonl"), train_pairs=10, heldout_pairs=5, seed=1)
    assert again == split and other != split


def test_a_prompted_example_is_the_prompt_tail_then_the_response_head():
    tok = train_tokenizer(["alpha beta gamma delta epsilon zeta eta theta"] * 10, 300, 128)
    prompt, response = "alpha beta gamma delta epsilon", "zeta eta theta alpha beta gamma delta"
    p = tok(prompt, add_special_tokens=False)["input_ids"]
    r = tok(response, add_special_tokens=False)["input_ids"]
    prefix, example_len = 3, 3 + 4
    examples = cut("member", [Example(response, prompt=prompt), Example("zeta", prompt=prompt)], tok, example_len,
                   False, "d", prefix_len=prefix)
    assert examples.ids.tolist() == [p[-prefix:] + r[:4]]  # the short response is left out
    assert examples.dropped == 1


def test_short_records_are_dropped_only_where_the_dataset_says_so():
    tok = train_tokenizer(["one two three four five six"] * 10, 300, 64)
    texts = [Example("one two three four five six one two three"), Example("one")]
    with pytest.raises(UsageError, match="shorter than"):
        cut("member", texts, tok, 4, False, "d")
    kept = cut("member", texts, tok, 4, False, "d", drop_short=True)
    assert len(kept) == 1 and kept.dropped == 1


def test_a_fixture_without_the_real_columns_is_one_line(tmp_path):
    pq.write_table(pa.table({"content": ["x" * 2000]}), tmp_path / "000.parquet")
    with pytest.raises(UsageError, match="has no column 'text', 'id'; its columns are content"):
        load(fineweb, path=str(tmp_path))


@pytest.mark.parametrize("module, args", [
    (wikitext, {}), (fineweb, {}), (nemotron_cc, {}), (dolly, {})], ids=["wikitext", "fineweb", "nemotron-cc", "dolly"])
@pytest.mark.parametrize("offline_env", [True, False], ids=["HF_HUB_OFFLINE", "unreachable"])
def test_without_network_each_hub_dataset_is_one_line_naming_the_way_out(module, args, offline_env, monkeypatch,
                                                                         tmp_path):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty"))
    if offline_env:
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    else:
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there: refused at once
    hub.reachable.cache_clear()
    try:
        with pytest.raises(UsageError) as err:
            load(module, **args)
    finally:
        hub.reachable.cache_clear()
    message = str(err.value)
    assert len(message.splitlines()) == 1
    assert registered(module).name in message and "path=" in message
    assert "HF_HUB_OFFLINE" in message or "cannot be reached" in message


def test_wikitext_path_must_be_the_folder_of_both_splits():
    with pytest.raises(UsageError, match="path must be a folder holding train-\\*.parquet and test-\\*.parquet"):
        load(wikitext, path=str(SOURCES / "wikitext" / "train-00000-of-00001.parquet"))
