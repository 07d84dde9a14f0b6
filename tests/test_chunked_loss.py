"""The chunked KD loss (harness.training.chunked) equals the plain one, value and gradient, for every
built-in `loss` method; and a distiller that chunks trains the student the plain loss trains."""

from __future__ import annotations

import pytest
import torch
from test_methods import ORDER, ROWS, tiny

from conftest import ROOT
from harness.config import plugins, registry
from harness.config.registry import Training
from harness.contract.specs import LogitBatch, TopKBatch, resolve_params
from harness.training.chunked import chunked_loss
from harness.training.distill import Distiller
from harness.training.train import train

FOUND = plugins.load(registry.load(ROOT / "registry.toml"))
# rs-kd draws its targets at random inside the loss: per chunk, the draws differ (docs: unbiased all the same)
LOSS_METHODS = sorted(n for n, m in FOUND.methods.items() if m.kind == "loss" and n != "rs-kd")


def test_the_loss_methods_are_the_ones_the_chunking_is_checked_on():
    assert {"soft-kd", "reverse-kl", "jsd", "tvd", "skew-kl", "skew-rkl", "topk-kd"} <= set(LOSS_METHODS)


def batch_for(name: str, student: torch.Tensor, teacher: torch.Tensor, labels: torch.Tensor):
    if FOUND.method(name).teacher_access == "top-k logits":
        values, indices = teacher.topk(7, dim=-1)
        return lambda s, part: TopKBatch(s, values[part], indices[part], labels[part])
    return lambda s, part: LogitBatch(s, teacher[part], labels[part])


@pytest.mark.parametrize("name", LOSS_METHODS)
@pytest.mark.parametrize("rows", [1, 2, 3])
def test_chunked_equals_plain_in_value_and_gradient(name, rows):
    method = FOUND.method(name)
    args = resolve_params(method.params, {}, name)
    g = torch.Generator().manual_seed(0)
    student = (3 * torch.randn(5, 6, 50, generator=g)).requires_grad_()
    teacher = 3 * torch.randn(5, 6, 50, generator=g)
    labels = torch.randint(0, 50, (5, 6), generator=g)
    make = batch_for(name, student, teacher, labels)

    plain = method.loss(make(student, slice(0, 5)), args)
    (plain_grad,) = torch.autograd.grad(2.5 * plain, student)
    chunked = chunked_loss(lambda s, part: method.loss(make(s, part), args), student, rows)
    (chunked_grad,) = torch.autograd.grad(2.5 * chunked, student)  # the upstream gradient is applied too
    torch.testing.assert_close(chunked, plain, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(chunked_grad, plain_grad, rtol=1e-5, atol=1e-7)
    assert plain_grad.abs().sum() > 0


def test_a_whole_batch_chunk_is_the_plain_call():
    calls = []
    logits = torch.randn(4, 3, 5, requires_grad=True)
    chunked_loss(lambda s, part: calls.append(part) or s.sum(), logits, 4)
    assert calls == [slice(0, 4)]


def test_a_distiller_that_chunks_trains_the_student_the_plain_loss_trains():
    cfg = Training(epochs=2, lr=1e-3, batch_size=4, warmup_ratio=0.0, weight_decay=0.0, schedule="constant")

    def trained(loss_rows: int | None):
        method = FOUND.method("soft-kd")
        distiller = Distiller(method, resolve_params(method.params, {}, "soft-kd"), tiny(2, 48, 4), ROWS,
                              prefix_len=4, batch_size=4, stage="test", seed=0)
        distiller.loss_rows = loss_rows  # None: sized from memory, the whole batch here
        return train(tiny(1), ROWS, ORDER, cfg, seed=0, stage="test", distiller=distiller), distiller

    plain, sized = trained(None)
    assert sized.loss_rows >= 4  # the whole batch fits: the plain call
    chunked, _ = trained(1)
    for (name, x), (_, y) in zip(plain.state_dict().items(), chunked.state_dict().items()):
        torch.testing.assert_close(x, y, rtol=1e-4, atol=1e-5, msg=name)
