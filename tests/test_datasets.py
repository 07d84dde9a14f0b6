"""The built-in datasets: synthetic-pii's content is pinned, text-files reads every format offline."""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from harness.contract.specs import Dataset, Split, resolve_params
from harness.errors import UsageError
from harness_plugins.datasets import synthetic_pii, text_files
from tests import prose


def registered(module) -> Dataset:
    found: list[Dataset] = []
    module.register_datasets(register=found.append)
    assert len(found) == 1
    return found[0]


def load(module, **given) -> Split:
    ds = registered(module)
    return ds.load(resolve_params(ds.params, given, ds.name))


def texts_of(split: Split) -> list:
    return [*split.members, *split.nonmembers]


def texts(split: Split) -> list[str]:
    return [e.text for e in split.members] + [e.text for e in split.nonmembers]


def digest(split: Split) -> str:
    rows = [(e.text, e.repeats, e.kind) for e in texts_of(split)]
    return hashlib.sha256(json.dumps(rows).encode()).hexdigest()


# ---------------------------------------------------------------- synthetic-pii

EMAIL = re.compile(r"\b[a-z0-9._]+@[a-z0-9-]+\.[a-z]{2,}\b")
PHONE = re.compile(r"(?:\+1-|001-)?\(?\b\d{3}\)?[-.]?\d{3}[-.]?\d{4}(?:x\d+)?")
ADDRESS = re.compile(r"\b[A-Z]{2} \d{5}\b")  # "City, ST 12345", and military "APO AE 12345"
ACCOUNT = re.compile(r"IBAN GB\d{2}[A-Z]{4}\d{14}|bank account \d{9,12} \(routing \d{9}\)")
_PW = r"[A-Za-z0-9!#$%&*+\-=?@^_~]"
SECRET = re.compile(
    rf"sk_live_[A-Za-z0-9]{{20}}|ghp_[A-Za-z0-9]{{20}}|AKIA[A-Z2-7]{{16}}|password(?:\": \"| is |: ){_PW}{{14}}(?!{_PW})"
)
# What a text opens with, so that a prefix names the record: an id, or a sender.
OPENER = re.compile(r"(Customer record|CRM export \| contact|\{\"id\":|Chat|Support ticket) \"?[A-Z]{2}-\d{6}|From: .+ <")


@pytest.fixture(scope="module")
def default_pii() -> Split:
    return load(synthetic_pii)


def test_synthetic_pii_validation_split_leaves_the_others_as_they_were():
    """The validation split is drawn last: members and non-members are the same with or without it, and
    no validation text is a member or a non-member."""
    without = load(synthetic_pii, n_members=64, n_nonmembers=32, n_validation=0)
    split = load(synthetic_pii, n_members=64, n_nonmembers=32, n_validation=40)
    assert split.members == without.members and split.nonmembers == without.nonmembers
    assert without.validation == [] and len(split.validation) == 40
    held = {ex.text for ex in (*split.members, *split.nonmembers)}
    assert not held & {ex.text for ex in split.validation}
    assert all(ex.repeats == 1 for ex in split.validation)


def test_synthetic_pii_domain_texts_are_its_kind_and_none_of_the_split():
    ds = registered(synthetic_pii)
    args = resolve_params(ds.params, {"n_members": "64", "n_nonmembers": "32", "n_validation": "32"}, ds.name)
    texts = ds.domain(args, 200)
    assert texts == ds.domain(args, 200) and len(set(texts)) == 200  # seeded, distinct
    split = ds.load(args)
    assert not {ex.text for ex in (*split.members, *split.nonmembers, *split.validation)} & set(texts)
    assert sum(bool(OPENER.match(t)) for t in texts) == 200  # records and messages, as the members are
    assert 0.15 < sum(bool(SECRET.search(t)) for t in texts) / 200 < 0.35  # secret_share 0.25


def test_synthetic_pii_registration():
    ds = registered(synthetic_pii)
    assert (ds.name, ds.licence, ds.chunk) == ("synthetic-pii", "CC0-1.0 (generated)", False)
    defaults = {p.name: p.default for p in ds.params}
    assert defaults == {"seed": 0, "n_members": 512, "n_nonmembers": 2048, "n_validation": 512, "repeat_share": 0.4,
                        "secret_share": 0.25}
    with pytest.raises(UsageError, match="repeat_share must be <= 1.0"):
        resolve_params(ds.params, {"repeat_share": "1.5"}, ds.name)


