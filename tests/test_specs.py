"""The plugin contract: declared parameters and the checks on what a plugin registers."""

from __future__ import annotations

import math

import pytest
import torch

from harness.contract.specs import TEACHER_ACCESS, KDMethod, Param, resolve_params
from harness.errors import UsageError

OWNER = "method demo"


def _data(data, args):
    return data.member_ids


def _loss(batch, args):
    return torch.zeros(())


# ---------------------------------------------------------------- Param.parse


@pytest.mark.parametrize(("raw", "expected"), [("3", 3), ("-7", -7), (" 12 ", 12), (5, 5)])
def test_int_parses_strings_and_toml_ints(raw, expected):
    value = Param("n", int, 1).parse(raw, OWNER)
    assert value == expected and type(value) is int


@pytest.mark.parametrize("raw", ["3.5", "abc", "", "1e3", 2.0, True, "true"])
def test_int_refuses_non_integers_and_bools(raw):
    with pytest.raises(UsageError, match=r"method demo argument n must be int"):
        Param("n", int, 1).parse(raw, OWNER)


@pytest.mark.parametrize(("raw", "expected"), [("2", 2.0), ("0.5", 0.5), ("1e-3", 1e-3), (3, 3.0), (0.25, 0.25)])
def test_float_parses_strings_and_widens_ints(raw, expected):
    value = Param("t", float, 1.0).parse(raw, OWNER)
    assert value == expected and type(value) is float


@pytest.mark.parametrize("raw", ["abc", "", "1,5", True])
def test_float_refuses_non_numbers(raw):
    with pytest.raises(UsageError, match=r"argument t must be float"):
        Param("t", float, 1.0).parse(raw, OWNER)


@pytest.mark.parametrize("raw", ["nan", "inf", "-inf", math.nan, math.inf])
def test_float_refuses_non_finite(raw):
    with pytest.raises(UsageError, match=r"argument t must be a finite number"):
        Param("t", float, 1.0).parse(raw, OWNER)


@pytest.mark.parametrize(("raw", "expected"), [
    ("true", True), ("True", True), ("1", True), ("yes", True), ("YES", True),
    ("false", False), ("0", False), ("no", False), (True, True), (False, False),
])
def test_bool_parses_the_usual_spellings(raw, expected):
    assert Param("b", bool, False).parse(raw, OWNER) is expected


@pytest.mark.parametrize("raw", ["maybe", "", "2", "on", 1])
def test_bool_refuses_anything_else(raw):
    with pytest.raises(UsageError, match=r"argument b must be bool"):
        Param("b", bool, False).parse(raw, OWNER)


def test_str_keeps_the_text_as_given():
    assert Param("path", str, "").parse(" a b=c ", OWNER) == " a b=c "
    with pytest.raises(UsageError, match=r"argument path must be str, got 3"):
        Param("path", str, "").parse(3, OWNER)


def test_choices_are_enforced_and_listed():
    p = Param("mode", str, "a", choices=("a", "b"))
    assert p.parse("b", OWNER) == "b"
    with pytest.raises(UsageError) as err:
        p.parse("c", OWNER)
    assert str(err.value) == "method demo argument mode must be one of a, b, got 'c'"


@pytest.mark.parametrize(("raw", "message"), [
    ("0.04", "must be >= 0.05, got 0.04"),
    ("-1", "must be >= 0.05, got -1.0"),
    ("100.5", "must be <= 100.0, got 100.5"),
])
def test_bounds_are_enforced(raw, message):
    with pytest.raises(UsageError, match=message):
        Param("temperature", float, 2.0, min=0.05, max=100.0).parse(raw, OWNER)


def test_bounds_are_inclusive():
    p = Param("temperature", float, 2.0, min=0.05, max=100.0)
    assert p.parse("0.05", OWNER) == 0.05
    assert p.parse("100", OWNER) == 100.0
    assert Param("k", int, 1, min=1).parse("1", OWNER) == 1


def test_describe_shows_type_default_and_bounds():
    assert Param("t", float, 2.0, "temp", min=0.05, max=100.0).describe() == "t: float = 2.0 (0.05 <= t <= 100.0)  temp"
    assert Param("m", str, "a", "mode", choices=("a", "b")).describe() == "m: str = 'a' in {a, b}  mode"
    assert Param("n", int, 3).describe() == "n: int = 3"


# ---------------------------------------------------------------- resolve_params

DECLARED = (Param("temperature", float, 2.0, min=0.05), Param("ce_weight", float, 0.0, min=0.0, max=1.0))


def test_resolve_params_fills_defaults():
    assert resolve_params(DECLARED, {}, OWNER) == {"temperature": 2.0, "ce_weight": 0.0}


def test_resolve_params_overlays_and_parses_given_values():
    assert resolve_params(DECLARED, {"ce_weight": "0.5"}, OWNER) == {"temperature": 2.0, "ce_weight": 0.5}


