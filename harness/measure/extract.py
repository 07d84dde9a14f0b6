"""Extraction: memorization verdicts and per-example scores from one teacher-forced pass.

Greedy decoding from the prefix reproduces the true suffix exactly if and only if, with the
true text as context, the arg-max at every suffix position is the true next token (while
every earlier token matched, the context is the same). So one forward pass gives the verdict,
the length of the matching run (`match_len`, hence k-extractability for every k) and the
per-token losses, with no decoding loop. The same pass keeps what the membership attacks score
from: each true token's log-probability and the mean and spread of the model's own next-token
log-probabilities at that position.

It also gives each example's probability of being extracted by *sampling* (Hayes et al., 2024,
"Measuring memorization in language models via probabilistic extraction", arXiv:2410.19482):
under top-k sampling, the chance that one sampled continuation of the prefix is the true suffix is
the product, over suffix positions, of the true token's probability renormalized over the k
most likely tokens (zero if it falls outside them). Greedy extraction is a yes or no at one query;
this is a probability, so it tells apart models that greedy decoding scores alike at zero.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from harness.runtime import memory, processes, progress
from harness.runtime.faults import fault
from harness.runtime.precision import tie_tolerance

# Hayes et al.'s main decoding scheme: top-k sampling with k = 40 at temperature 1.
SAMPLING_TOP_K = 40
# The log-probability stored for a suffix top-k sampling cannot produce (a token outside the top k):
# finite, as a results file holds no infinities, and exactly 0.0 once exponentiated in float64.
IMPOSSIBLE = -1e6


@dataclass(frozen=True)
class Extraction:
    memorized: torch.Tensor  # (n,) bool: the greedy continuation equals the true suffix
    match_len: torch.Tensor  # (n,) int: leading suffix tokens the greedy continuation gets right
    loss: torch.Tensor  # (n,) mean next-token loss over the whole example
    suffix_loss: torch.Tensor  # (n,) mean loss over the suffix tokens only
    ties: torch.Tensor  # (n,) bool: an arg-max tie where the verdict was decided
    # What the attacks score from, (n, T-1) each; absent when built by hand (tests, older callers)
    token_logprobs: torch.Tensor | None = None  # log p(x_t | x_<t) of each true token
    token_mean: torch.Tensor | None = None  # E_z~p[log p(z)] at each position
    token_std: torch.Tensor | None = None  # its standard deviation
    # (n,) log-probability that one top-k sample from the prefix is the true suffix (IMPOSSIBLE: it cannot be)
    sample_logprob: torch.Tensor | None = None

    def as_dict(self) -> dict[str, torch.Tensor]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@torch.no_grad()
def extract(model, ids: torch.Tensor, prefix_len: int, suffix_len: int, batch_size: int,
            desc: str = "extraction") -> Extraction:
    model.eval()

    def scores(batch: torch.Tensor) -> dict[str, torch.Tensor]:
        logits = model(input_ids=batch).logits
        return _scores(logits.float(), batch, prefix_len, suffix_len, tie_tolerance(logits.dtype))

    return Extraction(**_batched(scores, ids, batch_size, model, copies=6, desc=desc))


@torch.no_grad()
def extract_pair(first, second, ids: torch.Tensor, prefix_len: int, suffix_len: int, batch_size: int,
                 desc: str = "extraction") -> tuple[Extraction, Extraction, torch.Tensor]:
    """Both models' extractions and, per example, KL(first || second) of the next-token
    distributions averaged over positions, from one pass of each model.

    The KL between teacher and baseline on the members says where the teacher learned something
    the baseline did not (a feature of the memorization predictor); taken from the extraction's
    own passes, it costs no pass of its own.
    """
    first.eval()
    second.eval()
    other = next(second.parameters()).device

    def scores(batch: torch.Tensor) -> dict[str, torch.Tensor]:
        a = first(input_ids=batch).logits
        b = second(input_ids=batch.to(other)).logits
        tol_a, tol_b = tie_tolerance(a.dtype), tie_tolerance(b.dtype)
        a, b = a.float(), b.float().to(batch.device)
        out = {"kl": kl_per_example(a, b)}
        out.update({f"first.{k}": v for k, v in _scores(a, batch, prefix_len, suffix_len, tol_a).items()})
        del a
        out.update({f"second.{k}": v for k, v in _scores(b, batch, prefix_len, suffix_len, tol_b).items()})
        return out

    out = _batched(scores, ids, batch_size, first, copies=9, desc=desc)

    def side(name: str) -> Extraction:
        return Extraction(**{k.removeprefix(name): v for k, v in out.items() if k.startswith(name)})

    return side("first."), side("second."), out["kl"]


def kl_per_example(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """KL(first || second) of the next-token distributions from logits (n, T, V), averaged over the T - 1
    predicting positions. Two models may pad their embeddings to different widths: the rows beyond the
    narrower one are not tokens, so both are cut to it."""
    width = min(first.shape[-1], second.shape[-1])
    log_p = F.log_softmax(first[:, :-1, :width], dim=-1)
    log_q = F.log_softmax(second[:, :-1, :width], dim=-1)
    return torch.linalg.vecdot(log_p.exp(), log_p.sub_(log_q)).mean(-1)


def _batched(scores, ids: torch.Tensor, batch_size: int, model, copies: int, desc: str) -> dict[str, torch.Tensor]:
    """`scores(batch)` over the rows of `ids` in batches sized to memory, halved when a pass runs out of it."""
    if len(ids) == 0:
        raise ValueError("extraction needs at least one example")
    device = next(model.parameters()).device
    # Results go straight into tensors sized for all examples: nothing small and long-lived is
    # allocated between one batch's logits and the next, so the allocator reuses the same blocks
    # and memory stays flat however many examples there are.
    out: dict[str, torch.Tensor] = {}
    batch_size = memory.fit(batch_size, memory.logits_bytes(model, ids.shape[1], copies=copies), device)
    sharded = processes.sharded_training()
    if sharded:  # every forward pass of a sharded model is a collective: the processes make the same ones
        batch_size = processes.agree(batch_size)
    bar = progress.bar(len(ids), desc, "ex")
    start = 0
    while start < len(ids):
        batch = ids[start : start + batch_size].to(device)
        try:
            result = scores(batch)
        except RuntimeError as err:  # out of memory: the same examples again in smaller batches
            if sharded:  # one process cannot halve its batches alone
                raise
            batch_size = memory.recover(err, batch_size, desc)
            continue
        if not out:
            out = {k: torch.empty((len(ids), *v.shape[1:]), dtype=v.dtype) for k, v in result.items()}
        for k, v in result.items():
            out[k][start : start + len(batch)] = v
        del result
        start += len(batch)
        fault("extraction:batch")
        bar.update(len(batch))
    bar.close()
    return out


def _scores(logits: torch.Tensor, batch: torch.Tensor, prefix_len: int, suffix_len: int,
            tolerance: float) -> dict[str, torch.Tensor]:
    """The verdict, match length, losses and attack figures of each row from the model's logits on it
    (float32; `tolerance`: the tie tolerance of the precision they were computed in)."""
    end = prefix_len + suffix_len
    logprobs = F.log_softmax(logits[:, :-1], dim=-1)
    token_lp = logprobs.gather(-1, batch[:, 1:, None]).squeeze(-1)
    probs = logprobs.exp()
    mean = torch.linalg.vecdot(probs, logprobs)
    # E[(log p)^2] - mean^2 loses everything to cancellation when p is sharp: take the centred form,
    # in place (the log-probabilities are not needed again; each vocabulary-wide copy costs time)
    std = torch.linalg.vecdot(probs, logprobs.sub_(mean[..., None]).square_()).sqrt()
    del probs, logprobs
    window = logits[:, prefix_len - 1 : end - 1]
    target = batch[:, prefix_len:end]
    hits = window.argmax(-1) == target
    match_len = hits.long().cumprod(dim=1).sum(dim=1)
    top = window.topk(min(SAMPLING_TOP_K, window.shape[-1]), dim=-1).values
    true_logit = window.gather(-1, target[..., None]).squeeze(-1)
    in_top = true_logit >= top[..., -1]
    step_lp = (true_logit - top.logsumexp(-1)).masked_fill_(~in_top, float("-inf"))
    top2 = top[..., :2]
    tied = (top2[..., 0] - top2[..., 1]) <= tolerance * top2[..., 0].abs().clamp(min=1.0)
    # Positions up to and including the first miss decide the verdict.
    deciding = torch.arange(suffix_len, device=batch.device)[None, :] <= match_len[:, None]
    return {"memorized": match_len == suffix_len, "match_len": match_len, "loss": -token_lp.mean(dim=1),
            "suffix_loss": -token_lp[:, prefix_len - 1 : end - 1].mean(dim=1), "ties": (tied & deciding).any(dim=1),
            "token_logprobs": token_lp, "token_mean": mean, "token_std": std,
            "sample_logprob": step_lp.sum(dim=1).clamp_(min=IMPOSSIBLE)}


@torch.no_grad()
def greedy(model, prompts: torch.Tensor, new_tokens: int, batch_size: int = 64, desc: str = "generating") -> torch.Tensor:
    """Batched greedy decoding with a KV cache: prompts (n, p) -> (n, p + new_tokens).

    Prompts all have the same length, so no padding is needed. End-of-text is an ordinary token
    here: a row neither stops at it nor is kept from choosing it, so every new token is the
    arg-max (the continuation the one-pass verdict of `extract` speaks about).
    """
    model.eval()
    device = next(model.parameters()).device
    out = []
    bar = progress.bar(len(prompts), desc, "ex")
    with plain_generation(model):
        for start in range(0, len(prompts), batch_size):
            batch = prompts[start : start + batch_size].to(device)
            out.append(model.generate(input_ids=batch, attention_mask=torch.ones_like(batch),
                                      generation_config=_greedy_config(model, new_tokens)).cpu())
            fault("generate:batch")
            bar.update(len(batch))
    bar.close()
    return torch.cat(out)


def _greedy_config(model, new_tokens: int):
    from transformers import GenerationConfig

    # eos_token_id=[] (no end-of-text token), not None: generate fills a None from the model's own
    # generation_config, and with min_new_tokens it would then forbid end-of-text at every step,
    # which changes the continuation wherever end-of-text is the arg-max.
    return GenerationConfig(max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False,
                            num_beams=1, use_cache=True, eos_token_id=[],
                            pad_token_id=model.config.pad_token_id or 0)


@contextmanager
def plain_generation(model) -> Iterator[None]:
    """The model's own `generation_config` set aside while the harness decodes.

    `generate` fills every setting the caller leaves unset from the checkpoint's
    `generation_config` (a `repetition_penalty`, a `no_repeat_ngram_size`, suppressed tokens...),
    which would make a hub model's "greedy" continuation something else. A fresh config holds
    only the library's defaults, so decoding is plain arg-max whatever the checkpoint ships.
    """
    from transformers import GenerationConfig

    own = model.generation_config
    model.generation_config = GenerationConfig()
    try:
        yield
    finally:
        model.generation_config = own
