"""The docs cannot drift from the code.

Every registered plugin is in docs/plugins.md with exactly its parameters and defaults, every
`harness ...` line of a shell block still parses, and every example plugin shown in the docs
registers and passes the test printed beside it.
"""

from __future__ import annotations

import importlib
import json
import re
import shlex
import sys
from pathlib import Path

import pytest

from harness.cli import build_parser
from harness.config import plugins, registry
from tests.conftest import ROOT

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
REFERENCE = ROOT / "docs" / "plugins.md"
SECTIONS = {"families": "Model families", "datasets": "Datasets", "methods": "KD methods", "attacks": "Membership attacks"}
FOUND = plugins.load(registry.load(ROOT / "registry.toml"))


def documented(text: str) -> dict[str, dict[str, set[str]]]:
    """{section: {plugin: {"name: type = default", ...}}}: each `### \\`name\\`` entry and its `- \\`...\\`` bullets."""
    found: dict[str, dict[str, set[str]]] = {}
    for section in re.split(r"(?m)^## ", text)[1:]:
        heading, _, body = section.partition("\n")
        entries = found.setdefault(heading.strip(), {})
        for entry in re.split(r"(?m)^### ", body)[1:]:
            title, _, rest = entry.partition("\n")
            name = re.fullmatch(r"`([^`]+)`", title.strip())
            if name:
                entries[name.group(1)] = set(re.findall(r"(?m)^- `([^`]+)`", rest))
    return found


def declared(params) -> set[str]:
    return {f"{p.name}: {p.type.__name__} = {p.default!r}" for p in params}


@pytest.mark.parametrize("kind", SECTIONS)
def test_every_registered_plugin_is_documented_with_its_parameters_and_defaults(kind):
    section = SECTIONS[kind]
    docs = documented(REFERENCE.read_text()).get(section, {})
    registered = getattr(FOUND, kind)
    assert registered, kind
    missing = sorted(set(registered) - set(docs))
    assert not missing, f"docs/plugins.md, section {section!r}: no `### \\`name\\`` entry for {missing}"
    stale = sorted(set(docs) - set(registered))
    assert not stale, f"docs/plugins.md, section {section!r}: documents {stale}, which no plugin registers"
    for name, item in registered.items():
        assert docs[name] == declared(item.params), (
            f"docs/plugins.md, `{name}`: documents {sorted(docs[name])}, registered {sorted(declared(item.params))}")


def harness_argv(line: str) -> list[str] | None:
    """The arguments of the `harness` command on a shell line, or None when it runs no harness command.

    `harness ...`, `VAR=value harness ...`, `python -m harness ...` and `accelerate launch ... -m
    harness ...` count, alone or after `&&`; comments are dropped.
    """
    try:
        words = shlex.split(line, comments=True)
    except ValueError:
        return None
    segments: list[list[str]] = [[]]
    for word in words:
        if word in ("&&", "||", ";", "|"):
            segments.append([])
        else:
            segments[-1].append(word)
    for segment in segments:
        for i, word in enumerate(segment):
            if word == "harness" and (all("=" in w for w in segment[:i]) or segment[i - 1] == "-m"):
                return segment[i + 1:]
    return None


def documented_commands() -> list[tuple[str, list[str]]]:
    """("FILE:LINE", argv) for each harness command in a bash block, and each `$ harness` line in any block."""
    commands = []
    for path in DOCS:
        inside, lang = False, ""
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if line.startswith("```"):
                inside, lang = not inside, line[3:].strip()
                continue
            text = line.strip()
            if not inside:
                continue
            if text.startswith("$ "):
                text = text[2:]
            elif lang not in ("bash", "sh", "shell", "console"):
                continue  # output, or the usage synopsis with its placeholders
            argv = harness_argv(text)
            if argv is not None:
                commands.append((f"{path.relative_to(ROOT)}:{number}", argv))
    return commands


COMMANDS = documented_commands()


