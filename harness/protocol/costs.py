"""What a run will cost, stage by stage, before anything downloads or trains.

`harness plan` prints it for any family x dataset x preset from the family's known shapes
(offline), and `harness eval` prints its head and refuses a run that cannot fit. The figures
are first-order, good to tens of percent, which is what decides how many devices to ask for:

- FLOPs: 6 x parameters x tokens to train (forward and backward), 2 x for a forward pass
  (Kaplan et al., 2020, "Scaling Laws for Neural Language Models", section 2.1), attention's
  own arithmetic left out (under 10% at 256 tokens for these widths).
- Memory per device: float32 weights, gradients and AdamW's two moments, 16 bytes a trained
  parameter (4 for a model that only runs forward); sharded (FSDP FULL_SHARD) divides them by the
  devices and adds the two largest layers gathered at once. Activations: 34 bytes per hidden unit,
  layer and token under bf16 autocast (Korthikanti et al., 2022, "Reducing Activation
  Recomputation in Large Transformer Models", eq. 1, flash attention's s^2 term gone), twice that
  in float32, plus five float32 copies of the logits per token.
- Time: FLOPs over the devices' peak x a model-FLOPs utilization (default 0.4). Training runs
  at the bf16 peak under bf16, as do the teacher's outputs for the student and, unsharded,
  scoring; sharded scoring at the float32 peak (`harness.runtime.precision`).
- DP-SGD (a `private` method): the student steps over the distinct members (a record each) and
  holds every record's float32 gradient at once, 4 bytes x parameters x the batch's records
  (Opacus's `grad_sample`); the time assumes the same utilization, which per-sample gradients
  lower (`benchmarks/dp_cost.py` measures it).
- Disk: float32 safetensors checkpoints (4 bytes a parameter) and the teacher's outputs where
  `harness.training.distill.choose_tier` puts them on disk.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from harness import units
from harness.config.registry import Preset
from harness.training.distill import Tier, choose_tier

STATE_BYTES = 4 * (1 + 1 + 2)  # float32 weights, gradients, AdamW's exp_avg and exp_avg_sq
WEIGHT_BYTES = 4  # a model that only runs forward, in float32
ACTIVATION_BYTES = {"bf16": 34, "fp16": 34, "no": 68}  # per hidden unit, layer and token
LOGIT_COPIES = 5
GRAD_SAMPLE_BYTES = 4  # DP-SGD (Opacus): each record's float32 gradient of every trained parameter
MFU = 0.4


@dataclass(frozen=True)
class Hardware:
    name: str
    bf16_flops: float  # dense peak per device
    fp32_flops: float
    memory: int  # bytes per device


# Dense peaks from the vendors' data sheets (SXM parts; sparsity not counted).
GPUS = {
    "h100": Hardware("NVIDIA H100 SXM 80 GB", 989.4e12, 66.9e12, 80 * 10**9),
    "h200": Hardware("NVIDIA H200 SXM 141 GB", 989.4e12, 66.9e12, 141 * 10**9),
    "a100": Hardware("NVIDIA A100 SXM 80 GB", 312e12, 19.5e12, 80 * 10**9),
}


@dataclass(frozen=True)
class Shape:
    """What the plan needs of a model: counted on the meta device, so nothing is allocated."""

    params: int
    hidden: int
    layers: int
    vocab: int
    largest_layer: int  # parameters of the largest block (or the embedding), gathered whole when sharded


@dataclass
class Stage:
    name: str
    what: str
    params: int
    tokens: int
    flops: float
    precision: str  # "bf16" or "float32": which peak the time is taken at
    state: int  # bytes of weights and optimizer state: whole on every device, or divided when sharded
    working: int  # bytes every device needs either way: activations, logits, outputs kept in memory
    gathered: int  # bytes of the layers FSDP gathers whole at once (sharded only)
    disk: int
    seconds: float = 0.0

    def memory(self, devices: int, sharded: bool) -> int:
        """Bytes per device: data-parallel, or sharded (FSDP FULL_SHARD) over `devices`."""
        if not sharded or devices == 1:
            return self.state + self.working
        return math.ceil(self.state / devices) + self.gathered + self.working


@dataclass
class Plan:
    family: str
    teacher: str
    student: str
    dataset: str
    method: str
    preset: str
    devices: int
    sharded: bool
    hardware: Hardware
    mfu: float
    train_rows: int
    distinct_rows: int
    example_len: int
    tier: Tier
    stages: list[Stage] = field(default_factory=list)

    @property
    def flops(self) -> float:
        return sum(s.flops for s in self.stages)

    @property
    def seconds(self) -> float:
        return sum(s.seconds for s in self.stages)

    @property
    def disk(self) -> int:
        return sum(s.disk for s in self.stages)

    def memory(self, sharded: bool | None = None, devices: int | None = None) -> int:
        """The peak per device: the largest stage's."""
        sharded = self.sharded if sharded is None else sharded
        return max(s.memory(devices or self.devices, sharded) for s in self.stages)

    def peak_stage(self) -> Stage:
        return max(self.stages, key=lambda s: s.memory(self.devices, self.sharded))

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["tier"] = {"name": self.tier.name, "values": str(self.tier.values).removeprefix("torch."),
                       "bytes": self.tier.bytes, "why": self.tier.why}
        for stage, row in zip(self.stages, out["stages"]):
            row.update(memory_ddp=stage.memory(self.devices, False), memory_sharded=stage.memory(self.devices, True))
        out["totals"] = {"flops": self.flops, "seconds": self.seconds, "device_hours": self.seconds * self.devices / 3600,
                         "disk": self.disk, "memory_ddp": self.memory(False), "memory_sharded": self.memory(True)}
        return out


