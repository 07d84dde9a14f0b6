"""Reference models for calibrated membership attacks.

A calibrated attack scores an example by how much more likely the target finds it than a
reference model that never saw the members (Carlini et al., 2021, "Extracting Training Data from
Large Language Models", USENIX Security; Zhang et al.'s code). Every role's default reference is the
student-size model before fine-tuning: the released weights for a hub family, the pretraining
stage's output otherwise. `--reference PATH` names another model.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.errors import UsageError
from harness.measure.metrics import ROLES
from harness.runtime.log import info as log

DEFAULT = "small model before fine-tuning"


def load(path: str, tokenizer, family: str):
    """The model named by --reference; it must read the family's tokens, or its losses mean nothing here."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from harness.runtime import hub

    local = Path(path).exists()
    where = path if local else f"{path} (hub id)"

    def load(cls, **kwargs):
        if not local:  # remote code stays off for a reference model
            return hub.pretrained(cls.from_pretrained, path, owner="--reference",
                                  local_hint="pass a local model folder", **kwargs)
        try:
            return cls.from_pretrained(path, trust_remote_code=False, **kwargs)
        except (OSError, ValueError) as err:
            raise UsageError(f"cannot load reference model {where}: {str(err).splitlines()[0]}") from None

    reference_tokenizer = load(AutoTokenizer)
    model = load(AutoModelForCausalLM, use_safetensors=True)
    if reference_tokenizer.get_vocab() != tokenizer.get_vocab():
        raise UsageError(f"reference model {where} has a different tokenizer from the {family} family's "
                         "models: a reference must score the same tokens")
    log(f"reference model: {path}")
    return model


def extractions(model, what: str, extract: Callable[..., Any], members, nonmembers) -> dict[str, tuple]:
    """Each role's reference extractions on (members, non-members): one model, scored once, for every role."""
    on = (extract(model, members, f"{what}: members"), extract(model, nonmembers, f"{what}: non-members"))
    return dict.fromkeys(ROLES, on)
