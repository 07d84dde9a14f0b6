"""`registry.toml`: which plugins are active and the protocol presets.

Every value is checked here, once, so that a typo in the file is one line naming the file and
the key, not a traceback from deep inside a training loop.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli

from harness.errors import UsageError, unknown
from harness.specs import Param, resolve_params

ENV_VAR = "HARNESS_REGISTRY"

PROTOCOL_PARAMS = (
    Param("prefix_len", int, 32, "tokens given to the model", min=1, max=4096),
    Param("suffix_len", int, 32, "tokens it must reproduce exactly to count as memorized", min=1, max=4096),
    Param("example_len", int, 0, "tokens per example; 0 means prefix_len + suffix_len", min=0, max=65536),
    Param("eval_batch_size", int, 64, "examples per forward pass in extraction", min=1, max=65536),
    Param("generate_batch_size", int, 64, "prompts per batch when a teacher generates", min=1, max=65536),
    Param("approx_sample", int, 128, "members whose greedy continuation is generated for approximate "
          "memorization (0: none)", min=0, max=10_000_000),
    Param("pretrain_docs", int, 20_000, "documents of the generic corpus a family without released weights is "
          "pretrained on, and MiniLLM's language-modelling term draws from", min=1, max=100_000_000),
)

TRAIN_PARAMS = (
    Param("epochs", int, 1, "passes over the training set", min=1, max=1000),
    Param("lr", float, 5e-5, "peak learning rate (AdamW)", min=0.0, max=1.0),
    Param("batch_size", int, 8, "sequences per optimizer step", min=1, max=65536),
    Param("warmup_ratio", float, 0.0, "share of steps with linear warm-up", min=0.0, max=1.0),
    Param("weight_decay", float, 0.0, "AdamW weight decay", min=0.0, max=1.0),
    Param("schedule", str, "cosine", "learning-rate decay after warm-up", choices=("cosine", "linear", "constant")),
)

ROLES = ("teacher", "baseline", "student")
PRETRAIN = "pretrain"  # how each size of a family without released weights is pretrained, before any role
SECTIONS = ("sizes", "dataset_args")


@dataclass(frozen=True)
class Training:
    epochs: int
    lr: float
    batch_size: int
    warmup_ratio: float
    weight_decay: float
    schedule: str


@dataclass(frozen=True)
class Preset:
    name: str
    prefix_len: int
    suffix_len: int
    example_len: int
    eval_batch_size: int
    generate_batch_size: int
    teacher: Training
    baseline: Training
    student: Training
    pretrain: Training
    # family -> (teacher size, student size) where this preset departs from the family's pair
    sizes: dict[str, tuple[str, str]] = field(default_factory=dict)
    # dataset arguments this preset sets (e.g. members = 1000000), for datasets that declare them;
    # --dataset-arg still wins
    dataset_args: dict[str, Any] = field(default_factory=dict)
    # members whose greedy continuation is generated for approximate-memorization figures
    approx_sample: int = 128
    pretrain_docs: int = 20_000

    def training(self, role: str) -> Training:
        return getattr(self, role)

    def pair(self, family: str, default: tuple[str, str]) -> tuple[str, str]:
        return self.sizes.get(family, default)


@dataclass(frozen=True)
class Registry:
    path: Path
    modules: tuple[str, ...]
    files: tuple[Path, ...]
    entry_points: bool
    disabled: frozenset[str]
    defaults: dict[str, str]
    presets: dict[str, Preset]

    def preset(self, name: str) -> Preset:
        if name not in self.presets:
            raise unknown(f"preset (in {self.path})", name, self.presets)
        return self.presets[name]


def find(explicit: str | os.PathLike | None = None) -> Path:
    """--registry, then $HARNESS_REGISTRY, then ./registry.toml, then the one in the source tree."""
    if explicit is None:
        explicit = os.environ.get(ENV_VAR) or None
    if explicit is not None:
        path = Path(explicit)
        if not path.is_file():
            raise UsageError(f"registry file not found: {path}")
        return path
    for candidate in (Path.cwd() / "registry.toml", Path(__file__).resolve().parent.parent / "registry.toml"):
        if candidate.is_file():
            return candidate
    raise UsageError("no registry.toml found: pass --registry PATH or set HARNESS_REGISTRY")


def load(path: str | os.PathLike | None = None) -> Registry:
    path = find(path)
    try:
        raw = tomli.loads(path.read_text(encoding="utf-8"))
    except tomli.TOMLDecodeError as err:
        raise UsageError(f"{path}: malformed TOML: {err}") from None
    except RecursionError as err:  # tomli's own bound on nesting ("more than the allowed 400 levels")
        raise UsageError(f"{path}: malformed TOML: {err}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise UsageError(f"{path}: cannot read: {err}") from None
    return parse(raw, path)


def parse(raw: dict[str, Any], path: Path) -> Registry:
    _only(raw, {"plugins", "defaults", "presets"}, path, "top level")
    plugins = _table(raw, "plugins", path)
    _only(plugins, {"modules", "files", "entry_points", "disabled"}, path, "[plugins]")
    modules = _strings(plugins.get("modules", []), path, "plugins.modules")
    files = _strings(plugins.get("files", []), path, "plugins.files")
    disabled = _strings(plugins.get("disabled", []), path, "plugins.disabled")
    entry_points = plugins.get("entry_points", True)
    if not isinstance(entry_points, bool):
        raise UsageError(f"{path}: plugins.entry_points must be true or false, got {entry_points!r}")

    defaults = _table(raw, "defaults", path)
    _only(defaults, {"family", "dataset"}, path, "[defaults]")
    for key, value in defaults.items():
        if not isinstance(value, str):
            raise UsageError(f"{path}: defaults.{key} must be a string, got {value!r}")

    presets = {}
    for name, table in _table(raw, "presets", path).items():
        presets[name] = _preset(name, table, path)

    return Registry(
        path=path,
        modules=tuple(modules),
        files=tuple((path.parent / f).resolve() for f in files),
        entry_points=entry_points,
        disabled=frozenset(disabled),
        defaults=dict(defaults),
        presets=presets,
    )


def _preset(name: str, table: Any, path: Path) -> Preset:
    where = f"{path}: [presets.{name}]"
    if not isinstance(table, dict):
        raise UsageError(f"{where} must be a table")
    flat = {k: v for k, v in table.items() if k not in (*ROLES, PRETRAIN, *SECTIONS)}
    known = [p.name for p in PROTOCOL_PARAMS]
    for key in flat:
        if key not in known:  # a misspelt role section is as likely as a misspelt key
            raise UsageError(f"{path}: {unknown(f'key in [presets.{name}]', key, [*known, *ROLES, PRETRAIN, *SECTIONS])}")
    try:
        protocol = resolve_params(PROTOCOL_PARAMS, flat, f"[presets.{name}]")
        roles = {}
        for role in (*ROLES, PRETRAIN):
            section = table.get(role, {})
            if not isinstance(section, dict):
                raise UsageError(f"[presets.{name}.{role}] must be a table")
            roles[role] = Training(**resolve_params(TRAIN_PARAMS, section, f"[presets.{name}.{role}]"))
    except UsageError as err:
        raise UsageError(f"{path}: {err}") from None
    if protocol["example_len"] == 0:
        protocol["example_len"] = protocol["prefix_len"] + protocol["suffix_len"]
    if protocol["example_len"] < protocol["prefix_len"] + protocol["suffix_len"]:
        raise UsageError(f"{where}: example_len must be at least prefix_len + suffix_len")
    dataset_args = table.get("dataset_args", {})
    if not isinstance(dataset_args, dict):
        raise UsageError(f"{path}: [presets.{name}.dataset_args] must be a table")
    return Preset(name=name, **protocol, **roles, sizes=_sizes(table.get("sizes", {}), f"{path}: [presets.{name}.sizes]"),
                  dataset_args=dataset_args)


def _sizes(table: Any, where: str) -> dict[str, tuple[str, str]]:
    """`pythia = ["410m", "70m"]`: the teacher and student sizes of a family under this preset."""
    if not isinstance(table, dict):
        raise UsageError(f"{where} must be a table of family = [teacher, student]")
    pairs = {}
    for family, pair in table.items():
        if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(s, str) and s for s in pair)):
            raise UsageError(f"{where}: {family} must be [teacher size, student size], got {pair!r}")
        pairs[family] = (pair[0], pair[1])
    return pairs


def _only(table: dict, allowed: set[str], path: Path, where: str) -> None:
    for key in table:
        if key not in allowed:
            err = unknown(f"key in {where}", key, allowed)
            raise UsageError(f"{path}: {err}")


def _table(raw: dict, key: str, path: Path) -> dict:
    value = raw.get(key, {})
    if not isinstance(value, dict):
        raise UsageError(f"{path}: [{key}] must be a table")
    return value


def _strings(value: Any, path: Path, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise UsageError(f"{path}: {where} must be a list of strings")
    return value
