"""One-pass extraction and scoring against generate-then-score-per-attack, on the same model and examples.

What it measures. The harness decides discoverable memorization (docs/protocol.md, Carlini et al., 2023) and
scores every membership attack from one teacher-forced forward pass (`harness.measure.extract.extract`):
the verdict (arg-max equals the true token at every suffix position), the matching run
`match_len`, the per-token log-probabilities and the mean and spread of the model's own
next-token distribution, from which the loss, zlib, Min-K% and Min-K%++ attacks score. The
published studies' code does it the other way round: greedy `model.generate` from the prefix
(batched, with a KV cache), compare the continuation with the true suffix, then each membership
attack runs its own scoring pass over the examples. This script times, best of `--repeat` runs
after a warm-up:

  (a) one-pass `extract` + the four attacks' scores from its evidence (the harness's way);
  (b) `model.generate` (greedy, KV cache) + comparison + one scoring pass per attack (loss, zlib,
      Min-K%, Min-K%++), as the published pipelines run them;
  (c) `model.generate` alone, without any scoring;
  (d) `model.generate` + a single shared scoring pass (the best the generate route can do);

checks that (a) and (b) give the same verdicts on every example (disagreements can only come
from arg-max ties, which `extract` flags) and the same attack scores, and prints as its last line
`ratio R.RRx`, the time of (b) over the time of (a). The reference attack is left out of both:
its reference model's pass is the same in either pipeline (in the protocol it is another role's
extraction, reused). zlib entropies are computed once, outside both timings.

Why the one pass is exact: greedy decoding reproduces the true suffix if and only if, with the
true text as context, the arg-max at every suffix position is the true next token (by induction
on the position: while every earlier token matched, the context the decoder sees is the true
text). Why it is faster: on a CPU the arithmetic of (a) and (c) is about the same (the decoder
with a KV cache also processes each token once), so the gain is that one pass serves the verdict
and every score, with no pass per attack and no `suffix_len`-step Python decoding loop (on a GPU
it also avoids `suffix_len` memory-bound decoding steps).

    python benchmarks/extraction_vs_generate.py                        # tiny 2.6m, 512 + 512, 32 + 32
    python benchmarks/extraction_vs_generate.py --shape pythia-160m --members 64
    python benchmarks/extraction_vs_generate.py --model PATH           # a save_pretrained folder + tokenizer
    python benchmarks/extraction_vs_generate.py --quick                # seconds: a check of the script
"""

from __future__ import annotations

import argparse
import math
import os
import time
import zlib
from pathlib import Path

import _quick  # benchmarks/_quick.py: this folder is first on sys.path
import torch
import torch.nn.functional as F

from harness.config.registry import Training
from harness.measure.extract import extract
from harness.protocol.data import cut
from harness.training.train import train

# Pythia-160m's architecture (EleutherAI/pythia-160m config.json), built randomly initialised.
PYTHIA_160M = {"vocab_size": 50304, "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
               "intermediate_size": 3072, "hidden_act": "gelu", "max_position_embeddings": 2048,
               "rotary_pct": 0.25, "rotary_emb_base": 10000, "use_parallel_residual": True,
               "layer_norm_eps": 1e-5, "initializer_range": 0.02, "tie_word_embeddings": False,
               "bos_token_id": 0, "eos_token_id": 0}

# --quick: the same path in seconds (the figures then mean nothing): tiny 0.6m, one epoch, 32 + 32 examples.
QUICK = {"members": 32, "size": "0.6m", "epochs": 1, "repeat": 1, "prefix": 16, "suffix": 16}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--members", type=int, default=512, help="member examples (default 512)")
    p.add_argument("--nonmembers", type=int, default=None, help="non-member examples (default: as many as members)")
    p.add_argument("--size", default="2.6m", help="tiny family size to build and train (default 2.6m, the teacher)")
    p.add_argument("--epochs", type=int, default=4, help="training epochs before timing (default 4; 0: untrained)")
    p.add_argument("--lr", type=float, default=3e-3, help="peak learning rate (default 3e-3)")
    p.add_argument("--repeat", type=int, default=3, help="timed runs of each pipeline, best kept (default 3)")
    p.add_argument("--prefix", type=int, default=32)
    p.add_argument("--suffix", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=None,
                   help="examples per pass and prompts per generate call (default 64; 16 for pythia-160m)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--model", type=Path, default=None,
                   help="a folder saved with save_pretrained (model + tokenizer) to time instead of training one")
    p.add_argument("--shape", choices=("tiny", "pythia-160m"), default="tiny",
                   help="pythia-160m: a randomly initialised GPT-NeoX with Pythia-160m's config, on random tokens")
    args = _quick.options(p, QUICK, "tiny 0.6m, one epoch, 32 members, 16 + 16 tokens, one timing", argv=argv)
    if args.nonmembers is None:
        args.nonmembers = args.members
    if args.batch_size is None:
        args.batch_size = 16 if args.shape == "pythia-160m" else 64
    if args.repeat < 1 or args.members < 1 or args.nonmembers < 1:
        p.error("--repeat, --members and --nonmembers must be at least 1")
    return args


