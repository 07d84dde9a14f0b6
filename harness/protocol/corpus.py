"""The generic pretraining corpus: what a family without released weights learns English from.

The studies start from pretrained models (Pythia on the Pile) and fine-tune them on a few
members. A family built from a config (`tiny`, or any family with `weights=scratch`) has no such
weights, so the protocol pretrains each of its sizes once on this corpus first (see
docs/protocol.md, "Pretraining").

The corpus is generated, not shipped or downloaded: seeded Faker (pinned in pyproject.toml) fills
templates of everyday web genres (news briefs, job ads, directory entries, forum posts, reviews,
event notices, letters). So it is offline, the same bytes on every machine, and licence-clean:
the templates are the project's own and Faker's word lists are MIT. It shares the *kind* of text
the datasets hold (names, addresses, e-mail addresses, phone numbers, prose), as the web shares
it with FineWeb, but none of their records: its own seed stream, and a test
(tests/test_corpus.py) that no member of a built-in offline dataset shares a 13-word span with
it, the contamination test of Brown et al. (2020, GPT-3, appendix C).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

NAME = "generic-v1"  # bump when the generator changes: it keys every pretrained checkpoint
SEED = "harness-pretraining-corpus"  # a stream of its own, never a dataset's integer seed


def _when(fake) -> datetime:
    # never Faker's date providers: they count from today, so the text would drift with the clock
    return datetime(2012, 1, 1) + timedelta(minutes=fake.random_int(0, 10 * 365 * 24 * 60))


def _prose(fake, low: int = 2, high: int = 4) -> str:
    return " ".join(fake.sentences(fake.random_int(low, high)))


def _news(fake) -> str:
    when = _when(fake)
    return (f"{fake.city()}, {when:%B} {when.day} - {fake.company()} said on {when:%A} that it would "
            f"{fake.bs()}. {_prose(fake)} {fake.name()}, its {fake.job().lower()}, told reporters: "
            f"\"{fake.catch_phrase()} is what our customers asked for.\" {_prose(fake, 1, 3)}")


def _job(fake) -> str:
    return (f"{fake.company()} is hiring a {fake.job().lower()} in {fake.city()}, {fake.state()}. "
            f"{_prose(fake)} Salary from ${fake.random_int(30, 160)},000 a year. Send your CV to "
            f"{fake.company_email()} or call {fake.phone_number()} before {_when(fake):%B %d, %Y}.")


def _directory(fake) -> str:
    entries = []
    for _ in range(fake.random_int(2, 4)):
        entries.append(f"{fake.name()}, {fake.job().lower()}\n{fake.address().replace(chr(10), ', ')}\n"
                       f"Tel. {fake.phone_number()} | {fake.email()}")
    return f"{fake.city()} business directory, page {fake.random_int(2, 90)}\n\n" + "\n\n".join(entries)


def _forum(fake) -> str:
    first, other = fake.user_name(), fake.user_name()
    return (f"Re: {' '.join(fake.words(fake.random_int(2, 5))).capitalize()}?\n{first} wrote:\n> {fake.sentence()}\n\n"
            f"{_prose(fake)} Try {fake.url()} or ask at the {fake.city()} office, they know "
            f"{fake.name()}.\n-- {other}, posted {_when(fake):%Y-%m-%d %H:%M}")


def _review(fake) -> str:
    return (f"{fake.random_int(1, 5)}/5 - {fake.catch_phrase()}\n{_prose(fake, 2, 5)}\n"
            f"Reviewed by {fake.first_name()} {fake.last_name()[0]}. from {fake.city()} on {_when(fake):%d %b %Y}")


def _event(fake) -> str:
    when = _when(fake)
    return (f"The {fake.city()} {fake.word()} club meets every {when:%A} at {when:%H}:00 at "
            f"{fake.address().replace(chr(10), ', ')}. {_prose(fake)} Newcomers welcome; "
            f"ask {fake.name()} ({fake.free_email()}, {fake.phone_number()}).")


def _letter(fake) -> str:
    return (f"Dear {fake.first_name()},\n\n{_prose(fake, 3, 5)}\n\nI will be at {fake.address().replace(chr(10), ', ')} "
            f"until {_when(fake):%B %d}. {_prose(fake, 1, 2)}\n\nYours,\n{fake.name()}")


GENRES: tuple[Callable, ...] = (_news, _job, _directory, _forum, _review, _event, _letter)


def documents(n: int) -> list[str]:
    """The first `n` documents of the corpus: a prefix of one fixed stream, so more documents
    only add to fewer."""
    from faker import Faker

    fake = Faker("en_US")
    fake.seed_instance(SEED)
    return [fake.random_element(GENRES)(fake) for _ in range(n)]


def describe(n: int) -> str:
    return f"{NAME} ({n:,} generated documents)"


def rows(tokenizer, n: int, length: int):
    """The first `n` documents in `tokenizer`'s tokens, each ended by EOS, packed into rows of
    `length` tokens (the remainder dropped): how language models are pretrained."""
    return pack(tokenizer, documents(n), length)


def pack(tokenizer, texts: list[str], length: int):
    """`texts` in `tokenizer`'s tokens, each ended by EOS, packed into rows of `length` (remainder dropped)."""
    import torch

    encoded = tokenizer(texts, add_special_tokens=False)["input_ids"]
    eos = tokenizer.eos_token_id
    flat = torch.tensor([t for ids in encoded for t in (*ids, eos)], dtype=torch.long)
    usable = len(flat) // length * length
    return flat[:usable].view(-1, length)


def token_estimate(tokenizer, n: int, sample: int = 200) -> int:
    """About how many tokens the first `n` documents make, from the first `sample` (for the plan)."""
    if not callable(tokenizer):  # the plan's stand-in for a hub tokenizer, not loaded
        return n * 100
    return scaled_tokens(tokenizer, documents(min(n, sample)), n)


def scaled_tokens(tokenizer, sample: list[str], n: int) -> int:
    """About how many tokens `n` texts like `sample` make, each ended by EOS, from the sample's count."""
    counted = sum(len(ids) + 1 for ids in tokenizer(sample, add_special_tokens=False)["input_ids"])
    return round(counted * n / max(len(sample), 1))
