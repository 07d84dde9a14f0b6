"""What the scripts' `--quick` settings share: the option itself, and a small preset over the tiny one.

Not a benchmark (tests/test_benchmarks.py runs every other file here): `python benchmarks/X.py` puts
this folder first on sys.path, so a script imports it as `_quick`.
"""

from __future__ import annotations

import argparse


def options(parser: argparse.ArgumentParser, quick: dict, what: str, argv: list[str] | None = None
            ) -> argparse.Namespace:
    """The script's options. `--quick` (a smoke run in seconds: `what`) makes `quick` the defaults, so a
    flag given still wins; it checks that the script runs, not what it measures."""
    parser.add_argument("--quick", action="store_true",
                        help=f"a smoke run in seconds: {what} (a flag given still wins)")
    opts = parser.parse_args(argv)
    if opts.quick and quick:
        parser.set_defaults(**quick)
        opts = parser.parse_args(argv)
    return opts


def preset(name: str, top: dict, roles: dict[str, dict]) -> str:
    """A registry preset as TOML: `top` at the preset's level, then a table per role."""
    def value(v):
        return f'"{v}"' if isinstance(v, str) else f"{v}"
    lines = [f"[presets.{name}]", *(f"{k} = {value(v)}" for k, v in top.items())]
    for role, fields in roles.items():
        lines += ["", f"[presets.{name}.{role}]", *(f"{k} = {value(v)}" for k, v in fields.items())]
    return "\n" + "\n".join(lines) + "\n"


# The tiny preset made small enough for a smoke run of the whole protocol.
SMALL = "bench-quick"
SMALL_PRESET = preset(SMALL, {"inherits": "tiny", "prefix_len": 8, "suffix_len": 8, "approx_sample": 16,
                              "pretrain_docs": 60},
                      {"teacher": {"epochs": 2}, "baseline": {"epochs": 1}, "student": {"epochs": 1}})
