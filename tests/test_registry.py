"""registry.toml over the package's defaults.toml: the shipped defaults, preset inheritance, every check
on a malformed file, and where it is found."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import ROOT
from harness.config import registry
from harness.config.registry import PROTOCOL_PARAMS, ROLES, TRAIN_PARAMS
from harness.errors import UsageError


def write(tmp_path: Path, text: str, name: str = "registry.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def error_of(path: Path) -> str:
    with pytest.raises(UsageError) as err:
        registry.load(path)
    message = str(err.value)
    assert "\n" not in message
    return message


# ---------------------------------------------------------------- the project's file


def test_project_registry_parses_with_valid_presets():
    reg = registry.load(ROOT / "registry.toml")
    assert reg.path == ROOT / "registry.toml"
    assert reg.modules == ()  # the built-ins are registered in code (harness.config.plugins.DEFAULT_PLUGINS)
    assert reg.entry_points is True and reg.disabled == frozenset() and reg.files == ()
    assert reg.defaults == {"family": "tiny", "dataset": "synthetic-pii"}
    assert (reg.family, reg.dataset) == ("tiny", "synthetic-pii")
    assert set(reg.presets) == {"tiny", "tiny-public", "tiny-once", "tiny-studies", "pythia", "olmo2", "qwen3", "gpt2",
                                "opt", "small"}
    for preset in reg.presets.values():
        assert preset.example_len >= preset.prefix_len + preset.suffix_len
        for role in ROLES:
            t = preset.training(role)
            assert t.epochs >= 1 and 0 < t.lr <= 1 and t.batch_size >= 1


def test_project_tiny_preset_values():
    tiny = registry.load(ROOT / "registry.toml").preset("tiny")
    assert (tiny.prefix_len, tiny.suffix_len, tiny.example_len) == (32, 32, 64)
    assert tiny.teacher.warmup_ratio == 0.05 and tiny.pretrain.warmup_ratio == 0.05
    assert tiny.pretrain_docs > 0 and tiny.pretrain.epochs >= 1  # tiny has no released weights
    assert tiny.student.schedule == "cosine"  # the declared default, not given in the file


def test_quick_registry_adds_the_quick_preset(quick_registry):
    reg = registry.load(quick_registry)
    assert set(reg.presets) == set(registry.load(ROOT / "registry.toml").presets) | {"quick"}
    assert reg.preset("quick").example_len == 16


def test_example_len_defaults_to_prefix_plus_suffix(tmp_path):
    reg = registry.load(write(tmp_path, "[presets.p]\nprefix_len = 5\nsuffix_len = 7\n"))
    assert reg.preset("p").example_len == 12


def test_example_len_may_exceed_prefix_plus_suffix(tmp_path):
    reg = registry.load(write(tmp_path, "[presets.p]\nprefix_len = 5\nsuffix_len = 7\nexample_len = 20\n"))
    assert reg.preset("p").example_len == 20


def test_every_default_applies_to_an_empty_preset(tmp_path):
    p = registry.load(write(tmp_path, "[presets.p]\n")).preset("p")
    for param in PROTOCOL_PARAMS:
        if param.name != "example_len":
            assert getattr(p, param.name) == param.default
    for role in ROLES:
        for param in TRAIN_PARAMS:
            assert getattr(p.training(role), param.name) == param.default


def test_unknown_preset_lists_the_presets_with_did_you_mean():
    reg = registry.load(ROOT / "registry.toml")
    with pytest.raises(UsageError) as err:
        reg.preset("tinny")
    assert "did you mean 'tiny'?" in str(err.value)
    assert "choose from: gpt2, olmo2, opt, pythia, qwen3, small, tiny" in str(err.value)
    assert str(ROOT / "registry.toml") in str(err.value)


# ---------------------------------------------------------------- malformed files


def test_toml_syntax_error_names_the_file_and_line(tmp_path):
    path = write(tmp_path, "[plugins]\nmodules = []\n\n[defaults]\nfamily = tiny\n")
    message = error_of(path)
    assert str(path) in message
    assert "line 5" in message


@pytest.mark.parametrize(("text", "key", "problem"), [
    ("[presets.p]\nprefix_len = 8.5\n", "prefix_len", "must be int, got 8.5"),
    ("[presets.p]\nprefix_len = true\n", "prefix_len", "must be int, got True"),
    ("[presets.p]\nprefix_len = 0\n", "prefix_len", "must be >= 1, got 0"),
    ("[presets.p]\nsuffix_len = 5000\n", "suffix_len", "must be <= 4096, got 5000"),
    ("[presets.p.teacher]\nlr = 2\n", "lr", "must be <= 1.0, got 2.0"),
    ('[presets.p.student]\nlr = "fast"\n', "lr", "must be float, got 'fast'"),
    ("[presets.p.baseline]\nepochs = 0\n", "epochs", "must be >= 1, got 0"),
    ('[presets.p.teacher]\nschedule = "step"\n', "schedule", "must be one of cosine, linear, constant, got 'step'"),
])
def test_preset_value_errors_name_the_file_the_table_and_the_key(tmp_path, text, key, problem):
    path = write(tmp_path, text)
    message = error_of(path)
    assert message.startswith(f"{path}: ")
    table = text.splitlines()[0]
    assert table in message  # e.g. [presets.p.teacher]
    assert f"argument {key} {problem}" in message


def test_example_len_shorter_than_prefix_plus_suffix(tmp_path):
    path = write(tmp_path, "[presets.p]\nprefix_len = 8\nsuffix_len = 8\nexample_len = 10\n")
    message = error_of(path)
    assert str(path) in message and "[presets.p]" in message
    assert "example_len must be at least prefix_len + suffix_len" in message


def test_unknown_preset_key_has_did_you_mean(tmp_path):
    message = error_of(write(tmp_path, "[presets.p]\nprefix_lne = 8\n"))
    assert "'prefix_lne'" in message and "did you mean 'prefix_len'?" in message and "[presets.p]" in message


def test_unknown_role_section_has_did_you_mean(tmp_path):
    path = write(tmp_path, "[presets.p.studnt]\nepochs = 1\n")
    message = error_of(path)
    assert str(path) in message and "'studnt'" in message
    assert "did you mean 'student'?" in message
    for role in ROLES:
        assert role in message


def test_unknown_key_in_a_role_section_has_did_you_mean(tmp_path):
    message = error_of(write(tmp_path, "[presets.p.teacher]\nepochz = 1\n"))
    assert "[presets.p.teacher]" in message and "did you mean 'epochs'?" in message


@pytest.mark.parametrize(("text", "key", "near"), [
    ("[plugin]\nmodules = []\n", "plugin", "plugins"),
    ("[plugins]\nmodulez = []\n", "modulez", "modules"),
    ("[plugins]\ndisable = []\n", "disable", "disabled"),
    ('[defaults]\nfamilly = "tiny"\n', "familly", "family"),
])
def test_unknown_keys_have_did_you_mean(tmp_path, text, key, near):
    path = write(tmp_path, text)
    message = error_of(path)
    assert str(path) in message and f"'{key}'" in message and f"did you mean '{near}'?" in message


@pytest.mark.parametrize(("text", "problem"), [
    ('[plugins]\nmodules = "a"\n', "plugins.modules must be a list of strings"),
    ("[plugins]\nfiles = [1]\n", "plugins.files must be a list of strings"),
    ('[plugins]\nentry_points = "yes"\n', "plugins.entry_points must be true or false"),
    ("[defaults]\nfamily = 3\n", "defaults.family must be a string"),
    ("plugins = 3\n", "[plugins] must be a table"),
    ("[presets]\np = 3\n", "[presets.p] must be a table"),
    ("[presets.p]\nteacher = 3\n", "[presets.p.teacher] must be a table"),
])
def test_wrong_shapes_name_the_file_and_key(tmp_path, text, problem):
    path = write(tmp_path, text)
    message = error_of(path)
    assert str(path) in message and problem in message


def test_unreadable_registry_is_a_usage_error(tmp_path):
    path = tmp_path / "registry.toml"
    path.write_bytes(b"\xff\xfe[plugins]\n")
    message = error_of(path)
    assert str(path) in message and "cannot read" in message


def test_files_resolve_relative_to_the_registry(tmp_path, monkeypatch):
    (tmp_path / "conf").mkdir()
    reg = registry.load(write(tmp_path / "conf", '[plugins]\nfiles = ["../plug/p.py", "q.py"]\n'))
    monkeypatch.chdir(ROOT)
    assert reg.files == ((tmp_path / "plug" / "p.py").resolve(), (tmp_path / "conf" / "q.py").resolve())


# ---------------------------------------------------------------- discovery


def test_explicit_path_wins_over_env_and_cwd(tmp_path, monkeypatch):
    explicit, env = (write(tmp_path, "", f"{n}.toml") for n in ("explicit", "env"))
    write(tmp_path, "")  # ./registry.toml
    monkeypatch.setenv(registry.ENV_VAR, str(env))
    monkeypatch.chdir(tmp_path)
    assert registry.find(explicit) == explicit
    assert registry.load(explicit).path == explicit


def test_env_var_wins_over_cwd(tmp_path, monkeypatch):
    env = write(tmp_path, "", "env.toml")
    write(tmp_path, "")  # ./registry.toml
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(registry.ENV_VAR, str(env))
    assert registry.find() == env


def test_cwd_registry_wins_over_the_project_one(tmp_path, monkeypatch):
    local = write(tmp_path, "")
    monkeypatch.chdir(tmp_path)
    assert registry.find() == tmp_path / "registry.toml" == local


def test_without_a_registry_the_package_defaults_alone(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no registry.toml here, no env var (conftest removes it)
    assert registry.find() is None
    reg = registry.load()
    assert reg.path == registry.defaults_path() and reg.path.name == "defaults.toml" and reg.path.is_file()
    assert reg.path.parent == Path(registry.__file__).parent  # package data, not the checkout's root
    assert (reg.family, reg.dataset) == ("tiny", "synthetic-pii") and "tiny" in reg.presets


def test_empty_env_var_is_ignored(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(registry.ENV_VAR, "")
    assert registry.find() is None


@pytest.mark.parametrize("via", ["explicit", "env"])
def test_missing_named_registry_is_a_usage_error(tmp_path, monkeypatch, via):
    missing = tmp_path / "nope.toml"
    if via == "env":
        monkeypatch.setenv(registry.ENV_VAR, str(missing))
    with pytest.raises(UsageError, match=r"^registry file not found: .*nope\.toml$"):
        registry.find(missing if via == "explicit" else None)


def test_a_directory_is_not_a_registry(tmp_path):
    with pytest.raises(UsageError, match="registry file not found"):
        registry.find(tmp_path)


@pytest.mark.parametrize("name, epochs", [("pythia", 4), ("olmo2", 5), ("qwen3", 5), ("small", 4)])
def test_study_presets_follow_the_published_recipe(name, epochs):
    preset = registry.load(ROOT / "registry.toml").preset(name)
    assert (preset.prefix_len, preset.suffix_len, preset.example_len) == (50, 50, 256)
    assert preset.teacher.epochs == 3 and preset.baseline.epochs == preset.student.epochs == epochs
    for role in ROLES:
        assert (preset.training(role).lr, preset.training(role).schedule) == (5e-5, "cosine")
    assert preset.pair("pythia", ("12b", "1.4b")) == (("410m", "70m") if name == "small" else ("12b", "1.4b"))
    assert preset.dataset_args["members"] == (2000 if name == "small" else 1_000_000)


@pytest.mark.parametrize("section, problem", [
    ('[presets.p.sizes]\npythia = ["410m"]', "pythia must be [teacher size, student size]"),
    ('[presets.p.sizes]\npythia = "410m"', "pythia must be [teacher size, student size]"),
    ("[presets.p]\nsizes = 3", "[presets.p.sizes] must be a table"),
    ("[presets.p]\ndataset_args = 3", "[presets.p.dataset_args] must be a table"),
])
def test_bad_preset_pairs_and_dataset_args(tmp_path, section, problem):
    path = tmp_path / "registry.toml"
    path.write_text(section + "\n")
    assert problem in error_of(path)


# ---------------------------------------------------------------- read over the defaults


def test_a_registry_sets_the_defaults_and_keeps_the_rest(tmp_path):
    reg = registry.load(write(tmp_path, '[defaults]\ndataset = "wikitext"\n'))
    assert (reg.family, reg.dataset) == ("tiny", "wikitext")
    assert reg.presets == registry.load().presets


def test_a_registry_preset_overrides_the_shipped_one_of_its_name(tmp_path):
    reg = registry.load(write(tmp_path, "[presets.tiny]\nprefix_len = 8\nsuffix_len = 8\n"))
    assert (reg.preset("tiny").prefix_len, reg.preset("tiny").teacher.epochs) == (8, 1)  # replaced whole
    assert reg.preset("pythia") == registry.load().preset("pythia")


def test_a_registry_preset_may_inherit_a_shipped_one(tmp_path):
    reg = registry.load(write(tmp_path, '[presets.mine]\ninherits = "tiny"\n\n[presets.mine.student]\nepochs = 3\n'))
    mine, tiny = reg.preset("mine"), reg.preset("tiny")
    assert (mine.prefix_len, mine.teacher, mine.baseline) == (tiny.prefix_len, tiny.teacher, tiny.baseline)
    assert mine.student.epochs == 3 and mine.student.lr == tiny.student.lr  # the role block merged key by key


def test_shipped_presets_inherit_the_study_recipe():
    reg = registry.load()
    for name in ("qwen3", "gpt2", "opt"):
        assert reg.preset(name).teacher == reg.preset("olmo2").teacher
        assert reg.preset(name).student == reg.preset("olmo2").student == reg.preset("olmo2").baseline
    assert reg.preset("pythia").baseline.epochs == reg.preset("pythia").student.epochs == 4
    assert reg.preset("small").sizes["pythia"] == ("410m", "70m") and reg.preset("pythia").sizes == {}
    assert reg.preset("small").dataset_args == {"members": 2000, "nonmembers": 500}


def test_a_role_block_inherits_another_role(tmp_path):
    text = ("[presets.p.teacher]\nepochs = 7\nlr = 0.01\n\n[presets.p.baseline]\ninherits = \"teacher\"\nepochs = 2\n\n"
            "[presets.p.student]\ninherits = \"baseline\"\n")
    p = registry.load(write(tmp_path, text)).preset("p")
    assert (p.teacher.epochs, p.baseline.epochs, p.student.epochs) == (7, 2, 2)
    assert p.teacher.lr == p.baseline.lr == p.student.lr == 0.01


@pytest.mark.parametrize(("text", "problem"), [
    ('[presets.p]\ninherits = "tinny"\n', "[presets.p] inherits unknown preset 'tinny' (did you mean 'tiny'?)"),
    ('[presets.p]\ninherits = 3\n', "[presets.p] inherits must be a preset name, got 3"),
    ('[presets.p]\ninherits = "p"\n', "presets inherit in a cycle: p -> p"),
    ('[presets.a]\ninherits = "b"\n[presets.b]\ninherits = "c"\n[presets.c]\ninherits = "a"\n',
     "presets inherit in a cycle: a -> b -> c -> a"),
    ('[presets.p.student]\ninherits = "teachr"\n',
     "[presets.p.student] inherits unknown role 'teachr' (did you mean 'teacher'?)"),
    ('[presets.p.student]\ninherits = "baseline"\n[presets.p.baseline]\ninherits = "student"\n',
     "the roles of [presets.p] inherit in a cycle: baseline -> student -> baseline"),
])
def test_bad_inheritance_is_one_line_naming_the_file(tmp_path, text, problem):
    path = write(tmp_path, text)
    message = error_of(path)
    assert message.startswith(f"{path}: ") and problem in message, message


def test_the_shipped_defaults_are_package_data():
    from importlib import resources

    text = resources.files("harness.config").joinpath("defaults.toml").read_text(encoding="utf-8")
    assert "[presets.tiny]" in text and "[plugins]" not in text
    assert registry.load(ROOT / "registry.toml").presets == registry.load().presets  # the project adds none


def test_replacing_a_shipped_preset_reaches_the_presets_that_inherit_it(tmp_path):
    reg = registry.load(write(tmp_path, "[presets.olmo2]\nprefix_len = 40\nsuffix_len = 40\n"))
    assert reg.preset("qwen3").prefix_len == reg.preset("olmo2").prefix_len == 40
    assert reg.preset("tiny") == registry.load().preset("tiny")


# ---------------------------------------------------------------- a KD method's student recipe


def test_training_fields_are_the_declared_training_params():
    from dataclasses import fields

    from harness.config.registry import Training
    from harness.contract.specs import TRAINING_PARAMS

    assert TRAIN_PARAMS is TRAINING_PARAMS  # one declaration for role blocks and KD methods' overrides
    assert [f.name for f in fields(Training)] == [p.name for p in TRAIN_PARAMS]


def test_a_methods_overrides_are_laid_over_the_presets_student_recipe_only():
    from harness.contract.specs import KDMethod

    tiny = registry.load(ROOT / "registry.toml").preset("tiny")  # student: lr 1e-3, up to 12 epochs, batch 32, warm-up 0.05
    method = KDMethod("m", "d", "logits", loss=lambda b, a: 0, training={"lr_scale": 0.1, "epochs": 2,
                                                                          "schedule": "constant"})
    student = tiny.training("student", method)
    assert student.lr == pytest.approx(1e-4) and (student.epochs, student.schedule) == (2, "constant")
    assert (student.batch_size, student.warmup_ratio) == (tiny.student.batch_size, tiny.student.warmup_ratio)
    for role in ("teacher", "baseline", "pretrain"):  # no other role takes a method's overrides
        assert tiny.training(role, method) == tiny.training(role)
    absolute = KDMethod("a", "d", "logits", loss=lambda b, a: 0, training={"lr": 1e-5})
    assert tiny.training("student", absolute).lr == 1e-5
    assert tiny.training("student", KDMethod("n", "d", "logits", loss=lambda b, a: 0)) == tiny.student
