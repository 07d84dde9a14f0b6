"""The shared on-policy sampler: its KV cache changes nothing, and its mixture is the one asked for."""

from __future__ import annotations

import pytest
import torch
from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

from harness.training.sampling import sample

VOCAB = 50


def tiny_model(seed: int):
    torch.manual_seed(seed)
    config = GPTNeoXConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                           intermediate_size=64, max_position_embeddings=64)
    return GPTNeoXForCausalLM(config).eval()


def sample_without_cache(model, prompts, new_tokens, *, teacher=None, teacher_mix=0.0, generator):
    """The same draws, recomputing every prefix from scratch: what the cache must reproduce."""
    ids, log_probs = prompts, []
    with torch.no_grad():
        for _ in range(new_tokens):
            probs = torch.softmax(model(input_ids=ids).logits[:, -1], dim=-1)
            if teacher_mix > 0:
                probs = (1 - teacher_mix) * probs + teacher_mix * torch.softmax(teacher(input_ids=ids).logits[:, -1], -1)
            token = torch.multinomial(probs, 1, generator=generator)
            log_probs.append(probs.gather(1, token).log())
            ids = torch.cat([ids, token], dim=1)
    return ids, torch.cat(log_probs, dim=1)


@pytest.mark.parametrize("teacher_mix", [0.0, 0.3])
def test_cached_sampling_equals_sampling_from_scratch(teacher_mix):
    student, teacher = tiny_model(0), tiny_model(1)
    prompts = torch.randint(0, VOCAB, (6, 5), generator=torch.Generator().manual_seed(2))
    drawn = sample(student, prompts, 9, teacher=teacher, teacher_mix=teacher_mix,
                   generator=torch.Generator().manual_seed(3))
    ids, log_probs = sample_without_cache(student, prompts, 9, teacher=teacher, teacher_mix=teacher_mix,
                                          generator=torch.Generator().manual_seed(3))
    assert drawn.ids.shape == (6, 14)
    assert torch.equal(drawn.ids[:, :5], prompts)
    assert torch.equal(drawn.ids, ids)
    torch.testing.assert_close(drawn.log_probs, log_probs, rtol=1e-4, atol=1e-5)


def test_full_teacher_mix_draws_from_the_teacher_alone():
    student, teacher = tiny_model(0), tiny_model(1)
    prompts = torch.randint(0, VOCAB, (4, 3), generator=torch.Generator().manual_seed(0))
    drawn = sample(student, prompts, 6, teacher=teacher, teacher_mix=1.0, generator=torch.Generator().manual_seed(5))
    ids, _ = sample_without_cache(teacher, prompts, 6, generator=torch.Generator().manual_seed(5))
    assert torch.equal(drawn.ids, ids)
    with torch.no_grad():
        expected = torch.log_softmax(teacher(input_ids=drawn.ids).logits[:, 2:-1], -1)
    expected = expected.gather(-1, drawn.ids[:, 3:, None]).squeeze(-1)
    torch.testing.assert_close(drawn.log_probs, expected, rtol=1e-4, atol=1e-4)


def test_sampling_restores_training_mode_and_keeps_no_graph():
    student = tiny_model(0).train()
    prompts = torch.zeros((2, 3), dtype=torch.long)
    drawn = sample(student, prompts, 4, generator=torch.Generator().manual_seed(0))
    assert student.training
    assert not drawn.ids.requires_grad and not drawn.log_probs.requires_grad
    assert (drawn.log_probs <= 0).all()


def test_teacher_mix_needs_the_teacher():
    with pytest.raises(ValueError, match="needs the teacher"):
        sample(tiny_model(0), torch.zeros((1, 2), dtype=torch.long), 2, teacher_mix=0.5)
