"""`wikitext`: WikiText-103 (or WikiText-2) raw, Wikipedia's good and featured articles.

Members are articles of the train split, non-members articles of the test split (held out by the
source itself). The source stores one line per row; a line ` = Title = ` opens an article, and the
core cuts each article into examples. Read from the hub (`Salesforce/wikitext`) or from a local
copy of its parquet files (`path=DIR` holding `train-*.parquet` and `test-*.parquet`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from harness import Dataset, Example, Param, Split, UsageError, hookimpl, sources

NAME = "wikitext"
REPO = "Salesforce/wikitext"
CONFIGS = ("wikitext-103-raw-v1", "wikitext-2-raw-v1")
TITLE = re.compile(r"^ = [^=].* = \n?$")  # ` = Title = `; sections are ` = = Section = = `
LOCAL_HINT = "give a local copy with --dataset-arg path=DIR (DIR/train-*.parquet and DIR/test-*.parquet, column text)"


def articles(lines: list[str]) -> list[str]:
    """Rows of the source, one line each, joined into articles at each title line."""
    found: list[list[str]] = []
    for line in lines:
        if TITLE.match(line) or not found:
            found.append([])
        found[-1].append(line)
    return [text for text in ("".join(a).strip() for a in found) if text]


def _split(args: dict[str, Any], split: str) -> list[str]:
    owner = f"dataset {NAME}"
    if args["path"]:
        if not Path(args["path"]).expanduser().is_dir():
            raise UsageError(f"{owner}: path must be a folder holding train-*.parquet and test-*.parquet, "
                             f"got {args['path']}")
        records = sources.read_local(sources.local_files(args["path"], owner, f"{split}-*"), owner, ["text"])
    else:
        records = sources.read_hub(REPO, owner, ["text"], config=args["config"], split=split, local_hint=LOCAL_HINT)
    return articles([r["text"] for r in records])


def load(args: dict[str, Any]) -> Split:
    members = _split(args, "train")
    nonmembers = _split(args, "test")
    members = members[: args["members"]] if args["members"] else members
    nonmembers = nonmembers[: args["nonmembers"]] if args["nonmembers"] else nonmembers
    return Split([Example(t) for t in members], [Example(t) for t in nonmembers])


@hookimpl
def register_datasets(register):
    register(Dataset(
        name=NAME,
        description="WikiText-103/-2 raw (hub Salesforce/wikitext): train articles are members, test articles non-members",
        licence="CC BY-SA 3.0 (Wikipedia)",
        public=True,  # a published corpus: boards may show its text (with the licence's attribution)
        load=load,
        chunk=True,
        params=(
            Param("config", str, CONFIGS[0], "which WikiText", choices=CONFIGS),
            Param("path", str, "", "a local copy: a folder of train-*.parquet and test-*.parquet"),
            Param("members", int, 0, "articles of the train split to use; 0 for all", min=0),
            Param("nonmembers", int, 0, "articles of the test split to use; 0 for all", min=0),
        ),
    ))
