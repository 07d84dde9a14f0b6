"""`opt`: Meta's OPT, a family of the membership-and-memorization KD study; 2.7b -> 125m by default.

All sizes share GPT-2's byte-level BPE (50,265 tokens, padded to 50,272). The 350m is the odd one:
post-layer-norm and a 512-wide embedding projected up to its 1,024-wide layers; its tiny version
keeps both traits.
"""

from harness import Arch, Size, hookimpl, hub_family

COMMON = dict(vocab_size=50272, max_position_embeddings=2048, activation_function="relu", enable_bias=True,
              do_layer_norm_before=True)

# size: (hidden, layers, heads), from each model's config.json
SHAPES = {"125m": (768, 12, 12), "350m": (1024, 24, 16), "1.3b": (2048, 24, 32), "2.7b": (2560, 32, 32)}


def _shape(size, hidden, layers, heads):
    shape = dict(COMMON, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                 ffn_dim=4 * hidden, word_embed_proj_dim=hidden)
    if size == "350m":
        shape.update(word_embed_proj_dim=512, do_layer_norm_before=False)
    return shape


SIZES = {size: Size(f"facebook/opt-{size}", _shape(size, *shape)) for size, shape in SHAPES.items()}


def _tiny(shape, width):
    projected = not shape["do_layer_norm_before"]  # the 350m: the one size with a projected embedding
    return {**shape, "word_embed_proj_dim": width // 2 if projected else width}


@hookimpl
def register_model_families(register):
    register(hub_family(
        name="opt",
        description="Meta OPT from the hub, 125m / 350m / 1.3b / 2.7b; default pair 2.7b -> 125m",
        arch=Arch("OPTConfig", ffn="ffn_dim", extra_tiny=_tiny),
        sizes=SIZES,
        teacher="2.7b",
        student="125m",
        preset="opt",
    ))