# ---------------------------------------------------------------- the model and the examples

def synthetic_split(args):
    from harness_plugins.datasets import synthetic_pii

    return synthetic_pii.load({"seed": args.seed, "n_members": args.members, "n_nonmembers": args.nonmembers,
                               "n_validation": 0, "repeat_share": 0.4, "secret_share": 0.25})


def setup(args):
    """(model, member ids, non-member ids, a line describing the model)."""
    torch.manual_seed(args.seed)
    length = args.prefix + args.suffix
    if args.shape == "pythia-160m":
        from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

        model = GPTNeoXForCausalLM(GPTNeoXConfig(**PYTHIA_160M)).eval()
        gen = torch.Generator().manual_seed(args.seed)
        ids = torch.randint(0, PYTHIA_160M["vocab_size"], (args.members + args.nonmembers, length), generator=gen)
        return model, ids[: args.members], ids[args.members :], "GPT-NeoX with Pythia-160m's config, random weights"

    split = synthetic_split(args)
    if args.model is not None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(args.model)
        model = AutoModelForCausalLM.from_pretrained(args.model).eval()
        what = f"{args.model} (loaded)"
    else:
        from harness_plugins.families import tiny

        tokenizer = tiny.build_tokenizer([ex.text for ex in split.members])
        model = None
        what = None
    members = cut("member", split.members, tokenizer, length, False, "synthetic-pii")
    nonmembers = cut("nonmember", split.nonmembers, tokenizer, length, False, "synthetic-pii")
    if model is None:
        torch.manual_seed(args.seed)
        model = tiny.build_model(args.size, tokenizer)
        what = f"tiny {args.size}, untrained"
        if args.epochs > 0:
            order = members.training_rows()
            cfg = Training(epochs=args.epochs, lr=args.lr, batch_size=32, warmup_ratio=0.05, weight_decay=0.0,
                           schedule="cosine")
            t0 = time.perf_counter()
            model = train(model, members.ids, order, cfg, seed=args.seed, stage="train")
            what = (f"tiny {args.size}, trained {args.epochs} epochs on {len(order)} rows "
                    f"in {time.perf_counter() - t0:.1f} s")
    return model.eval(), members.ids, nonmembers.ids, what


# ---------------------------------------------------------------- the pipelines

K = 0.2  # Min-K%'s and Min-K%++'s share of tokens, the harness's default


def attack_scores(evidence) -> dict[str, torch.Tensor]:
    from harness_plugins.attacks import loss, min_k, zlib

    args = {"k": K}
    return {"loss": loss.loss_score(evidence, args), "zlib": zlib.zlib_score(evidence, args),
            "min-k": min_k.min_k_score(evidence, args), "min-k-plus-plus": min_k.min_k_plus_plus_score(evidence, args)}


def one_pass(model, ids, zlib_bits, args):
    """(a): the harness's extraction, and every attack's score from the evidence it keeps."""
    from harness.measure.analysis import evidence

    result = extract(model, ids, args.prefix, args.suffix, batch_size=args.batch_size)
    return result, attack_scores(evidence(result, zlib_bits))


@torch.no_grad()
def generate_only(model, ids, args):
    """(c): batched greedy generate with a KV cache, compared with the true suffix."""
    p, s = args.prefix, args.suffix
    pad = model.config.pad_token_id if model.config.pad_token_id is not None else 0
    continuations = []
    for start in range(0, len(ids), args.batch_size):
        prompt = ids[start : start + args.batch_size, :p]
        # eos_token_id=[]: no end-of-text handling, so every step is the plain arg-max.
        out = model.generate(input_ids=prompt, attention_mask=torch.ones_like(prompt), do_sample=False,
                             num_beams=1, use_cache=True, max_new_tokens=s, min_new_tokens=s,
                             eos_token_id=[], pad_token_id=pad)
        continuations.append(out[:, p:])
    hits = torch.cat(continuations) == ids[:, p : p + s]
    match_len = hits.long().cumprod(dim=1).sum(dim=1)
    return {"memorized": match_len == s, "match_len": match_len}


def _batches(model, ids, args):
    for start in range(0, len(ids), args.batch_size):
        batch = ids[start : start + args.batch_size]
        yield batch, model(input_ids=batch).logits.float()[:, :-1]


def _token_logprobs(logits, batch):
    return F.log_softmax(logits, dim=-1).gather(-1, batch[:, 1:, None]).squeeze(-1)


def _lowest_mean(values, share):
    return values.topk(max(1, math.ceil(share * values.shape[1])), dim=1, largest=False).values.mean(dim=1)


@torch.no_grad()
def loss_attack(model, ids, args, zlib_bits=None):
    """The loss attack's own pass (Yeom et al.): negative mean token loss."""
    return torch.cat([_token_logprobs(logits, batch).mean(dim=1) for batch, logits in _batches(model, ids, args)])


