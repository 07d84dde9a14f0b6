"""`registry.toml`: which plugins are active and the protocol presets.

The harness's own defaults (the default family and dataset, the presets) ship in the package as
`harness/config/defaults.toml` and are always read; a project's or user's `registry.toml` is read over
them: it adds plugin modules, files or entry points, disables plugins, sets [defaults] and adds
or overrides presets. The built-in plugins are registered in code (`harness.config.plugins.DEFAULT_PLUGINS`).

Every value is checked here, once, so that a typo in the file is one line naming the file and
the key, not a traceback from deep inside a training loop.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import tomli

from harness.contract.specs import ROLES, TRAINING_PARAMS, Param, resolve_params
from harness.errors import UsageError, unknown

ENV_VAR = "HARNESS_REGISTRY"
DEFAULTS = "defaults.toml"  # package data: the default family and dataset, and the presets

# "public": the members are split once (a fixed seeded shuffle) into a private half, the teacher's
# fine-tuning set and the one every role is tested on, and a public half the baseline and the
# student train on, as Zhang et al.'s code distils on a public split.
DISTILL_ON = ("members", "public")

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
    Param("pretrain_domain_docs", int, 0, "texts of the dataset's kind (its `domain`: none of its members, "
          "validation or non-members) the starts are pretrained on beside the generic corpus, so fine-tuning "
          "starts from a model that knows the domain (0: the generic corpus alone)", min=0, max=100_000_000),
    Param("distill_on", str, "members", "what the baseline and the student train on: the members, or a disjoint "
          "public half of them, the teacher keeping the other (Zhang et al.'s setting)", choices=DISTILL_ON),
)

TRAIN_PARAMS = TRAINING_PARAMS  # a role block's keys, declared in the contract: KD methods override them too

PRETRAIN = "pretrain"  # how each size of a family without released weights is pretrained, before any role
SECTIONS = ("sizes", "dataset_args")


@dataclass(frozen=True)
class Training:
    """How one role is trained: a preset's role block (fields: `TRAINING_PARAMS`)."""

    epochs: int
    lr: float
    batch_size: int
    warmup_ratio: float
    weight_decay: float
    schedule: str
    patience: int = 0  # early stopping on the validation split; 0: every epoch is trained

    def describe(self) -> str:
        """`lr 0.0003, 6 epochs, batch 32, warm-up 0.05, cosine schedule`: for `list`, `show` and the log."""
        decay = f", weight decay {self.weight_decay:g}" if self.weight_decay else ""
        epochs = (f"up to {self.epochs} epochs (best validation loss, patience {self.patience})" if self.patience
                  else f"{self.epochs} epochs")
        return (f"lr {self.lr:.3g}, {epochs}, batch {self.batch_size}, warm-up {self.warmup_ratio:g}"
                f"{decay}, {self.schedule} schedule")

    def kept_epoch(self, validation_loss: Sequence[float]) -> int:
        """The 1-based epoch whose weights this recipe keeps: the lowest validation loss (the earliest on a
        tie) under early stopping, else the last epoch trained."""
        return best_epoch(validation_loss) if self.patience else len(validation_loss)

    def key(self) -> dict[str, Any]:
        """The fields a cache key holds: patience only when set, so a model trained every epoch keeps
        the key it had before early stopping existed (the same weights)."""
        return {k: v for k, v in self.__dict__.items() if k != "patience" or v}

    def overlaid(self, overrides: Mapping[str, Any]) -> Training:
        """This recipe with a KD method's `training` overrides (checked by `KDMethod`) laid over it:
        absolute values replace the field; `lr_scale` multiplies the learning rate."""
        values = {**self.__dict__, **{k: v for k, v in overrides.items() if k != "lr_scale"}}
        if "lr_scale" in overrides:
            values["lr"] = self.lr * overrides["lr_scale"]
        return Training(**values)


