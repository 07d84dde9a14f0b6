"""The README's one-page method plugin is the shipped example, and works as printed."""

from __future__ import annotations

import re

import pytest

from harness.cli import main
from tests.conftest import ROOT, quick_args

EXAMPLE = ROOT / "examples" / "jeffreys-kd" / "jeffreys_kd.py"


def readme_plugin() -> str:
    text = (ROOT / "README.md").read_text()
    [code] = re.findall(r"```python\n# jeffreys_kd\.py\n(.*?)```", text, flags=re.S)
    return code


def test_readme_shows_the_example_package_verbatim():
    assert readme_plugin() == EXAMPLE.read_text()
    assert len(readme_plugin().splitlines()) <= 35


@pytest.mark.slow
def test_readme_method_plugin_runs_as_printed(quick_registry, tmp_path, capsys):
    (tmp_path / "jeffreys_kd.py").write_text(readme_plugin())
    quick_registry.write_text(quick_registry.read_text().replace("files = []", 'files = ["jeffreys_kd.py"]'))
    assert main(["--registry", str(quick_registry), "list"]) == 0
    listed = capsys.readouterr().out
    assert "jeffreys-kd" in listed and "--method-arg temperature: float = 1.0" in listed
    assert main(quick_args(quick_registry, "jeffreys-kd", "--method-arg", "temperature=2")) == 0
    assert main(["leaderboard"]) == 0
    assert "jeffreys-kd temperature=2.0" in capsys.readouterr().out
