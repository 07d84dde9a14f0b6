"""What each stage's artifact depends on: its cache key's fields, built here and nowhere else.

A cached artifact is reused only when every input it was made from is the same, so each dict
below names all of them: the harness version, the precision training ran at, and the family's
arguments included. Changing a field here invalidates that stage's cache, which is the point.
"""

from __future__ import annotations

from typing import Any

import harness
from harness.protocol import corpus, provenance
from harness.protocol.request import Resolved
from harness.runtime.precision import precision

PRETRAIN_SEED = 0  # one pretrained checkpoint per size, whatever the run's seed


def tokenizer(setup: Resolved, dataset_hash: str) -> dict[str, Any]:
    """A released family's tokenizer is keyed by the data it is checked on; a new one by its corpus."""
    source = ({"dataset_hash": dataset_hash} if setup.family.released
              else {"corpus": corpus.NAME, "docs": setup.preset.pretrain_docs})
    return {"stage": "tokenizer", "family": setup.family.name, **source, "harness": harness.__version__,
            **setup.family_deps()}


def pretrain(setup: Resolved, size: str, tokenizer_key: str, domain: str | None = None) -> dict[str, Any]:
    """A start: the generic corpus, and `domain` (the hash of the dataset's domain texts) where the
    preset pretrains on text of the dataset's kind too."""
    p = setup.preset
    return {"stage": "pretrain", "family": setup.family.name, "size": size, "tokenizer": tokenizer_key,
            "corpus": corpus.NAME, "docs": p.pretrain_docs, "example_len": p.example_len,
            **({"domain": domain} if domain else {}),
            "training": p.pretrain.key(), "seed": PRETRAIN_SEED, "precision": precision(),
            "harness": harness.__version__, **setup.family_deps()}


def model(setup: Resolved, role: str, size: str, tokenizer_key: str, rows, recipe: dict[str, Any],
          start: str | None) -> dict[str, Any]:
    """A fine-tuned role: its start (the pretraining stage's key; none for released weights), its
    training rows in order, the recipe (the student's: its method, arguments and teacher)."""
    cfg = setup.preset.training(role, setup.method)
    return {"stage": "model", "family": setup.family.name, "size": size, "tokenizer": tokenizer_key,
            "data": provenance.tensor_hash(rows), "training": cfg.key(),
            "seed": setup.req.seed, "recipe": recipe, **({"start": start} if start else {}),
            "precision": precision(), "harness": harness.__version__, **setup.family_deps()}


def teacher_data(setup: Resolved, teacher_key: str, members_ids) -> dict[str, Any]:
    """A data-level method's training texts: made once per teacher, members and arguments."""
    return {"stage": "teacher-data", "teacher": teacher_key, "data": provenance.tensor_hash(members_ids),
            "method": setup.method.name, "args": setup.method_args, "prefix_len": setup.preset.prefix_len,
            "harness": harness.__version__}
