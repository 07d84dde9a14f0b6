"""Extraction: the one-pass verdict of `extract` against hand-computed values and against `generate`.

`extract` decides memorization from one teacher-forced pass (docs/protocol.md, "What is
measured": greedy decoding reproduces the suffix exactly when every suffix arg-max is the true
token). These tests check it three ways: on a fake model whose logits are written by hand, so
every arg-max hit, tie and loss is known; on tiny models trained until some examples are
memorized, against Hugging Face greedy decoding (`model.generate(do_sample=False)`) on every
example; and `greedy`, the batched decoding the harness uses where it needs the text.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch import nn

from harness.config.registry import Training
from harness.measure.extract import extract, greedy
from harness.protocol.data import cut
from harness.runtime.precision import TIE_TOLERANCE
from harness.training.train import train
from harness_plugins.datasets import synthetic_pii
from harness_plugins.families import tiny

# ---------------------------------------------------------------- a model with logits written by hand

V = 8  # vocabulary
P, S = 3, 4  # prefix and suffix
L = P + S + 1  # one token past the suffix: the loss covers it, the verdict must not look at it
TOP = 5.0  # the winning logit; the background logits stay well below it

H, M, T = "hit", "miss", "tie"  # at a suffix position: arg-max is the true token / another token / two tied


class FixedLogits(nn.Module):
    """Returns the logits stored for each row, looked up by the row's first token."""

    def __init__(self, table: dict[int, torch.Tensor]):
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(1))  # extract asks the parameters for the device
        self.table = table
        self.calls: list[int] = []

    def forward(self, input_ids):
        self.calls.append(len(input_ids))
        return SimpleNamespace(logits=torch.stack([self.table[int(row[0])][: len(row)] for row in input_ids]))


def hand_built(cases: dict[str, list]) -> tuple[FixedLogits, torch.Tensor, list[str]]:
    """One example per case; case = what the arg-max does at each of the S suffix positions.

    A position is H, M, T (two wrong tokens tied on top), or ("near", gap): the true token on top
    and another one `gap` below it.
    """
    gen = torch.Generator().manual_seed(0)
    table, rows = {}, []
    for key, plan in enumerate(cases.values()):
        ids = torch.randint(0, V, (L,), generator=gen)
        ids[0] = key  # the lookup key: distinct per example
        logits = torch.randn(L, V, generator=gen)  # |values| stay far below TOP
        for j, what in enumerate(plan):
            t, target = P - 1 + j, int(ids[P + j])  # logits at t predict token t + 1
            a, b = (target + 1) % V, (target + 2) % V  # two tokens that are not the target
            if what == H:
                logits[t, target] = TOP
            elif what == M:
                logits[t, a], logits[t, target] = TOP, TOP - 1.0
            elif what == T:
                logits[t, a] = logits[t, b] = TOP
            else:
                _, gap = what
                logits[t, target], logits[t, a] = TOP, TOP - gap
        table[key] = logits
        rows.append(ids)
    return FixedLogits(table), torch.stack(rows), list(cases)


CASES = {
    "all hits": [H, H, H, H],
    "miss at 2": [H, H, M, H],
    "miss first": [M, H, H, H],
    "hits after a miss": [H, M, H, H],
    "tie at the first miss": [H, T, H, H],
    "tie after the first miss": [H, M, T, T],
    "near tie on a hit": [H, ("near", 1e-5), H, H],
    "gap over the tolerance": [H, ("near", 1e-2), H, H],
}
EXPECTED = {  # (match_len, memorized, tie)
    "all hits": (4, True, False),
    "miss at 2": (2, False, False),
    "miss first": (0, False, False),
    "hits after a miss": (1, False, False),
    "tie at the first miss": (1, False, True),
    "tie after the first miss": (1, False, False),
    "near tie on a hit": (4, True, True),
    "gap over the tolerance": (4, True, False),
}


def direct_losses(model: FixedLogits, ids: torch.Tensor) -> tuple[list[float], list[float]]:
    """Mean next-token loss over the whole row and over the suffix, position by position in float64."""
    whole, suffix = [], []
    for row in ids:
        logits = model.table[int(row[0])].double()
        nll = [float(torch.logsumexp(logits[t], 0) - logits[t, row[t + 1]]) for t in range(len(row) - 1)]
        whole.append(sum(nll) / len(nll))
        suffix.append(sum(nll[P - 1 : P - 1 + S]) / S)
    return whole, suffix


