"""`olmo2`: AllenAI's OLMo-2, fully open (weights, data, code); the study's pair is 7B -> 1B.

The 1B (April 2025 release) and the 7B and 13B (November 2024) share the dolma2 tokenizer.
"""

from harness import Arch, Size, hookimpl, hub_family

COMMON = dict(rope_theta=500000.0, rms_norm_eps=1e-6, max_position_embeddings=4096, tie_word_embeddings=False,
              vocab_size=100352, hidden_act="silu", attention_bias=False)

SIZES = {
    "1B": Size("allenai/OLMo-2-0425-1B", dict(COMMON, hidden_size=2048, num_hidden_layers=16,
                                              num_attention_heads=16, num_key_value_heads=16, intermediate_size=8192)),
    "7B": Size("allenai/OLMo-2-1124-7B", dict(COMMON, hidden_size=4096, num_hidden_layers=32,
                                              num_attention_heads=32, num_key_value_heads=32, intermediate_size=11008)),
    "13B": Size("allenai/OLMo-2-1124-13B", dict(COMMON, hidden_size=5120, num_hidden_layers=40,
                                                num_attention_heads=40, num_key_value_heads=40, intermediate_size=13824)),
}


def _tiny(shape, width):
    return {**shape, "num_key_value_heads": shape["num_attention_heads"]}


@hookimpl
def register_model_families(register):
    register(hub_family(
        name="olmo2",
        description="AllenAI OLMo-2 from the hub, 1B / 7B / 13B; study pair 7B -> 1B",
        arch=Arch("Olmo2Config", ffn_ratio=4, extra_tiny=_tiny),
        sizes=SIZES,
        teacher="7B",
        student="1B",
        preset="olmo2",
    ))
