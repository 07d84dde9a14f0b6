"""The package's layout is its architecture: imports flow one way, down the layers of docs/layout.md."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "harness"

# Lowest first. A module may import its own layer and those below it, never one above.
LAYERS = {
    "harness": 0, "harness.errors": 0, "harness.lazy": 0, "harness.units": 0,  # the version, user errors, lazy torch, units
    "harness.runtime": 1,
    "harness.contract": 2,
    "harness.config": 3,
    "harness.training": 4, "harness.measure": 4, "harness.store": 4,
    "harness.protocol": 5,
    "harness.leaderboard": 6,
    "harness.present": 7,
    "harness.cli": 8, "harness.__main__": 8,
}
SIBLINGS = {"harness.training", "harness.measure", "harness.store"}  # one layer, independent of each other


def layer_of(module: str) -> str:
    parts = module.split(".")
    for n in (2, 1):
        name = ".".join(parts[:n])
        if name in LAYERS:
            return name
    raise AssertionError(f"{module} is in no layer of tests/test_layout.py: add it")


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def imports(path: Path) -> list[tuple[int, str, list[str]]]:
    """(line, module, names) of every `harness` import in the file, at any depth."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "harness":
            found.append((node.lineno, node.module, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name, []) for a in node.names if a.name.split(".")[0] == "harness"]
    return found


def modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def test_every_module_has_a_layer():
    for path in modules():
        layer_of(module_name(path))


def test_imports_flow_one_way():
    wrong = []
    for path in modules():
        if path == PACKAGE / "__init__.py":
            continue  # the public API: the contract's names, re-exported lazily (`from harness import ...`)
        me = layer_of(module_name(path))
        for line, module, names in imports(path):
            targets = [module] if module != "harness" else [f"harness.{n}" if f"harness.{n}" in LAYERS else "harness"
                                                            for n in names]
            for target in targets:
                them = layer_of(target)
                upward = LAYERS[them] > LAYERS[me]
                sideways = me != them and {me, them} <= SIBLINGS
                if upward or sideways:
                    wrong.append(f"{path.relative_to(ROOT)}:{line} ({me}) imports {target} ({them})")
    assert not wrong, "\n".join(wrong)


def test_no_module_reaches_for_another_modules_private_names():
    reached = [f"{path.relative_to(ROOT)}:{line} imports {name} from {module}"
               for path in modules() for line, module, names in imports(path)
               for name in names if name.startswith("_") and not name.startswith("__")]
    assert not reached, "\n".join(reached)


def documented() -> set[str]:
    """The files docs/layout.md's tree lists under harness/, as paths inside it (`protocol/run.py`)."""
    tree = (ROOT / "docs" / "layout.md").read_text().split("```")[1]
    found, folder = set(), None
    for line in tree.splitlines():
        name = line.strip().split(" ")[0] if line.strip() else ""
        indent = len(line) - len(line.lstrip())
        if indent == 0:
            folder = "" if name == "harness/" else None
        elif folder is not None and indent == 2 and name.endswith("/"):
            folder = name
        elif folder is not None and name.endswith(".py"):
            found.add((folder if indent > 2 else "") + name)
    return found


def test_the_layout_page_describes_every_module():
    have = {str(p.relative_to(PACKAGE)) for p in modules() if p.name not in ("__init__.py", "__main__.py")}
    page = documented() - {"__init__.py"}
    assert not have - page, f"docs/layout.md does not describe {sorted(have - page)}"
    assert not page - have, f"docs/layout.md describes modules that do not exist: {sorted(page - have)}"


def test_the_leaderboard_and_the_app_never_load_a_model():
    """Continuations are made once, by the protocol, and stored: reading a board runs no model."""
    loaders = []
    for path in modules():
        if module_name(path).split(".")[1:2] in (["leaderboard"], ["present"]):
            names = {n.id for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.Name)}
            names |= {n.attr for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.Attribute)}
            loaders += [f"{path.relative_to(ROOT)}: {n}" for n in sorted(names) if n.startswith("AutoModel")]
    assert not loaders, loaders


def module_graph() -> dict[str, set[str]]:
    """Each module's harness imports, at any depth, resolved to modules (`from harness.store import read`
    is an edge to harness.store.read). The package's own lazy exports are left out: they are the public API."""
    known = {module_name(p) for p in modules()}
    graph: dict[str, set[str]] = {}
    for path in modules():
        me = module_name(path)
        if me == "harness":
            continue
        edges = graph.setdefault(me, set())
        for _, module, names in imports(path):
            for target in [f"{module}.{n}" if f"{module}.{n}" in known else module for n in names] or [module]:
                if target in known and target not in (me, "harness"):
                    edges.add(target)
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import circles in `graph`: each strongly connected set of two or more modules (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_circles_are_found():
    """The check can fail: a made-up circle is found, a chain is not."""
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert circles({"a": {"b"}, "b": set()}) == []


def test_no_import_circles():
    """No two modules import each other, directly or round a loop, even inside a function."""
    found = circles(module_graph())
    assert not found, "import circles: " + "; ".join(" <-> ".join(c) for c in found)
