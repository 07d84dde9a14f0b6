"""What a plugin registers: model families, datasets and KD methods, with declared parameters.

These dataclasses are the whole contract between the core and its plugins: a plugin builds
one and hands it to the `register` callable of a hook (see `harness.hookspecs`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from harness.errors import UsageError, unknown

if TYPE_CHECKING:  # heavy imports stay out of `harness list` and `--help`
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase


# ---------------------------------------------------------------- parameters


@dataclass(frozen=True)
class Param:
    """A declared parameter: the CLI validates `--method-arg`/`--dataset-arg` against it."""

    name: str
    type: type  # int, float, str or bool
    default: Any
    help: str = ""
    min: float | None = None
    max: float | None = None
    choices: tuple[Any, ...] | None = None

    def parse(self, raw: Any, owner: str) -> Any:
        """Turn a command-line string (or a TOML value) into a checked value."""
        where = f"{owner} argument {self.name}"
        value = raw
        if isinstance(raw, str) and self.type is not str:
            try:
                if self.type is bool:
                    if raw.lower() not in {"true", "false", "1", "0", "yes", "no"}:
                        raise ValueError
                    value = raw.lower() in {"true", "1", "yes"}
                else:
                    value = self.type(raw)
            except ValueError:
                raise UsageError(f"{where} must be {self.type.__name__}, got {raw!r}") from None
        if self.type is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, self.type) or (self.type is int and isinstance(value, bool)):
            raise UsageError(f"{where} must be {self.type.__name__}, got {raw!r}")
        if self.type is float and not math.isfinite(value):
            raise UsageError(f"{where} must be a finite number, got {raw!r}")
        if self.min is not None and value < self.min:
            raise UsageError(f"{where} must be >= {self.min}, got {value}")
        if self.max is not None and value > self.max:
            raise UsageError(f"{where} must be <= {self.max}, got {value}")
        if self.choices is not None and value not in self.choices:
            raise UsageError(f"{where} must be one of {', '.join(map(str, self.choices))}, got {value!r}")
        return value

    def describe(self) -> str:
        bounds = ""
        if self.choices is not None:
            bounds = " in {" + ", ".join(map(str, self.choices)) + "}"
        elif self.min is not None or self.max is not None:
            lo = "" if self.min is None else f"{self.min} <= "
            hi = "" if self.max is None else f" <= {self.max}"
            bounds = f" ({lo}{self.name}{hi})"
        return f"{self.name}: {self.type.__name__} = {self.default!r}{bounds}  {self.help}".rstrip()


def resolve_params(declared: Sequence[Param], given: Mapping[str, Any], owner: str) -> dict[str, Any]:
    """Defaults overlaid with the given values, each checked; unknown keys are refused."""
    by_name = {p.name: p for p in declared}
    for key in given:
        if key not in by_name:
            if not by_name:
                raise UsageError(f"{owner} takes no arguments, got {key!r}")
            raise unknown(f"argument of {owner}", key, by_name)
    return {p.name: p.parse(given[p.name], owner) if p.name in given else p.default for p in declared}


# ---------------------------------------------------------------- datasets


@dataclass(frozen=True)
class Example:
    """One text. `repeats` is how many times a member appears in the training set."""

    text: str
    repeats: int = 1
    kind: str = ""  # a free tag for breakdowns, e.g. "record", "message", "secret"


@dataclass(frozen=True)
class Split:
    """Members are the fine-tuning set D; non-members are held-out draws from the same source."""

    members: list[Example]
    nonmembers: list[Example]


@dataclass(frozen=True)
class Dataset:
    """A source of member and non-member texts.

    `load(args)` returns the texts; the core tokenizes them, cuts them to examples of
    `prefix_len + suffix_len` tokens and hashes their content, so plugins cannot drift from
    the hash they report.
    """

    name: str
    description: str
    licence: str
    load: Callable[[dict[str, Any]], Split]
    params: tuple[Param, ...] = ()
    # True when one text should be cut into several examples (a corpus of long documents);
    # False when every text is one example (records), cut to its first prefix+suffix tokens.
    chunk: bool = False
    # True when the texts may be published: a published leaderboard snapshot keeps the examples'
    # text (and token ids) only for public datasets, so a private corpus never leaves the machine.
    public: bool = False


# ---------------------------------------------------------------- model families


@dataclass(frozen=True)
class ModelFamily:
    """A large and a small size of one architecture that share a tokenizer.

    `tokenizer(texts)` returns the family's tokenizer; a family built from scratch trains one on
    the member texts, a hub family loads its own and ignores them. `model(size, tokenizer)`
    returns the starting weights of that size (random for a from-scratch family, pretrained
    for a hub family). The core caches both with `save_pretrained`.
    """

    name: str
    description: str
    sizes: tuple[str, ...]
    teacher: str
    student: str
    tokenizer: Callable[[Sequence[str]], PreTrainedTokenizerBase]
    model: Callable[[str, PreTrainedTokenizerBase], PreTrainedModel]
    preset: str = ""  # the registry.toml preset used by default; the family's name if empty


# ---------------------------------------------------------------- KD methods


@dataclass(frozen=True)
class LogitBatch:
    """What a logit-level method sees per batch; position t of the logits predicts labels[:, t]."""

    student_logits: torch.Tensor  # (batch, positions, vocab)
    teacher_logits: torch.Tensor  # (batch, positions, vocab), no gradient
    labels: torch.Tensor  # (batch, positions), the true next tokens


@dataclass(frozen=True)
class TeacherData:
    """What a data-level method sees: the teacher and the members, once, before training."""

    teacher: PreTrainedModel
    member_ids: torch.Tensor  # (members, example_len), one row per distinct member
    prefix_len: int
    generate: Callable[[PreTrainedModel, torch.Tensor, int], torch.Tensor]
    """`generate(model, prompts, new_tokens)`: batched greedy decoding with a KV cache."""


TEACHER_ACCESS = ("logits", "top-k logits", "hidden states", "text")


@dataclass(frozen=True)
class KDMethod:
    """How the student learns from the teacher: a loss on logits, or new training data.

    Give `loss` for a logit-level method (soft KD and its relatives): it returns the scalar
    training loss of a batch. Give `make_data` for a data-level method (hard / sequence-level
    KD): it returns the student's training token ids, one row per distinct member (the core
    repeats each row as often as the member is repeated in D). `teacher_access` says what the
    method reads from the teacher, which bounds what it can leak.
    """

    name: str
    description: str
    teacher_access: str
    params: tuple[Param, ...] = ()
    loss: Callable[[LogitBatch, dict[str, Any]], torch.Tensor] | None = None
    make_data: Callable[[TeacherData, dict[str, Any]], torch.Tensor] | None = None
    aliases: tuple[str, ...] = ()
    paper: str = ""

    def __post_init__(self) -> None:
        if (self.loss is None) == (self.make_data is None):
            raise ValueError(f"KD method {self.name!r} must give exactly one of loss or make_data")
        if self.teacher_access not in TEACHER_ACCESS:
            raise ValueError(f"KD method {self.name!r}: teacher_access must be one of {TEACHER_ACCESS}")


@dataclass
class Registered:
    """Everything the active plugins registered, by name, with the plugin that gave each."""

    families: dict[str, ModelFamily] = field(default_factory=dict)
    datasets: dict[str, Dataset] = field(default_factory=dict)
    methods: dict[str, KDMethod] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)
    origin: dict[tuple[str, str], str] = field(default_factory=dict)  # (kind, name) -> plugin

    def family(self, name: str) -> ModelFamily:
        if name not in self.families:
            raise unknown("model family", name, self.families)
        return self.families[name]

    def dataset(self, name: str) -> Dataset:
        if name not in self.datasets:
            raise unknown("dataset", name, self.datasets)
        return self.datasets[name]

    def method(self, name: str) -> KDMethod:
        name = self.aliases.get(name, name)
        if name not in self.methods:
            raise unknown("method", name, [*self.methods, *self.aliases])
        return self.methods[name]