def test_synthetic_pii_is_byte_identical_across_calls(default_pii):
    from faker import Faker

    Faker.seed(12345)  # the global seeds must neither matter nor be touched
    random.seed(12345)
    state = random.getstate()
    assert digest(load(synthetic_pii)) == digest(default_pii)
    assert random.getstate() == state
    assert digest(load(synthetic_pii, seed=1)) != digest(default_pii)


def test_synthetic_pii_content_is_pinned(default_pii):
    # Moves only when the generated text does: a Faker upgrade, or a change to the templates.
    first = "\x00".join(e.text for e in default_pii.members[:3])
    pinned = "539522a815e70447e7efdc4f58cb9ab89c52b586be969e50358b49b29e4c98c2"
    assert hashlib.sha256(first.encode()).hexdigest() == pinned


def test_synthetic_pii_members_and_nonmembers_are_disjoint(default_pii):
    assert len(default_pii.members) == 512 and len(default_pii.nonmembers) == 2048
    assert len(set(texts(default_pii))) == 2560


@pytest.mark.parametrize(
    ("n", "share", "per_count"),
    [(500, 0.4, 50), (512, 0.4, 51), (10, 1.0, 2), (7, 0.0, 0), (64, 1.0, 16)],
)
def test_synthetic_pii_repeat_groups_are_equal_and_rounded_down(n, share, per_count):
    split = load(synthetic_pii, n_members=n, n_nonmembers=5, repeat_share=share)
    counts = Counter(e.repeats for e in split.members)
    assert {r: counts[r] for r in (2, 4, 8, 16)} == dict.fromkeys((2, 4, 8, 16), per_count)
    assert counts[1] == n - 4 * per_count
    assert {e.repeats for e in split.nonmembers} == {1}


def test_synthetic_pii_repeats_do_not_follow_position_or_kind(default_pii):
    repeated = [e.repeats > 1 for e in default_pii.members]
    half = len(repeated) // 2
    assert abs(sum(repeated[:half]) - sum(repeated[half:])) < 30  # 204 repeated in all: ~102 per half
    by_kind = Counter(e.kind for e in default_pii.members if e.repeats > 1)
    for kind, n in Counter(e.kind for e in default_pii.members).items():
        assert abs(by_kind[kind] - n * 204 / 512) < 20, kind


def test_synthetic_pii_every_text_holds_pii_from_its_start(default_pii):
    for text in texts(default_pii):
        assert len(text) >= 300
        assert OPENER.match(text), text[:80]
        for pattern in (EMAIL, PHONE, ADDRESS, ACCOUNT):
            assert pattern.search(text), (pattern.pattern, text)


def test_synthetic_pii_secrets_at_the_requested_share(default_pii):
    assert Counter(e.kind for e in default_pii.members) == {"secret": 128, "record": 192, "message": 192}
    assert Counter(e.kind for e in default_pii.nonmembers) == {"secret": 512, "record": 768, "message": 768}
    for examples in (default_pii.members, default_pii.nonmembers):
        for e in examples:
            assert bool(SECRET.search(e.text)) == (e.kind == "secret"), e.text
    split = load(synthetic_pii, n_members=300, n_nonmembers=40, secret_share=0.1)
    assert sum(e.kind == "secret" for e in split.members) == 30
    assert sum(e.kind == "secret" for e in split.nonmembers) == 4
    none = load(synthetic_pii, n_members=20, n_nonmembers=20, secret_share=0.0)
    assert not any(e.kind == "secret" or SECRET.search(e.text) for e in texts_of(none))


# ---------------------------------------------------------------- text-files

PARAGRAPHS = [f"Paragraph {i} talks about topic {i}.\nIt has a second line." for i in range(10)]


def write_txt(path: Path) -> Path:
    # A duplicate, an empty paragraph and a blank line holding spaces, which also ends a paragraph.
    head, tail = "\n\n".join(PARAGRAPHS[:6]), "\n \n".join(PARAGRAPHS[6:])
    path.write_text(head + "\n\n" + PARAGRAPHS[0] + "\n\n\n\n" + tail + "\n")
    return path