def test_resolve_params_unknown_key_has_did_you_mean_and_choices():
    with pytest.raises(UsageError) as err:
        resolve_params(DECLARED, {"temprature": "3"}, OWNER)
    message = str(err.value)
    assert "'temprature'" in message
    assert "did you mean 'temperature'?" in message
    assert "choose from: ce_weight, temperature" in message


def test_resolve_params_unknown_key_without_near_name_lists_choices_only():
    with pytest.raises(UsageError) as err:
        resolve_params(DECLARED, {"zzz": "3"}, OWNER)
    assert "did you mean" not in str(err.value)
    assert "choose from: ce_weight, temperature" in str(err.value)


def test_resolve_params_when_nothing_is_declared():
    assert resolve_params((), {}, "method hard-kd") == {}
    with pytest.raises(UsageError, match=r"^method hard-kd takes no arguments, got 'x'$"):
        resolve_params((), {"x": "1"}, "method hard-kd")


def test_resolve_params_checks_each_given_value():
    with pytest.raises(UsageError, match=r"ce_weight must be <= 1.0, got 2.0"):
        resolve_params(DECLARED, {"ce_weight": "2"}, OWNER)


# ---------------------------------------------------------------- KDMethod


def test_kd_method_takes_exactly_one_of_loss_make_data_and_step():
    assert KDMethod("a", "d", "logits", loss=_loss).kind == "loss"
    assert KDMethod("b", "d", "text", make_data=_data).kind == "make_data"
    assert KDMethod("c", "d", "logits", step=_loss).kind == "step"
    with pytest.raises(ValueError, match=r"'both' must give exactly one of loss, make_data or step"):
        KDMethod("both", "d", "logits", loss=_loss, step=_data)
    with pytest.raises(ValueError, match=r"'neither' must give exactly one of loss, make_data or step"):
        KDMethod("neither", "d", "logits")


@pytest.mark.parametrize("access", TEACHER_ACCESS)
def test_kd_method_accepts_every_declared_teacher_access(access):
    top_k = (lambda args: 8) if access == "top-k logits" else None
    kind = {"loss": _loss} if access == "none" else {"step": _loss}  # no teacher: a loss on the true tokens
    assert KDMethod("m", "d", access, top_k=top_k, **kind).teacher_access == access


def test_top_k_is_given_exactly_for_top_k_access():
    with pytest.raises(ValueError, match=r"'m': give top_k exactly when teacher_access is 'top-k logits'"):
        KDMethod("m", "d", "top-k logits", loss=_loss)
    with pytest.raises(ValueError, match=r"give top_k exactly"):
        KDMethod("m", "d", "logits", loss=_loss, top_k=lambda args: 8)


def test_a_data_method_reads_only_text():
    with pytest.raises(ValueError, match=r"'m': a make_data method reads only the teacher's text"):
        KDMethod("m", "d", "logits", make_data=_data)


def test_kd_method_refuses_an_unknown_teacher_access():
    with pytest.raises(ValueError, match=r"teacher_access must be one of"):
        KDMethod("m", "d", "weights", loss=_loss)


# ---------------------------------------------------------------- training overrides


def test_kd_method_training_overrides_are_parsed_and_kept():
    m = KDMethod("m", "d", "logits", loss=_loss, training={"lr_scale": 1, "epochs": 3, "schedule": "constant"})
    assert m.training == {"lr_scale": 1.0, "epochs": 3, "schedule": "constant"}
    assert type(m.training["lr_scale"]) is float  # an int given for a float field is widened, as in presets
    assert KDMethod("n", "d", "logits", loss=_loss).training == {}


def test_kd_method_refuses_an_unknown_training_override_and_names_the_valid_keys():
    with pytest.raises(ValueError) as err:
        KDMethod("m", "d", "logits", loss=_loss, training={"learning_rate": 1e-4})
    message = str(err.value)
    assert "'m'" in message and "unknown training override 'learning_rate'" in message
    assert "valid keys: epochs, lr, batch_size, warmup_ratio, weight_decay, schedule, patience, lr_scale" in message


@pytest.mark.parametrize(("training", "problem"), [
    ({"epochs": 0}, "must be >= 1"),
    ({"epochs": 2.5}, "must be int"),
    ({"lr": 2.0}, "must be <= 1.0"),
    ({"schedule": "cosin"}, "must be one of cosine, linear, constant"),
    ({"lr_scale": 0.0}, "must be >= 1e-06"),
    ({"lr": 1e-4, "lr_scale": 0.1}, "give lr or lr_scale in the training overrides, not both"),
])
def test_kd_method_refuses_a_bad_training_override(training, problem):
    with pytest.raises(ValueError, match="'m'") as err:
        KDMethod("m", "d", "logits", loss=_loss, training=training)
    assert problem in str(err.value)
