"""The plan: real parameter counts from the shape tables, the flagship's cost worked out by hand,
and `harness eval` refusing in one line a run that cannot fit."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import duckdb
import pytest

from harness.cli import main
from harness.config import plugins, registry
from harness.protocol import costs
from tests.conftest import exit_code, quick_args

# The released checkpoints' parameter counts (their safetensors), which the shape tables must reproduce.
RELEASED = {
    ("pythia", "70m"): 70_426_624, ("pythia", "410m"): 405_334_016, ("pythia", "1.4b"): 1_414_647_808,
    ("pythia", "12b"): 11_846_072_320, ("olmo2", "1B"): 1_484_916_736, ("olmo2", "7B"): 7_298_617_344,
    ("qwen3", "0.6B"): 596_049_920, ("qwen3", "8B"): 8_190_735_360, ("gpt2", "small"): 124_439_808,
    ("gpt2", "xl"): 1_557_611_200, ("opt", "125m"): 125_239_296,
}


@pytest.fixture(scope="module")
def found():
    return plugins.load(registry.load())


@pytest.mark.parametrize("family, size", RELEASED)
def test_real_shapes_have_the_released_parameter_counts(found, family, size):
    f = found.family(family)
    (shape, _) = costs.shapes(f, {"shape": "real", "vocab_size": 4096, "max_length": 0}, (size, f.student),
                                 costs.Vocabulary(0))
    assert shape.params == RELEASED[family, size]


# Pythia 12b -> 1.4b on 1M FineWeb documents of 256 tokens, 10k non-members (the pythia preset),
# soft-kd, 8 x H100 under FSDP, worked out by hand.
T, S = 11_846_072_320, 1_414_647_808
TOKENS = 1_000_000 * 256
# GPT-NeoX 12b block: qkv 5120 x 15360, dense 5120^2, MLP 2 x 5120 x 20480, their biases, two layer norms
BLOCK_12B = 5120 * 15360 + 5120 * 5120 + 2 * 5120 * 20480 + (15360 + 5120 + 20480 + 5120) + 4 * 5120
EMBEDDING_1_4B = 50304 * 2048  # larger than its block (50.4M): the largest layer FSDP gathers


def test_the_pythia_preset_costs_what_it_does_by_hand(capsys):
    assert main(["plan", "--family", "pythia", "--dataset", "fineweb", "--gpus", "8", "--gpu", "h100", "--fsdp",
                 "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    stages = {s["name"]: s for s in plan["stages"]}
    assert list(stages) == ["teacher", "baseline", "teacher outputs", "student", "extraction"]
    assert stages["teacher"]["params"] == T and stages["student"]["params"] == S

    # FLOPs: 6 N D to train, 2 N D forward; the teacher's full logits (1M x 255 x 50688 x 4 bytes =
    # 51.7 TB) fit no budget, so it runs forward on every student batch; extraction scores teacher,
    # baseline, student and the student-size reference on 1.01M examples, plus 3 x 128 continuations.
    generation = 2 * (T + 2 * S) * 50 * 128
    flops = {"teacher": 6 * T * TOKENS * 3, "baseline": 6 * S * TOKENS * 4, "teacher outputs": 2 * T * TOKENS * 4,
             "student": 6 * S * TOKENS * 4, "extraction": 2 * (T + 3 * S) * 1_010_000 * 256 + generation}
    for name, value in flops.items():
        assert stages[name]["flops"] == pytest.approx(value, rel=1e-9), name
    assert plan["totals"]["flops"] == pytest.approx(sum(flops.values()), rel=1e-9)
    assert plan["tier"]["name"] == "batch" and "51.7 TB" in plan["tier"]["why"]

    # Memory per device: 16 bytes a trained parameter, 4 for the teacher beside the student;
    # activations of 2 rows (16 / 8 devices) x 256 tokens x (34 bytes x hidden x layers + 5 float32 logits).
    act_t = 2 * 256 * (34 * 5120 * 36 + 4 * 5 * 50688)
    act_s = 2 * 256 * (34 * 2048 * 24 + 4 * 5 * 50304)
    assert stages["teacher"]["memory_ddp"] == 16 * T + act_t  # 193.3 GB: more than any GPU
    assert stages["teacher"]["memory_sharded"] == math.ceil(16 * T / 8) + 2 * 4 * BLOCK_12B + act_t  # 29.9 GB
    assert stages["student"]["memory_ddp"] == 16 * S + 4 * T + act_s
    assert stages["student"]["memory_sharded"] == (math.ceil((16 * S + 4 * T) / 8) + 2 * 4 * (EMBEDDING_1_4B + BLOCK_12B)
                                                   + act_s)
    assert plan["totals"]["memory_sharded"] == stages["teacher"]["memory_sharded"] < 80e9 < 16 * T

    # Disk: three float32 checkpoints.
    assert plan["totals"]["disk"] == 4 * (T + 2 * S)
    # Time: bf16 stages at 989.4 TFLOP/s, float32 scoring at 66.9, both at 40% MFU, on 8 devices.
    bf16 = sum(v for k, v in flops.items() if k != "extraction") / (8 * 989.4e12 * 0.4)
    assert plan["totals"]["seconds"] == pytest.approx(bf16 + flops["extraction"] / (8 * 66.9e12 * 0.4), rel=1e-9)
    assert plan["fits"] is True


def test_the_plan_without_sharding_names_the_change_that_fits(capsys):
    assert main(["plan", "--family", "pythia", "--dataset", "fineweb", "--gpus", "8", "--gpu", "h100"]) == 0
    out = capsys.readouterr().out
    assert "does not fit: the teacher stage needs 193.3 GB per device but NVIDIA H100 SXM 80 GB has 80.0 GB: " \
           "shard it (accelerate launch with an FSDP config: 29.9 GB per device)" in out
    assert main(["plan", "--family", "pythia", "--dataset", "fineweb", "--gpus", "1", "--gpu", "a100"]) == 0
    assert "shard it over 4 devices or more, or a smaller pair" in capsys.readouterr().out


def test_a_top_k_method_streams_float16_values_from_a_disk_that_holds_them(capsys):
    args = ["plan", "--family", "pythia", "--dataset", "fineweb", "--gpus", "8", "--gpu", "h100", "--fsdp",
            "--method", "topk-kd", "--json"]
    assert main([*args, "--disk", "10"]) == 0
    tier = json.loads(capsys.readouterr().out)["tier"]
    k = next(p.default for p in plugins.load(registry.load()).method("topk-kd").params if p.name == "k")
    assert (tier["name"], tier["values"], tier["bytes"]) == ("disk", "float16", 1_000_000 * 255 * k * 6)


def test_a_private_method_counts_its_per_sample_gradients(capsys):
    """DP-SGD steps over the distinct members and holds every record's float32 gradient of the student."""
    args = ["plan", "--family", "tiny", "--dataset", "synthetic-pii", "--json"]
    assert main([*args, "--method", "soft-kd"]) == 0
    soft = json.loads(capsys.readouterr().out)
    assert main([*args, "--method", "dp-kd"]) == 0
    dp = json.loads(capsys.readouterr().out)
    s_soft, s_dp = ({s["name"]: s for s in p["stages"]}["student"] for p in (soft, dp))
    found, preset = plugins.load(registry.load()), registry.load().presets["tiny"]
    soft_cfg, dp_cfg = (preset.training("student", found.method(m)) for m in ("soft-kd", "dp-kd"))
    n = soft["example_len"]
    assert s_dp["working"] - s_soft["working"] == 4 * s_dp["params"] * dp_cfg.batch_size
    assert s_dp["tokens"] == dp["distinct_rows"] * n * dp_cfg.epochs  # Li et al.'s 10 epochs, over the members
    validation = 512 * n * soft_cfg.epochs  # synthetic-pii's 512 validation texts, scored after each epoch
    assert s_soft["tokens"] == soft["train_rows"] * n * soft_cfg.epochs + validation  # a DP student scores none
    assert "DP-SGD" in s_dp["what"] and dp["distinct_rows"] < dp["train_rows"]


