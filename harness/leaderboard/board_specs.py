"""Published boards: `leaderboards/<name>.toml`, found like registry.toml, and their specs.

A board names a family, dataset, preset, methods and seeds; its snapshot (`<name>.duckdb`, next to
the TOML) holds the runs it ranks. The project's own boards are `leaderboards/` at its root, installed
as the package `harness_leaderboards`.
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import tomli

from harness.errors import UsageError, unknown
from harness.store.labels import COLUMNS

if TYPE_CHECKING:  # the ranking imports pandas and torch: `harness list` reads specs without them
    from harness.leaderboard.ranking import Ranking

ENV_VAR = "HARNESS_LEADERBOARDS"


def find_boards(explicit: str | os.PathLike | None = None) -> tuple[Path, str]:
    """The leaderboards/ to act on, found like registry.toml, and where the choice came from: --leaderboards,
    $HARNESS_LEADERBOARDS, ./leaderboards, then the installed harness's (package data: `harness_leaderboards`)."""
    for given, how in ((explicit, "--leaderboards"), (os.environ.get(ENV_VAR) or None, f"${ENV_VAR}")):
        if given is not None:
            if not Path(given).is_dir():
                raise UsageError(f"{how}: no leaderboards folder at {given}")
            return Path(given).resolve(), how
    here = Path.cwd() / "leaderboards"
    if here.is_dir():
        return here.resolve(), "the current directory"
    return installed_boards(), "the installed harness"


def installed_boards() -> Path:
    """The boards installed with the harness: the checkout's leaderboards/ in an editable install."""
    return Path(str(resources.files("harness_leaderboards")))


def in_installed_package(folder: Path) -> bool:
    """Whether a boards folder is a wheel's installed copy, not a checkout's: under site-packages, or the
    installed `harness_leaderboards` with no pyproject.toml beside it (an editable install's is the checkout's)."""
    folder = Path(folder).resolve()
    if any(part in ("site-packages", "dist-packages") for part in folder.parts):
        return True
    return folder == installed_boards().resolve() and not (folder.parent / "pyproject.toml").is_file()


def boards_dir() -> Path:
    return find_boards()[0]


REGIME_CHARS = 300


@dataclass(frozen=True)
class BoardSpec:
    """One `leaderboards/<name>.toml`."""

    name: str
    path: Path
    title: str
    family: str
    dataset: str
    preset: str
    methods: tuple[str, ...]  # "soft-kd" or "soft-kd temperature=4"
    seeds: tuple[int, ...] = (0,)
    dataset_args: dict = field(default_factory=dict)
    columns: tuple[str, ...] = ()  # the app's default columns, in order
    ranking: Ranking | None = None  # its utility band and order (harness.leaderboard.ranking); None: not read
    regime: str = ""  # one line under the title: the regime its figures come from (how the members are seen...)

    @property
    def snapshot(self) -> Path:
        return self.path.with_suffix(".duckdb")

    def method_args(self, entry: str) -> tuple[str, dict[str, str]]:
        name, *pairs = shlex.split(entry)
        bad = [p for p in pairs if "=" not in p]
        if bad:
            raise UsageError(f"{self.path}: method entry {entry!r}: expected `name key=value ...`")
        return name, dict(p.split("=", 1) for p in pairs)


def load_spec(name: str, folder: Path | None = None, *, rules: bool = True) -> BoardSpec:
    """The board `name` in `folder`, checked; `rules=False` leaves its ranking unread (and unchecked), for a
    listing that must not load the ranking's libraries."""
    folder = folder or boards_dir()
    path = folder / f"{name}.toml"
    if not path.is_file():
        found = sorted(p.stem for p in folder.glob("*.toml")) if folder.is_dir() else []
        raise unknown(f"leaderboard (in {folder})", name, found)
    try:
        raw = tomli.loads(path.read_text())
    except (tomli.TOMLDecodeError, UnicodeDecodeError, RecursionError, OSError) as err:
        raise UsageError(f"{path}: not valid TOML: {err}") from None
    missing = [k for k in ("family", "dataset", "preset", "methods") if k not in raw]
    if missing:
        raise UsageError(f"{path}: missing {', '.join(missing)}")
    allowed = {"title", "regime", "family", "dataset", "preset", "methods", "seeds", "dataset_args", "columns",
               "utility_band", "order"}
    extra = sorted(set(raw) - allowed)
    if extra:
        raise unknown(f"key in {path}", extra[0], allowed)
    if not raw["methods"] or not all(isinstance(m, str) for m in raw["methods"]):
        raise UsageError(f"{path}: methods must be a non-empty list of strings")
    seeds = raw.get("seeds", [0])
    if not seeds or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds):
        raise UsageError(f"{path}: seeds must be a non-empty list of integers >= 0")
    columns = raw.get("columns", [])
    if not isinstance(columns, list) or any(c not in COLUMNS for c in columns):
        bad = next((c for c in columns if c not in COLUMNS), columns) if isinstance(columns, list) else columns
        raise unknown(f"column in {path}", str(bad), COLUMNS)
    regime = raw.get("regime", "")
    if not isinstance(regime, str) or "\n" in regime or len(regime) > REGIME_CHARS:
        raise UsageError(f"{path}: regime must be one line of text, at most {REGIME_CHARS} characters")
    ranking = None
    if rules:
        from harness.leaderboard.ranking import DEFAULT, Ranking

        try:
            ranking = Ranking(slack=float(raw.get("utility_band", DEFAULT.slack)),
                              order=tuple(raw.get("order", DEFAULT.order)))
        except (TypeError, ValueError) as err:
            raise UsageError(f"{path}: {err}") from None
    return BoardSpec(name=name, path=path, title=raw.get("title", name), family=raw["family"],
                     dataset=raw["dataset"], preset=raw["preset"], methods=tuple(raw["methods"]),
                     seeds=tuple(seeds), dataset_args={k: str(v) for k, v in raw.get("dataset_args", {}).items()},
                     columns=tuple(columns), ranking=ranking, regime=regime)


def spec_of(snapshot: Path) -> BoardSpec | None:
    """The spec beside a published snapshot (`<name>.toml` next to `<name>.duckdb`), if it has one."""
    toml = Path(snapshot).with_suffix(".toml")
    return load_spec(toml.stem, toml.parent) if toml.is_file() else None
