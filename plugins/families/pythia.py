"""`pythia`: EleutherAI's Pythia suite (GPT-NeoX), every size trained on the same data in the same order.

The study's pair is 12b -> 1.4b; preset `small` runs 410m -> 70m. The `-deduped` sizes were trained
on the deduplicated Pile. All sizes share one tokenizer; the embeddings are padded to different
widths (50304 up to 2.8b, 50432 at 6.9b, 50688 at 12b), beyond the tokenizer's 50277 tokens.
"""

from harness import Arch, Size, hookimpl, hub_family

COMMON = dict(rotary_pct=0.25, rotary_emb_base=10000, use_parallel_residual=True, tie_word_embeddings=False,
              layer_norm_eps=1e-5, max_position_embeddings=2048, hidden_act="gelu")

# size: (hidden, layers, heads, padded vocabulary), from each model's config.json
SHAPES = {
    "70m": (512, 6, 8, 50304),
    "160m": (768, 12, 12, 50304),
    "410m": (1024, 24, 16, 50304),
    "1b": (2048, 16, 8, 50304),
    "1.4b": (2048, 24, 16, 50304),
    "2.8b": (2560, 32, 32, 50304),
    "6.9b": (4096, 32, 32, 50432),
    "12b": (5120, 36, 40, 50688),
}


def _size(name: str, hidden: int, layers: int, heads: int, vocab: int) -> Size:
    return Size(f"EleutherAI/pythia-{name}", dict(COMMON, hidden_size=hidden, num_hidden_layers=layers,
                                                  num_attention_heads=heads, intermediate_size=4 * hidden,
                                                  vocab_size=vocab))


SIZES = {**{s: _size(s, *shape) for s, shape in SHAPES.items()},
         **{f"{s}-deduped": _size(f"{s}-deduped", *shape) for s, shape in SHAPES.items()}}


@hookimpl
def register_model_families(register):
    register(hub_family(
        name="pythia",
        description="EleutherAI Pythia (GPT-NeoX) from the hub, 70m to 12b (and -deduped); study pair 12b -> 1.4b",
        arch=Arch("GPTNeoXConfig"),
        sizes=SIZES,
        teacher="12b",
        student="1.4b",
        preset="pythia",
    ))
