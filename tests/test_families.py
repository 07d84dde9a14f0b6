"""The hub families, offline: each one's own config class, through the whole protocol, and its loaders.

No hub is reachable here, so every family runs with `weights=scratch shape=tiny` (the plugin's own
code path, random weights of its architecture, a tokenizer trained on the members); the
`pretrained` path runs on local copies (`path=DIR`) saved by `save_pretrained`, exactly as
`hf download --local-dir` leaves them; and the hub path must fail at once with one line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from harness.cli import main
from harness.contract.families import same_tokenizer, tiny_width, train_tokenizer
from harness.errors import UsageError
from tests.conftest import QUICK_PRESET, ROOT

SOURCES = ROOT / "tests" / "fixtures" / "sources"
TINY = ["--family-arg", "weights=scratch", "--family-arg", "shape=tiny", "--family-arg", "vocab_size=512"]

# family -> (transformers model_type, a local source in a hub dataset's format, its dataset)
FAMILIES = {
    "pythia": ("gpt_neox", "wikitext", ["--dataset-arg", f"path={SOURCES / 'wikitext'}"]),
    "olmo2": ("olmo2", "fineweb", ["--dataset-arg", f"path={SOURCES / 'fineweb'}", "--dataset-arg", "members=10",
                                   "--dataset-arg", "min_tokens=64"]),
    "qwen3": ("qwen3", "dolly", ["--dataset-arg", f"path={SOURCES / 'databricks-dolly-15k.jsonl'}",
                                 "--dataset-arg", "train_pairs=12", "--dataset-arg", "heldout_pairs=12"]),
    "gpt2": ("gpt2", "nemotron-cc", ["--dataset-arg", f"path={SOURCES / 'nemotron-cc.jsonl'}",
                                     "--dataset-arg", "members=10", "--dataset-arg", "min_tokens=64"]),
    "opt": ("opt", "text-files", ["--dataset-arg", f"path={SOURCES / 'nemotron-cc.jsonl'}"]),
}


def db_rows(sql: str, params=()):
    with duckdb.connect(os.environ["HARNESS_DB"], read_only=True) as con:
        return con.execute(sql, list(params)).fetchall()


@pytest.fixture
def registry(tmp_path) -> Path:
    """The project's registry plus the quick preset, and `quick-pair` with a preset pair for pythia."""
    pair = QUICK_PRESET.replace("[presets.quick", "[presets.quick-pair")
    path = tmp_path / "registry.toml"
    path.write_text((ROOT / "registry.toml").read_text() + QUICK_PRESET + pair
                    + '\n[presets.quick-pair.sizes]\npythia = ["410m", "70m"]\n')
    return path


def eval_args(registry: Path, family: str, *extra: str, preset: str = "quick") -> list[str]:
    return ["--registry", str(registry), "eval", "--method", "soft-kd", "--family", family, "--preset", preset,
            "--limit", "24", *extra]


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_runs_the_protocol_from_its_own_config_class(registry, family, capsys):
    model_type, dataset, data_args = FAMILIES[family]
    assert main(eval_args(registry, family, *TINY, "--dataset", dataset, *data_args)) == 0
    err = capsys.readouterr().err
    assert f"plan: {family} " in err and "peak memory per device" in err  # the plan is printed first
    [(status, fam, ds, args)] = db_rows("SELECT status, family, dataset, family_args FROM runs")
    assert (status, fam, ds) == ("finished", family, dataset)
    assert json.loads(args) == {"weights": "scratch", "shape": "tiny", "vocab_size": 512}  # told apart from pretrained
    models = dict(db_rows("SELECT role, artifact_path FROM models"))
    params = dict(db_rows("SELECT role, n_params FROM models"))
    assert params["teacher"] > params["student"] == params["baseline"]
    for role, path in models.items():
        config = json.loads((Path(path) / "config.json").read_text())
        assert config["model_type"] == model_type, role
    if dataset == "dolly":  # the suffix lies in the response: every member row ends in response tokens
        assert db_rows("SELECT count(*) FROM examples WHERE split = 'member'")[0][0] > 0


def _save_local_copies(folder: Path, family: str, sizes: dict[str, list[str]]) -> None:
    """Tiny models of the family saved under their hub repo names, as `hf download --local-dir` would."""
    from harness.config import plugins, registry

    found = plugins.load(registry.load(ROOT / "registry.toml"))
    fam = found.family(family)
    scratch = fam.configure({"weights": "scratch", "shape": "tiny", "path": "", "vocab_size": 300,
                             "max_length": 0}, fam.teacher, fam.student)
    from harness_plugins.families import pythia

    for size, texts in sizes.items():
        tokenizer = train_tokenizer(texts, 300, 256)
        model = scratch.model(size, tokenizer)
        local = folder / pythia.SIZES[size].hub_id.split("/")[-1]
        model.save_pretrained(local, safe_serialization=True)
        tokenizer.save_pretrained(local)


