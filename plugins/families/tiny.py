"""`tiny`: a GPT-NeoX family built from a config, so nothing is downloaded.

It has no released weights (`released=False`): the core pretrains each size once on the generic
corpus (`harness.protocol.corpus`) before fine-tuning, as the studies start from pretrained Pythia. The
tokenizer is a byte-level BPE trained on that corpus with the `tokenizers` library; the core
caches it with `save_pretrained`, so it opens like any hub tokenizer.
"""

from harness import ModelFamily, hookimpl

VOCAB_SIZE = 2048
MAX_POSITIONS = 512
SPECIAL = {"bos_token": "<|bos|>", "eos_token": "<|eos|>", "pad_token": "<|pad|>", "unk_token": "<|unk|>"}

# hidden size, layers, attention heads: the teacher is about four times the student; 5.8m, nine
# times it, is the studies' ratio (Pythia 12b -> 1.4b is 8.6x) for the `tiny-studies` preset.
SIZES = {
    "5.8m": (256, 6, 4),
    "2.6m": (192, 4, 4),
    "1.2m": (128, 3, 4),
    "0.6m": (96, 2, 4),
}


def build_tokenizer(texts):
    from tokenizers import ByteLevelBPETokenizer
    from transformers import PreTrainedTokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(list(texts), vocab_size=VOCAB_SIZE, min_frequency=2,
                            special_tokens=list(SPECIAL.values()), show_progress=False)
    return PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer, model_max_length=MAX_POSITIONS, **SPECIAL)


def build_model(size, tokenizer):
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    hidden, layers, heads = SIZES[size]
    config = GPTNeoXConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=4 * hidden,
        max_position_embeddings=MAX_POSITIONS,
        rotary_pct=0.25,
        use_parallel_residual=True,
        tie_word_embeddings=False,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return GPTNeoXForCausalLM(config)


@hookimpl
def register_model_families(register):
    register(ModelFamily(
        name="tiny",
        description="GPT-NeoX built from a config, pretrained here on a generated corpus (2.6M teacher, 0.6M "
                    "student); no download",
        sizes=tuple(SIZES),
        teacher="2.6m",
        student="0.6m",
        tokenizer=build_tokenizer,
        model=build_model,
        preset="tiny",
        released=False,
    ))