def best_epoch(losses: Sequence[float]) -> int:
    """The 1-based epoch of the lowest validation loss, the earliest on a tie (0 before any epoch)."""
    return min(range(len(losses)), key=lambda i: (losses[i], i)) + 1 if losses else 0


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
    pretrain_domain_docs: int = 0  # texts of the dataset's kind in the starts' pretraining
    distill_on: str = "members"  # or "public": Zhang et al.'s setting (DISTILL_ON)

    def training(self, role: str, method: Any = None) -> Training:
        """How `role` is trained; the student with `method`'s (a KDMethod's) overrides laid over the
        preset's recipe, which is what the student stage trains with and keys its cache by."""
        cfg = getattr(self, role)
        overrides = getattr(method, "training", None)
        return cfg.overlaid(overrides) if role == "student" and overrides else cfg

    def pair(self, family: str, default: tuple[str, str]) -> tuple[str, str]:
        return self.sizes.get(family, default)


@dataclass(frozen=True)
class Registry:
    path: Path  # the registry.toml read over the defaults, or the package's defaults.toml when none
    modules: tuple[str, ...]  # plugin modules besides the built-ins (harness.config.plugins.DEFAULT_PLUGINS)
    files: tuple[Path, ...]
    entry_points: bool
    disabled: frozenset[str]
    defaults: dict[str, str]  # always holds "family" and "dataset"
    presets: dict[str, Preset]

    def preset(self, name: str) -> Preset:
        if name not in self.presets:
            raise unknown(f"preset (in {self.path})", name, self.presets)
        return self.presets[name]

    @property
    def family(self) -> str:
        """The default model family: defaults.toml's, unless a registry.toml sets its own."""
        return self.defaults["family"]

    @property
    def dataset(self) -> str:
        return self.defaults["dataset"]


def defaults_path() -> Path:
    """Where the package's defaults.toml is (for messages; it is read through importlib.resources)."""
    return Path(str(resources.files("harness.config").joinpath(DEFAULTS)))


def find(explicit: str | os.PathLike | None = None) -> Path | None:
    """--registry, then $HARNESS_REGISTRY, then ./registry.toml; None when there is none (the defaults alone)."""
    if explicit is None:
        explicit = os.environ.get(ENV_VAR) or None
    if explicit is not None:
        path = Path(explicit)
        if not path.is_file():
            raise UsageError(f"registry file not found: {path}")
        return path
    candidate = Path.cwd() / "registry.toml"
    return candidate if candidate.is_file() else None


def load(path: str | os.PathLike | None = None) -> Registry:
    """The package's defaults, with the registry.toml found by `find` (if any) read over them."""
    base = _read(defaults_path(), lambda: resources.files("harness.config").joinpath(DEFAULTS).read_text(encoding="utf-8"))
    _only(base, {"defaults", "presets"}, defaults_path(), "top level")
    user = find(path)
    raw = _read(user, lambda: user.read_text(encoding="utf-8")) if user is not None else {}
    return parse(raw, user or defaults_path(), base=base)


