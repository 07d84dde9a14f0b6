"""What a plugin registers: model families, datasets, KD methods and membership attacks, with declared parameters.

These dataclasses are the whole contract between the core and its plugins: a plugin builds
one and hands it to the `register` callable of a hook (see `harness.contract.hookspecs`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

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


# ---------------------------------------------------------------- training recipes

# The fields of a training recipe (`harness.config.registry.Training`), declared once: a preset's
# role blocks ([presets.NAME.student]) and a KD method's `training` overrides are both checked
# against them.
TRAINING_PARAMS = (
    Param("epochs", int, 1, "passes over the training set", min=1, max=1000),
    Param("lr", float, 5e-5, "peak learning rate (AdamW)", min=0.0, max=1.0),
    Param("batch_size", int, 8, "sequences per optimizer step", min=1, max=65536),
    Param("warmup_ratio", float, 0.0, "share of steps with linear warm-up", min=0.0, max=1.0),
    Param("weight_decay", float, 0.0, "AdamW weight decay", min=0.0, max=1.0),
    Param("schedule", str, "cosine", "learning-rate decay after warm-up", choices=("cosine", "linear", "constant")),
    # Early stopping (Prechelt, 1998, "Early Stopping - But When?"): 0 trains the epochs; N > 0 scores
    # the validation split after each epoch, stops after N epochs without a lower loss and keeps the
    # best epoch's weights, `epochs` then being the cap. Only where the dataset has a validation split.
    Param("patience", int, 0, "epochs without a lower validation loss before stopping (0: train every epoch)",
          min=0, max=1000),
)
# Relative overrides: `lr_scale` multiplies the preset's student learning rate, for a paper whose
# learning rate is a ratio to its fine-tuning one rather than a number that transfers across scales.
TRAINING_SCALES = (
    Param("lr_scale", float, 1.0, "the preset's student learning rate times this", min=1e-6, max=1e3),
)


def training_overrides(given: Mapping[str, Any], owner: str) -> dict[str, Any]:
    """A KD method's training overrides, checked: keys among the recipe's fields (or `lr_scale`),
    values within their declared ranges; `lr` and `lr_scale` are exclusive. Raises ValueError."""
    declared = {p.name: p for p in (*TRAINING_PARAMS, *TRAINING_SCALES)}
    for name in given:
        if name not in declared:
            raise ValueError(f"{owner}: unknown training override {name!r}; valid keys: {', '.join(declared)}")
    if "lr" in given and "lr_scale" in given:
        raise ValueError(f"{owner}: give lr or lr_scale in the training overrides, not both")
    try:
        return {name: declared[name].parse(value, owner) for name, value in given.items()}
    except UsageError as err:
        raise ValueError(str(err)) from None


def describe_training(overrides: Mapping[str, Any]) -> str:
    """`lr_scale=0.1, epochs=3`: how `harness list` and `show` print a method's overrides."""
    return ", ".join(f"{k}={v}" for k, v in overrides.items())


# ---------------------------------------------------------------- datasets


@dataclass(frozen=True)
class Example:
    """One text. `repeats` is how many times a member appears in the training set."""

    text: str
    repeats: int = 1
    kind: str = ""  # a free tag for breakdowns, e.g. "record", "message", "secret"
    # Instruction data: the prompt the model is given. The core then builds the example from the
    # last prefix_len tokens of the prompt and the first tokens of `text` (the response), so
    # memorization is measured on the response alone.
    prompt: str = ""


@dataclass(frozen=True)
class Split:
    """Members are the fine-tuning set D; non-members are held-out draws from the same source, only
    the attacks' negatives and the held-out figures. `validation`, disjoint from both, is what chooses
    and stops training and what the utility figures are measured on; a dataset without one has the
    non-members stand in, as the run then says."""

    members: list[Example]
    nonmembers: list[Example]
    validation: list[Example] = field(default_factory=list)


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
    # Records shorter than an example are dropped (and counted) rather than refused: for sources
    # filtered by length, whose exact token count depends on the family's tokenizer.
    drop_short: bool = False
    # True when the texts may be published: a published leaderboard snapshot keeps the examples'
    # text (and token ids) only for public datasets, so a private corpus never leaves the machine.
    public: bool = False
    # `domain(args, n)`: n texts of the dataset's kind that are none of its members, validation or
    # non-members (for synthetic-pii, more records from the same generator). A preset with
    # `pretrain_domain_docs` pretrains the starts on them beside the generic corpus, so fine-tuning
    # starts from a model that knows the domain, as the studies' pretrained models know web text.
    domain: Callable[[dict[str, Any], int], list[str]] | None = None


