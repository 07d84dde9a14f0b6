"""A KD method bound to its teacher for one training run: the loss of each training step.

The training set repeats some members many times, so the loop hands over the index of each
row in the distinct rows. What the teacher says about a row never changes, so its logits (or
its top-K logits, for a method that may only see those) are computed once per distinct row, on
first use, and kept where they fit (`TeacherOutputs`): in memory, within
`HARNESS_TEACHER_LOGITS_BYTES` (default 2 GiB); else on disk, in the artifact cache, where a
second method on the same teacher and data finds them, within `HARNESS_TEACHER_DISK_BYTES` and
half the free space; else recomputed by the teacher per batch. At Pythia 12b -> 1.4b on 1M
FineWeb members, full logits would take 47 TB: a full-logit method then pays the teacher's
forward pass per step rather than becoming a top-K one, and a top-K method streams float16
values from disk (1M x 255 x K x 6 bytes: 77 GB at K = 50).

Teacher and student share a tokenizer but may pad their embeddings to different widths (Pythia
12b to 50688, 1.4b to 50304); every logit a method sees is cut to the common width, which holds
the whole shared vocabulary.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

import harness
from harness import units
from harness.contract.specs import KDMethod, LogitBatch, Outputs, Sampled, TopKBatch
from harness.errors import RunFailed
from harness.runtime import memory, processes, progress, sharding
from harness.runtime.cache import Cache, key
from harness.runtime.precision import training_autocast
from harness.training.chunked import chunked_loss
from harness.training.sampling import sample

# Float32 copies of a row's logits a divergence holds in its chunk: both log-softmaxes, their
# exponentials, the products and the gradient (harness.contract.divergences).
LOSS_COPIES = 6

KIND = "teacher-outputs"  # the artifact cache's kind for streamed teacher outputs


def memory_budget() -> int:
    """Bytes the teacher's outputs may take in memory; read per run, so a test can set it."""
    return int(os.environ.get("HARNESS_TEACHER_LOGITS_BYTES", 2 << 30))


DISK_SHARE = 0.5  # of the cache disk's free space that streamed teacher outputs may take by default


def disk_budget(cache_root: Path) -> int:
    """Bytes the teacher's outputs may take on disk: HARNESS_TEACHER_DISK_BYTES, capped by half of
    the free space on the cache's disk (the checkpoints and everything else need the rest)."""
    free = free_disk(cache_root)
    chosen = os.environ.get("HARNESS_TEACHER_DISK_BYTES")
    return min(int(chosen), free) if chosen else int(DISK_SHARE * free)


def free_disk(path: Path) -> int:
    """Free bytes on the disk that holds `path` (its nearest existing ancestor)."""
    path = Path(path).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return shutil.disk_usage(path).free


@dataclass(frozen=True)
class Tier:
    """Where the teacher's outputs are kept (see `TeacherOutputs`) and what that costs."""

    name: str  # "memory", "disk" or "batch"; "none" in a plan of a data-level method
    values: torch.dtype  # float32, or float16 for top-K values that do not fit otherwise
    bytes: int  # in memory or on disk; 0 for "batch"
    why: str  # one line for the plan and the log

    def describe(self) -> str:
        if self.name == "none":
            return f"none kept ({self.why})"
        if self.name == "batch":
            return f"the teacher's forward pass per batch ({self.why})"
        return f"{self.name}, {str(self.values).removeprefix('torch.')} values, {units.size(self.bytes)} ({self.why})"


def choose_tier(rows: int, positions: int, width: int, top_k: int | None, *, memory: int,
                disk: int | None) -> Tier:
    """The cheapest place the outputs of `rows` rows x `positions` predicting positions fit.

    Full logits are counted at the teacher's width, which bounds the shared one; top-K keeps
    int32 indices beside its values. In memory first (float32, then float16 top-K values); else
    on disk within `disk` bytes (None: no cache to stream from); else recomputed per batch, which
    costs a teacher forward pass per training step but no memory or disk at all. A full-logit
    method is never silently made top-K: it keeps its exact loss and pays the forward passes.
    """
    count = rows * positions

    def size(values: torch.dtype) -> int:
        return count * (top_k * (values.itemsize + torch.int32.itemsize) if top_k else width * values.itemsize)

    what = f"top-{top_k}" if top_k else f"{width}-wide logits"
    if size(torch.float32) <= memory:
        return Tier("memory", torch.float32, size(torch.float32), f"{what} fit the memory budget")
    if top_k and size(torch.float16) <= memory:
        return Tier("memory", torch.float16, size(torch.float16), f"{what} fit the memory budget in float16")
    stored = torch.float16 if top_k else torch.float32
    need = f"{what} would take {units.size(size(stored))}"
    if disk is None:
        return Tier("batch", torch.float32, 0, f"{need}, over the memory budget, with no cache to stream from")
    if size(stored) <= disk:
        return Tier("disk", stored, size(stored), f"{need}, over the memory budget of {units.size(memory)}")
    return Tier("batch", torch.float32, 0, f"{need}, over the memory budget of {units.size(memory)} "
                                           f"and the disk budget of {units.size(disk)}")