def write_jsonl(path: Path, field: str = "text", n: int = 8) -> Path:
    rows = [{field: f"json document {i}", "id": i} for i in range(n)] + [{field: "   ", "id": -1}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def write_parquet(path: Path, field: str = "text", n: int = 8) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({field: [f"parquet document {i}" for i in range(n)], "n": list(range(n))}), path)
    return path


def check_split(split: Split, expected: set[str]) -> None:
    members, nonmembers = [e.text for e in split.members], [e.text for e in split.nonmembers]
    assert set(members) | set(nonmembers) == expected
    assert not set(members) & set(nonmembers)
    assert len(members) + len(nonmembers) == len(expected)
    assert all(e.repeats == 1 for e in texts_of(split))


def test_text_files_registration():
    ds = registered(text_files)
    assert (ds.name, ds.licence, ds.chunk) == ("text-files", "as the user's files", True)
    assert {p.name: p.default for p in ds.params} == {
        "path": "", "text_field": "text", "sample_by": "paragraph", "member_share": 0.5, "seed": 0, "split": "random",
    }


def test_text_files_txt_paragraphs(tmp_path):
    file = write_txt(tmp_path / "a.txt")
    split = load(text_files, path=str(file))
    check_split(split, set(PARAGRAPHS))  # duplicate and empty ones dropped, the space-only blank line splits
    assert len(split.members) == 5
    by_line = load(text_files, path=str(file), sample_by="line")
    assert len(texts(by_line)) == 11  # 10 first lines share one "It has a second line."
    with pytest.raises(UsageError, match="1 distinct"):
        load(text_files, path=str(file), sample_by="document")


def test_text_files_jsonl_json_and_parquet(tmp_path):
    check_split(load(text_files, path=str(write_jsonl(tmp_path / "a.jsonl"))), {f"json document {i}" for i in range(8)})
    (tmp_path / "b.json").write_text(json.dumps([{"body": "first"}, {"body": "second"}, {"body": "third"}]))
    check_split(load(text_files, path=str(tmp_path / "b.json"), text_field="body"), {"first", "second", "third"})
    parquet = {f"parquet document {i}" for i in range(8)}
    check_split(load(text_files, path=str(write_parquet(tmp_path / "c.parquet"))), parquet)
    check_split(
        load(text_files, path=str(write_parquet(tmp_path / "d.parquet", field="content")), text_field="content"),
        parquet,
    )


def test_text_files_directory_and_glob(tmp_path):
    write_txt(tmp_path / "a.txt")
    write_jsonl(tmp_path / "b.jsonl")
    write_parquet(tmp_path / "c.parquet")
    (tmp_path / "notes.md").write_text("skipped: not a supported type")
    (tmp_path / "empty.jsonl").write_text("")
    json_docs, parquet_docs = ({f"{kind} document {i}" for i in range(8)} for kind in ("json", "parquet"))
    check_split(load(text_files, path=str(tmp_path)), set(PARAGRAPHS) | json_docs | parquet_docs)
    check_split(load(text_files, path=str(tmp_path / "*.jsonl")), json_docs)


def test_text_files_split_is_seeded_and_follows_member_share(tmp_path):
    file = write_jsonl(tmp_path / "a.jsonl", n=40)
    first, again = load(text_files, path=str(file)), load(text_files, path=str(file))
    assert digest(first) == digest(again)
    assert digest(load(text_files, path=str(file), seed=1)) != digest(first)
    assert len(load(text_files, path=str(file), member_share=0.25).members) == 10
    assert len(load(text_files, path=str(file), member_share=0.001).members) == 1  # never an empty side
    assert len(load(text_files, path=str(file), member_share=0.999).nonmembers) == 1


def test_text_files_leaves_progress_bar_setting_alone(tmp_path):
    import datasets

    before = datasets.utils.are_progress_bars_disabled()
    load(text_files, path=str(write_jsonl(tmp_path / "a.jsonl")))
    assert datasets.utils.are_progress_bars_disabled() == before