# ---------------------------------------------------------------- model families


@dataclass(frozen=True)
class ModelFamily:
    """A large and a small size of one architecture that share a tokenizer.

    `tokenizer(texts)` returns the family's tokenizer; a family built from scratch trains one on
    the texts it is given (the generic pretraining corpus, `harness.protocol.corpus`), a hub family loads
    its own and ignores them. `model(size, tokenizer)` returns the starting weights of that size:
    released (pretrained) weights, or random ones with `released=False`, which the core then
    pretrains on the generic corpus, once per size, before fine-tuning anything: the studies
    fine-tune and distil pretrained models. The core caches all of it with `save_pretrained`.

    A family whose checkpoints may need code from the hub sets `remote_code=True`; its two
    callables then also take a keyword `trust_remote_code`, which is the user's
    `--trust-remote-code` (False unless given) and goes to every `from_pretrained` they make.
    """

    name: str
    description: str
    sizes: tuple[str, ...]
    teacher: str
    student: str
    tokenizer: Callable[[Sequence[str]], PreTrainedTokenizerBase]
    model: Callable[[str, PreTrainedTokenizerBase], PreTrainedModel]
    preset: str = ""  # the registry.toml preset used by default; the family's name if empty
    # Declared `--family-arg`s (e.g. pretrained or from-scratch weights). A family with params
    # gives `configure`, which the core calls once, before anything is loaded, with the resolved
    # args and the run's teacher and student sizes; it returns the family bound to them and
    # refuses (UsageError) a pair that cannot be distilled, e.g. one whose tokenizers differ.
    params: tuple[Param, ...] = ()
    configure: Callable[[dict[str, Any], str, str], ModelFamily] | None = None
    # Parameters of a size without building it, for the estimate printed before a run; when
    # absent the core builds the model on the meta device (no memory) and counts.
    n_params: Callable[[str, PreTrainedTokenizerBase], int] | None = None
    # Which teacher layer each student layer is matched with by hidden-state methods, as pairs
    # of `hidden_states` indices (0 is the embeddings); None spaces them evenly.
    layer_map: Callable[[int, int], Sequence[tuple[int, int]]] | None = None

    remote_code: bool = False  # the callables take trust_remote_code=...; see above
    released: bool = True  # False: `model` gives random weights, pretrained by the core first (see above)

    def layers(self, student_layers: int, teacher_layers: int) -> tuple[tuple[int, int], ...]:
        if self.layer_map is not None:
            return tuple(self.layer_map(student_layers, teacher_layers))
        return uniform_layer_map(student_layers, teacher_layers)


def uniform_layer_map(student_layers: int, teacher_layers: int) -> tuple[tuple[int, int], ...]:
    """Student layer i is matched with teacher layer round(i * teacher/student), as in TinyBERT."""
    return tuple((i, round(i * teacher_layers / student_layers)) for i in range(1, student_layers + 1))


# ---------------------------------------------------------------- KD methods
#
# A method is one of three kinds, by which of `loss`, `make_data` and `step` it gives:
#   loss       a loss on one batch of the members, given the teacher's logits (or top-K logits)
#              for the same tokens: soft KD and the divergences.
#   make_data  new training texts made once from the teacher: sequence-level (hard) KD.
#   step       the whole loss of one training step, with the student, the teacher and the
#              shared sampler at hand: on-policy methods and hidden-state matching.
# Token-level divergences for all of them are in `harness.contract.divergences`.