@pytest.mark.parametrize("argv, message", [
    (["--gpu", "v100"], "unknown --gpu 'v100'"),
    (["--gpus", "0"], "argument --gpus: must be between 1 and 100000, got 0"),
    (["--mfu", "1.5"], "argument --mfu: must be above 0 and at most 1, got 1.5"),
    (["--disk", "10"], "--disk goes with --gpu"),
    (["--dataset", "text-files", "--family", "pythia"], "declares no member and non-member counts"),
])
def test_bad_plan_arguments_get_one_line(argv, message, capsys):
    assert exit_code(["plan", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


@pytest.mark.cold_cache  # nothing may be trained, so nothing may be cached before
def test_eval_prints_the_plan_and_refuses_a_run_that_cannot_fit(quick_registry, monkeypatch, capsys):
    small = costs.Hardware("a 1 MB device", 1e12, 1e12, 10**6)
    monkeypatch.setattr(costs, "local_hardware", lambda world=1: small)
    assert main(quick_args(quick_registry, "soft-kd")) == 2
    err = capsys.readouterr().err
    assert "plan: tiny 2.6m -> 0.6m on synthetic-pii (quick preset), soft-kd" in err
    refusal = err.strip().splitlines()[-1]
    assert refusal.startswith("harness eval: error: this run cannot fit: the pretrain 2.6m stage needs ")
    assert "a 1 MB device has 1.0 MB" in refusal and "--ignore-plan" in refusal
    con = duckdb.connect(os.environ["HARNESS_DB"], read_only=True)
    try:  # refused before the run was started: no run row, nothing trained
        assert con.execute("SELECT count(*) FROM runs").fetchone()[0] == 0
    finally:
        con.close()
    assert not (Path(os.environ["HARNESS_CACHE"]) / "models").exists()