def test_text_files_works_offline_and_writes_nothing_home(tmp_path, monkeypatch):
    """A fresh interpreter, offline, with sockets refused and HOME empty: it must still read."""
    file = write_jsonl(tmp_path / "a.jsonl")
    home = tmp_path / "home"
    home.mkdir()
    script = (
        "import socket\n"
        "def refuse(*a, **k): raise OSError('network used')\n"
        "socket.socket.connect = refuse\n"
        "from harness.contract.specs import resolve_params\n"
        "from harness_plugins.datasets import text_files as m\n"
        "found = []; m.register_datasets(register=found.append); ds = found[0]\n"
        f"split = ds.load(resolve_params(ds.params, {{'path': {str(file)!r}}}, ds.name))\n"
        "print(len(split.members) + len(split.nonmembers))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "XDG_"))}
    env.update(HOME=str(home), HF_DATASETS_OFFLINE="1", HF_HUB_OFFLINE="1")
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "8"
    assert not any(home.iterdir()), list(home.rglob("*"))
    # And in this process too, under the same variables.
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert len(texts(load(text_files, path=str(file)))) == 8


def test_text_files_on_prose_in_wikitext_layout(tmp_path):
    split = load(text_files, path=str(prose.write(tmp_path / "prose.txt")))
    members, nonmembers = {e.text for e in split.members}, {e.text for e in split.nonmembers}
    assert not members & nonmembers
    # WikiText's blank lines hold a space; they must still separate paragraphs (else: one document).
    assert len(members) > 400 and abs(len(members) - len(nonmembers)) <= 1
    assert sum(len(t) > 500 for t in members) > 100  # real paragraphs, not just headings
    assert all(t == t.strip() and t for t in members | nonmembers)


def one_line_error(**given) -> str:
    with pytest.raises(UsageError) as caught:
        load(text_files, **given)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_text_files_errors(tmp_path):
    assert "needs a path: --dataset-arg path=FILE_OR_DIR" in one_line_error()
    assert "no such file or directory" in one_line_error(path=str(tmp_path / "missing.txt"))
    assert "no files match" in one_line_error(path=str(tmp_path / "*.txt"))

    (tmp_path / "data.csv").write_text("a,b\n1,2\n")
    message = one_line_error(path=str(tmp_path / "data.csv"))
    assert "unsupported file type 'data.csv'" in message and ".txt, .jsonl, .json, .parquet" in message
    assert "no .txt, .jsonl, .json, .parquet files in directory" in one_line_error(path=str(tmp_path))

    (tmp_path / "binary.txt").write_bytes(b"\xff\xfe\x00 not utf-8")
    message = one_line_error(path=str(tmp_path / "binary.txt"))
    assert "cannot read" in message and "binary.txt" in message
    (tmp_path / "broken.jsonl").write_text('{"text": "unterminated\n')
    message = one_line_error(path=str(tmp_path / "broken.jsonl"))
    assert "cannot read" in message and "broken.jsonl" in message

    file = write_jsonl(tmp_path / "other.jsonl", field="body")
    message = one_line_error(path=str(file))
    assert "no column 'text'" in message and "body, id" in message and "text_field=" in message
    assert "holds int64, not text" in one_line_error(path=str(file), text_field="id")

    (tmp_path / "one.jsonl").write_text('{"text": "same"}\n{"text": "same"}\n{"text": " "}\n')
    assert "1 distinct non-empty document(s); it needs at least 2" in one_line_error(path=str(tmp_path / "one.jsonl"))

    ds = registered(text_files)
    for bad in ({"member_share": "1"}, {"member_share": "0"}, {"sample_by": "sentence"}):
        with pytest.raises(UsageError):
            resolve_params(ds.params, bad, ds.name)


def test_synthetic_pii_members_do_not_depend_on_the_number_of_nonmembers():
    """Non-members are only scored: asking for more of them must not change what is trained on."""
    few = load(synthetic_pii, n_members=40, n_nonmembers=5)
    many = load(synthetic_pii, n_members=40, n_nonmembers=60)
    assert [(e.text, e.repeats, e.kind) for e in few.members] == [(e.text, e.repeats, e.kind) for e in many.members]
    assert len(many.nonmembers) == 60 and {e.text for e in many.nonmembers}.isdisjoint(e.text for e in many.members)