@pytest.mark.slow
def test_the_documented_small_setting_runs_with_local_copies_in_place_of_the_hub(tmp_path, capsys):
    """`harness eval --family pythia --dataset wikitext --method soft-kd --preset small`, as documented,
    with the hub's files replaced by local copies: tiny pretrained-format Pythias and WikiText parquet."""
    texts = (SOURCES / "nemotron-cc.jsonl").read_text().splitlines()
    _save_local_copies(tmp_path / "hub", "pythia", {"410m": texts, "70m": texts})
    argv = ["eval", "--family", "pythia", "--dataset", "wikitext", "--method", "soft-kd", "--preset", "small",
            "--family-arg", f"path={tmp_path / 'hub'}", "--dataset-arg", f"path={SOURCES / 'wikitext'}",
            "--limit", "12"]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "training pythia 410m" in err and "training pythia 70m" in err
    [(teacher,)] = db_rows("SELECT n_params FROM models WHERE role = 'teacher'")
    from transformers import AutoModelForCausalLM

    local = AutoModelForCausalLM.from_pretrained(tmp_path / "hub" / "pythia-410m", use_safetensors=True)
    assert teacher == sum(p.numel() for p in local.parameters())  # the local weights, not a fresh build
    [(values, args)] = db_rows("SELECT preset_values, family_args FROM runs")
    assert json.loads(values)["sizes"]["pythia"] == ["410m", "70m"]
    assert json.loads(values)["prefix_len"] == json.loads(values)["suffix_len"] == 50
    assert json.loads(args) == {"path": str(tmp_path / "hub")}


def test_a_pair_whose_tokenizers_differ_is_refused_before_anything_trains(registry, tmp_path, capsys):
    lines = (SOURCES / "nemotron-cc.jsonl").read_text().splitlines()
    _save_local_copies(tmp_path / "hub", "pythia", {"410m": lines[:10], "70m": lines[10:]})
    capsys.readouterr()  # what saving the copies printed
    argv = eval_args(registry, "pythia", "--family-arg", f"path={tmp_path / 'hub'}", "--dataset", "text-files",
                     "--dataset-arg", f"path={SOURCES / 'nemotron-cc.jsonl'}", preset="quick-pair")
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "teacher 410m and student 70m do not share a tokenizer" in err
    assert not Path(os.environ["HARNESS_DB"]).exists()  # refused before a run was recorded


def test_same_tokenizer_accepts_equal_and_refuses_different():
    a = train_tokenizer(["the cat sat on the mat"] * 5, 300, 64)
    b = train_tokenizer(["the cat sat on the mat"] * 5, 300, 64)
    same_tokenizer(a, b, "x")
    c = train_tokenizer(["completely other words here"] * 5, 300, 64)
    with pytest.raises(UsageError, match="do not share a tokenizer"):
        same_tokenizer(a, c, "x")


def test_tiny_widths_keep_the_sizes_in_order():
    widths = [tiny_width(h) for h in (512, 768, 1024, 2048, 4096, 5120)]
    assert widths == sorted(widths) and widths[0] < widths[-1]
    assert all(w % 32 == 0 for w in widths)


@pytest.mark.parametrize("bad, message", [
    (["--family-arg", "shape=tiny"], "shape=tiny needs weights=scratch"),
    (["--family-arg", "weights=scratch", "--family-arg", "path=/nowhere"], "does not go with weights=scratch"),
    (["--family-arg", "path=/nowhere/at/all"], "is not a folder"),
    (["--family-arg", "weigths=scratch"], "did you mean 'weights'"),
])
def test_bad_family_arguments_are_one_line(registry, capsys, bad, message):
    assert main(eval_args(registry, "pythia", *bad)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err


def test_a_preset_pair_outside_the_family_is_refused(tmp_path, capsys):
    path = tmp_path / "registry.toml"
    sizes = '\n[presets.quick.sizes]\npythia = ["410m", "7m"]\n'
    path.write_text((ROOT / "registry.toml").read_text() + QUICK_PRESET + sizes)
    assert main(eval_args(path, "pythia", *TINY)) == 2
    err = capsys.readouterr().err
    assert "unknown size of family pythia" in err and "'7m'" in err


def _offline_eval(env_extra: dict[str, str], tmp_path: Path, *argv: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update(HF_HOME=str(tmp_path / "empty-hf-home"), **env_extra)
    return subprocess.run([sys.executable, "-m", "harness.cli", *argv], env=env, capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize("env", [{"HF_HUB_OFFLINE": "1"}, {"HF_ENDPOINT": "http://127.0.0.1:9"}],
                         ids=["HF_HUB_OFFLINE", "unreachable-endpoint"])
def test_a_hub_family_without_network_fails_at_once_with_one_line(tmp_path, env):
    done = _offline_eval(env, tmp_path, "eval", "--family", "pythia", "--dataset", "wikitext", "--method", "soft-kd",
                         "--preset", "small")
    assert done.returncode == 2
    [line] = done.stderr.strip().splitlines()
    assert "EleutherAI/pythia-410m" in line and "HF_HOME" in line and "--family-arg path=" in line
    assert "Traceback" not in done.stderr
