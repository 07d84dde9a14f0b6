"""What every hub model family shares: one code path for pretrained and from-scratch weights.

A family plugin gives its sizes (hub id and the real architecture of each, as its transformers
config class takes it) and builds its `ModelFamily` with `hub_family`. The `weights` family
argument only changes where the starting weights come from:

- `pretrained`: tokenizer, config and weights with `from_pretrained` (safetensors only, remote code
  off), from the hub, the Hugging Face cache, or `path=DIR` holding a copy of each repo under its
  name (`DIR/pythia-410m`, as `hf download EleutherAI/pythia-410m --local-dir DIR/pythia-410m`);
- `scratch`: the same config class at the size's real shape (or `shape=tiny`, a few thousand
  times smaller, for tests), random weights and a byte-level BPE, both first trained on the
  generic pretraining corpus (`harness.protocol.corpus`) by the core, as if they had been released.

Everything after that (the tokenizer-sharing check, float32 weights, the vocabulary check) is shared, so the
offline tests that build tiny models from config run the plugin's own code.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from harness.contract.specs import ModelFamily, Param
from harness.errors import UsageError, unknown
from harness.runtime import hub

SPECIAL = {"bos_token": "<|bos|>", "eos_token": "<|eos|>", "pad_token": "<|pad|>", "unk_token": "<|unk|>"}
POSITIONS = ("max_position_embeddings", "n_positions")  # what the config classes call the context length
TINY_LAYERS = 2
TINY_HEADS = 4


@dataclass(frozen=True)
class Size:
    hub_id: str
    shape: dict[str, Any]  # the config class's arguments at the real shape (vocab included)


@dataclass(frozen=True)
class Arch:
    """How a family's config class names its dimensions, for shrinking a real shape to `tiny`."""

    config_class: str  # in `transformers`, e.g. "GPTNeoXConfig"
    hidden: str = "hidden_size"
    layers: str = "num_hidden_layers"
    heads: str = "num_attention_heads"
    ffn: str | None = "intermediate_size"
    ffn_ratio: int = 4
    extra_tiny: Callable[[dict[str, Any], int], dict[str, Any]] | None = None  # family-specific fix-ups


def params(max_vocab: int = 8192) -> tuple[Param, ...]:
    return (
        Param("weights", str, "pretrained", "pretrained weights from the hub, or random weights at the same shape",
              choices=("pretrained", "scratch")),
        Param("shape", str, "real", "with weights=scratch: the real architecture, or a tiny one of the same kind (tests)",
              choices=("real", "tiny")),
        Param("path", str, "", "a folder with a copy of each hub repo under its name, instead of the hub"),
        Param("vocab_size", int, 4096, "with weights=scratch: vocabulary of the BPE trained on the pretraining corpus",
              min=256, max=max_vocab),
        Param("max_length", int, 0, "with weights=scratch: positions of the model; 0 for the size's own", min=0,
              max=1 << 20),
    )


def tiny_width(hidden: int) -> int:
    """A multiple of 32 that keeps the sizes' order: 32 for a 512-wide model, 64 for 1024, 96 for 2048, 160 for 5120."""
    return 32 * max(1, math.ceil(math.log2(hidden / 256)))


def hub_family(*, name: str, description: str, arch: Arch, sizes: dict[str, Size], teacher: str, student: str,
               preset: str = "") -> ModelFamily:
    """The family's `ModelFamily`: unbound until the core calls `configure` with its arguments."""

    def unbound(*_: Any) -> Any:
        raise RuntimeError(f"family {name} is used before configure() bound its arguments")

    family = ModelFamily(name=name, description=description, sizes=tuple(sizes), teacher=teacher, student=student,
                         tokenizer=unbound, model=unbound, preset=preset, params=params())

    def configure(args: dict[str, Any], teacher_size: str, student_size: str) -> ModelFamily:
        bound = _Bound(name, arch, sizes, args)
        bound.check_args()
        bound.check_pair(teacher_size, student_size)
        return replace(family, tokenizer=lambda texts: bound.tokenizer(texts, teacher_size),
                       model=bound.model, n_params=bound.n_params, configure=None, released=not bound.scratch)

    return replace(family, configure=configure)


