"""`gpt2`: OpenAI's GPT-2, the family of the teacher-to-student tracking study; xl -> small by default.

All four sizes share one tokenizer (50,257 tokens) and a 1,024-token context.
"""

from harness import Arch, Size, hookimpl, hub_family

COMMON = dict(n_positions=1024, vocab_size=50257, layer_norm_epsilon=1e-5, activation_function="gelu_new")

SHAPES = {"small": ("gpt2", 768, 12, 12), "medium": ("gpt2-medium", 1024, 24, 16),
          "large": ("gpt2-large", 1280, 36, 20), "xl": ("gpt2-xl", 1600, 48, 25)}

SIZES = {size: Size(f"openai-community/{repo}", dict(COMMON, n_embd=h, n_layer=layers, n_head=heads))
         for size, (repo, h, layers, heads) in SHAPES.items()}


@hookimpl
def register_model_families(register):
    register(hub_family(
        name="gpt2",
        description="OpenAI GPT-2 from the hub, small / medium / large / xl; default pair xl -> small",
        arch=Arch("GPT2Config", hidden="n_embd", layers="n_layer", heads="n_head", ffn="n_inner"),
        sizes=SIZES,
        teacher="xl",
        student="small",
        preset="gpt2",
    ))