def shape(model) -> Shape:
    """A model's `Shape`; build it under `torch.device("meta")`."""
    config = model.config
    blocks = [m for m in model.modules() if isinstance(m, _block_types(model))]
    embedding = model.get_input_embeddings().weight.numel()
    largest = max([embedding, *(sum(p.numel() for p in b.parameters()) for b in blocks)])
    return Shape(params=sum(p.numel() for p in model.parameters()), hidden=config.hidden_size,
                 layers=config.num_hidden_layers, vocab=model.get_output_embeddings().weight.shape[0],
                 largest_layer=largest)


def _block_types(model) -> tuple[type, ...]:
    names = set(getattr(model, "_no_split_modules", None) or ())
    return tuple({type(m) for m in model.modules() if type(m).__name__ in names}) or (type(None),)


def make(*, family: str, sizes: tuple[str, str], shapes: tuple[Shape, Shape], dataset: str, method, preset: Preset,
         train_rows: int, distinct_rows: int, n_nonmembers: int, hardware: Hardware, devices: int = 1,
         sharded: bool = False, mfu: float = MFU, training_precision: str = "bf16",
         memory_budget: int, disk_budget: int | None, pretrain_tokens: int = 0, n_validation: int = 0) -> Plan:
    """The plan of one run; `method` is the KD method (its kind and top-K decide the teacher stage).

    `pretrain_tokens` > 0: the family has no released weights, so both sizes are first pretrained
    on that many tokens of the generic corpus (and the dataset's domain texts, where the preset asks;
    once; later runs read them from the cache). `n_validation`: the validation split's examples, which
    every fine-tuned role scores after each epoch and the extraction stage scores once more."""
    teacher, student = shapes
    n = preset.example_len
    top_k = method.top_k(method_defaults(method)) if method.top_k is not None else None
    tier = (choose_tier(distinct_rows, n - 1, teacher.vocab, top_k, memory=memory_budget, disk=disk_budget)
            if method.kind != "make_data" else Tier("none", _f32(), 0, "a data-level method: it trains on the "
                                                    "teacher's generated text, not its logits"))
    plan = Plan(family, *sizes, dataset, method.name, preset.name, devices, sharded, hardware, mfu, train_rows,
                distinct_rows, n, tier)
    tokens = train_rows * n
    per_device_rows = {role: math.ceil(preset.training(role, method).batch_size / devices)
                       for role in ("teacher", "student", "pretrain")}

    def act(s: Shape, rows: int, precision: str) -> int:
        return rows * n * (ACTIVATION_BYTES.get(precision, 68) * s.hidden * s.layers + 4 * LOGIT_COPIES * s.vocab)

    def gathered(*models: Shape) -> int:  # FSDP holds a layer (and prefetches the next) whole, per model
        return sum(2 * WEIGHT_BYTES * s.largest_layer for s in models)

    def train_stage(name: str, role: str, s: Shape, epochs: int, tokens: int = tokens, scored: bool = True) -> Stage:
        a = act(s, per_device_rows[role if role in ("teacher", "pretrain") else "student"], training_precision)
        # a validation pass after each epoch: every fine-tuned role, but a DP-SGD student (`scored`)
        checked = n_validation * n * epochs if role != "pretrain" and scored else 0
        return Stage(name, f"train {epochs} epochs on {tokens:,} tokens", s.params, tokens * epochs + checked,
                     6 * s.params * tokens * epochs + 2 * s.params * checked, _prec(training_precision),
                     STATE_BYTES * s.params, a, gathered(s), WEIGHT_BYTES * s.params)

    # the student's recipe is the preset's with the method's overrides, as the student stage trains it
    cfg = {role: preset.training(role, method) for role in ("teacher", "baseline", "student", "pretrain")}
    if pretrain_tokens:
        for size, shape in zip(sizes, shapes):
            stage = train_stage(f"pretrain {size}", "pretrain", shape, cfg["pretrain"].epochs, pretrain_tokens)
            stage.what += " of the generic corpus (once; cached)"
            plan.stages.append(stage)
    plan.stages += [train_stage("teacher", "teacher", teacher, cfg["teacher"].epochs),
                    train_stage("baseline", "baseline", student, cfg["baseline"].epochs)]

    # The teacher's side of the student stage: its outputs once per distinct row, its forward pass
    # per step, or (a data-level method) its continuation of every member.
    distinct_tokens = distinct_rows * n
    if method.kind == "make_data":
        new = n - preset.prefix_len
        outputs = Stage("teacher data", f"generate {new} tokens for each of {distinct_rows:,} members",
                        teacher.params, distinct_rows * new, 2 * teacher.params * distinct_rows * new, "float32",
                        WEIGHT_BYTES * teacher.params, act(teacher, 1, "no") // 2, gathered(teacher),
                        4 * distinct_tokens)
    elif tier.name == "batch":
        steps_tokens = tokens * cfg["student"].epochs
        outputs = Stage("teacher outputs", f"teacher forward per batch: {tier.why}", teacher.params, steps_tokens,
                        2 * teacher.params * steps_tokens, _prec(training_precision), 0, 0, 0, 0)
    else:
        outputs = Stage("teacher outputs", f"once per distinct row, kept in {tier.name}: {units.size(tier.bytes)}",
                        teacher.params, distinct_tokens, 2 * teacher.params * distinct_tokens,
                        _prec(training_precision), 0, 0, 0, tier.bytes if tier.name == "disk" else 0)
    plan.stages.append(outputs)
    held = tier.bytes if tier.name == "memory" else 0
    if getattr(method, "private", False):  # DP-SGD: a step per expected batch of records (the distinct members)
        s = train_stage("student", "student", student, cfg["student"].epochs, distinct_tokens, scored=False)
        s.working += GRAD_SAMPLE_BYTES * student.params * per_device_rows["student"]
        s.what += f", DP-SGD: a float32 gradient per record, {per_device_rows['student']} records a step"
    else:
        s = train_stage("student", "student", student, cfg["student"].epochs)
    s.state += WEIGHT_BYTES * teacher.params
    s.working += held
    s.gathered += gathered(teacher)
    s.what += f", beside the {sizes[0]} teacher"
    plan.stages.append(s)

    # Extraction: one pass of each model over members and non-members (the three are held together),
    # the approximate-memorization continuations, and the reference model's passes; in bf16 where
    # training is, unsharded (`harness.runtime.precision.scoring`), else float32.
    scoring = "bf16" if training_precision == "bf16" and not sharded else "float32"
    scored = distinct_rows + n_nonmembers + n_validation
    passes = teacher.params + 3 * student.params  # the student-size reference model scores too
    new = preset.suffix_len * preset.approx_sample * 3
    weights = (WEIGHT_BYTES // 2 if scoring == "bf16" else WEIGHT_BYTES) * (teacher.params + 2 * student.params)
    one = act(teacher, 1, "bf16" if scoring == "bf16" else "no") // 2
    plan.stages.append(Stage("extraction", f"{scoring} passes over {scored:,} examples, {preset.approx_sample} "
                             "continuations a role", passes, scored * n, 2 * passes * scored * n
                             + 2 * (teacher.params + 2 * student.params) * new // 3, scoring, weights, one,
                             gathered(teacher, student, student), 0))
    for stage in plan.stages:
        peak = hardware.bf16_flops if stage.precision == "bf16" else hardware.fp32_flops
        stage.seconds = stage.flops / (peak * mfu * devices)
    return plan


def method_defaults(method) -> dict[str, Any]:
    return {p.name: p.default for p in method.params}


def fits(plan: Plan, device_memory: int, free_disk: int) -> list[str]:
    """What does not fit, each with the change that would make it fit; empty when everything does."""
    problems = []
    need = plan.memory()
    if need > device_memory:
        devices = next((n for n in (2 ** i for i in range(13)) if plan.memory(True, n) <= device_memory), None)
        if devices is None:
            change = "a smaller pair: sharding over 4096 devices would not hold it"
        elif not plan.sharded and devices <= plan.devices:
            change = f"shard it (accelerate launch with an FSDP config: {units.size(plan.memory(True))} per device)"
        else:
            change = f"shard it over {devices} devices or more, or a smaller pair"
        problems.append(f"the {plan.peak_stage().name} stage needs {units.size(need)} per device but "
                        f"{plan.hardware.name} has {units.size(device_memory)}: {change}")
    if plan.disk > free_disk:
        problems.append(f"checkpoints and teacher outputs need {units.size(plan.disk)} on disk but "
                        f"{units.size(free_disk)} is "
                        "free under the cache: free space, another --cache-dir, or a top-K method")
    return problems


def lines(plan: Plan, head: bool = False) -> list[str]:
    """The plan as text: its head (what `eval` prints) or every stage."""
    mode = f"{plan.devices} x {plan.hardware.name}, {'sharded (FSDP)' if plan.sharded else 'data-parallel'}"
    out = [f"plan: {plan.family} {plan.teacher} -> {plan.student} on {plan.dataset} ({plan.preset} preset), "
           f"{plan.method}; {plan.train_rows:,} training rows x {plan.example_len} tokens; {mode}",
           f"plan: teacher outputs: {plan.tier.describe()}",
           f"plan: {_flops(plan.flops)} in all; peak memory per device {units.size(plan.memory())} "
           f"(data-parallel {units.size(plan.memory(False))}, sharded {units.size(plan.memory(True))}); "
           f"disk {units.size(plan.disk)}; about {units.duration(plan.seconds)} "
           f"({plan.seconds * plan.devices / 3600:,.1f} device-hours at {plan.mfu:.0%} MFU)"]
    if head:
        return out
    out.append(f"{'stage':<16}{'params':>9}{'tokens':>10}{'FLOPs':>11}{'prec':>9}{'mem/dev DDP':>13}"
               f"{'sharded':>11}{'disk':>10}{'time':>9}  what")
    for s in plan.stages:
        out.append(f"{s.name:<16}{units.count(s.params):>9}{units.count(s.tokens):>10}{_flops(s.flops):>11}{s.precision:>9}"
                   f"{units.size(s.memory(plan.devices, False)):>13}{units.size(s.memory(plan.devices, True)):>11}"
                   f"{units.size(s.disk):>10}"
                   f"{units.duration(s.seconds):>9}  {s.what}")
    return out


def _prec(training: str) -> str:
    return "float32" if training == "no" else training


def _f32():
    import torch

    return torch.float32


def _flops(n: float) -> str:
    return f"{n:.2e}"


# ------------------------------------------------------------ sizing without downloading


class Vocabulary:
    """What a family's config reads of a tokenizer, for sizing a hub family without its tokenizer:
    the real shapes carry their own (padded) vocabulary, which bounds the tokenizer's."""

    bos_token_id = eos_token_id = pad_token_id = None

    def __init__(self, size: int) -> None:
        self.size = size

    def __len__(self) -> int:
        return self.size


def shapes(family, family_args: dict[str, Any], sizes: tuple[str, str], tokenizer) -> tuple[Shape, Shape]:
    """Teacher and student shapes, built on the meta device: nothing is allocated or downloaded.

    A hub family is sized from its shape table (the released architectures, as
    `weights=scratch` builds them), so pretrained weights need not be fetched to plan them.
    """
    import torch

    build = family.model
    if family.configure is not None:
        build = family.configure({**family_args, "weights": "scratch", "path": ""}, *sizes).model
    with torch.device("meta"):
        return tuple(shape(build(size, tokenizer)) for size in sizes)  # type: ignore[return-value]


def offline(setup) -> bool:
    """A hub family is planned from its shapes and the dataset's declared counts, its data never loaded."""
    return setup.found.family(setup.family.name).configure is not None


def sizes(setup, data=None) -> tuple[int, int, int, Any]:
    """Training rows, members, non-members and a tokenizer to size a request's models with.

    A family with no hub behind it (`tiny`) gets its data and tokenizer exactly as a run does
    (`data()`, the protocol's data stage). A hub family is planned offline: the counts come from the
    dataset's arguments (each member once) and its shapes carry their own vocabulary.
    """
    from harness.errors import UsageError

    if not offline(setup):
        d = data()
        return len(d.members.training_rows()), len(d.members), len(d.nonmembers), d.tokenizer
    counts = [next((int(setup.dataset_args[k]) for k in names if k in setup.dataset_args), None)
              for names in (("members", "n_members"), ("nonmembers", "n_nonmembers"))]
    if None in counts:
        raise UsageError(f"dataset {setup.dataset.name} declares no member and non-member counts; "
                         "the plan needs --dataset-arg members=N --dataset-arg nonmembers=N")
    members, nonmembers = counts
    if setup.req.limit:
        members, nonmembers = min(members, setup.req.limit), min(nonmembers, setup.req.limit)
    return members, members, nonmembers, Vocabulary(int(setup.family_args.get("vocab_size", 0)))


def of_run(setup, train_rows: int, distinct_rows: int, n_nonmembers: int, hardware: Hardware, devices: int,
           sharded: bool, mfu: float = MFU, *, tokenizer, cache_root, training_precision: str | None = None,
           disk: int | None = None) -> Plan:
    """A resolved request's cost on `devices` x `hardware` (this machine's precision and cache disk
    unless given); the family sized on the meta device."""
    from harness.protocol import corpus
    from harness.runtime.precision import precision
    from harness.training.distill import disk_budget, memory_budget

    pair = (setup.teacher_size, setup.student_size)
    family = setup.found.family(setup.family.name)
    pretrain_tokens = 0  # released weights are not pretrained here
    if not (family.released and setup.family_args.get("weights") != "scratch"):
        pretrain_tokens = corpus.token_estimate(tokenizer, setup.preset.pretrain_docs)
        domain = setup.preset.pretrain_domain_docs
        if domain and setup.dataset.domain is not None and callable(tokenizer):  # from a sample of its texts
            sample = setup.dataset.domain(setup.dataset_args, min(domain, 200))
            pretrain_tokens += corpus.scaled_tokens(tokenizer, sample, domain)
    n_validation = int(setup.dataset_args.get("n_validation", 0) or 0)
    if setup.req.limit:
        n_validation = min(n_validation, setup.req.limit)
    return make(family=setup.family.name, sizes=pair, shapes=shapes(family, setup.family_args, pair, tokenizer),
                dataset=setup.dataset.name, method=setup.method, preset=setup.preset, train_rows=train_rows,
                distinct_rows=distinct_rows, n_nonmembers=n_nonmembers, hardware=hardware, devices=devices,
                sharded=sharded, mfu=mfu, training_precision=training_precision or precision(),
                memory_budget=memory_budget(), disk_budget=disk_budget(cache_root) if disk is None else disk,
                pretrain_tokens=pretrain_tokens, n_validation=n_validation)


def local_hardware(world: int = 1) -> Hardware:
    """This machine's device: a known GPU's data-sheet peaks, else measured matmul rates."""
    import torch

    from harness.runtime import memory

    if torch.cuda.is_available():
        name = torch.cuda.get_device_name(0)
        total = torch.cuda.get_device_properties(0).total_memory
        known = next((g for key, g in GPUS.items() if key in name.lower()), None)
        if known is not None:
            return Hardware(name, known.bf16_flops, known.fp32_flops, total)
        return Hardware(name, matmul_flops(torch.bfloat16), matmul_flops(torch.float32), total)
    rate = matmul_flops(torch.float32)
    return Hardware(f"the CPU ({torch.get_num_threads()} threads)", rate, rate,
                    memory.available_bytes(torch.device("cpu")) // world)


def matmul_flops(dtype, n: int = 1024, seconds: float = 0.1) -> float:
    """Measured FLOP/s of a square matmul on this machine's device."""
    import time

    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    a = torch.randn(n, n, dtype=dtype, device=device)
    a @ a  # warm-up
    reps, start = 0, time.perf_counter()
    while True:
        a @ a
        reps += 1
        if device == "cuda":
            torch.cuda.synchronize()
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return 2 * n**3 * reps / elapsed
