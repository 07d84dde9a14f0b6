"""`harness list` and `--help` load no heavy library: they answer before torch could even import."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("torch", "transformers", "streamlit", "pandas", "sklearn", "datasets", "duckdb")

PROBE = """
import sys
from harness.cli import main
try:
    main({argv!r})
except SystemExit:
    pass
print("LOADED", *[m for m in {heavy!r} if m in sys.modules], file=sys.stderr)
"""


@pytest.mark.parametrize("argv", [["list"], ["--help"], ["eval", "--help"]])
def test_listing_and_help_import_no_heavy_library(argv):
    out = subprocess.run([sys.executable, "-c", PROBE.format(argv=argv, heavy=HEAVY)], capture_output=True,
                         text=True, timeout=120)
    loaded = [line for line in out.stderr.splitlines() if line.startswith("LOADED")]
    assert loaded == ["LOADED"], out.stderr[-2000:]
    assert out.stdout  # it did answer


def test_lazy_torch_is_the_real_module_on_first_use():
    from harness.lazy import F, torch

    assert torch.tensor([1.0, 3.0]).mean().item() == 2.0
    assert F.softmax(torch.zeros(2), dim=0).tolist() == [0.5, 0.5]
    assert "lazy module torch" in repr(torch)
