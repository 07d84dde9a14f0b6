"""The plugin manager: built-ins, file plugins, installed (entry-point) plugins, and their mistakes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import ROOT
from harness.cli import main
from harness.config import plugins, registry
from harness.errors import UsageError

BUILTIN_MODULES = (
    "harness_plugins.families.tiny",
    "harness_plugins.datasets.synthetic_pii",
    "harness_plugins.datasets.text_files",
    "harness_plugins.methods.soft_kd",
    "harness_plugins.methods.hard_kd",
)

HEADER = """\
import torch
from harness.contract.hookspecs import hookimpl
from harness.contract.specs import Dataset, KDMethod, ModelFamily, Param, Split


def loss(batch, args):
    return torch.zeros(())

"""


def method_plugin(name: str, aliases: tuple[str, ...] = ()) -> str:
    return HEADER + textwrap.dedent(f"""\
        @hookimpl
        def register_kd_methods(register):
            register(KDMethod(name={name!r}, description="test", teacher_access="logits", loss=loss,
                              aliases={aliases!r}))
        """)


def write_plugin(tmp_path: Path, filename: str, source: str) -> Path:
    path = tmp_path / filename
    path.write_text(source)
    return path


def write_registry(tmp_path: Path, modules=(), files=(), disabled=(), entry_points=False) -> Path:
    """A registry.toml with only these plugins: every built-in not in `modules` disabled (JSON string
    lists are valid TOML arrays)."""
    disabled = [*(m for m in plugins.DEFAULT_PLUGINS if m not in modules), *disabled]
    path = tmp_path / "registry.toml"
    path.write_text(
        "[plugins]\n"
        f"modules = {json.dumps(list(modules))}\n"
        f"files = {json.dumps(list(files))}\n"
        f"disabled = {json.dumps(disabled)}\n"
        f"entry_points = {'true' if entry_points else 'false'}\n"
    )
    return path


def load(path: Path):
    return plugins.load(registry.load(path))


def load_error(path: Path) -> str:
    with pytest.raises(UsageError) as err:
        load(path)
    message = str(err.value)
    assert "\n" not in message
    return message


# ---------------------------------------------------------------- built-ins


def test_builtins_are_registered_in_code_like_any_plugin():
    assert len(plugins.DEFAULT_PLUGINS) == len(set(plugins.DEFAULT_PLUGINS))  # each listed once
    shipped = {f"harness_plugins.{f.parent.name}.{f.stem}" for f in (ROOT / "plugins").glob("*/*.py")
               if f.stem != "__init__"}
    assert set(plugins.DEFAULT_PLUGINS) == shipped  # every built-in plugin is active, and nothing else
    assert registry.load(ROOT / "registry.toml").modules == ()  # the project's registry lists none of them
    found = load(ROOT / "registry.toml")
    assert set(found.families) == {"tiny", "pythia", "olmo2", "qwen3", "gpt2", "opt"}
    assert set(found.datasets) == {"synthetic-pii", "text-files", "wikitext", "fineweb", "nemotron-cc", "dolly"}
    assert {"soft-kd", "hard-kd"} <= set(found.methods)
    assert found.origin[("methods", "soft-kd")] == "harness_plugins.methods.soft_kd"
    assert found.origin[("methods", "hard-kd")] == "harness_plugins.methods.hard_kd"
    assert found.origin[("families", "tiny")] == "harness_plugins.families.tiny"
    assert found.origin[("datasets", "text-files")] == "harness_plugins.datasets.text_files"


def test_builtins_live_in_plugins_dir():
    import harness_plugins.methods.soft_kd as soft_kd

    assert Path(soft_kd.__file__).resolve() == ROOT / "plugins" / "methods" / "soft_kd.py"


def test_a_registry_naming_only_a_plugin_file_keeps_every_builtin(tmp_path):
    write_plugin(tmp_path, "my_kd.py", method_plugin("my-kd"))
    (tmp_path / "registry.toml").write_text('[plugins]\nfiles = ["my_kd.py"]\n')
    found = load(tmp_path / "registry.toml")
    everything = load(ROOT / "registry.toml")
    assert set(found.methods) == set(everything.methods) | {"my-kd"}
    assert set(found.families) == set(everything.families) and set(found.datasets) == set(everything.datasets)
    assert set(found.attacks) == set(everything.attacks) and len(found.attacks) >= 4
    assert found.origin[("methods", "soft-kd")] == "harness_plugins.methods.soft_kd"


def test_a_registry_naming_only_a_plugin_file_keeps_the_defaults_and_presets(tmp_path):
    (tmp_path / "registry.toml").write_text('[plugins]\nfiles = ["my_kd.py"]\n')
    mine, shipped = registry.load(tmp_path / "registry.toml"), registry.load()
    assert mine.defaults == shipped.defaults and mine.presets == shipped.presets


def test_disabling_every_builtin_leaves_none(tmp_path):
    found = load(write_registry(tmp_path))
    assert not found.families and not found.datasets and not found.methods


def test_aliases_resolve_to_the_method():
    found = load(ROOT / "registry.toml")
    assert found.method("seqkd") is found.methods["hard-kd"]
    assert found.aliases == {"seqkd": "hard-kd"}
    with pytest.raises(UsageError) as err:
        found.method("seqk")
    assert "did you mean 'seqkd'?" in str(err.value)
    assert "imitkd, jsd, minillm, reverse-kl, rs-kd, seqkd, skew-kl" in str(err.value)


def test_disabled_module_is_skipped(tmp_path):
    reg = write_registry(tmp_path, modules=BUILTIN_MODULES, disabled=["harness_plugins.methods.soft_kd"])
    found = load(reg)
    assert "soft-kd" not in found.methods and "hard-kd" in found.methods
    with pytest.raises(UsageError) as err:
        found.method("soft-kd")
    assert "unknown method 'soft-kd'" in str(err.value) and "choose from: hard-kd, seqkd" in str(err.value)


def test_disabled_file_is_skipped_by_name_or_path(tmp_path):
    a = write_plugin(tmp_path, "a.py", method_plugin("a-kd"))
    b = write_plugin(tmp_path, "b.py", method_plugin("b-kd"))
    assert set(load(write_registry(tmp_path, files=["a.py", "b.py"], disabled=["a.py"])).methods) == {"b-kd"}
    assert set(load(write_registry(tmp_path, files=["a.py", "b.py"], disabled=[str(b)])).methods) == {"a-kd"}
    assert a.is_file()


def test_files_are_relative_to_the_registry_not_the_cwd(tmp_path, monkeypatch):
    (tmp_path / "conf").mkdir()
    (tmp_path / "elsewhere").mkdir()
    write_plugin(tmp_path, "mine.py", method_plugin("mine-kd"))
    reg = write_registry(tmp_path / "conf", files=["../mine.py"])
    monkeypatch.chdir(tmp_path / "elsewhere")
    found = load(reg)
    assert "mine-kd" in found.methods
    assert found.origin[("methods", "mine-kd")] == str((tmp_path / "mine.py").resolve())


def test_missing_plugin_file_names_the_resolved_path(tmp_path):
    (tmp_path / "conf").mkdir()
    message = load_error(write_registry(tmp_path / "conf", files=["gone.py"]))
    assert message == f"plugin file not found: {(tmp_path / 'conf' / 'gone.py').resolve()}"


def test_module_listed_twice_registers_once(tmp_path):
    found = load(write_registry(tmp_path, modules=["harness_plugins.methods.hard_kd"] * 2, files=[]))
    assert set(found.methods) == {"hard-kd"}


def test_file_listed_twice_registers_once(tmp_path):
    write_plugin(tmp_path, "a.py", method_plugin("a-kd"))
    assert set(load(write_registry(tmp_path, files=["a.py", "./a.py"])).methods) == {"a-kd"}


# ---------------------------------------------------------------- plugin mistakes


def test_duplicate_names_across_two_plugins_name_both(tmp_path):
    a = write_plugin(tmp_path, "a.py", method_plugin("dup-kd"))
    b = write_plugin(tmp_path, "b.py", method_plugin("dup-kd"))
    message = load_error(write_registry(tmp_path, files=["a.py", "b.py"]))
    assert "'dup-kd' is registered twice" in message
    assert str(a.resolve()) in message and str(b.resolve()) in message


def test_duplicate_of_a_builtin_names_the_builtin(tmp_path):
    mine = write_plugin(tmp_path, "mine.py", method_plugin("hard-kd"))
    message = load_error(write_registry(tmp_path, modules=["harness_plugins.methods.hard_kd"], files=["mine.py"]))
    assert "'hard-kd' is registered twice" in message
    assert "harness_plugins.methods.hard_kd" in message and str(mine.resolve()) in message


def test_a_name_that_clashes_with_an_alias_names_both(tmp_path):
    mine = write_plugin(tmp_path, "mine.py", method_plugin("seqkd"))
    message = load_error(write_registry(tmp_path, modules=["harness_plugins.methods.hard_kd"], files=["mine.py"]))
    assert "'seqkd' is registered twice" in message
    assert "harness_plugins.methods.hard_kd" in message and str(mine.resolve()) in message


def test_an_alias_that_clashes_with_a_name_names_both(tmp_path):
    mine = write_plugin(tmp_path, "mine.py", method_plugin("other-kd", aliases=("soft-kd",)))
    message = load_error(write_registry(tmp_path, modules=["harness_plugins.methods.soft_kd"], files=["mine.py"]))
    assert "'soft-kd' is registered twice" in message
    assert "harness_plugins.methods.soft_kd" in message and str(mine.resolve()) in message


WITH_BUILTINS = {"modules": BUILTIN_MODULES}


def skipped(tmp_path, capsys, source: str, filename: str = "boom.py"):
    """Load the built-ins plus a broken plugin file: returns what loaded, the plugin path, the warning."""
    path = write_plugin(tmp_path, filename, source)
    found = load(write_registry(tmp_path, files=[filename], **WITH_BUILTINS))
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    return found, str(path.resolve()), err.rstrip("\n")


def test_a_hook_that_raises_skips_its_plugin_with_a_warning_and_the_others_work(tmp_path, capsys):
    found, plugin, warning = skipped(tmp_path, capsys, HEADER + textwrap.dedent("""\
        @hookimpl
        def register_datasets(register):
            raise RuntimeError("no corpus here")
        """))
    assert warning == f"harness: warning: skipping plugin {plugin!r}: register_datasets raised RuntimeError: no corpus here"
    assert set(found.methods) == {"soft-kd", "hard-kd"} and set(found.datasets) == {"synthetic-pii", "text-files"}
    assert found.method("seqkd").name == "hard-kd" and found.family("tiny").name == "tiny"
    with pytest.raises(UsageError) as err:
        found.dataset("wiki")
    assert str(err.value) == ("unknown dataset 'wiki'; choose from: synthetic-pii, text-files; "
                              f"plugin {plugin!r} was skipped (register_datasets raised RuntimeError: no corpus here)")


def test_what_a_skipped_plugin_registered_is_an_error_naming_it(tmp_path, capsys):
    found, plugin, warning = skipped(tmp_path, capsys, HEADER + textwrap.dedent("""\
        @hookimpl
        def register_kd_methods(register):
            register(KDMethod(name="half-kd", description="", teacher_access="logits", loss=loss, aliases=("hk",)))
            raise KeyError("config")

        @hookimpl
        def register_model_families(register):
            register(ModelFamily("fam", "", ("a", "b"), "a", "b", tokenizer=len, model=len))
        """))
    assert "register_kd_methods raised KeyError: 'config'" in warning
    # skipped whole: what it registered in its other hook is gone too
    assert "half-kd" not in found.methods and "fam" not in found.families
    for lookup, name, kind in [(found.method, "half-kd", "method"), (found.method, "hk", "method"),
                               (found.family, "fam", "model family")]:
        with pytest.raises(UsageError) as err:
            lookup(name)
        assert str(err.value) == (f"{kind} {name!r} comes from plugin {plugin!r}, which was skipped: "
                                  "register_kd_methods raised KeyError: 'config'")


def test_an_invalid_kd_method_skips_its_plugin(tmp_path, capsys):
    found, plugin, warning = skipped(tmp_path, capsys, HEADER + textwrap.dedent("""\
        @hookimpl
        def register_kd_methods(register):
            register(KDMethod(name="both", description="", teacher_access="logits", loss=loss, make_data=loss))
        """), "both.py")
    assert plugin in warning and "register_kd_methods raised ValueError" in warning
    assert "must give exactly one of loss, make_data or step" in warning
    assert set(found.methods) == {"soft-kd", "hard-kd"}


@pytest.mark.parametrize(("hook", "thing", "kind", "registered"), [
    ("register_kd_methods", 'Dataset("x", "", "", load=lambda a: None)', "KD method", "Dataset"),
    ("register_datasets", 'KDMethod("x", "", "logits", loss=loss)', "dataset", "KDMethod"),
    ("register_model_families", '"tiny"', "model family", "str"),
])
def test_registering_the_wrong_type_skips_the_plugin_naming_it(tmp_path, capsys, hook, thing, kind, registered):
    found, plugin, warning = skipped(tmp_path, capsys, HEADER + f"@hookimpl\ndef {hook}(register):\n    register({thing})\n",
                                     "wrong.py")
    assert warning == f"harness: warning: skipping plugin {plugin!r}: {hook} registered a {registered} as a {kind}"
    assert found.family("tiny").name == "tiny"


RAISING_METHODS = HEADER + textwrap.dedent("""\
    @hookimpl
    def register_kd_methods(register):
        register(KDMethod(name="my-kd", description="", teacher_access="logits", loss=loss))
        raise RuntimeError("the GPU extension is missing")
    """)


def test_list_with_a_raising_plugin_warns_and_lists_the_rest(tmp_path, capsys):
    write_plugin(tmp_path, "boom.py", RAISING_METHODS)
    assert main(["--registry", str(write_registry(tmp_path, files=["boom.py"], **WITH_BUILTINS)), "list"]) == 0
    out, err = capsys.readouterr()
    assert err.count("\n") == 1 and "boom.py" in err and "the GPU extension is missing" in err
    assert "soft-kd" in out and "hard-kd" in out and "my-kd" not in out


def test_eval_of_a_method_from_a_raising_plugin_is_a_clear_error(tmp_path, capsys):
    path = write_plugin(tmp_path, "boom.py", RAISING_METHODS)
    reg = tmp_path / "registry.toml"
    reg.write_text((ROOT / "registry.toml").read_text().replace("files = []", 'files = ["boom.py"]'))
    assert main(["--registry", str(reg), "eval", "--method", "my-kd"]) == 2
    out, err = capsys.readouterr()
    warning, error = err.splitlines()
    assert out == "" and "warning: skipping plugin" in warning
    assert error == (f"harness eval: error: method 'my-kd' comes from plugin {str(path.resolve())!r}, which was "
                     "skipped: register_kd_methods raised RuntimeError: the GPU extension is missing")


def test_a_misspelt_hook_is_an_error_not_silence(tmp_path):
    path = write_plugin(tmp_path, "typo.py", HEADER + textwrap.dedent("""\
        @hookimpl
        def register_kd_method(register):
            register(KDMethod("typo-kd", "", "logits", loss=loss))
        """))
    message = load_error(write_registry(tmp_path, files=["typo.py"]))
    assert str(path.resolve()) in message and "'register_kd_method'" in message
    assert "did you mean 'register_kd_methods'?" in message


def test_a_hook_with_wrong_arguments_names_the_plugin(tmp_path):
    path = write_plugin(tmp_path, "args.py", HEADER + "@hookimpl\ndef register_kd_methods(registry):\n    pass\n")
    message = load_error(write_registry(tmp_path, files=["args.py"]))
    assert str(path.resolve()) in message and "registry" in message


def test_a_plugin_module_that_does_not_exist(tmp_path):
    message = load_error(write_registry(tmp_path, modules=["harness_plugins.methods.nope"]))
    assert message.startswith("plugin 'harness_plugins.methods.nope' failed to import: ModuleNotFoundError")


def test_a_plugin_file_that_fails_to_import_names_plugin_and_cause(tmp_path):
    path = write_plugin(tmp_path, "broken.py", "import json\nraise ImportError('needs libfoo >= 2')\n")
    message = load_error(write_registry(tmp_path, files=["broken.py"]))
    assert message == f"plugin {str(path.resolve())!r} failed to import: ImportError: needs libfoo >= 2"


def test_a_plugin_file_with_a_syntax_error(tmp_path):
    path = write_plugin(tmp_path, "syntax.py", "def oops(:\n")
    message = load_error(write_registry(tmp_path, files=["syntax.py"]))
    assert str(path.resolve()) in message and "SyntaxError" in message


# ---------------------------------------------------------------- harness list


def test_list_prints_every_builtin_with_its_parameters(capsys):
    assert main(["--registry", str(ROOT / "registry.toml"), "list"]) == 0
    out = capsys.readouterr().out
    found = load(ROOT / "registry.toml")
    assert f"registry: {ROOT / 'registry.toml'}" in out
    for family in found.families.values():
        assert f"  {family.name} " in out and f"from plugin {found.origin[('families', family.name)]}" in out
        for p in family.params:
            assert f"--family-arg {p.describe()}" in out
    for dataset in found.datasets.values():
        assert f"  {dataset.name} " in out and f"from plugin {found.origin[('datasets', dataset.name)]}" in out
        assert dataset.params
        for p in dataset.params:
            assert f"--dataset-arg {p.describe()}" in out
    for method in found.methods.values():
        assert f"  {method.name} " in out and f"from plugin {found.origin[('methods', method.name)]}" in out
        assert f"teacher access: {method.teacher_access}" in out
        for p in method.params:
            assert f"--method-arg {p.describe()}" in out
    assert "--method-arg temperature: float = 2.0" in out
    assert "(alias seqkd)" in out
    assert ("\nPresets: tiny, tiny-public, tiny-once, tiny-studies, pythia, olmo2, qwen3, gpt2, opt, small\n"
            in out)


def test_list_names_the_published_boards_and_lists_a_broken_one_with_why(tmp_path, capsys):
    boards = tmp_path / "boards"
    boards.mkdir()
    shipped = Path(__file__).resolve().parents[1] / "leaderboards"
    for name in ("default.toml", "default.duckdb"):
        shutil.copy(shipped / name, boards / name)
    (boards / "fresh.toml").write_text((shipped / "default.toml").read_text().replace('title = "', 'title = "Fresh: '))
    (boards / "broken.toml").write_text("family = 'tiny'\n")
    assert main(["--leaderboards", str(boards), "list"]) == 0
    listed = capsys.readouterr().out.split("\nPublished boards (leaderboards: ")[1].splitlines()
    assert listed[0].startswith(f"{boards} (from --leaderboards)")
    why = f"cannot be read: {boards / 'broken.toml'}: missing dataset, preset, methods"
    assert listed[1].split(None, 1) == ["broken", why]
    assert listed[2].split(None, 1)[0] == "default" and "[no snapshot" not in listed[2]
    assert listed[3].strip() == "preset tiny, 22 methods x 3 seeds"
    assert listed[4].endswith("[no snapshot yet: harness leaderboard publish fresh]") and "Fresh: " in listed[4]


def test_list_uses_harness_registry_env(tmp_path, monkeypatch, capsys):
    write_plugin(tmp_path, "mine.py", method_plugin("mine-kd"))
    monkeypatch.setenv("HARNESS_REGISTRY", str(write_registry(tmp_path, files=["mine.py"])))
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "mine-kd" in out and "soft-kd" not in out
    assert f"from plugin {(tmp_path / 'mine.py').resolve()}" in out


def test_list_with_a_broken_plugin_is_one_line_and_status_2(tmp_path, capsys):
    write_plugin(tmp_path, "broken.py", "raise ImportError('needs libfoo')\n")
    assert main(["--registry", str(write_registry(tmp_path, files=["broken.py"])), "list"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and "broken.py" in captured.err and "needs libfoo" in captured.err


# ---------------------------------------------------------------- installed plugins (entry points)

EXAMPLE = ROOT / "examples" / "jeffreys-kd"


@pytest.fixture(scope="module")
def installed_example(tmp_path_factory) -> Path:
    """The example plugin package, pip-installed into a directory of its own (a copy is built, so
    the source tree gets no build/ or egg-info)."""
    pytest.importorskip("setuptools", reason="--no-build-isolation needs setuptools (the `test` extra)")
    work = tmp_path_factory.mktemp("jeffreys_kd")
    source = shutil.copytree(EXAMPLE, work / "src")
    target = work / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index", "--quiet",
         "--disable-pip-version-check", "--target", str(target), str(source)],
        check=True, capture_output=True, text=True, timeout=120,
    )
    assert (target / "jeffreys_kd.py").is_file()
    return target


def harness_with(site: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], env=env, capture_output=True, text=True,
                          timeout=timeout, cwd=site)


def test_installed_plugin_is_picked_up_through_its_entry_point(installed_example):
    result = harness_with(installed_example, "--registry", str(ROOT / "registry.toml"), "list")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    block = out[out.index("  jeffreys-kd "):]
    assert "Jeffreys divergence" in block.splitlines()[0]
    assert "teacher access: logits; Jeffreys, 1946; from plugin jeffreys_kd" in block
    assert "--method-arg temperature: float = 1.0 (0.05 <= temperature <= 100.0)" in block
    assert "  soft-kd " in out and "  hard-kd " in out  # the built-ins are still there


def test_installed_plugin_is_usable_by_the_protocol(installed_example):
    code = textwrap.dedent(f"""\
        import torch
        from harness.config import plugins, registry
        from harness.contract.specs import LogitBatch, resolve_params
        found = plugins.load(registry.load({str(ROOT / 'registry.toml')!r}))
        m = found.method("jeffreys-kd")
        args = resolve_params(m.params, {{"temperature": "2"}}, "method jeffreys-kd")
        torch.manual_seed(0)
        s = torch.randn(2, 3, 11, requires_grad=True)
        t = torch.randn(2, 3, 11)
        labels = torch.zeros(2, 3, dtype=torch.long)
        loss = m.loss(LogitBatch(s, t, labels), args)
        loss.backward()
        same = m.loss(LogitBatch(t.clone(), t, labels), args)
        print(found.origin[("methods", "jeffreys-kd")], args["temperature"], float(loss) > 0,
              float(s.grad.abs().sum()) > 0, abs(float(same)) < 1e-6)
        """)
    env = {**os.environ, "PYTHONPATH": str(installed_example)}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["jeffreys_kd", "2.0", "True", "True", "True"]


def test_disabled_entry_point_is_skipped(installed_example, tmp_path):
    text = (ROOT / "registry.toml").read_text().replace("disabled = []", 'disabled = ["jeffreys_kd"]')
    assert 'disabled = ["jeffreys_kd"]' in text
    reg = tmp_path / "registry.toml"
    reg.write_text(text)
    result = harness_with(installed_example, "--registry", str(reg), "list")
    assert result.returncode == 0, result.stderr
    assert "jeffreys-kd" not in result.stdout and "soft-kd" in result.stdout


def test_entry_points_false_skips_installed_plugins(installed_example, tmp_path):
    text = (ROOT / "registry.toml").read_text().replace("entry_points = true", "entry_points = false")
    reg = tmp_path / "registry.toml"
    reg.write_text(text)
    result = harness_with(installed_example, "--registry", str(reg), "list")
    assert result.returncode == 0, result.stderr
    assert "jeffreys-kd" not in result.stdout and "hard-kd" in result.stdout


def test_installed_plugin_also_listed_as_a_module_registers_once(installed_example, tmp_path):
    text = (ROOT / "registry.toml").read_text().replace(
        '"harness_plugins.methods.hard_kd",', '"harness_plugins.methods.hard_kd",\n    "jeffreys_kd",')
    reg = tmp_path / "registry.toml"
    reg.write_text(text)
    result = harness_with(installed_example, "--registry", str(reg), "list")
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("  jeffreys-kd ") == 1
    assert "from plugin jeffreys_kd" in result.stdout


@pytest.mark.slow
def test_installed_plugin_runs_through_the_protocol_and_ranks(installed_example, quick_registry, tmp_path):
    """What the README promises a contributor: pip install, `harness eval --method`, the leaderboard."""
    from conftest import quick_args

    result = harness_with(installed_example, *quick_args(quick_registry, "jeffreys-kd", "--dataset-arg",
                                                         "n_members=24", "--dataset-arg", "n_nonmembers=8"),
                          timeout=540)
    assert result.returncode == 0, result.stderr
    assert "tiny / synthetic-pii / jeffreys-kd (seed 0)" in result.stdout
    board = harness_with(installed_example, "--registry", str(quick_registry), "leaderboard")
    assert board.returncode == 0, board.stderr
    [row] = [line for line in board.stdout.splitlines() if " jeffreys-kd " in line]
    rank, interval, name, access = row.split()[:4]
    assert (name, access) == ("jeffreys-kd", "logits") and interval in ("-", "1")
    # ranked, or (a 24-member quick run may miss the utility band) listed after the baseline with the reason
    assert rank == "1" or (rank == "-" and "perplexity" in row), row
