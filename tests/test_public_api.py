"""One public API: a plugin imports only `from harness import ...`, and every exported name resolves."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import harness
from conftest import ROOT

PLUGIN_SOURCES = sorted([*(ROOT / "plugins").rglob("*.py"), *(ROOT / "examples").rglob("*.py")])


def harness_imports(path: Path) -> list[str]:
    """Every import of the harness in a file, as written: `harness.contract.specs`, `harness:KDMethod`."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.split(".")[0] == "harness"]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "harness":
            found += [node.module if node.module != "harness" else f"harness:{a.name}" for a in node.names]
    return found


def test_there_are_plugin_sources():
    assert len(PLUGIN_SOURCES) > 27 and any(p.name == "jeffreys_kd.py" for p in PLUGIN_SOURCES)


@pytest.mark.parametrize("path", PLUGIN_SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_plugins_import_only_the_public_api(path):
    imports = harness_imports(path)
    internal = [i for i in imports if not i.startswith("harness:")]
    assert not internal, f"{path.relative_to(ROOT)} imports internal modules {internal}: use `from harness import ...`"
    private = [i for i in imports if i.split(":")[1] not in harness.__all__]
    assert not private, f"{path.relative_to(ROOT)} imports names harness does not export: {private}"


@pytest.mark.parametrize("name", harness.__all__)
def test_every_exported_name_resolves(name):
    assert getattr(harness, name) is not None
    assert name in dir(harness)


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'KDMetod'"):
        harness.KDMetod  # noqa: B018
    with pytest.raises(ImportError):
        exec("from harness import KDMetod")


def test_the_exports_are_the_internal_objects():
    from harness.contract.divergences import forward_kl
    from harness.contract.hookspecs import hookimpl
    from harness.contract.specs import KDMethod

    assert harness.KDMethod is KDMethod and harness.hookimpl is hookimpl and harness.forward_kl is forward_kl


def test_importing_the_api_imports_no_torch():
    probe = ("import sys, harness\n"
             "from harness import hookimpl, KDMethod, ModelFamily, Dataset, Attack, Param, forward_kl, hub_family\n"
             "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.stdout.strip() == "False", out.stderr[-2000:]


def test_the_type_checking_block_names_every_export():
    """Editors and type checkers read the TYPE_CHECKING block, not `__getattr__`: every export is there,
    imported from the module `_EXPORTS` says defines it."""
    tree = ast.parse((ROOT / "harness" / "__init__.py").read_text())
    block = next(n for n in tree.body if isinstance(n, ast.If) and getattr(n.test, "id", None) == "TYPE_CHECKING")
    eager = {a.asname or a.name: node.module for node in ast.walk(block) if isinstance(node, ast.ImportFrom)
             for a in node.names}
    exported = {**harness._EXPORTS, **harness._MODULES}
    missing = sorted(set(exported) - set(eager))
    assert not missing, f"exported but not in the TYPE_CHECKING block: {missing}"
    wrong = sorted(n for n, module in harness._EXPORTS.items() if eager[n] != module)
    assert not wrong, f"imported in the TYPE_CHECKING block from another module than _EXPORTS says: {wrong}"
