"""`nemotron-cc`: NVIDIA's Nemotron-CC v2, Common Crawl rewritten and filtered for pretraining.

Taken as FineWeb: the first N documents of at least 256 tokens are members, the next are
non-members. Gated on the hub (accept its licence there and `hf auth login`); streamed, or read
from local parquet/jsonl files with its columns (`path=`).
"""

from __future__ import annotations

from itertools import islice
from typing import Any

from harness import Dataset, Example, Param, Split, hookimpl, sources

NAME = "nemotron-cc"
REPO = "nvidia/Nemotron-CC-v2"
COLUMNS = ("text", "id")
LOCAL_HINT = ("accept the dataset's licence on the hub and `hf auth login`, or give local files with "
              "--dataset-arg path=FILE_OR_DIR (parquet or jsonl with columns text, id)")


def load(args: dict[str, Any]) -> Split:
    owner = f"dataset {NAME}"
    if args["path"]:
        records = sources.read_local(sources.local_files(args["path"], owner), owner, COLUMNS)
    else:
        records = sources.read_hub(REPO, owner, COLUMNS, config=args["config"] or None, streaming=True,
                                   local_hint=LOCAL_HINT)
    wanted = args["members"] + args["nonmembers"]
    docs = list(islice(sources.take_long(records, wanted, args["min_tokens"]), wanted))
    members = docs[: args["members"]]
    return Split([Example(d["text"]) for d in members], [Example(d["text"]) for d in docs[len(members):]])


@hookimpl
def register_datasets(register):
    register(Dataset(
        name=NAME,
        description="Nemotron-CC v2 (hub nvidia/Nemotron-CC-v2, gated, streamed): the first N documents of >= 256 tokens",
        licence="NVIDIA Data Agreement for Model Training (and Common Crawl's terms of use)",
        load=load,
        drop_short=True,
        params=(
            Param("config", str, "", "the subset on the hub (see its dataset card); empty for the default"),
            Param("path", str, "", "local parquet/jsonl files in Nemotron-CC's format instead of the hub"),
            Param("members", int, 10000, "documents for the training set", min=1),
            Param("nonmembers", int, 1000, "the documents after them, held out", min=1),
            Param("min_tokens", int, 256, "the shortest document taken", min=1),
        ),
    ))
