"""A KD loss over the batch in chunks of rows, so that its float32 working set is one chunk's.

A divergence over a 50k vocabulary holds several float32 copies of the logits (the softmaxes, their
logs, the products) for every position of the batch, and autograd keeps them until the backward
pass. Here each chunk's loss and its gradient with respect to the student's logits are computed
at once, in the forward pass, and only that gradient is kept (in the logits' own dtype), so the
float32 copies exist for one chunk at a time. Liger-Kernel's fused losses do the same on a GPU and
also fuse the output projection; this is the plain PyTorch form, which runs anywhere.

It is exact for what a `loss` method returns: a mean over positions, with every row the same
length, so the batch's loss is the row-weighted mean of its chunks' (tests/test_chunked_loss.py
checks value and gradient for every built-in loss method). A method that draws at random in its
loss (`rs-kd`) draws per chunk: as unbiased, not the same draws.
"""

from __future__ import annotations

from collections.abc import Callable

import torch


class _Chunked(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits: torch.Tensor, loss_of: Callable[[torch.Tensor, slice], torch.Tensor], rows: int):
        n = logits.shape[0]
        grad = torch.empty_like(logits)
        total = torch.zeros((), dtype=torch.float32, device=logits.device)
        for start in range(0, n, rows):
            part = slice(start, min(start + rows, n))
            piece = logits[part].detach().requires_grad_()
            with torch.enable_grad():
                loss = loss_of(piece, part) * ((part.stop - part.start) / n)
            (grad[part],) = torch.autograd.grad(loss, piece)
            total += loss.detach().float()
        ctx.save_for_backward(grad)
        return total

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        (grad,) = ctx.saved_tensors
        return grad * grad_out.to(grad.dtype), None, None


def chunked_loss(loss_of: Callable[[torch.Tensor, slice], torch.Tensor], logits: torch.Tensor,
                 rows: int) -> torch.Tensor:
    """The mean loss over the batch: `loss_of(logits[part], part)` (a mean over the part's positions)
    for chunks of `rows` rows. With `rows` at least the batch, the plain call, nothing else."""
    if rows >= logits.shape[0] or not logits.requires_grad:
        return loss_of(logits, slice(0, logits.shape[0]))
    return _Chunked.apply(logits, loss_of, max(1, rows))