def test_tolerance_separates_the_near_cases():
    # The two "near" cases sit on either side of the tie tolerance at logit TOP.
    assert 1e-5 <= TIE_TOLERANCE["float32"] * TOP < 1e-2


@pytest.mark.parametrize("batch_size", [64, 3, 1])
def test_extract_on_hand_built_logits(batch_size):
    model, ids, names = hand_built(CASES)
    result = extract(model, ids, P, S, batch_size=batch_size)
    assert model.calls == [min(batch_size, len(ids) - i) for i in range(0, len(ids), batch_size)]
    for field in ("memorized", "match_len", "loss", "suffix_loss", "ties"):
        assert getattr(result, field).shape == (len(ids),), field
    assert result.memorized.dtype == torch.bool and result.ties.dtype == torch.bool
    got = {n: (int(m), bool(mem), bool(t)) for n, m, mem, t in
           zip(names, result.match_len, result.memorized, result.ties)}
    assert got == EXPECTED
    assert torch.equal(result.memorized, result.match_len == S)
    whole, suffix = direct_losses(model, ids)
    assert result.loss.tolist() == pytest.approx(whole, rel=1e-5)
    assert result.suffix_loss.tolist() == pytest.approx(suffix, rel=1e-5)
    assert set(result.as_dict()) == {"memorized", "match_len", "loss", "suffix_loss", "ties",
                                     "token_logprobs", "token_mean", "token_std", "sample_logprob"}


def test_extract_ignores_tokens_past_the_suffix():
    """The verdict reads the suffix window only; what follows changes the loss, not the verdict."""
    model, ids, _ = hand_built(CASES)
    before = extract(model, ids, P, S, batch_size=8)
    changed = ids.clone()
    changed[:, -1] = (changed[:, -1] + 1) % V
    after = extract(model, changed, P, S, batch_size=8)
    assert torch.equal(before.match_len, after.match_len) and torch.equal(before.ties, after.ties)
    assert torch.equal(before.suffix_loss, after.suffix_loss)
    assert not torch.equal(before.loss, after.loss)


# ---------------------------------------------------------------- greedy: a model that walks x -> x + 1

EOS = 5


def successor_model(vocab: int = 16):
    """A GPT-NeoX without layers whose arg-max after token x is (x + 1) mod vocab, EOS included."""
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    config = GPTNeoXConfig(vocab_size=vocab, hidden_size=vocab, num_hidden_layers=0, num_attention_heads=1,
                           intermediate_size=vocab, max_position_embeddings=64, tie_word_embeddings=False,
                           bos_token_id=EOS, eos_token_id=EOS, pad_token_id=0)
    model = GPTNeoXForCausalLM(config).eval()
    with torch.no_grad():
        model.get_input_embeddings().weight.copy_(10 * torch.eye(vocab))
        norm = model.gpt_neox.final_layer_norm
        norm.weight.fill_(1.0)
        norm.bias.zero_()
        head = torch.zeros(vocab, vocab)
        head[(torch.arange(vocab) + 1) % vocab, torch.arange(vocab)] = 1.0
        model.get_output_embeddings().weight.copy_(head)
    assert model.generation_config.eos_token_id == EOS  # generate knows the end-of-text token
    return model


@pytest.mark.parametrize("batch_size", [64, 1])
def test_greedy_returns_prompt_plus_new_tokens_and_runs_past_eos(batch_size):
    vocab, new = 16, 10
    model = successor_model(vocab)
    prompts = torch.tensor([[1, 2, 3], [10, 11, 12], [3, 4, EOS]])
    out = greedy(model, prompts, new, batch_size=batch_size)
    assert out.shape == (len(prompts), prompts.shape[1] + new)
    assert torch.equal(out[:, : prompts.shape[1]], prompts)
    expected = (prompts[:, -1:] + torch.arange(1, new + 1)) % vocab
    assert torch.equal(out[:, prompts.shape[1]:], expected)
    # Rows 0 and 2 pass through end-of-text and go on; the step after it is EOS + 1, not padding.
    assert (out[0] == EOS).sum() == 1 and out[0, 4] == EOS and out[0, 5] == EOS + 1
    # And the one-pass verdict agrees: every generated continuation is memorized.
    result = extract(model, out, prompts.shape[1], new, batch_size=2)
    assert result.memorized.all() and not result.ties.any()


