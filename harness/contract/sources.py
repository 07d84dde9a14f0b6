"""Reading a hub dataset's records: from local files in the source's own format, or from the hub.

Hub dataset plugins (wikitext, fineweb, nemotron-cc, dolly) read through here, so that one offline
fixture in the real format (parquet or jsonl with the real column names) exercises the same parsing
as the hub, and an unreachable hub is one line (see `harness.runtime.hub`).
"""

from __future__ import annotations

import glob
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from harness.errors import UsageError
from harness.runtime import hub

BUILDERS = {".parquet": "parquet", ".jsonl": "json", ".json": "json"}
MAX_GLOB_FILES = 100_000


def expand_glob(raw: str, owner: str, limit: int = MAX_GLOB_FILES) -> list[str]:
    """The files a glob such as `corpus/**/*.txt` matches, sorted, without following symlinked folders.

    `glob.glob(recursive=True)` follows links to folders, so a link back to a parent makes `**`
    walk forever; pathlib's `**` never enters a symlinked folder. A pattern matching more than
    `limit` files is refused rather than read.
    """
    path = Path(raw).expanduser()
    parts = path.parts
    first_magic = next((i for i, part in enumerate(parts) if glob.has_magic(part)), len(parts))
    base = Path(*parts[:first_magic]) if first_magic else Path(".")
    pattern = str(Path(*parts[first_magic:])) if first_magic < len(parts) else ""
    if not pattern:
        return [str(path)] if path.is_file() else []
    found = []
    for match in base.glob(pattern):
        if match.is_file():
            found.append(str(match))
            if len(found) > limit:
                raise UsageError(f"{owner}: {raw} matches more than {limit} files; narrow the pattern")
    return sorted(found)


def local_files(raw: str, owner: str, pattern: str = "*") -> list[str]:
    """The .parquet/.jsonl/.json files of a file, a folder (those matching `pattern`) or a glob."""
    path = Path(raw).expanduser()
    if path.is_dir():
        files = sorted(str(p) for p in path.glob(pattern) if p.is_file() and p.suffix in BUILDERS)
    elif path.is_file():
        files = [str(path)]
    else:
        files = expand_glob(str(path), owner)
    if not files:
        raise UsageError(f"{owner}: no {pattern} .parquet or .jsonl files at {raw}")
    bad = [f for f in files if Path(f).suffix not in BUILDERS]
    if bad:
        raise UsageError(f"{owner}: {bad[0]} is not .parquet, .jsonl or .json")
    return files


def read_local(files: list[str], owner: str, columns: Iterable[str]) -> list[dict[str, Any]]:
    """Every record of the files, checked to carry `columns`."""
    import datasets

    builder = BUILDERS[Path(files[0]).suffix]
    with quiet_datasets(datasets), tempfile.TemporaryDirectory(prefix="harness-source-") as cache_dir:
        try:
            table = datasets.load_dataset(builder, data_files=files, split="train", cache_dir=cache_dir,
                                          keep_in_memory=True)
        except Exception as err:  # noqa: BLE001 - a file that does not parse is the user's, one line
            raise UsageError(f"{owner}: cannot read {', '.join(files)}: {root_cause(err)}") from None
        _check_columns(table.column_names, columns, owner, files[0])
        return table.to_list()


def read_hub(repo: str, owner: str, columns: Iterable[str], *, config: str | None = None, split: str = "train",
             streaming: bool = False, local_hint: str) -> Iterable[dict[str, Any]]:
    """A hub dataset's records; streamed ones need the network, downloaded ones also come from the cache."""
    import datasets

    if streaming:
        hub.require_online(repo, owner=owner, local_hint=local_hint)
    elif not hub.reachable() and not hub.offline_by_choice():
        # `datasets` reads its cache offline only when HF_HUB_OFFLINE is set before it is imported
        raise UsageError(f"{owner}: {repo} needs huggingface.co, which cannot be reached: connect to a network; "
                         f"or, with {repo} in the Hugging Face cache (HF_HOME={hub.hf_home()}), set HF_HUB_OFFLINE=1; "
                         f"or {local_hint}")
    try:
        data = datasets.load_dataset(repo, config, split=split, streaming=streaming)
    except Exception as err:  # noqa: BLE001 - missing, gated or offline: one line with the way out
        where = "" if hub.reachable() else f" ({hub.why_offline()}; not in the cache HF_HOME={hub.hf_home()})"
        raise UsageError(f"{owner}: cannot load {repo}{where}: {root_cause(err)}; {local_hint}") from None
    if data.column_names is not None:  # a stream may not know its columns before its first record
        _check_columns(data.column_names, columns, owner, repo)
    return data


def take_long(records: Iterable[dict[str, Any]], n: int, min_tokens: int, text: str = "text") -> Iterator[dict]:
    """The first `n` records whose text is at least `min_tokens` long: by the source's own
    `token_count` where it has one, else by an estimate of four characters a token (the core then
    leaves out any that the family's tokenizer still finds too short)."""
    taken = 0
    for record in records:
        if taken >= n:
            return
        count = record.get("token_count")
        long_enough = count >= min_tokens if isinstance(count, int) else len(record[text]) >= 4 * min_tokens
        if long_enough:
            taken += 1
            yield record


def _check_columns(have: Iterable[str], need: Iterable[str], owner: str, where: str) -> None:
    missing = [c for c in need if c not in set(have)]
    if missing:
        raise UsageError(f"{owner}: {where} has no column {', '.join(map(repr, missing))}; "
                         f"its columns are {', '.join(have)}")


@contextmanager
def quiet_datasets(datasets) -> Iterator[None]:
    bars_were_on = not datasets.utils.are_progress_bars_disabled()
    verbosity = datasets.logging.get_verbosity()
    datasets.disable_progress_bars()
    datasets.logging.set_verbosity(datasets.logging.CRITICAL)
    try:
        yield
    finally:
        datasets.logging.set_verbosity(verbosity)
        if bars_were_on:
            datasets.enable_progress_bars()


def root_cause(err: BaseException) -> str:
    while err.__cause__ is not None or err.__context__ is not None:
        err = err.__cause__ or err.__context__
    lines = str(err).strip().splitlines()
    return f"{type(err).__name__}: {lines[0][:200]}" if lines else type(err).__name__