class _Bound:
    def __init__(self, name: str, arch: Arch, sizes: dict[str, Size], args: dict[str, Any]) -> None:
        self.name, self.arch, self.sizes, self.args = name, arch, sizes, args
        self.scratch = args["weights"] == "scratch"

    def check_args(self) -> None:
        if not self.scratch and self.args["shape"] != "real":
            raise UsageError(f"family {self.name}: shape={self.args['shape']} needs weights=scratch "
                             "(pretrained weights have the real shape)")
        if self.scratch and self.args["path"]:
            raise UsageError(f"family {self.name}: path= gives pretrained weights; it does not go with weights=scratch")
        if self.args["path"] and not Path(self.args["path"]).expanduser().is_dir():
            raise UsageError(f"family {self.name}: path {self.args['path']} is not a folder")

    # ------------------------------------------------------------ where things come from

    def _source(self, size: str) -> str:
        hub_id = self.sizes[size].hub_id
        if self.args["path"]:
            local = Path(self.args["path"]).expanduser() / hub_id.split("/")[-1]
            if not local.is_dir():
                raise UsageError(f"family {self.name}: no folder {local} for {hub_id} under path= "
                                 f"(fetch it with `hf download {hub_id} --local-dir {local}`)")
            return str(local)
        return hub_id

    def _pretrained(self, load: Callable[..., Any], size: str, **kwargs: Any) -> Any:
        return hub.pretrained(load, self._source(size), owner=f"family {self.name}",
                              local_hint="give local copies with --family-arg path=DIR (DIR/<repo name>)", **kwargs)

    def _hub_tokenizer(self, size: str):
        from transformers import AutoTokenizer

        return self._pretrained(AutoTokenizer.from_pretrained, size)

    def config(self, size: str, tokenizer):
        import transformers

        if not self.scratch:
            return self._pretrained(transformers.AutoConfig.from_pretrained, size)
        shape = dict(self.sizes[size].shape)
        if self.args["shape"] == "tiny":
            shape = self._tiny(shape)
            shape["vocab_size"] = len(tokenizer)
        else:  # the real embedding, padded beyond the local tokenizer as the released models are
            shape["vocab_size"] = max(shape.get("vocab_size", 0), len(tokenizer))
        for key in POSITIONS:
            if key in shape and self.args["max_length"]:
                shape[key] = self.args["max_length"]
        ids = {f"{t}_token_id": getattr(tokenizer, f"{t}_token_id") for t in ("bos", "eos", "pad")}
        return getattr(transformers, self.arch.config_class)(**shape, **ids)

    def _tiny(self, shape: dict[str, Any]) -> dict[str, Any]:
        a = self.arch
        width = tiny_width(shape[a.hidden])
        tiny = {**shape, a.hidden: width, a.layers: TINY_LAYERS, a.heads: TINY_HEADS}
        if a.ffn:
            tiny[a.ffn] = a.ffn_ratio * width
        return a.extra_tiny(tiny, width) if a.extra_tiny else tiny

    # ------------------------------------------------------------ what the core calls

    def check_pair(self, teacher: str, student: str) -> None:
        """Teacher and student must tokenize identically, or logit-level KD compares different things."""
        for size in (teacher, student):
            if size not in self.sizes:
                raise unknown(f"size of family {self.name}", size, self.sizes)
        if self.scratch or teacher == student:
            return  # one tokenizer is trained for both
        same_tokenizer(self._hub_tokenizer(teacher), self._hub_tokenizer(student),
                       f"family {self.name}: teacher {teacher} and student {student}")

    def tokenizer(self, texts: Sequence[str], teacher: str):
        if not self.scratch:
            return self._hub_tokenizer(teacher)
        shape = self.sizes[teacher].shape
        positions = self.args["max_length"] or next(shape[k] for k in POSITIONS if k in shape)
        return train_tokenizer(texts, self.args["vocab_size"], positions)

    def model(self, size: str, tokenizer):
        import torch
        from transformers import AutoModelForCausalLM

        config = self.config(size, tokenizer)
        if self.scratch:
            model = AutoModelForCausalLM.from_config(config, trust_remote_code=False)
        else:
            # float32 weights: training runs under bf16 autocast on a GPU (harness.runtime.precision)
            model = self._pretrained(AutoModelForCausalLM.from_pretrained, size, config=config,
                                     use_safetensors=True, dtype=torch.float32)
        width = model.get_output_embeddings().weight.shape[0]
        if width < len(tokenizer):
            raise UsageError(f"family {self.name}: {size} predicts {width} tokens but its tokenizer has "
                             f"{len(tokenizer)}")
        return model.float()

    def n_params(self, size: str, tokenizer) -> int:
        import torch
        from transformers import AutoModelForCausalLM

        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(self.config(size, tokenizer))
        return sum(p.numel() for p in model.parameters())


def same_tokenizer(a, b, what: str) -> None:
    """Refuse two tokenizers that map any text differently: their vocabularies or special tokens differ."""
    if a.get_vocab() != b.get_vocab():
        only_a = len(set(a.get_vocab()) - set(b.get_vocab()))
        raise UsageError(f"{what} do not share a tokenizer ({len(a)} vs {len(b)} tokens, {only_a} differ): "
                         "logit-level distillation needs one vocabulary; choose a pair of one tokenizer")
    for token in ("bos_token_id", "eos_token_id"):
        if getattr(a, token) != getattr(b, token):
            raise UsageError(f"{what} do not share a tokenizer: {token} {getattr(a, token)} vs {getattr(b, token)}")


def train_tokenizer(texts: Sequence[str], vocab_size: int, max_length: int):
    """A byte-level BPE trained on `texts` (the pretraining corpus), for from-scratch weights: nothing is downloaded."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import PreTrainedTokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(list(texts), vocab_size=vocab_size, min_frequency=2,
                            special_tokens=list(SPECIAL.values()), show_progress=False)
    return PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer, model_max_length=max_length, **SPECIAL)