@dataclass(frozen=True)
class LogitBatch:
    """What a `loss` method with `logits` access sees; position t of the logits predicts labels[:, t]."""

    student_logits: torch.Tensor  # (batch, positions, vocab)
    teacher_logits: torch.Tensor  # (batch, positions, vocab), no gradient
    labels: torch.Tensor  # (batch, positions), the true next tokens


@dataclass(frozen=True)
class TopKBatch:
    """What a `loss` method with `top-k logits` access sees: only the teacher's K largest logits."""

    student_logits: torch.Tensor  # (batch, positions, vocab)
    teacher_values: torch.Tensor  # (batch, positions, K), the largest teacher logits, no gradient
    teacher_indices: torch.Tensor  # (batch, positions, K), their token ids
    labels: torch.Tensor  # (batch, positions)


@dataclass(frozen=True)
class TeacherData:
    """What a data-level method sees: the teacher and the members, once, before training."""

    teacher: PreTrainedModel
    member_ids: torch.Tensor  # (members, example_len), one row per distinct member
    prefix_len: int
    generate: Callable[[PreTrainedModel, torch.Tensor, int], torch.Tensor]
    """`generate(model, prompts, new_tokens)`: batched greedy decoding with a KV cache."""


class Step(Protocol):
    """What a `step` method sees at one training step (built by `harness.training.distill`).

    `student(ids)` and `teacher(ids)` return `Outputs` whose logits are shifted so that
    position t predicts ids[:, t + 1]; `teacher()` with no ids is the teacher on `rows`, read
    from a cache of once-computed logits where one fits. `sample` is the shared batched,
    KV-cached sampler: it continues `prompts` by `new_tokens` tokens drawn from the student,
    or from the mixture (1 - teacher_mix) * student + teacher_mix * teacher. `pretraining(n)`
    draws n rows of the generic pretraining corpus (`harness.protocol.corpus`), for a method that keeps
    the student fluent on text other than the members, as MiniLLM's language-modelling term does.
    """

    rows: torch.Tensor  # (batch, example_len), this step's training rows
    prefix_len: int
    step: int  # 0-based
    total_steps: int
    generator: torch.Generator  # seeded: the method's own coin flips
    modules: torch.nn.Module | None  # what the method's `modules` built, trained with the student
    layer_map: tuple[tuple[int, int], ...]  # (student, teacher) hidden_states indices

    def student(self, ids: torch.Tensor, hidden: bool = False) -> Outputs: ...
    def teacher(self, ids: torch.Tensor | None = None, hidden: bool = False) -> Outputs: ...
    def sample(self, prompts: torch.Tensor, new_tokens: int, teacher_mix: float = 0.0) -> Sampled: ...
    def pretraining(self, n: int) -> torch.Tensor: ...  # n rows drawn from the pretraining corpus, never the members


@dataclass(frozen=True)
class Outputs:
    logits: torch.Tensor  # (batch, positions - 1, vocab), position t predicts ids[:, t + 1]
    hidden: tuple[torch.Tensor, ...] = ()  # (batch, positions, hidden) per layer, embeddings first


@dataclass(frozen=True)
class Sampled:
    ids: torch.Tensor  # (batch, prompt + new_tokens): the prompts and their sampled continuations
    log_probs: torch.Tensor  # (batch, new_tokens): log-probability of each token under what drew it


