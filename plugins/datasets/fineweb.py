"""`fineweb`: HuggingFaceFW/fineweb, deduplicated and filtered Common Crawl, streamed.

As in the study, the examples are the first N documents of at least 256 tokens (one example per
document, its first tokens); the next documents that qualify are the non-members. Streamed from
the hub (so only what is used is downloaded), or read from local parquet/jsonl files with
FineWeb's columns (`path=`).
"""

from __future__ import annotations

from itertools import islice
from typing import Any

from harness import Dataset, Example, Param, Split, hookimpl, sources

NAME = "fineweb"
REPO = "HuggingFaceFW/fineweb"
COLUMNS = ("text", "id")
LOCAL_HINT = "give local files with --dataset-arg path=FILE_OR_DIR (parquet or jsonl with columns text, id)"


def load(args: dict[str, Any]) -> Split:
    owner = f"dataset {NAME}"
    if args["path"]:
        records = sources.read_local(sources.local_files(args["path"], owner), owner, COLUMNS)
    else:
        records = sources.read_hub(REPO, owner, COLUMNS, config=args["config"], streaming=True, local_hint=LOCAL_HINT)
    wanted = args["members"] + args["nonmembers"]
    docs = list(islice(sources.take_long(records, wanted, args["min_tokens"]), wanted))
    members = docs[: args["members"]]
    return Split([Example(d["text"], kind=d.get("dump") or "") for d in members],
                 [Example(d["text"], kind=d.get("dump") or "") for d in docs[len(members):]])


@hookimpl
def register_datasets(register):
    register(Dataset(
        name=NAME,
        description="FineWeb (hub HuggingFaceFW/fineweb, streamed): the first N web documents of >= 256 tokens",
        licence="ODC-By 1.0 (and Common Crawl's terms of use)",
        load=load,
        drop_short=True,
        params=(
            Param("config", str, "sample-10BT", "the FineWeb subset (sample-10BT, sample-100BT, CC-MAIN-2024-10, ...)"),
            Param("path", str, "", "local parquet/jsonl files in FineWeb's format instead of the hub"),
            Param("members", int, 10000, "documents for the training set (the study: 1000000)", min=1),
            Param("nonmembers", int, 1000, "the documents after them, held out", min=1),
            Param("min_tokens", int, 256, "the shortest document taken", min=1),
        ),
    ))