@torch.no_grad()
def zlib_attack(model, ids, args, zlib_bits):
    """The zlib attack's own pass (Carlini et al., 2021): loss over zlib entropy."""
    return loss_attack(model, ids, args).double() / zlib_bits


@torch.no_grad()
def min_k_attack(model, ids, args, zlib_bits=None):
    """Min-K%'s own pass (Shi et al., 2024): mean of the lowest k% token log-probabilities."""
    return torch.cat([_lowest_mean(_token_logprobs(logits, batch), K) for batch, logits in _batches(model, ids, args)])


@torch.no_grad()
def min_k_plus_plus_attack(model, ids, args, zlib_bits=None):
    """Min-K%++'s own pass (Zhang et al., 2025): token log-probabilities standardized by the model's distribution."""
    out = []
    for batch, logits in _batches(model, ids, args):
        logprobs = F.log_softmax(logits, dim=-1)
        probs = logprobs.exp()
        mu = (probs * logprobs).sum(-1)
        sigma = (probs * (logprobs - mu[..., None]).square()).sum(-1).sqrt()
        token = logprobs.gather(-1, batch[:, 1:, None]).squeeze(-1)
        out.append(_lowest_mean((token - mu) / sigma.clamp(min=1e-6), K))
    return torch.cat(out)


PER_ATTACK = {"loss": loss_attack, "zlib": zlib_attack, "min-k": min_k_attack, "min-k-plus-plus": min_k_plus_plus_attack}


def generate_then_score(model, ids, zlib_bits, args):
    """(b): (c), then each attack's own scoring pass."""
    return generate_only(model, ids, args), {name: fn(model, ids, args, zlib_bits) for name, fn in PER_ATTACK.items()}


def generate_then_one_pass(model, ids, zlib_bits, args):
    """(d): (c), then one scoring pass shared by the attacks (not what the published code does)."""
    verdicts = generate_only(model, ids, args)
    return verdicts, min_k_plus_plus_attack(model, ids, args)


def best_time(fn, repeat: int):
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return min(times), result


def main(argv=None) -> None:
    args = parse_args(argv)
    os.environ.setdefault("HARNESS_PROGRESS", "0")  # read when a bar is made, so setting it here is enough
    torch.manual_seed(args.seed)
    model, members, nonmembers, what = setup(args)
    ids = torch.cat([members, nonmembers])
    zlib_bits = torch.tensor([len(zlib.compress(row.numpy().tobytes())) * 8.0 for row in ids], dtype=torch.float64)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model: {what}; {n_params / 1e6:.2f}M parameters")
    print(f"examples: {len(members)} members + {len(nonmembers)} non-members, prefix {args.prefix} + "
          f"suffix {args.suffix} tokens, batch {args.batch_size}; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.2f}")

    t_a, (a, a_scores) = best_time(lambda: one_pass(model, ids, zlib_bits, args), args.repeat)
    t_b, (b, b_scores) = best_time(lambda: generate_then_score(model, ids, zlib_bits, args), args.repeat)
    t_c, _ = best_time(lambda: generate_only(model, ids, args), args.repeat)
    t_d, _ = best_time(lambda: generate_then_one_pass(model, ids, zlib_bits, args), args.repeat)

    m = len(members)
    print(f"memorized (one pass): members {int(a.memorized[:m].sum())}/{m}, "
          f"non-members {int(a.memorized[m:].sum())}/{len(nonmembers)}; "
          f"mean match_len {a.match_len.float().mean():.2f} of {args.suffix}")
    print(f"(a) one pass: verdict + match_len + 4 attacks' scores: {t_a:8.3f} s")
    print(f"(b) generate + a scoring pass per attack (4):          {t_b:8.3f} s")
    print(f"(c) generate alone (no scores):                        {t_c:8.3f} s")
    print(f"(d) generate + one shared scoring pass:                {t_d:8.3f} s")
    print(f"best of {args.repeat} after a warm-up; one pass against generate alone (c)/(a) = {t_c / t_a:.2f}x, "
          f"against generate + one shared pass (d)/(a) = {t_d / t_a:.2f}x")

    disagree = (a.memorized != b["memorized"]) | (a.match_len != b["match_len"])
    n_dis = int(disagree.sum())
    print(f"agreement: {len(ids) - n_dis}/{len(ids)} examples agree on memorized and match_len; "
          f"{n_dis} disagreements, {int((disagree & a.ties).sum())} of them ties "
          f"({int(a.ties.sum())} examples flagged as ties in all)")
    gaps = {name: (a_scores[name].double() - b_scores[name].double()).abs().max().item() for name in PER_ATTACK}
    print("scores: largest difference between (a) and (b): " + ", ".join(f"{k} {v:.1e}" for k, v in gaps.items()))
    print(f"ratio {t_b / t_a:.2f}x")


if __name__ == "__main__":
    main()