# DP-SGD's parameters, for a method with `private=True` (Abadi et al., 2016; Opacus's accountants).
DP_PARAMS = (
    Param("epsilon", float, 8.0, "target epsilon of the (epsilon, delta) guarantee; the noise is found for it",
          min=0.01, max=1000.0),
    Param("delta", float, 0.0, "delta; 0: 1/(10 n), n the records (the distinct members)", min=0.0, max=0.1),
    Param("noise_multiplier", float, -1.0, "the Gaussian noise's scale over the clipping norm; -1: found for "
          "epsilon; 0: no noise (epsilon infinite, clipping only)", min=-1.0, max=1000.0),
    Param("max_grad_norm", float, 0.1, "each record's gradient is clipped to this L2 norm (Li et al., 2022: 0.1)",
          min=1e-6, max=1e9),
    Param("accountant", str, "rdp", "Opacus's privacy accountant", choices=("rdp", "prv")),
    Param("unit", str, "member", "what one record is: a member with all its repeats (its rows' losses summed "
          "and clipped together), or each occurrence (a member repeated r times is r records)",
          choices=("member", "occurrence")),
    Param("sampling", str, "poisson", "batches by Poisson sampling (what the accountant assumes), or shuffled "
          "fixed-size batches (no guarantee: a check against the non-private method)", choices=("poisson", "shuffle")),
)
TEACHER_ACCESS = ("logits", "top-k logits", "hidden states", "text", "none")  # none: a baseline, no teacher
# The three models of a run, in the order every table shows them: defined here, once.
ROLES = ("teacher", "baseline", "student")
ROLE_ORDER_SQL = "list_position([" + ", ".join(f"'{r}'" for r in ROLES) + "], role)"  # ORDER BY it


