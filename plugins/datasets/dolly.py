"""`dolly`: databricks-dolly-15k, human-written instruction/response pairs.

As in the membership study, the model is fine-tuned on prompt and response, and memorization is
measured on the response: each example's prefix is the end of the prompt (instruction and
context in a fixed template) and its suffix the start of the response (`Example.prompt`). Pairs
whose prompt or response is too short for the preset are left out by the core.
"""

from __future__ import annotations

import random
from typing import Any

from harness import Dataset, Example, Param, Split, hookimpl, sources

NAME = "dolly"
REPO = "databricks/databricks-dolly-15k"
COLUMNS = ("instruction", "context", "response", "category")
LOCAL_HINT = "give a local copy with --dataset-arg path=databricks-dolly-15k.jsonl"


def prompt(record: dict[str, Any]) -> str:
    context = (record["context"] or "").strip()
    text = f"### Instruction:\n{record['instruction'].strip()}\n\n"
    if context:
        text += f"### Context:\n{context}\n\n"
    return text + "### Response:\n"


def load(args: dict[str, Any]) -> Split:
    owner = f"dataset {NAME}"
    if args["path"]:
        records = sources.read_local(sources.local_files(args["path"], owner), owner, COLUMNS)
    else:
        records = list(sources.read_hub(REPO, owner, COLUMNS, local_hint=LOCAL_HINT))
    examples = [Example(r["response"].strip(), kind=r["category"], prompt=prompt(r))
                for r in records if (r["response"] or "").strip()]
    random.Random(args["seed"]).shuffle(examples)
    members = examples[: args["train_pairs"]]
    return Split(members, examples[len(members) : len(members) + args["heldout_pairs"]])


@hookimpl
def register_datasets(register):
    register(Dataset(
        name=NAME,
        description="databricks-dolly-15k (hub): prompt as the prefix, memorization measured on the response",
        licence="CC BY-SA 3.0",
        public=True,  # a published corpus: boards may show its text (with the licence's attribution)
        load=load,
        params=(
            Param("path", str, "", "a local copy of databricks-dolly-15k.jsonl instead of the hub"),
            Param("train_pairs", int, 5000, "pairs for the training set", min=1),
            Param("heldout_pairs", int, 1000, "pairs held out", min=1),
            Param("seed", int, 0, "seed of the member/non-member split", min=0, max=2**32 - 1),
        ),
    ))