def argmax_decode(model, prompts: torch.Tensor, new: int) -> torch.Tensor:
    """Plain arg-max decoding by hand, one full forward pass per token: the definition of greedy."""
    out = prompts
    with torch.no_grad():
        for _ in range(new):
            out = torch.cat([out, model(input_ids=out).logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    return out


def test_greedy_ignores_the_checkpoints_generation_settings(memorizing_model):
    """A hub checkpoint's generation_config (repetition penalty, no repeated n-grams, suppressed
    tokens) must not change a continuation: the harness decodes plain arg-max, and the model's
    own config is left as it was."""
    model, members, _ = memorizing_model
    prompts = members.ids[:32, :PREFIX]
    plain = argmax_decode(model, prompts, SUFFIX)
    own = model.generation_config
    settings = {"repetition_penalty": 5.0, "no_repeat_ngram_size": 2, "suppress_tokens": [int(plain[0, PREFIX])]}
    for name, value in settings.items():
        setattr(own, name, value)
    try:
        hub_like = model.generate(input_ids=prompts, attention_mask=torch.ones_like(prompts), do_sample=False,
                                  max_new_tokens=SUFFIX, min_new_tokens=SUFFIX, eos_token_id=[], pad_token_id=0)
        differ = int((hub_like != plain).any(dim=1).sum())
        assert differ > len(prompts) // 2, f"the settings should change most continuations, changed {differ}"
        assert torch.equal(greedy(model, prompts, SUFFIX, batch_size=16), plain)
        assert model.generation_config is own and own.repetition_penalty == 5.0
    finally:
        for name in settings:
            setattr(own, name, None)


# ---------------------------------------------------------------- the verdicts against model.generate

PREFIX, SUFFIX = 8, 8
SEED = 0


def reference_verdicts(model, ids: torch.Tensor, prefix: int, suffix: int, batch_size: int):
    """Memorized and match_len from Hugging Face greedy decoding, computed without `extract`."""
    generated = []
    for start in range(0, len(ids), batch_size):
        prompt = ids[start : start + batch_size, :prefix]
        # eos_token_id=[]: no end-of-text handling at all, so every step is the plain arg-max (the
        # texts are tokenized without special tokens, so end-of-text is never a true suffix token).
        out = model.generate(input_ids=prompt, attention_mask=torch.ones_like(prompt), do_sample=False,
                             num_beams=1, use_cache=True, max_new_tokens=suffix, min_new_tokens=suffix,
                             eos_token_id=[], pad_token_id=model.config.pad_token_id)
        assert out.shape == (len(prompt), prefix + suffix)
        generated.append(out[:, prefix:])
    generated = torch.cat(generated)
    truth = ids[:, prefix : prefix + suffix]
    match = []
    for got, want in zip(generated.tolist(), truth.tolist()):
        n = 0
        while n < suffix and got[n] == want[n]:
            n += 1
        match.append(n)
    match = torch.tensor(match)
    return match == suffix, match, generated


@pytest.fixture(scope="module")
def memorizing_model():
    """A 0.6m tiny model trained on 64 synthetic-pii members (repeated 1 to 16 times) until some stick."""
    with pytest.MonkeyPatch.context() as env:  # module scope: the autouse fixture has not run yet
        env.setenv("HARNESS_PROGRESS", "0")
        return _train_memorizing_model()


def _train_memorizing_model():
    torch.manual_seed(SEED)
    split = synthetic_pii.load({"seed": SEED, "n_members": 64, "n_nonmembers": 32, "n_validation": 0, "repeat_share": 0.5,
                                "secret_share": 0.25})
    tokenizer = tiny.build_tokenizer([ex.text for ex in split.members])
    members = cut("member", split.members, tokenizer, PREFIX + SUFFIX, False, "synthetic-pii")
    nonmembers = cut("nonmember", split.nonmembers, tokenizer, PREFIX + SUFFIX, False, "synthetic-pii")
    torch.manual_seed(SEED)
    model = tiny.build_model("0.6m", tokenizer)
    cfg = Training(epochs=10, lr=3e-3, batch_size=16, warmup_ratio=0.0, weight_decay=0.0, schedule="cosine")
    model = train(model, members.ids, members.training_rows(), cfg, seed=SEED, stage="test")
    return model, members, nonmembers


def test_one_pass_verdicts_match_generate_on_every_example(memorizing_model):
    model, members, nonmembers = memorizing_model
    report = []
    total_ties = 0
    for examples in (members, nonmembers):
        ids = examples.ids
        result = extract(model, ids, PREFIX, SUFFIX, batch_size=32)
        memorized, match_len, generated = reference_verdicts(model, ids, PREFIX, SUFFIX, batch_size=32)
        # The harness's own batched decoding gives the same continuations.
        assert torch.equal(greedy(model, ids[:, :PREFIX], SUFFIX, batch_size=32)[:, PREFIX:], generated)
        disagree = (result.memorized != memorized) | (result.match_len != match_len)
        ties = int(result.ties.sum())
        total_ties += ties
        report.append(f"{examples.split}s: {int(memorized.sum())}/{len(ids)} memorized by generate, "
                      f"{int(result.memorized.sum())} by extract, {int(disagree.sum())} disagreements, "
                      f"{ties} ties")
        untied = disagree & ~result.ties
        assert not untied.any(), (
            f"{'; '.join(report)}; disagreements without a tie at rows {untied.nonzero().flatten().tolist()}: "
            f"extract match_len {result.match_len[untied].tolist()}, generate {match_len[untied].tolist()}")
        if examples.split == "member":
            n_mem = int(memorized.sum())
            assert 0 < n_mem < len(ids), f"training should memorize some members, not none or all: {report}"
    print("; ".join(report) + f"; ties in all: {total_ties}")


# ---------------------------------------------------------------- probabilistic extraction (Hayes et al.)


def test_sample_logprob_is_the_suffix_probability_under_top_k_sampling():
    """Per suffix position: the true token's probability renormalized over the k largest logits, or
    zero when it is outside them; the example's value is the log of their product."""
    from harness.measure import extract as extract_mod

    gen = torch.Generator().manual_seed(3)
    n, vocab = 4, 60
    batch = torch.randint(0, vocab, (n, L), generator=gen)
    logits = torch.randn(n, L, vocab, generator=gen) * 3
    k = extract_mod.SAMPLING_TOP_K
    # row 0: every true suffix token forced into the top k; row 1: one forced out of it
    for t in range(P - 1, P + S - 1):
        logits[0, t, batch[0, t + 1]] = logits[0, t].max() + 1
        logits[1, t, batch[1, t + 1]] = logits[1, t].max() + 1
    logits[1, P, batch[1, P + 1]] = logits[1, P].min() - 1
    got = extract_mod._scores(logits.clone(), batch, P, S, extract_mod.tie_tolerance(torch.float32))["sample_logprob"]
    want = []
    for row in range(n):
        total = 0.0
        for t in range(P - 1, P + S - 1):
            top = logits[row, t].topk(k).values
            true = logits[row, t, batch[row, t + 1]]
            total += float("-inf") if true < top[-1] else float(true - top.logsumexp(0))
        want.append(max(total, extract_mod.IMPOSSIBLE))
    assert got[1].item() == extract_mod.IMPOSSIBLE and got[0] > extract_mod.IMPOSSIBLE
    assert torch.allclose(got, torch.tensor(want), atol=1e-5, equal_nan=False)


def test_extraction_chance_over_many_queries():
    from harness.measure.extract import IMPOSSIBLE
    from harness.measure.probabilistic import chance as extraction_chance

    logp = torch.tensor([IMPOSSIBLE, 0.0, -30.0, -0.6931471805599453], dtype=torch.float64)  # log 0.5
    chance = torch.from_numpy(extraction_chance(logp.numpy(), queries=10))
    assert chance[0] == 0.0 and chance[1] == 1.0
    assert abs(chance[2].item() - 10 * torch.tensor(-30.0, dtype=torch.float64).exp().item()) < 1e-18
    assert abs(chance[3].item() - (1 - 0.5**10)) < 1e-12
