"""The contributor's path as a newcomer walks it: which leaderboards/ a command acts on, import and
compare messages, attack parameters, and an app that binds loopback and stops with its parent."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from harness.cli import main
from harness.errors import UsageError
from harness.leaderboard import board_specs
from harness.measure import analysis
from harness.present import serve
from tests import board_data
from tests.board_data import add_run
from tests.chromium import free_port
from tests.conftest import ROOT


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A reviewer's checkout: a leaderboards/ with one board, the working directory."""
    folder = tmp_path / "checkout" / "leaderboards"
    folder.mkdir(parents=True)
    (folder / "mine.toml").write_text('family = "tiny"\ndataset = "synthetic-pii"\npreset = "tiny"\nmethods = ["soft-kd"]\n')
    monkeypatch.delenv("HARNESS_LEADERBOARDS", raising=False)
    monkeypatch.chdir(folder.parent)
    return folder


def test_leaderboards_found_like_the_registry(project, tmp_path, monkeypatch):
    assert board_specs.find_boards() == (project.resolve(), "the current directory")
    other = tmp_path / "other"
    other.mkdir()
    monkeypatch.setenv("HARNESS_LEADERBOARDS", str(other))
    assert board_specs.find_boards() == (other.resolve(), "$HARNESS_LEADERBOARDS")
    assert board_specs.find_boards(project) == (project.resolve(), "--leaderboards")
    with pytest.raises(UsageError, match="no leaderboards folder"):
        board_specs.find_boards(tmp_path / "missing")
    monkeypatch.delenv("HARNESS_LEADERBOARDS")
    monkeypatch.chdir(tmp_path)
    folder, how = board_specs.find_boards()
    assert how == "the installed harness" and folder == ROOT / "leaderboards"  # an editable install: the checkout's


def test_import_acts_on_the_checkout_you_stand_in(project, capsys):
    assert main(["leaderboard", "import", "nothing.duckdb", "--board", "default"]) == 2
    out, err = capsys.readouterr()
    assert f"leaderboards: {project.resolve()} (from the current directory)" in err and out == ""
    assert "unknown leaderboard" in err and "choose from: mine" in err  # not the installed package's default
    assert err.count("\n") == 1
    assert main(["leaderboard", "import", "nothing.duckdb", "--board", "mine"]) == 2
    assert "no bundle at nothing.duckdb" in capsys.readouterr().err


def test_compare_says_na_for_two_empty_sets_and_counts_whole(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(board_data.METHODS, "none-kd", ("logits", set()))
    monkeypatch.setitem(board_data.METHODS, "nil-kd", ("text", set()))
    monkeypatch.setitem(board_data.VAL_PPL, "none-kd", 40.0)
    monkeypatch.setitem(board_data.VAL_PPL, "nil-kd", 41.0)
    from harness.store.database import Store

    db = tmp_path / "h.duckdb"
    store = Store(db)
    for method in ("none-kd", "nil-kd", "soft-kd", "hard-kd"):
        add_run(store, f"run-{method}", method)
    assert main(["compare", "--methods", "none-kd,nil-kd", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert "0 members in common (Jaccard n/a)" in out
    assert main(["compare", "--methods", "soft-kd,hard-kd", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert "2 members in common (Jaccard 0.25)" in out  # {0, 1} within {0..4, 6, 7, 8}
    assert ".0 " not in out.split("\n\n")[1]  # counts in the table are whole numbers


def test_attack_args_are_checked_and_reach_the_attack():
    from harness.config import plugins, registry

    attacks = plugins.load(registry.load()).attacks
    assert analysis.attack_args(attacks, {"min-k": {"k": "0.5"}})["min-k"]["k"] == 0.5
    with pytest.raises(UsageError, match="unknown attack .*'min-kk'.*did you mean 'min-k'"):
        analysis.attack_args(attacks, {"min-kk": {"k": "0.5"}})
    with pytest.raises(UsageError, match="must be <= 1.0"):
        analysis.attack_args(attacks, {"min-k": {"k": "2"}})
    seen = {}
    import torch

    from harness.contract.specs import Attack, Evidence

    def score(ev, args):
        seen.update(args)
        return ev.token_mean

    fake = {"probe": Attack("probe", "records its arguments", score, params=attacks["min-k"].params)}
    ev = Evidence(torch.zeros(4, 3), torch.arange(4.0), torch.ones(4), torch.ones(4), None)
    analysis.attack(fake, {"student": ev}, {"student": ev}, list("abcd"), list("efgh"),
                    params={"probe": {"k": 0.3}})
    assert seen == {"k": 0.3}


@pytest.mark.parametrize("raw", ["min-k=1", ".k=1", "min-k.=1", "min-k.k"])
def test_attack_arg_needs_name_dot_key(raw, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["eval", "--method", "soft-kd", "--attack-arg", raw])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "ATTACK.KEY=VALUE" in err and len(err.strip().splitlines()) == 1


def test_app_binds_loopback_unless_told(monkeypatch, project):
    seen = {}
    monkeypatch.setattr(serve, "run", lambda cmd, env: seen.update(cmd=cmd, env=env) or 0)
    assert main(["app"]) == 0
    assert seen["cmd"][seen["cmd"].index("--server.address") + 1] == "127.0.0.1"
    assert seen["env"]["HARNESS_LEADERBOARDS"] == str(project.resolve())
    assert "HARNESS_APP_SERVE_PRIVATE_TEXT" not in seen["env"]
    assert main(["app", "--host", "0.0.0.0", "--serve-private-text"]) == 0
    assert seen["cmd"][seen["cmd"].index("--server.address") + 1] == "0.0.0.0"
    assert seen["env"]["HARNESS_APP_SERVE_PRIVATE_TEXT"] == "1"
    assert main(["app", "--serve-private-text"]) == 2  # loopback shows everything already



def test_streamlit_run_app_py_serves_as_harness_app_does(monkeypatch, project):
    """`.streamlit/config.toml`, read by `streamlit run app.py` in a checkout, holds `harness app`'s flags:
    loopback included, so a checkout's board is not on the network unless its server is told."""
    import tomllib

    seen = {}
    monkeypatch.setattr(serve, "run", lambda cmd, env: seen.update(cmd=cmd) or 0)
    assert main(["app"]) == 0
    given = seen["cmd"][seen["cmd"].index("run") + 2:]  # after `streamlit run APP`
    flags = dict(zip(given[::2], given[1::2]))
    assert flags and all(flag.startswith("--") for flag in flags), given
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    for flag, value in flags.items():
        section, key = flag.removeprefix("--").split(".")
        assert str(config[section][key]).lower() == value, flag
    assert serve.loopback(config["server"]["address"])

@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_stopping_harness_app_stops_streamlit(sig, tmp_path):
    db = board_data.build(tmp_path / "h.duckdb")
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "harness", "app", "--db", str(db), "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ})
    url = f"http://127.0.0.1:{port}/_stcore/health"
    try:
        from tests.chromium import wait_for

        assert wait_for(url, 90, alive=proc) == "ok"
        proc.send_signal(sig)
        proc.wait(30)
        time.sleep(1)
        with pytest.raises(OSError):
            urllib.request.urlopen(url, timeout=2)
    finally:
        if proc.poll() is None:
            proc.kill()
