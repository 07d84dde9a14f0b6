"""Measure how much knowledge-distilled language models memorize their training data.

This module is the public API: everything a plugin may use, and the entry point for scripts, is
importable from `harness` itself::

    from harness import hookimpl, KDMethod, LogitBatch, Param, forward_kl
    harness.evaluate(harness.EvalRequest(method="soft-kd"))  # a run, or the stored one that answers it

What is not listed in `__all__` is internal and may change. The names are resolved on first use
(a module-level `__getattr__`, as lm-evaluation-harness does), so `import harness` stays cheap:
`harness list` and `--help` import no torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> the internal module that defines it
_EXPORTS: dict[str, str] = {
    # the hook marker
    "hookimpl": "harness.contract.hookspecs",
    # the contract: what a plugin registers, and its parts
    "Param": "harness.contract.specs",
    "KDMethod": "harness.contract.specs",
    "ModelFamily": "harness.contract.specs",
    "Dataset": "harness.contract.specs",
    "Attack": "harness.contract.specs",
    "Evidence": "harness.contract.specs",
    "Example": "harness.contract.specs",
    "Split": "harness.contract.specs",
    "LogitBatch": "harness.contract.specs",
    "TopKBatch": "harness.contract.specs",
    "TeacherData": "harness.contract.specs",
    "Step": "harness.contract.specs",
    "Outputs": "harness.contract.specs",
    "Sampled": "harness.contract.specs",
    "TEACHER_ACCESS": "harness.contract.specs",
    "DP_PARAMS": "harness.contract.specs",
    "uniform_layer_map": "harness.contract.specs",
    # token-level divergences for KD methods
    "forward_kl": "harness.contract.divergences",
    "reverse_kl": "harness.contract.divergences",
    "generalized_jsd": "harness.contract.divergences",
    "total_variation": "harness.contract.divergences",
    "skew_kl": "harness.contract.divergences",
    "skew_reverse_kl": "harness.contract.divergences",
    "top_k_kl": "harness.contract.divergences",
    "masked_mean": "harness.contract.divergences",
    # model families from the Hugging Face hub
    "hub_family": "harness.contract.families",
    "Size": "harness.contract.families",
    "Arch": "harness.contract.families",
    # datasets: reading records from local files or the hub
    "expand_glob": "harness.contract.sources",
    "quiet_datasets": "harness.contract.sources",
    "root_cause": "harness.contract.sources",
    # torch and torch.nn.functional, imported on first use
    "torch": "harness.lazy",
    "F": "harness.lazy",
    # errors a plugin raises for bad input: one line on stderr, exit status 2; and a run that failed
    # (what `evaluate` raises once the run is marked failed)
    "UsageError": "harness.errors",
    "RunFailed": "harness.errors",
    # the library's entry point: run a request, or read the stored run that answers it
    "evaluate": "harness.protocol.evaluate",
    "Evaluation": "harness.protocol.evaluate",
    "EvalRequest": "harness.protocol.request",
}
# public submodules, used as namespaces (`sources.read_hub(...)`)
_MODULES = {"sources": "harness.contract.sources"}

__all__ = ["__version__", *_EXPORTS, *_MODULES]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
    elif name in _MODULES:
        value = importlib.import_module(_MODULES[name])
    else:
        raise AttributeError(f"module 'harness' has no attribute {name!r}")
    globals()[name] = value  # resolved once
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


if TYPE_CHECKING:  # for type checkers and editors: the same names, eagerly
    from harness.contract import sources  # noqa: F401
    from harness.contract.divergences import (  # noqa: F401
        forward_kl,
        generalized_jsd,
        masked_mean,
        reverse_kl,
        skew_kl,
        skew_reverse_kl,
        top_k_kl,
        total_variation,
    )
    from harness.contract.families import Arch, Size, hub_family  # noqa: F401
    from harness.contract.hookspecs import hookimpl  # noqa: F401
    from harness.contract.sources import expand_glob, quiet_datasets, root_cause  # noqa: F401
    from harness.contract.specs import (  # noqa: F401
        DP_PARAMS,
        TEACHER_ACCESS,
        Attack,
        Dataset,
        Evidence,
        Example,
        KDMethod,
        LogitBatch,
        ModelFamily,
        Outputs,
        Param,
        Sampled,
        Split,
        Step,
        TeacherData,
        TopKBatch,
        uniform_layer_map,
    )
    from harness.errors import RunFailed, UsageError  # noqa: F401
    from harness.lazy import F, torch  # noqa: F401
    from harness.protocol.evaluate import Evaluation, evaluate  # noqa: F401
    from harness.protocol.request import EvalRequest  # noqa: F401
