"""Stand-ins for torch modules that import them on first use.

Plugins are imported to be listed (`harness list`, `--help`, registry checks), and torch costs
about a second to import. A plugin that writes `from harness.lazy import torch, F` keeps its
module-level code torch-free; the real import happens when a loss is first computed.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any


class LazyModule:
    def __init__(self, name: str) -> None:
        self._name = name

    def _module(self) -> ModuleType:
        return importlib.import_module(self._name)

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._module(), attr)

    def __repr__(self) -> str:
        return f"<lazy module {self._name}>"


torch = LazyModule("torch")
F = LazyModule("torch.nn.functional")
