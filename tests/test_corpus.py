"""The generic pretraining corpus: the same bytes everywhere, and none of any member's text."""

from __future__ import annotations

import re

from harness.config import plugins, registry
from harness.contract.specs import resolve_params
from harness.protocol import corpus


def test_the_corpus_is_one_fixed_stream_and_more_documents_only_add():
    assert corpus.documents(40) == corpus.documents(40)
    assert corpus.documents(15) == corpus.documents(40)[:15]
    assert len(set(corpus.documents(200))) == 200


def spans(text: str, n: int = 13) -> set[tuple[str, ...]]:
    words = re.findall(r"\w+", text.lower())
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


def test_no_member_of_the_default_dataset_shares_a_13_word_span_with_the_corpus():
    """Brown et al. (2020)'s contamination test, on the default dataset at its default size."""
    found = plugins.load(registry.load(None))
    dataset = found.dataset("synthetic-pii")
    split = dataset.load(resolve_params(dataset.params, {}, "synthetic-pii"))
    member_spans = set().union(*(spans(ex.text) for ex in split.members))
    corpus_spans = set().union(*(spans(doc) for doc in corpus.documents(6000)))
    assert member_spans and corpus_spans
    assert member_spans.isdisjoint(corpus_spans)


def test_rows_pack_documents_ended_by_eos_into_rows_of_one_length():
    from harness.contract.families import train_tokenizer

    docs = corpus.documents(30)
    tokenizer = train_tokenizer(docs, 300, 64)
    rows = corpus.rows(tokenizer, 30, 16)
    assert rows.shape[1] == 16 and rows.dtype.is_floating_point is False
    flat = rows.flatten().tolist()
    eos = tokenizer.eos_token_id
    assert flat.count(eos) in (29, 30)  # one per document; the last may fall in the dropped remainder
    first = flat[: flat.index(eos)]
    assert tokenizer.decode(first) == docs[0]
