"""Extraction: memorization verdicts and per-example scores from one teacher-forced pass.

Greedy decoding from the prefix reproduces the true suffix exactly if and only if, with the
true text as context, the arg-max at every suffix position is the true next token (while
every earlier token matched, the context is the same). So one forward pass gives the verdict,
the length of the matching run (`match_len`, hence k-extractability for every k) and the
per-token losses, with no decoding loop. The same pass keeps what the membership attacks score
from: each true token's log-probability and the mean and spread of the model's own next-token
log-probabilities at that position.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from harness import memory, progress
from harness.faults import fault

# Two logits this close count as a tie: greedy decoding with a KV cache may pick either.
TIE_TOLERANCE = 1e-4


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

    def as_dict(self) -> dict[str, torch.Tensor]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@torch.no_grad()
def extract(model, ids: torch.Tensor, prefix_len: int, suffix_len: int, batch_size: int,
            desc: str = "extraction") -> Extraction:
    model.eval()
    memory.map_large_blocks()
    device = next(model.parameters()).device
    parts: dict[str, list[torch.Tensor]] = {k: [] for k in Extraction.__dataclass_fields__}
    batch_size = memory.fit(batch_size, memory.logits_bytes(model, ids.shape[1], copies=6), device)
    bar = progress.bar(len(ids), desc, "ex")
    start = 0
    while start < len(ids):
        batch = ids[start : start + batch_size].to(device)
        try:
            result = _pass(model, batch, prefix_len, suffix_len)
        except RuntimeError as err:  # out of memory: the same examples again in smaller batches
            batch_size = memory.recover(err, batch_size, desc)
            continue
        for k, v in result.items():
            parts[k].append(v.cpu())
        start += len(batch)
        fault("extraction:batch")
        bar.update(len(batch))
    bar.close()
    return Extraction(**{k: torch.cat(v) for k, v in parts.items()})


def _pass(model, batch: torch.Tensor, prefix_len: int, suffix_len: int) -> dict[str, torch.Tensor]:
    end = prefix_len + suffix_len
    logits = model(input_ids=batch).logits.float()
    logprobs = F.log_softmax(logits[:, :-1], dim=-1)
    token_lp = logprobs.gather(-1, batch[:, 1:, None]).squeeze(-1)
    probs = logprobs.exp()
    mean = (probs * logprobs).sum(-1)
    # E[(log p)^2] - mean^2 loses everything to cancellation when p is sharp: take the centred form
    std = (probs * (logprobs - mean[..., None]).square()).sum(-1).sqrt()
    del probs, logprobs
    window = logits[:, prefix_len - 1 : end - 1]
    target = batch[:, prefix_len:end]
    hits = window.argmax(-1) == target
    match_len = hits.long().cumprod(dim=1).sum(dim=1)
    top2 = window.topk(2, dim=-1).values
    tied = (top2[..., 0] - top2[..., 1]) <= TIE_TOLERANCE * top2[..., 0].abs().clamp(min=1.0)
    # Positions up to and including the first miss decide the verdict.
    deciding = torch.arange(suffix_len, device=batch.device)[None, :] <= match_len[:, None]
    return {"memorized": match_len == suffix_len, "match_len": match_len, "loss": -token_lp.mean(dim=1),
            "suffix_loss": -token_lp[:, prefix_len - 1 : end - 1].mean(dim=1), "ties": (tied & deciding).any(dim=1),
            "token_logprobs": token_lp, "token_mean": mean, "token_std": std}


@torch.no_grad()
def greedy(model, prompts: torch.Tensor, new_tokens: int, batch_size: int = 64, desc: str = "generating") -> torch.Tensor:
    """Batched greedy decoding with a KV cache: prompts (n, p) -> (n, p + new_tokens).

    Prompts all have the same length, so no padding is needed. End-of-text is an ordinary token
    here: a row neither stops at it nor is kept from choosing it, so every new token is the
    arg-max (the continuation the one-pass verdict of `extract` speaks about).
    """
    from transformers import GenerationConfig

    model.eval()
    device = next(model.parameters()).device
    # eos_token_id=[] (no end-of-text token), not None: generate fills a None from the model's own
    # generation_config, and with min_new_tokens it would then forbid end-of-text at every step,
    # which changes the continuation wherever end-of-text is the arg-max.
    config = GenerationConfig(max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False,
                              num_beams=1, use_cache=True, eos_token_id=[],
                              pad_token_id=model.config.pad_token_id or 0)
    out = []
    bar = progress.bar(len(prompts), desc, "ex")
    for start in range(0, len(prompts), batch_size):
        batch = prompts[start : start + batch_size].to(device)
        out.append(model.generate(input_ids=batch, attention_mask=torch.ones_like(batch),
                                  generation_config=config).cpu())
        fault("generate:batch")
        bar.update(len(batch))
    bar.close()
    return torch.cat(out)
