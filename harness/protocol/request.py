"""A `harness eval` request, and its names and arguments resolved into plugins before anything runs.

Resolution is its own step so that `harness plan` can price a run, and a bad name can be refused
in one line, without loading a model or touching the cache.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from harness.config import plugins, registry
from harness.config.registry import Preset
from harness.contract.specs import KDMethod, ModelFamily, resolve_params
from harness.errors import UsageError, unknown
from harness.measure import analysis
from harness.protocol import fields
from harness.runtime import sharding
from harness.runtime.cache import default_dir
from harness.store.database import default_path


@dataclass
class EvalRequest:
    method: str
    family: str | None = None
    dataset: str | None = None
    preset: str | None = None
    seed: int = 0
    db: Path = field(default_factory=default_path)  # results/harness.duckdb or $HARNESS_DB
    cache_dir: Path = field(default_factory=default_dir)  # ~/.cache/harness or $HARNESS_CACHE
    method_args: dict[str, str] = field(default_factory=dict)
    dataset_args: dict[str, str] = field(default_factory=dict)
    family_args: dict[str, str] = field(default_factory=dict)
    attack_args: dict[str, dict[str, str]] = field(default_factory=dict)  # attack -> its KEY=VALUE pairs
    limit: int | None = None
    registry: Path | None = None
    command: str = ""
    trust_remote_code: bool = False
    reference: str | None = None  # a model folder or hub id: every role's reference for calibrated attacks
    filter: str | None = None  # "predicted": leave out of distillation the members predicted to be memorized
    ignore_plan: bool = False  # start even when the plan says the run cannot fit

    def __post_init__(self) -> None:
        self.check()

    def check(self) -> None:
        """Every field checked by value (`harness.protocol.fields`), paths given as text made Paths, the
        arguments' mappings copied: a UsageError with the line the CLI prints for the same value, raised
        when the request is made (and again when it is resolved), before anything loads or trains."""
        self.method = fields.name("method", self.method, optional=False, empty=True)  # a sweep's base has none yet
        for f in ("family", "dataset", "preset", "reference"):
            setattr(self, f, fields.name(f, getattr(self, f)))
        self.seed = fields.whole("seed", self.seed, *fields.SEED)
        self.db = fields.path("db", self.db)
        self.cache_dir = fields.path("cache_dir", self.cache_dir)
        self.registry = fields.path("registry", self.registry, optional=True)
        for f in ("method_args", "dataset_args", "family_args"):
            setattr(self, f, fields.arguments(f, getattr(self, f)))
        self.attack_args = fields.attack_arguments(self.attack_args)
        if self.limit is not None:
            self.limit = fields.whole("limit", self.limit, *fields.LIMIT)
        if not isinstance(self.command, str):
            raise fields.refuse("command", f"must be text, got {self.command!r}")
        self.trust_remote_code = fields.flag("trust_remote_code", self.trust_remote_code)
        self.ignore_plan = fields.flag("ignore_plan", self.ignore_plan)
        self.filter = fields.filter_(self.filter)


FILTERS = fields.FILTERS


class Resolved:
    """A request's plugins, arguments, preset and model sizes, each checked, with nothing loaded."""

    def __init__(self, req: EvalRequest, bind: bool = True) -> None:
        """`bind=False` leaves a family's arguments unbound: enough to plan, nothing loaded from the hub."""
        req.check()  # a request changed after it was made is checked again
        self.req = req
        self.registry = registry.load(req.registry)
        self.found = plugins.load(self.registry)
        self.family: ModelFamily = self.found.family(req.family or self.registry.family)
        self.dataset = self.found.dataset(req.dataset or self.registry.dataset)
        self.method: KDMethod = self.found.method(req.method)
        self.method_args = resolve_params(self.method.params, req.method_args, f"method {self.method.name}")
        self.preset: Preset = self.registry.preset(req.preset or self.family.preset or self.family.name)
        declared = {p.name for p in self.dataset.params}
        preset_args = {k: v for k, v in self.preset.dataset_args.items() if k in declared}
        self.dataset_args = resolve_params(self.dataset.params, {**preset_args, **req.dataset_args},
                                           f"dataset {self.dataset.name}")
        self.family_args = resolve_params(self.family.params, req.family_args, f"family {self.family.name}")
        self.attack_args = analysis.attack_args(self.found.attacks, req.attack_args)
        self.teacher_size, self.student_size = self.preset.pair(self.family.name, (self.family.teacher, self.family.student))
        for size in (self.teacher_size, self.student_size):
            if size not in self.family.sizes:
                raise unknown(f"size of family {self.family.name} (preset {self.preset.name})", size, self.family.sizes)
        if bind and self.family.configure is not None:  # binds the family's args; refuses a pair it cannot distil
            self.family = self.family.configure(self.family_args, self.teacher_size, self.student_size)
        if req.trust_remote_code and not self.family.remote_code:
            raise UsageError(f"model family {self.family.name} runs no code from the hub, so --trust-remote-code "
                             "does not apply to it")
        # Passed to the family's loaders only when it declares that it takes it: the contract stays
        # `tokenizer(texts)` and `model(size, tokenizer)` for every family that loads no remote code.
        self.remote = {"trust_remote_code": req.trust_remote_code} if self.family.remote_code else {}
        if sharding.enabled() and self.method.modules is not None:
            raise UsageError(f"method {self.method.name} trains modules of its own beside the student, which a "
                             "sharded (FSDP) run does not support yet; run it data-parallel")

    def family_deps(self) -> dict:
        """A family with arguments (pretrained or scratch weights, ...) keys its artifacts by them too."""
        if not self.family.params:
            return {}
        return {"family_args": self.family_args, "pair": [self.teacher_size, self.student_size]}
