"""The README's one-page method plugin works as printed: listed, validated, run and ranked."""

from __future__ import annotations

import re

from harness.cli import main
from tests.conftest import ROOT, quick_args


def readme_plugin() -> str:
    text = (ROOT / "README.md").read_text()
    [code] = re.findall(r"```python\n(# my_kd\.py\n.*?)```", text, flags=re.S)
    return code


def test_readme_method_plugin_runs_as_printed(quick_registry, tmp_path, capsys):
    (tmp_path / "my_kd.py").write_text(readme_plugin())
    quick_registry.write_text(quick_registry.read_text().replace("files = []", 'files = ["my_kd.py"]'))
    assert main(["--registry", str(quick_registry), "list"]) == 0
    listed = capsys.readouterr().out
    assert "my-reverse-kl" in listed and "--method-arg temperature: float = 1.0" in listed
    assert main(quick_args(quick_registry, "my-reverse-kl", "--method-arg", "temperature=2")) == 0
    assert main(["leaderboard"]) == 0
    assert "my-reverse-kl temperature=2.0" in capsys.readouterr().out
