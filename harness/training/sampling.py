"""The one sampler every on-policy method shares: batched ancestral sampling with a KV cache.

Prompts all have the same length, so no padding is needed. With `teacher` and `teacher_mix`
> 0 each token is drawn from (1 - teacher_mix) * student + teacher_mix * teacher, MiniLLM's
teacher-mixed sampling; both models then keep their own cache and advance together, over the
vocabulary width they share (embeddings may be padded differently).
"""

from __future__ import annotations

import inspect

import torch

from harness.contract.specs import Sampled


@torch.no_grad()
def sample(student, prompts: torch.Tensor, new_tokens: int, *, teacher=None, teacher_mix: float = 0.0,
           temperature: float = 1.0, generator: torch.Generator | None = None) -> Sampled:
    """Continue each prompt by `new_tokens` sampled tokens; also returns each token's log-probability."""
    if teacher_mix > 0 and teacher is None:
        raise ValueError("teacher_mix > 0 needs the teacher")
    models = [student] + ([teacher] if teacher_mix > 0 else [])
    modes = [m.training for m in models]
    for m in models:
        m.eval()  # no dropout while drawing; the caller's mode is restored below
    try:
        caches: list = [None] * len(models)
        step_input = prompts
        tokens, log_probs = [], []
        width = min(m.get_output_embeddings().weight.shape[0] for m in models)
        for _ in range(new_tokens):
            probs = None
            for j, model in enumerate(models):
                out, caches[j] = _step(model, step_input, caches[j])
                p = torch.softmax(out.logits[:, -1, :width].float() / temperature, dim=-1)
                probs = p if j == 0 else (1 - teacher_mix) * probs + teacher_mix * p
            token = torch.multinomial(probs, 1, generator=generator)
            tokens.append(token)
            log_probs.append(probs.gather(1, token).log())
            step_input = token
    finally:
        for m, mode in zip(models, modes):
            m.train(mode)
    if not tokens:
        return Sampled(prompts, prompts.new_zeros((len(prompts), 0), dtype=torch.float32))
    return Sampled(torch.cat([prompts, *tokens], dim=1), torch.cat(log_probs, dim=1))


def _step(model, ids: torch.Tensor, cache):
    """One forward pass that extends the model's KV cache, in this transformers' spelling: `cache`
    since 5.x, where `past_key_values` is deprecated (removed in 5.40), else `past_key_values`."""
    if "cache" in inspect.signature(model.forward).parameters:
        out = model(input_ids=ids, cache=cache, use_cache=True)
        return out, out.cache
    out = model(input_ids=ids, past_key_values=cache, use_cache=True)
    return out, out.past_key_values
