"""What an `EvalRequest`'s fields may hold: one check each, shared by the request and the CLI's parser.

The CLI parses text into values (a number, a path, KEY=VALUE pairs) and nothing more; the request
checks the values, whoever built it (`harness.EvalRequest(...)` in Python, a sweep's cell, a board's
run), so both refuse alike: a UsageError with one line, `argument --seed: must be between 0 and
4294967295, got -1`, before anything loads or trains. Light (no torch): `--help` imports it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from harness.errors import UsageError, unknown

SEED = (0, 2**32 - 1)  # what numpy's and torch's generators take
LIMIT = (1, None)  # --limit N: at least one member and one non-member
FILTERS = ("predicted", "random", "matched")  # the last two: controls of the first (`protocol.filtering`)
# A parameter's value as a command line (text) or a TOML file (a number, a boolean) gives it;
# the plugin's Param checks it further (`harness.contract.specs.Param.parse`).
SCALARS = (str, int, float, bool)

# Each field's command-line flag: the one line names it as the CLI would.
FLAGS = {"method": "--method", "family": "--family", "dataset": "--dataset", "preset": "--preset", "seed": "--seed",
         "db": "--db", "cache_dir": "--cache-dir", "method_args": "--method-arg", "dataset_args": "--dataset-arg",
         "family_args": "--family-arg", "attack_args": "--attack-arg", "limit": "--limit", "registry": "--registry",
         "command": "command", "trust_remote_code": "--trust-remote-code", "reference": "--reference",
         "filter": "--filter", "ignore_plan": "--ignore-plan"}


def refuse(field: str, problem: str) -> UsageError:
    """`argument --seed: must be ...`: the line argparse prints for its own refusals, for the API too."""
    return UsageError(f"argument {FLAGS.get(field, field)}: {problem}")


def whole_problem(value: Any, low: int, high: int | None = None) -> str | None:
    """Why `value` is not a whole number from `low` (to `high`); None when it is. A bool is not a number."""
    if isinstance(value, bool) or not isinstance(value, int):
        return f"must be a whole number, got {value!r}"
    if value < low or (high is not None and value > high):
        return f"must be at least {low}, got {value}" if high is None else \
            f"must be between {low} and {high}, got {value}"
    return None


def whole(field: str, value: Any, low: int, high: int | None = None) -> int:
    problem = whole_problem(value, low, high)
    if problem:
        raise refuse(field, problem)
    return value


def path(field: str, value: Any, optional: bool = False) -> Path | None:
    """A file or folder named as text or a Path; None where `optional` and none was given."""
    if value is None and optional:
        return None
    if isinstance(value, bytes) or not isinstance(value, (str, os.PathLike)):
        raise refuse(field, f"must be a path (text or pathlib.Path), got {value!r}")
    text = os.fspath(value)
    if not isinstance(text, str) or not text:
        raise refuse(field, f"must be a path, got {value!r}")
    if "\0" in text:
        raise refuse(field, "must be a path, got one holding a NUL character")
    return Path(text)


def name(field: str, value: Any, optional: bool = True, empty: bool = False) -> str | None:
    """A plugin's name (method, family, dataset, preset) or a model: text, not empty unless `empty`."""
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise refuse(field, f"must be text, got {value!r}")
    if not value and not empty:
        raise refuse(field, "must be a name, got ''" + ("; leave it out for the default" if optional else ""))
    if "\0" in value:
        raise refuse(field, "must be a name, got one holding a NUL character")
    return value


def flag(field: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise refuse(field, f"must be True or False, got {value!r}")
    return value


def arguments(field: str, value: Any) -> dict[str, Any]:
    """A plugin's arguments: a mapping of names to values as a command line or a TOML file gives them."""
    if not isinstance(value, Mapping):
        raise refuse(field, f"must be a mapping of names to values (KEY=VALUE), got {value!r}")
    for key, v in value.items():
        if not isinstance(key, str) or not key:
            raise refuse(field, f"a key must be a non-empty name, got {key!r}")
        if not isinstance(v, SCALARS):
            raise refuse(field, f"{key}'s value must be text or a number, got {v!r}")
    return dict(value)


def attack_arguments(value: Any) -> dict[str, dict[str, Any]]:
    """Each attack's arguments: a mapping of attack names to `arguments`."""
    if not isinstance(value, Mapping):
        raise refuse("attack_args", f"must be a mapping of attacks to their KEY=VALUE arguments, got {value!r}")
    out = {}
    for attack, args in value.items():
        if not isinstance(attack, str) or not attack:
            raise refuse("attack_args", f"an attack must be a non-empty name, got {attack!r}")
        out[attack] = arguments("attack_args", args)
    return out


def filter_(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise refuse("filter", f"must be text, got {value!r}")
    if value not in FILTERS:
        raise unknown("--filter", value, FILTERS)
    return value


def pairs(flag_: str, given: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Repeated KEY=VALUE options (--method-arg ...) as one mapping; a key given twice is refused, not the
    last one silently kept."""
    out: dict[str, str] = {}
    for key, value in given:
        if key in out:
            raise UsageError(f"argument {flag_}: {key} given twice ({out[key]!r}, then {value!r}); give each key once")
        out[key] = value
    return out


def attack_pairs(given: Iterable[tuple[str, str, str]]) -> dict[str, dict[str, str]]:
    """`--attack-arg ATTACK.KEY=VALUE` options as each attack's arguments; a key given twice is refused."""
    out: dict[str, dict[str, str]] = {}
    for attack, key, value in given:
        mine = out.setdefault(attack, {})
        if key in mine:
            raise UsageError(f"argument --attack-arg: {attack}.{key} given twice ({mine[key]!r}, then {value!r}); "
                             "give each key once")
        mine[key] = value
    return out
