"""From a dataset's texts to fixed-length token examples, and the dataset's content hash."""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass

import torch

from harness.contract.specs import Dataset, Example, Split
from harness.errors import UsageError


@dataclass(frozen=True)
class Examples:
    """One split, tokenized: a row of `example_len` token ids per example."""

    split: str  # "member", "nonmember" or "validation"
    ids: torch.Tensor  # (n, example_len), int64
    repeats: torch.Tensor  # (n,), times each appears in the training set
    kinds: list[str]
    dropped: int = 0  # records too short for an example, left out
    # each example's source text (its index in the split): a corpus cuts one document into several windows
    documents: tuple[int, ...] = ()

    def __len__(self) -> int:
        return self.ids.shape[0]

    @property
    def sample_ids(self) -> list[str]:
        tag = "m" if self.split == "member" else "n"
        return [f"{tag}{i:06d}" for i in range(len(self))]

    def training_rows(self) -> torch.Tensor:
        """Row indices of the training set D: each member as many times as it is repeated."""
        return torch.repeat_interleave(torch.arange(len(self)), self.repeats)

    def texts(self, tokenizer) -> list[str]:
        """Each example's text as the models see it: its tokens decoded."""
        return tokenizer.batch_decode(self.ids)

    def by_document(self, texts: list[str]) -> list[str]:
        """The examples' `texts` joined per source document, in order: the unit the blind baseline
        classifies, so that no window of a document is scored by a classifier trained on another
        window of it (a record dataset's examples are their documents already)."""
        docs: dict[int, list[str]] = {}
        for doc, text in zip(self.documents or range(len(texts)), texts):
            docs.setdefault(doc, []).append(text)
        return [" ".join(parts) for parts in docs.values()]

    def head(self, n: int | None) -> Examples:
        if n is None or n >= len(self):
            return self
        return Examples(self.split, self.ids[:n], self.repeats[:n], self.kinds[:n], self.dropped, self.documents[:n])


def content_hash(dataset: Dataset, split: Split) -> str:
    """sha256 of everything the dataset yielded: the texts, their repeat counts and kinds (the validation
    split's only where it has one, so a dataset without one keeps its hash)."""
    h = hashlib.sha256(dataset.name.encode())
    for name, examples in (("member", split.members), ("nonmember", split.nonmembers),
                           ("validation", split.validation)):
        for ex in examples:
            fields = [name, ex.text, ex.repeats, ex.kind] + ([ex.prompt] if ex.prompt else [])
            h.update(json.dumps(fields, ensure_ascii=False).encode())
    return h.hexdigest()[:16]


def cut(split_name: str, examples: list[Example], tokenizer, example_len: int, chunk: bool, dataset: str,
        *, prefix_len: int = 0, drop_short: bool = False) -> Examples:
    """Tokenize and cut to examples of exactly `example_len` tokens.

    A record dataset gives one example per text (its first `example_len` tokens) and refuses
    texts that are too short (or drops them, with `drop_short`); a corpus (`chunk=True`) cuts
    each document into consecutive windows and drops the remainder. An example with a prompt
    is the prompt's last `prefix_len` tokens then the response's first `example_len -
    prefix_len`, so the extraction test's suffix lies in the response; one whose prompt or
    response is too short is dropped.
    """
    encoded = tokenizer([ex.text for ex in examples], add_special_tokens=False)["input_ids"]
    prompts = [ex.prompt for ex in examples]
    if any(prompts):
        if chunk:
            raise UsageError(f"dataset {dataset}: examples with a prompt cannot be cut into windows (chunk=True)")
        prompt_ids = tokenizer(prompts, add_special_tokens=False)["input_ids"]
        answer = example_len - prefix_len
        encoded = [p[len(p) - prefix_len:] + r[:answer] if len(p) >= prefix_len and len(r) >= answer else []
                   for p, r in zip(prompt_ids, encoded)]
        drop_short = True
    rows, repeats, kinds, documents = [], [], [], []
    if chunk:
        for doc, (ex, ids) in enumerate(zip(examples, encoded)):
            for start in range(0, len(ids) - example_len + 1, example_len):
                rows.append(ids[start : start + example_len])
                repeats.append(ex.repeats)
                kinds.append(ex.kind)
                documents.append(doc)
        if not rows:
            longest = max((len(ids) for ids in encoded), default=0)
            raise UsageError(
                f"dataset {dataset}: none of the {len(encoded)} {split_name} documents reaches {example_len} tokens "
                f"(prefix + suffix; the longest has {longest}): use longer texts or a smaller preset"
            )
    else:
        short = [len(ids) for ids in encoded if len(ids) < example_len]
        if short and not drop_short:
            raise UsageError(
                f"dataset {dataset}: {len(short)} of {len(encoded)} {split_name} texts are shorter than "
                f"{example_len} tokens (prefix + suffix; shortest {min(short)}, longest short one {max(short)})"
            )
        for doc, (ex, ids) in enumerate(zip(examples, encoded)):
            if len(ids) < example_len:
                continue
            rows.append(ids[:example_len])
            repeats.append(ex.repeats)
            kinds.append(ex.kind)
            documents.append(doc)
        if not rows:
            raise UsageError(f"dataset {dataset}: all {len(encoded)} {split_name} texts are shorter than "
                             f"{example_len} tokens (with a prompt: prompt under {prefix_len} or response under "
                             f"{example_len - prefix_len}); use a preset with shorter examples")
    return Examples(
        split=split_name,
        ids=torch.tensor(rows, dtype=torch.long),
        repeats=torch.tensor(repeats if split_name == "member" else [1] * len(rows), dtype=torch.long),
        kinds=kinds,
        dropped=len(encoded) - len(rows) if not chunk else 0,
        documents=tuple(documents),
    )


def halves(members: list[Example]) -> tuple[list[Example], list[Example]]:
    """Zhang et al.'s split of the members: a private half (the teacher's fine-tuning set, on which
    every role is tested) and a disjoint public half (what the baseline and the student train on).

    Whole documents, by a fixed seeded shuffle, so every run and method shares the same halves.
    """
    order = list(range(len(members)))
    random.Random(0).shuffle(order)
    k = (len(order) + 1) // 2
    return [members[i] for i in sorted(order[:k])], [members[i] for i in sorted(order[k:])]