class TeacherOutputs:
    """The teacher's (shifted) logits, or top-K values and int32 indices, for the distinct rows.

    Where they are kept (`tier`) is fixed at construction from the bytes each choice would take:

    - "memory": float32 values in memory, computed once on first use;
    - "memory" with float16 values: a top-K method whose float32 values do not fit keeps its
      values in float16 (6 bytes per kept logit instead of 8), within float16's rounding;
    - "disk": they do not fit in memory either: computed once into .npy files in the artifact
      cache and memory-mapped, so a step reads only its batch's rows. Full logits stay float32
      (the student is bit for bit the in-memory one); top-K values are float16. The artifact is
      keyed by the teacher, the rows, the width and K, so every method needing the same outputs
      (soft-kd, reverse-kl, ... at one teacher and data) loads what the first one wrote. Outputs
      that fit in memory are not cached: one teacher pass over the distinct rows costs less than
      writing, checksumming and re-reading them would save, and the cache would fill with them;
    - "batch": recomputed per batch: asked for (`precompute=False`), or too large for memory
      with no cache to stream them from (a `Distiller` built without one).

    Under `accelerate launch` the main process writes the disk artifact and the others then read
    it; every process reaches the first use at the same step (they draw the same global batches
    and the same method generator), which `processes.main_first` needs.
    """

    def __init__(self, teacher, rows: torch.Tensor, batch_size: int, stage: str, *, top_k: int | None = None,
                 precompute: bool | None = None, budget: int | None = None, cache: Cache | None = None,
                 teacher_key: str | None = None) -> None:
        width = _vocab_width(teacher)
        if top_k is not None:
            top_k = min(top_k, width)
        self.teacher, self.rows, self.batch_size, self.stage, self.top_k = teacher, rows, batch_size, stage, top_k
        self.cache, self.teacher_key = cache, teacher_key
        if precompute is not None:
            self.tier = Tier("memory" if precompute else "batch", torch.float32, 0, "asked for")
        else:
            self.tier = choose_tier(rows.shape[0], rows.shape[1] - 1, width, top_k,
                                    memory=memory_budget() if budget is None else budget,
                                    disk=disk_budget(cache.root) if cache is not None and teacher_key else None)
        self.values_dtype = self.tier.values
        self._all: tuple[Any, ...] | None = None  # tensors, or memory-mapped arrays for "disk"
        self.width: int | None = None  # the common vocabulary width, set when the student is known

    @torch.no_grad()
    def _compute(self, ids: torch.Tensor) -> tuple[torch.Tensor, ...]:
        with training_autocast(ids.device):
            logits = self.teacher(input_ids=ids).logits[:, :-1, : self.width].float()
        if self.top_k:
            values, indices = logits.topk(min(self.top_k, logits.shape[-1]), dim=-1)
            return values, indices.to(torch.int32)
        return (logits,)

    def __getitem__(self, index: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if self.tier.name == "batch":
            return self._compute(self.rows[index])
        if self._all is None:
            self._all = self._from_disk() if self.tier.name == "disk" else self._in_memory()
        if self.tier.name == "disk":
            picked = [torch.from_numpy(a[index.cpu().numpy()]).to(self.rows.device) for a in self._all]
        else:
            picked = [t[index] for t in self._all]
        return tuple(t.float() if t.is_floating_point() else t for t in picked)

    def _passes(self):
        """(first row, outputs) per batch of the distinct rows, values in the stored dtype."""
        bar = progress.bar(len(self.rows), f"{self.stage}: teacher logits", "ex")
        for start in range(0, len(self.rows), self.batch_size):
            out = self._compute(self.rows[start : start + self.batch_size])
            yield start, tuple(t.to(self.values_dtype) if t.is_floating_point() else t for t in out)
            bar.update(len(out[0]))
        bar.close()

    def _in_memory(self) -> tuple[torch.Tensor, ...]:
        parts = [out for _, out in self._passes()]
        return tuple(torch.cat(columns) for columns in zip(*parts))

    def _from_disk(self) -> tuple[np.ndarray, ...]:
        deps = {"stage": KIND, "teacher": self.teacher_key, "data": _rows_hash(self.rows), "width": self.width,
                "top_k": self.top_k, "values": str(self.values_dtype), "harness": harness.__version__}
        k = key(deps)
        if sharding.enabled():  # the sharded teacher's passes are collectives: every process makes them
            found = processes.broadcast(self.cache.get(KIND, k) if processes.is_main() else None)
            if found is None:
                if processes.is_main():
                    self._build(k, deps)
                else:
                    for _ in self._passes():
                        pass
            processes.barrier()
            folder = self.cache.path(KIND, k)
        else:
            with processes.main_first():  # the main process writes them; the others then find them
                folder = self.cache.get(KIND, k) or self._build(k, deps)
        return tuple(np.load(folder / f"{name}.npy", mmap_mode="r") for name in self._names())

    def _build(self, k: str, deps: dict[str, Any]) -> Path:
        free = free_disk(self.cache.root)
        if free < self.tier.bytes:  # the disk filled since the tier was chosen: never start the write
            raise RunFailed(f"{self.stage}: the teacher's outputs need {units.size(self.tier.bytes)} on disk but "
                            f"{units.size(free)} is free under {self.cache.root}; free space, or set "
                            "HARNESS_TEACHER_DISK_BYTES=0 to recompute them per batch")
        return self.cache.build(KIND, k, deps, self._write)

    def _write(self, folder: Path) -> None:
        """Fill the files batch by batch: no more than one batch's outputs are in memory."""
        files = None
        for start, out in self._passes():
            arrays = [t.cpu().numpy() for t in out]
            if files is None:
                files = [np.lib.format.open_memmap(folder / f"{name}.npy", mode="w+", dtype=a.dtype,
                                                   shape=(len(self.rows), *a.shape[1:]))
                         for name, a in zip(self._names(), arrays)]
            for f, a in zip(files, arrays):
                f[start : start + len(a)] = a
        for f in files or ():
            f.flush()

    def _names(self) -> tuple[str, ...]:
        return ("values", "indices") if self.top_k else ("logits",)


class Distiller:
    """Turns a KD method's `loss` or `step` into the loss of one training step."""

    def __init__(self, method: KDMethod, args: dict[str, Any], teacher, rows: torch.Tensor, *, prefix_len: int,
                 batch_size: int, stage: str, seed: int,
                 layer_map: Callable[[int, int], Sequence[tuple[int, int]]] | None = None,
                 precompute_teacher: bool | None = None, teacher_budget: int | None = None,
                 cache: Cache | None = None, teacher_key: str | None = None,
                 corpus: Callable[[], torch.Tensor] | None = None) -> None:
        """`cache` and `teacher_key` (the teacher's artifact key) let outputs too large for
        `teacher_budget` bytes (default `HARNESS_TEACHER_LOGITS_BYTES`) be streamed from the cache.
        `corpus()` gives the pretraining corpus's rows, read only if a step method asks for them."""
        if method.kind not in ("loss", "step"):
            raise ValueError(f"method {method.name} makes data; it is not distilled step by step")
        self.method, self.args, self.prefix_len, self.stage = method, args, prefix_len, stage
        self.teacher = teacher.eval()
        self.rows = rows
        self._corpus_fn, self._corpus = corpus, None
        self._layer_map_fn = layer_map
        self.layer_map: tuple[tuple[int, int], ...] = ()
        self.modules: torch.nn.Module | None = None
        self.width: int | None = None  # the vocabulary width teacher and student share, from `bind`
        self.loss_rows: int | None = None  # rows per chunk of a `loss` method's loss, from the first batch
        self.generator = torch.Generator().manual_seed(seed)
        top_k = method.top_k(args) if method.top_k is not None else None
        self.outputs = TeacherOutputs(teacher, rows, batch_size, stage, top_k=top_k, precompute=precompute_teacher,
                                      budget=teacher_budget, cache=cache, teacher_key=teacher_key)

    def bind(self, student) -> torch.nn.Module | None:
        """Build the method's own trainable modules for this student; the loop trains them with it."""
        self.width = self.outputs.width = min(_vocab_width(student), _vocab_width(self.teacher))
        if self._layer_map_fn is not None:
            self.layer_map = tuple(self._layer_map_fn(student.config.num_hidden_layers,
                                                      self.teacher.config.num_hidden_layers))
        if self.method.modules is not None:
            self.modules = self.method.modules(student, self.teacher, self.layer_map, self.args)
        return self.modules

    def corpus(self) -> torch.Tensor:
        if self._corpus is None:
            if self._corpus_fn is None:
                raise RuntimeError(f"method {self.method.name} asks for the pretraining corpus, "
                                   "which this run has not given")
            self._corpus = self._corpus_fn().to(self.rows.device)
        return self._corpus

    def to(self, device) -> Distiller:
        self.teacher.to(device)
        self.rows = self.outputs.rows = self.rows.to(device)
        if self.generator.device != torch.device(device):
            self.generator = torch.Generator(device).manual_seed(self.generator.initial_seed())
        return self

    def loss(self, student, index: torch.Tensor, step: int, total_steps: int) -> torch.Tensor:
        batch = self.rows[index]
        if self.method.kind == "step":
            context = StepContext(self, student, batch, index, step, total_steps)
            return self.method.step(context, self.args)
        logits = student(input_ids=batch).logits[:, :-1, : self.width]
        labels = batch[:, 1:]
        if self.loss_rows is None:  # rows whose float32 loss working set fits, sized once per run
            self.loss_rows = memory.fit(1 << 20, memory.logits_bytes(student, logits.shape[1], LOSS_COPIES),
                                        logits.device)
            self.loss_rows = processes.agree(self.loss_rows) if sharding.enabled() else self.loss_rows

        def loss_of(part_logits: torch.Tensor, part: slice) -> torch.Tensor:
            rows = index[part]
            if self.method.teacher_access == "none":  # a baseline: the true tokens only
                return self.method.loss(LogitBatch(part_logits, None, labels[part]), self.args)
            if self.method.teacher_access == "top-k logits":
                values, indices = self.outputs[rows]
                return self.method.loss(TopKBatch(part_logits, values, indices.long(), labels[part]), self.args)
            (teacher_logits,) = self.outputs[rows]
            return self.method.loss(LogitBatch(part_logits, teacher_logits, labels[part]), self.args)

        return chunked_loss(loss_of, logits, self.loss_rows)

    def row_losses(self, student, index: torch.Tensor) -> torch.Tensor:
        """Each row's loss, one row at a time through a `loss` method with logit (or no) access:
        what DP-SGD weighs and clips record by record (`harness.training.private`)."""
        batch = self.rows[index]
        logits = student(input_ids=batch).logits[:, :-1, : self.width]
        labels = batch[:, 1:]
        teacher = None if self.method.teacher_access == "none" else self.outputs[index][0]
        return torch.stack([self.method.loss(LogitBatch(logits[i : i + 1], None if teacher is None else teacher[i : i + 1],
                                                        labels[i : i + 1]), self.args) for i in range(len(index))])

    @property
    def logit_copies(self) -> int:
        """Float32-sized copies of a row's logits that a training pass holds beyond its chunked loss: a
        `loss` method's logits and their gradient (`harness.training.chunked`); a `step` method's own
        passes, unchunked, hold more."""
        return 3 if self.method.kind == "loss" else 9


@dataclass
class StepContext:
    """The `harness.contract.specs.Step` a `step` method sees."""

    distiller: Distiller
    model: Any
    rows: torch.Tensor
    index: torch.Tensor
    step: int
    total_steps: int

    @property
    def prefix_len(self) -> int:
        return self.distiller.prefix_len

    @property
    def generator(self) -> torch.Generator:
        return self.distiller.generator

    @property
    def modules(self):
        return self.distiller.modules

    @property
    def layer_map(self):
        return self.distiller.layer_map

    def pretraining(self, n: int) -> torch.Tensor:
        corpus = self.distiller.corpus()
        pick = torch.randint(len(corpus), (n,), generator=self.generator, device=self.generator.device)
        return corpus[pick.to(corpus.device)]

    def student(self, ids: torch.Tensor, hidden: bool = False) -> Outputs:
        out = self.model(input_ids=ids, output_hidden_states=hidden)
        return Outputs(out.logits[:, :-1, : self.distiller.width], tuple(out.hidden_states) if hidden else ())

    def teacher(self, ids: torch.Tensor | None = None, hidden: bool = False) -> Outputs:
        if ids is None and not hidden:
            return Outputs(self.distiller.outputs[self.index][0])
        with torch.no_grad(), training_autocast(self.rows.device):
            out = self.distiller.teacher(input_ids=self.rows if ids is None else ids, output_hidden_states=hidden)
        return Outputs(out.logits[:, :-1, : self.distiller.width].float(), tuple(out.hidden_states) if hidden else ())

    def sample(self, prompts: torch.Tensor, new_tokens: int, teacher_mix: float = 0.0) -> Sampled:
        return sample(self.model, prompts, new_tokens, teacher=self.distiller.teacher, teacher_mix=teacher_mix,
                      generator=self.generator)


def _vocab_width(model) -> int:
    return model.get_output_embeddings().weight.shape[0]


def _rows_hash(rows: torch.Tensor) -> str:
    return hashlib.sha256(rows.cpu().contiguous().numpy().tobytes()).hexdigest()[:20] + f"-{tuple(rows.shape)}"
