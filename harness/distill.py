"""A KD method bound to its teacher for one training run: the loss of each training step.

The training set repeats some members many times, so the loop hands over the index of each
row in the distinct rows. What the teacher says about a row never changes, so its logits (or
its top-K logits, for a method that may only see those) are computed once per distinct row,
on first use, when they fit in `TEACHER_LOGITS_BUDGET` bytes, and per batch otherwise.

Teacher and student share a tokenizer but may pad their embeddings to different widths (Pythia
12b to 50688, 1.4b to 50304); every logit a method sees is cut to the common width, which holds
the whole shared vocabulary.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from harness import progress
from harness.sampling import sample
from harness.specs import KDMethod, LogitBatch, Outputs, Sampled, TopKBatch

TEACHER_LOGITS_BUDGET = int(os.environ.get("HARNESS_TEACHER_LOGITS_BYTES", 2 << 30))


class TeacherOutputs:
    """The teacher's (shifted) logits or top-K logits for the distinct rows, computed once or per batch."""

    def __init__(self, teacher, rows: torch.Tensor, batch_size: int, stage: str, *, top_k: int | None = None,
                 precompute: bool | None = None) -> None:
        if top_k is not None:
            top_k = min(top_k, teacher.config.vocab_size)
        self.teacher, self.rows, self.batch_size, self.stage, self.top_k = teacher, rows, batch_size, stage, top_k
        width = 2 * top_k if top_k else teacher.config.vocab_size  # K values and K indices
        self.precompute = precompute if precompute is not None else (
            rows.shape[0] * (rows.shape[1] - 1) * width * 4 <= TEACHER_LOGITS_BUDGET)
        self._all: tuple[torch.Tensor, ...] | None = None
        self.width: int | None = None  # the common vocabulary width, set when the student is known

    @torch.no_grad()
    def _compute(self, ids: torch.Tensor) -> tuple[torch.Tensor, ...]:
        logits = self.teacher(input_ids=ids).logits[:, :-1, : self.width].float()
        if self.top_k:
            values, indices = logits.topk(min(self.top_k, logits.shape[-1]), dim=-1)
            return values, indices.to(torch.int32)
        return (logits,)

    def __getitem__(self, index: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if not self.precompute:
            return self._compute(self.rows[index])
        if self._all is None:
            parts = []
            bar = progress.bar(len(self.rows), f"{self.stage}: teacher logits", "ex")
            for start in range(0, len(self.rows), self.batch_size):
                parts.append(self._compute(self.rows[start : start + self.batch_size]))
                bar.update(len(parts[-1][0]))
            bar.close()
            self._all = tuple(torch.cat(columns) for columns in zip(*parts))
        return tuple(t[index] for t in self._all)


class Distiller:
    """Turns a KD method's `loss` or `step` into the loss of one training step."""

    def __init__(self, method: KDMethod, args: dict[str, Any], teacher, rows: torch.Tensor, *, prefix_len: int,
                 batch_size: int, stage: str, seed: int,
                 layer_map: Callable[[int, int], Sequence[tuple[int, int]]] | None = None,
                 precompute_teacher: bool | None = None) -> None:
        if method.kind not in ("loss", "step"):
            raise ValueError(f"method {method.name} makes data; it is not distilled step by step")
        self.method, self.args, self.prefix_len, self.stage = method, args, prefix_len, stage
        self.teacher = teacher.eval()
        self.rows = rows
        self._layer_map_fn = layer_map
        self.layer_map: tuple[tuple[int, int], ...] = ()
        self.modules: torch.nn.Module | None = None
        self.width: int | None = None  # the vocabulary width teacher and student share, from `bind`
        self.generator = torch.Generator().manual_seed(seed)
        top_k = method.top_k(args) if method.top_k is not None else None
        self.outputs = TeacherOutputs(teacher, rows, batch_size, stage, top_k=top_k, precompute=precompute_teacher)

    def bind(self, student) -> torch.nn.Module | None:
        """Build the method's own trainable modules for this student; the loop trains them with it."""
        self.width = self.outputs.width = min(_vocab_width(student), _vocab_width(self.teacher))
        if self._layer_map_fn is not None:
            self.layer_map = tuple(self._layer_map_fn(student.config.num_hidden_layers,
                                                      self.teacher.config.num_hidden_layers))
        if self.method.modules is not None:
            self.modules = self.method.modules(student, self.teacher, self.layer_map, self.args)
        return self.modules

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
        if self.method.teacher_access == "top-k logits":
            values, indices = self.outputs[index]
            return self.method.loss(TopKBatch(logits, values, indices.long(), labels), self.args)
        (teacher_logits,) = self.outputs[index]
        return self.method.loss(LogitBatch(logits, teacher_logits, labels), self.args)


@dataclass
class StepContext:
    """The `harness.specs.Step` a `step` method sees."""

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

    def student(self, ids: torch.Tensor, hidden: bool = False) -> Outputs:
        out = self.model(input_ids=ids, output_hidden_states=hidden)
        return Outputs(out.logits[:, :-1, : self.distiller.width], tuple(out.hidden_states) if hidden else ())

    def teacher(self, ids: torch.Tensor | None = None, hidden: bool = False) -> Outputs:
        if ids is None and not hidden:
            return Outputs(self.distiller.outputs[self.index][0])
        with torch.no_grad():
            out = self.distiller.teacher(input_ids=self.rows if ids is None else ids, output_hidden_states=hidden)
        return Outputs(out.logits[:, :-1, : self.distiller.width].float(), tuple(out.hidden_states) if hidden else ())

    def sample(self, prompts: torch.Tensor, new_tokens: int, teacher_mix: float = 0.0) -> Sampled:
        return sample(self.model, prompts, new_tokens, teacher=self.distiller.teacher, teacher_mix=teacher_mix,
                      generator=self.generator)


def _vocab_width(model) -> int:
    return model.get_output_embeddings().weight.shape[0]
