"""text-files: the user's own local documents, split into members and non-members.

Files are read through Hugging Face `datasets` builders, so .txt/.jsonl/.json/.parquet parse as
they would anywhere else, but into a throwaway cache: nothing lands in the user's home and no
network is needed. The core cuts each document into consecutive examples (`chunk=True`).
"""

from __future__ import annotations

import glob
import math
import random
import re
import tempfile
from pathlib import Path
from typing import Any

from harness import Dataset, Example, Param, Split, UsageError, expand_glob, hookimpl, quiet_datasets, root_cause

NAME = "text-files"
BUILDERS = {".txt": "text", ".jsonl": "json", ".json": "json", ".parquet": "parquet"}
SUPPORTED = ", ".join(BUILDERS)
SAMPLE_BY = ("line", "paragraph", "document")
SPLITS = ("random", "order")


def _files(raw: str) -> list[Path]:
    """The corpus files `raw` names: a file, a folder's supported files, or a glob's matches.

    A symlink is followed, to a file or a folder, as a path to it would be: the user names it on their
    own machine and reads it with their own rights, so refusing it would protect nothing and would break
    the linked data folders clusters use; what a run records is the content's hash and the file name
    (`store.database.portable`), never where a link points. Only regular files are read: a path (or a
    link) to a FIFO, a device or a socket, which could be read forever, is one line, as is a broken link.
    A glob never enters a symlinked folder (`expand_glob`), so a link loop cannot hang it.
    """
    if not raw:
        raise UsageError(f"dataset {NAME} needs a path: --dataset-arg path=FILE_OR_DIR")
    path = Path(raw).expanduser()
    if path.is_symlink() and not path.exists():
        raise UsageError(f"dataset {NAME}: {path} is a symlink to {path.readlink()}, which does not exist")
    if path.exists() and not (path.is_dir() or path.is_file()):
        raise UsageError(f"dataset {NAME}: {path} is not a regular file or a folder (a FIFO, a device or a socket); "
                         "name the corpus's files")
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in BUILDERS)
        if not files:
            raise UsageError(f"dataset {NAME}: no {SUPPORTED} files in directory {path}")
        return files
    if path.is_file():
        files = [path]
    elif glob.has_magic(raw):
        files = [Path(p) for p in expand_glob(str(path), f"dataset {NAME}")]
        if not files:
            raise UsageError(f"dataset {NAME}: no files match {raw}")
    else:
        raise UsageError(f"dataset {NAME}: no such file or directory: {path}")
    for file in files:
        if file.suffix.lower() not in BUILDERS:
            raise UsageError(f"dataset {NAME}: unsupported file type {file.name!r}; supported: {SUPPORTED}")
    return files


def _read(datasets, file: Path, args: dict[str, Any], cache_dir: str) -> list[str]:
    if file.stat().st_size == 0:  # no documents, though the json builder would call it malformed
        return []
    builder = BUILDERS[file.suffix.lower()]
    options: dict[str, Any] = {"sample_by": args["sample_by"]} if builder == "text" else {}
    field = "text" if builder == "text" else args["text_field"]
    try:
        table = datasets.load_dataset(
            builder, data_files=[str(file)], split="train", cache_dir=cache_dir, keep_in_memory=True, **options
        )
    except Exception as err:  # noqa: BLE001 - any failure to parse is the file's, reported as such
        raise UsageError(f"dataset {NAME}: cannot read {file}: {root_cause(err)}") from None
    if field not in table.column_names:
        raise UsageError(
            f"dataset {NAME}: {file} has no column {field!r}; its columns are {', '.join(table.column_names)}"
            " (choose one with --dataset-arg text_field=NAME)"
        )
    dtype = getattr(table.features[field], "dtype", type(table.features[field]).__name__)
    if dtype not in ("string", "large_string"):
        raise UsageError(f"dataset {NAME}: column {field!r} of {file} holds {dtype}, not text")
    texts = table.data.column(field).to_pylist()
    if builder == "text" and args["sample_by"] == "paragraph":
        # `datasets` splits paragraphs on "\n\n" only; a blank line holding spaces (as in WikiText) ends one too.
        texts = [part for text in texts for part in re.split(r"\n\s*\n", text)]
    return texts


def load(args: dict[str, Any]) -> Split:
    files = _files(args["path"])
    import datasets

    with quiet_datasets(datasets), tempfile.TemporaryDirectory(prefix="harness-text-files-") as cache_dir:
        texts = [text for file in files for text in _read(datasets, file, args, cache_dir)]
    # Surrounding whitespace is dropped so that documents differing only in it count as one.
    documents = list(dict.fromkeys(t.strip() for t in texts if t and t.strip()))
    if len(documents) < 2:
        raise UsageError(
            f"dataset {NAME}: {args['path']} holds {len(documents)} distinct non-empty document(s); "
            "it needs at least 2, one member and one non-member"
            + (" (try --dataset-arg sample_by=paragraph or line)" if args["sample_by"] == "document" else "")
        )
    if args.get("split", "random") == "random":  # "order" keeps the files' order: the first documents are members
        random.Random(args["seed"]).shuffle(documents)
    n_members = min(max(math.floor(args["member_share"] * len(documents) + 0.5), 1), len(documents) - 1)
    return Split(
        members=[Example(t) for t in documents[:n_members]],
        nonmembers=[Example(t) for t in documents[n_members:]],
    )


@hookimpl
def register_datasets(register):
    register(
        Dataset(
            name=NAME,
            description="Your own .txt, .jsonl/.json or .parquet files: a file, a directory or a glob.",
            licence="as the user's files",
            load=load,
            chunk=True,
            params=(
                Param("path", str, "", "a file, a directory (its supported files) or a glob"),
                Param("text_field", str, "text", "the column holding the text in .jsonl/.json/.parquet"),
                Param("sample_by", str, "paragraph", "what one .txt document is", choices=SAMPLE_BY),
                Param("member_share", float, 0.5, "share of documents that become members", min=0.001, max=0.999),
                Param("seed", int, 0, "seed of the member/non-member split", min=0, max=2**32 - 1),
                Param("split", str, "random", "random: the documents shuffled, then cut; order: the first "
                      "documents (files by name, each in its order) are the members, as when a corpus is split "
                      "by date or source; the blind baseline (`harness show`) says whether that shifts them",
                      choices=SPLITS),
            ),
        )
    )
