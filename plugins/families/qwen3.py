"""`qwen3`: Alibaba's Qwen-3 base-and-instruct hybrids; the study's pair is 8B -> 1.7B.

Grouped-query attention (8 key/value heads) with a fixed head width of 128; the smaller sizes tie
their input and output embeddings. All sizes share one tokenizer (151,669 tokens, padded to 151,936).
"""

from harness import Arch, Size, hookimpl, hub_family

COMMON = dict(rope_theta=1000000.0, rms_norm_eps=1e-6, max_position_embeddings=40960, vocab_size=151936,
              num_key_value_heads=8, head_dim=128, hidden_act="silu", attention_bias=False)

# size: (hidden, layers, heads, intermediate, tied embeddings), from each model's config.json
SHAPES = {
    "0.6B": (1024, 28, 16, 3072, True),
    "1.7B": (2048, 28, 16, 6144, True),
    "4B": (2560, 36, 32, 9728, True),
    "8B": (4096, 36, 32, 12288, False),
}

SIZES = {
    size: Size(f"Qwen/Qwen3-{size}", dict(COMMON, hidden_size=h, num_hidden_layers=layers, num_attention_heads=heads,
                                          intermediate_size=ffn, tie_word_embeddings=tied))
    for size, (h, layers, heads, ffn, tied) in SHAPES.items()
}


def _tiny(shape, width):
    # keep grouped-query attention (2 key/value heads for 4 query heads) and an explicit head width
    return {**shape, "num_key_value_heads": 2, "head_dim": width // shape["num_attention_heads"]}


@hookimpl
def register_model_families(register):
    register(hub_family(
        name="qwen3",
        description="Qwen-3 from the hub, 0.6B / 1.7B / 4B / 8B; study pair 8B -> 1.7B",
        arch=Arch("Qwen3Config", ffn_ratio=3, extra_tiny=_tiny),
        sizes=SIZES,
        teacher="8B",
        student="1.7B",
        preset="qwen3",
    ))