def _read(path: Path, text) -> dict[str, Any]:
    try:
        return tomli.loads(text())
    except tomli.TOMLDecodeError as err:
        raise UsageError(f"{path}: malformed TOML: {err}") from None
    except RecursionError as err:  # tomli's own bound on nesting ("more than the allowed 400 levels")
        raise UsageError(f"{path}: malformed TOML: {err}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise UsageError(f"{path}: cannot read: {err}") from None


def parse(raw: dict[str, Any], path: Path, base: dict[str, Any] | None = None) -> Registry:
    """`raw` (a registry.toml read from `path`) over `base` (the package's defaults.toml, already read)."""
    _only(raw, {"plugins", "defaults", "presets"}, path, "top level")
    plugins = _table(raw, "plugins", path)
    _only(plugins, {"modules", "files", "entry_points", "disabled"}, path, "[plugins]")
    modules = _strings(plugins.get("modules", []), path, "plugins.modules")
    files = _strings(plugins.get("files", []), path, "plugins.files")
    disabled = _strings(plugins.get("disabled", []), path, "plugins.disabled")
    entry_points = plugins.get("entry_points", True)
    if not isinstance(entry_points, bool):
        raise UsageError(f"{path}: plugins.entry_points must be true or false, got {entry_points!r}")

    defaults: dict[str, str] = {}
    layers = [(base, defaults_path())] if base is not None else []
    for layer, where in [*layers, (raw, path)]:
        table = _table(layer, "defaults", where)
        _only(table, {"family", "dataset"}, where, "[defaults]")
        for key, value in table.items():
            if not isinstance(value, str):
                raise UsageError(f"{where}: defaults.{key} must be a string, got {value!r}")
        defaults.update(table)

    # a preset of registry.toml replaces the package's preset of its name, for the presets that inherit
    # it too; to change a few keys of a shipped preset, write one of another name that inherits it
    tables: dict[str, tuple[Any, Path]] = {}
    for layer, where in [*layers, (raw, path)]:
        for name, table in _table(layer, "presets", where).items():
            tables[name] = (table, where)
    presets = {name: _preset(name, flat, tables[name][1]) for name, flat in _inherit(tables).items()}

    return Registry(
        path=path,
        modules=tuple(modules),
        files=tuple((path.parent / f).resolve() for f in files),
        entry_points=entry_points,
        disabled=frozenset(disabled),
        defaults=defaults,
        presets=presets,
    )


def _inherit(tables: dict[str, tuple[Any, Path]]) -> dict[str, dict[str, Any]]:
    """Each preset with `inherits = "NAME"` resolved: the parent's tables, then its own keys over them,
    table by table; then each role block's `inherits = "ROLE"` within the preset."""
    done: dict[str, dict[str, Any]] = {}

    def resolve(name: str, chain: tuple[str, ...]) -> dict[str, Any]:
        if name in done:
            return done[name]
        table, where = tables[name]
        if not isinstance(table, dict):
            raise UsageError(f"{where}: [presets.{name}] must be a table")
        own = {k: v for k, v in table.items() if k != "inherits"}
        parent = table.get("inherits")
        if parent is None:
            flat = own
        else:
            if not isinstance(parent, str):
                raise UsageError(f"{where}: [presets.{name}] inherits must be a preset name, got {parent!r}")
            if parent in (*chain, name):
                cycle = " -> ".join((*(chain[chain.index(parent):] if parent in chain else ()), name, parent))
                raise UsageError(f"{where}: presets inherit in a cycle: {cycle}")
            if parent not in tables:
                raise UsageError(f"{where}: [presets.{name}] inherits {unknown('preset', parent, tables)}")
            flat = _merge(resolve(parent, (*chain, name)), own)
        done[name] = flat
        return flat

    return {name: _inherit_roles(name, resolve(name, ()), tables[name][1]) for name in tables}


def _inherit_roles(name: str, table: dict[str, Any], where: Path) -> dict[str, Any]:
    roles: dict[str, Any] = {}

    def resolve(role: str, chain: tuple[str, ...]) -> Any:
        if role in roles:
            return roles[role]
        section = table.get(role, {})
        if not isinstance(section, dict) or "inherits" not in section:
            roles[role] = section  # a non-table is reported by _preset
            return section
        parent = section["inherits"]
        if parent not in ROLES:
            raise UsageError(f"{where}: [presets.{name}.{role}] inherits {unknown('role', str(parent), ROLES)}")
        if parent in (*chain, role):
            cycle = " -> ".join((*(chain[chain.index(parent):] if parent in chain else ()), role, parent))
            raise UsageError(f"{where}: the roles of [presets.{name}] inherit in a cycle: {cycle}")
        own = {k: v for k, v in section.items() if k != "inherits"}
        roles[role] = _merge(resolve(parent, (*chain, role)), own)
        return roles[role]

    for role in ROLES:
        resolve(role, ())
    return {**table, **{r: s for r, s in roles.items() if r in table or s}}


def _merge(parent: dict[str, Any], own: dict[str, Any]) -> dict[str, Any]:
    """`own` over `parent`, table by table."""
    out = dict(parent)
    for key, value in own.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _preset(name: str, table: Any, path: Path) -> Preset:
    where = f"{path}: [presets.{name}]"
    if not isinstance(table, dict):
        raise UsageError(f"{where} must be a table")
    flat = {k: v for k, v in table.items() if k not in (*ROLES, PRETRAIN, *SECTIONS)}
    known = [p.name for p in PROTOCOL_PARAMS]
    for key in flat:
        if key not in known:  # a misspelt role section is as likely as a misspelt key
            choices = [*known, *ROLES, PRETRAIN, *SECTIONS, "inherits"]
            raise UsageError(f"{path}: {unknown(f'key in [presets.{name}]', key, choices)}")
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