@dataclass(frozen=True)
class KDMethod:
    """How the student learns from the teacher (see the three kinds above).

    `teacher_access` says what the method reads from the teacher, which bounds what it can
    leak: `loss` methods get `LogitBatch` for "logits" and `TopKBatch` for "top-k logits"
    (with K = `top_k(args)`). `modules(student, teacher, layer_map, args)` may build extra
    trainable modules for a `step` method (a projection, say); they are trained with the
    student and not saved.

    `training` overrides the preset's student recipe for this method (its paper's recipe, where
    the preset's does not suit it): keys among `TRAINING_PARAMS` (lr, epochs, batch_size,
    warmup_ratio, weight_decay, schedule) with absolute values, or `lr_scale`, a factor on the
    preset's student learning rate. The student stage trains with the preset's recipe overlaid
    by them, and its cache key holds the result. Unknown keys are refused here (ValueError).

    `deduplicate` trains the student on each member once per epoch, whatever its repeat count,
    instead of the training set D with its repeats: the classic mitigation (Lee et al., 2022,
    arXiv:2107.06499; Kandpal et al., 2022, arXiv:2202.06539). The student's cache key holds its
    training rows in order, so a deduplicated student is another student. The run says so
    (`runs.own_recipe`), since its members are seen less often than the board's other rows see them.
    """

    name: str
    description: str
    teacher_access: str
    params: tuple[Param, ...] = ()
    loss: Callable[[Any, dict[str, Any]], torch.Tensor] | None = None
    make_data: Callable[[TeacherData, dict[str, Any]], torch.Tensor] | None = None
    step: Callable[[Step, dict[str, Any]], torch.Tensor] | None = None
    top_k: Callable[[dict[str, Any]], int] | None = None
    modules: Callable[..., torch.nn.Module] | None = None
    on_policy: bool = False  # trains on the student's own samples
    aliases: tuple[str, ...] = ()
    paper: str = ""
    training: Mapping[str, Any] = field(default_factory=dict, hash=False)  # the student recipe's overrides
    private: bool = False  # trains with DP-SGD (harness.training.private); params include DP_PARAMS
    deduplicate: bool = False  # each member once per epoch, whatever its repeats (see above)

    def __post_init__(self) -> None:
        overrides = training_overrides(self.training, f"KD method {self.name!r}")
        object.__setattr__(self, "training", overrides)  # checked and parsed: floats as floats
        kinds = [k for k in ("loss", "make_data", "step") if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError(f"KD method {self.name!r} must give exactly one of loss, make_data or step")
        if self.teacher_access not in TEACHER_ACCESS:
            raise ValueError(f"KD method {self.name!r}: teacher_access must be one of {TEACHER_ACCESS}")
        if (self.teacher_access == "top-k logits") != (self.top_k is not None):
            raise ValueError(f"KD method {self.name!r}: give top_k exactly when teacher_access is 'top-k logits'")
        if self.make_data is not None and self.teacher_access != "text":
            raise ValueError(f"KD method {self.name!r}: a make_data method reads only the teacher's text")
        if self.teacher_access == "none" and self.loss is None:
            raise ValueError(f"KD method {self.name!r}: only a loss method may read nothing of the teacher")
        if self.private:
            missing = sorted({p.name for p in DP_PARAMS} - {p.name for p in self.params})
            if missing or self.loss is None:
                raise ValueError(f"KD method {self.name!r}: a private method gives a loss and the params "
                                 f"DP_PARAMS ({', '.join(missing) or 'it has them'})")

    @property
    def kind(self) -> str:
        return "loss" if self.loss is not None else "make_data" if self.make_data is not None else "step"


# ---------------------------------------------------------------- membership-inference attacks


@dataclass(frozen=True)
class Evidence:
    """What one teacher-forced pass of a model tells about each example: every attack scores from it.

    The extraction pass computes it anyway, so an attack costs no forward pass of its own.
    """

    token_logprobs: torch.Tensor  # (n, T-1): log p(x_t | x_<t) of each true token
    token_mean: torch.Tensor  # (n, T-1): the model's expected log-probability at that position, E_z~p[log p(z)]
    token_std: torch.Tensor  # (n, T-1): its standard deviation over the model's own next-token distribution
    zlib_bits: torch.Tensor  # (n,): the example's text compressed with zlib, in bits
    reference: Evidence | None = None  # a reference model's evidence on the same examples, for calibrated attacks

    @property
    def loss(self) -> torch.Tensor:
        return -self.token_logprobs.mean(dim=1)


@dataclass(frozen=True)
class Attack:
    """A membership-inference attack: a score per example, higher meaning "more likely a member".

    `score(evidence, args)` gets the `Evidence` of one model on a set of examples and returns an
    (n,) tensor. An attack with `needs_reference` gets `evidence.reference` filled in: by default,
    for every role, the student-size model before fine-tuning (released weights, or the pretraining
    stage's checkpoint), which never saw a member (`harness eval --reference PATH` names another).
    """

    name: str
    description: str
    score: Callable[[Evidence, dict[str, Any]], torch.Tensor]
    params: tuple[Param, ...] = ()
    needs_reference: bool = False
    paper: str = ""


@dataclass
class Registered:
    """Everything the active plugins registered, by name, with the plugin that gave each."""

    families: dict[str, ModelFamily] = field(default_factory=dict)
    datasets: dict[str, Dataset] = field(default_factory=dict)
    methods: dict[str, KDMethod] = field(default_factory=dict)
    attacks: dict[str, Attack] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)
    origin: dict[tuple[str, str], str] = field(default_factory=dict)  # (kind, name) -> plugin
    skipped: dict[str, str] = field(default_factory=dict)  # plugin -> why its hook failed
    unavailable: dict[tuple[str, str], str] = field(default_factory=dict)  # (kind, name) -> skipped plugin

    def family(self, name: str) -> ModelFamily:
        if name not in self.families:
            raise self._missing("families", "model family", name, self.families)
        return self.families[name]

    def dataset(self, name: str) -> Dataset:
        if name not in self.datasets:
            raise self._missing("datasets", "dataset", name, self.datasets)
        return self.datasets[name]

    def method(self, name: str) -> KDMethod:
        name = self.aliases.get(name, name)
        if name not in self.methods:
            raise self._missing("methods", "method", name, [*self.methods, *self.aliases])
        return self.methods[name]

    def attack(self, name: str) -> Attack:
        if name not in self.attacks:
            raise self._missing("attacks", "attack", name, self.attacks)
        return self.attacks[name]

    def _missing(self, attr: str, kind: str, name: str, choices) -> UsageError:
        """Unknown name; when a skipped plugin provides it (or may), the error names that plugin."""
        plugin = self.unavailable.get((attr, name))
        if plugin is not None:
            return UsageError(f"{kind} {name!r} comes from plugin {plugin!r}, which was skipped: "
                              f"{self.skipped[plugin]}")
        err = unknown(kind, name, choices)
        if self.skipped:
            notes = "; ".join(f"plugin {p!r} was skipped ({why})" for p, why in self.skipped.items())
            return UsageError(f"{err}; {notes}")
        return err
