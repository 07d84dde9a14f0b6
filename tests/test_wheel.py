"""The harness as a user installs it: a wheel, installed non-editable, used from an empty directory.

The wheel is built from the checkout's sources and installed with `pip install --no-deps --target`
into a folder of its own; every command runs with that folder first on PYTHONPATH, from an empty
working directory, so neither the checkout nor its editable install is what gets imported (the
test checks where `harness` came from). The dependencies are the test environment's own: nothing
is downloaded. Without its package data (the defaults, the app, the published boards) it fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from conftest import ROOT
from tests.chromium import _stop, free_port, wait_for

PACKAGE_DATA = ("harness/config/defaults.toml", "harness/present/app.py", "harness_leaderboards/default.toml",
                "harness_leaderboards/default.duckdb", "harness_leaderboards/studies.toml",
                "harness_leaderboards/studies.duckdb")


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The folder the wheel was installed into (its `harness` and `harness_plugins` packages)."""
    work = tmp_path_factory.mktemp("wheel")
    src = work / "src"  # a copy: building writes build/ and *.egg-info next to the sources
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for folder in ("harness", "plugins", "leaderboards"):
        shutil.copytree(ROOT / folder, src / folder, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    wheels = work / "wheels"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q", "-w", str(wheels), str(src)],
                   check=True, timeout=600, capture_output=True)
    [wheel] = wheels.glob("kd_memorization_harness-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = [p for p in PACKAGE_DATA if p not in names]
    assert not missing, f"the wheel lacks its package data: {missing}"
    assert "registry.toml" not in names and not any(n.startswith(("tests/", "app.py", "leaderboards/")) for n in names)
    target = work / "site"
    subprocess.run([*pip, "install", "--no-deps", "--no-index", "-q", "--target", str(target), str(wheel)],
                   check=True, timeout=600, capture_output=True)
    return target


@pytest.fixture
def user(installed, tmp_path, monkeypatch) -> dict:
    """An empty working directory, and an environment in which `harness` is the installed wheel."""
    home = tmp_path / "empty"
    home.mkdir()
    env = {**os.environ, "PYTHONPATH": str(installed), "HARNESS_PROGRESS": "0"}
    env.pop("HARNESS_REGISTRY", None)
    env.pop("HARNESS_LEADERBOARDS", None)
    return {"cwd": home, "env": env, "site": installed}


def harness(user: dict, *argv: str, timeout: float = 600) -> subprocess.CompletedProcess:
    out = subprocess.run([sys.executable, "-m", "harness", *argv], cwd=user["cwd"], env=user["env"],
                         capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, f"harness {' '.join(argv)} exited {out.returncode}:\n{out.stderr[-3000:]}"
    return out


@pytest.mark.slow
def test_the_installed_wheel_runs_from_an_empty_directory(user):
    where = subprocess.run([sys.executable, "-c", "import harness, harness_plugins; print(harness.__file__); "
                            "print(harness_plugins.__file__)"], cwd=user["cwd"], env=user["env"],
                           capture_output=True, text=True, timeout=120, check=True).stdout.split()
    assert all(Path(p).is_relative_to(user["site"]) for p in where), where  # not the checkout
    assert not any(Path(p).is_relative_to(ROOT) for p in where)

    listed = harness(user, "list").stdout
    assert "defaults.toml" in listed.splitlines()[0]  # no registry.toml here: the package's own defaults
    for name in ("tiny", "pythia", "synthetic-pii", "dolly", "soft-kd", "minillm", "min-k", "reference"):
        assert f"  {name} " in listed, name
    assert "(from the installed harness)" in listed.split("\nPublished boards (leaderboards: ")[1].splitlines()[0]
    assert "\n  default         Embedded default" in listed  # the wheel's own boards, named
    assert "\n  studies         Studies' regime" in listed

    run = harness(user, "eval", "--method", "soft-kd", "--limit", "64", timeout=1500)
    assert "tiny / synthetic-pii / soft-kd (seed 0)" in run.stdout and "stored in" in run.stdout

    board = harness(user, "leaderboard").stdout
    assert "soft-kd" in board and "(baseline: fine-tuned)" in board

    port = free_port()
    app = subprocess.Popen([sys.executable, "-m", "harness", "app", "--port", str(port)], cwd=user["cwd"],
                           env=user["env"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_for(f"http://127.0.0.1:{port}/_stcore/health", 120, alive=app) == "ok"
    finally:
        _stop(app)
    served = app.stderr.read()
    assert f"serving {user['site'] / 'harness' / 'present' / 'app.py'}" in served  # the wheel's app
    assert f"leaderboards: {user['site'] / 'harness_leaderboards'} " in served  # and its published boards

    # publish writes a board's snapshot: never into the installed package, and the refusal is one line
    snapshot = user["site"] / "harness_leaderboards" / "default.duckdb"
    before = snapshot.read_bytes()
    refused = subprocess.run([sys.executable, "-m", "harness", "leaderboard", "publish", "default"], cwd=user["cwd"],
                             env=user["env"], capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2 and "is the installed package's copy" in refused.stderr, refused.stderr[-2000:]
    assert refused.stderr.strip().count("\n") <= 1 and snapshot.read_bytes() == before

    # the app's script itself, run from the wheel against the results the eval wrote
    app_path = user['site'] / 'harness' / 'present' / 'app.py'
    probe = ("import sys, harness\n"
             "from streamlit.testing.v1 import AppTest\n"
             f"at = AppTest.from_file({str(app_path)!r}, default_timeout=300).run()\n"
             "assert not at.exception, at.exception\n"
             "print(sys.modules['harness.leaderboard.standings'].__file__)\n")
    out = subprocess.run([sys.executable, "-c", probe], cwd=user["cwd"], env=user["env"], capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert Path(out.stdout.split()[-1]).is_relative_to(user["site"])