def test_the_docs_show_commands():
    assert len(COMMANDS) >= 15 and {argv[0] for _, argv in COMMANDS} >= {"eval", "list", "leaderboard", "plan", "app"}


@pytest.mark.parametrize(("where", "argv"), COMMANDS, ids=[where for where, _ in COMMANDS])
def test_every_documented_command_parses(where, argv, capsys):
    try:
        build_parser().parse_args(argv)
    except SystemExit:
        pytest.fail(f"{where}: `harness {shlex.join(argv)}` no longer parses: {capsys.readouterr().err.strip()}")


def test_the_finder_sees_harness_commands_and_the_parser_refuses_a_stale_one():
    assert harness_argv("ACCELERATE_USE_CPU=1 accelerate launch --num_processes 2 -m harness eval --method x") == [
        "eval", "--method", "x"]
    assert harness_argv("pip install x && harness list  # every plugin") == ["list"]
    assert harness_argv("python -m pytest") is None
    with pytest.raises(SystemExit):
        build_parser().parse_args(["eval", "--method", "soft-kd", "--no-such-option"])


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_every_relative_link_reaches_its_file_and_heading():
    links = 0
    for path in DOCS:
        for target in re.findall(r"\]\(([^)\s]+)\)", path.read_text()):
            if "://" in target:
                continue
            links += 1
            file, _, anchor = target.partition("#")
            linked = (path.parent / file).resolve() if file else path
            assert linked.is_file() and linked.is_relative_to(ROOT), f"{path.relative_to(ROOT)}: {target} is not a file here"
            if anchor:
                headings = {slug(h) for h in re.findall(r"(?m)^#+ (.*)$", linked.read_text())}
                assert anchor in headings, f"{path.relative_to(ROOT)}: {target}: no such heading"
    assert links >= 10


def test_every_test_the_docs_cite_exists():
    cited = {c for path in DOCS for c in re.findall(r"(test_\w+\.py)::(test_\w+)", path.read_text())}
    assert len(cited) >= 20
    missing = [f"{file}::{name}" for file, name in sorted(cited)
               if not re.search(rf"(?m)^def {name}\(", (ROOT / "tests" / file).read_text())]
    assert not missing, f"the docs cite tests that do not exist: {missing}"


def examples() -> dict[str, str]:
    """Each example file shown in the docs: a python block whose first line is `# NAME.py`."""
    found: dict[str, str] = {}
    for path in DOCS:
        for name, code in re.findall(r"```python\n# (\w+\.py)\n(.*?)```", path.read_text(), flags=re.S):
            assert found.get(name, code) == code, f"{name} is shown twice, differently"
            found[name] = code
    return found


def test_every_example_plugin_registers_and_passes_its_test(tmp_path, monkeypatch):
    files = examples()
    plugin_files = sorted(f for f in files if not f.startswith("test_"))
    test_files = sorted(f for f in files if f.startswith("test_"))
    assert test_files == sorted(f"test_{f}" for f in plugin_files), "every example plugin comes with its test"
    for name, code in files.items():
        (tmp_path / name).write_text(code)
    path = tmp_path / "registry.toml"
    path.write_text((ROOT / "registry.toml").read_text().replace("files = []", f"files = {json.dumps(plugin_files)}"))
    found = plugins.load(registry.load(path))
    assert not found.skipped
    added = {(kind, name) for kind in SECTIONS for name in getattr(found, kind)} - {
        (kind, name) for kind in SECTIONS for name in getattr(FOUND, kind)}
    assert added == {("methods", "jeffreys-kd"), ("families", "tiny-llama"), ("datasets", "lottery"),
                     ("attacks", "surprise-gap")}

    monkeypatch.syspath_prepend(str(tmp_path))
    for name in files:  # the printed files, not an installed copy of the example package
        monkeypatch.delitem(sys.modules, Path(name).stem, raising=False)
    for name in test_files:
        module = importlib.import_module(Path(name).stem)
        tests = [f for n, f in vars(module).items() if n.startswith("test_") and callable(f)]
        assert tests, name
        for test in tests:
            test()
