"""`harness sweep`: the grid, each teacher and baseline trained once, a line per cell."""

from __future__ import annotations

import os

import duckdb

from harness.cli import main
from tests.conftest import exit_code


def test_sweep_trains_teacher_and_baseline_once_and_reports_each_cell(quick_registry, capsys):
    argv = ["--registry", str(quick_registry), "sweep", "--methods", "soft-kd,hard-kd", "--seeds", "2",
            "--preset", "quick", "--limit", "16"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.startswith("[")]
    assert len(lines) == 4 and "sweep: 4 of 4 cells finished" in out
    # per seed: the first method trains teacher and baseline, the second loads them
    assert "teacher trained" in lines[0] and "baseline trained" in lines[0]
    assert "teacher cache, baseline cache, student trained" in lines[1]
    assert "/ seed 1:" in lines[2] and "teacher trained" in lines[2]
    with duckdb.connect(os.environ["HARNESS_DB"], read_only=True) as con:
        got = con.execute("SELECT method, seed FROM runs WHERE status = 'finished' ORDER BY seed, method").fetchall()
    assert got == [("hard-kd", 0), ("soft-kd", 0), ("hard-kd", 1), ("soft-kd", 1)]


def test_sweep_checks_every_name_before_running(quick_registry, capsys):
    assert main(["--registry", str(quick_registry), "sweep", "--methods", "soft-kd,hard-kdd"]) == 2
    assert "did you mean 'hard-kd'" in capsys.readouterr().err
    assert main(["--registry", str(quick_registry), "sweep", "--methods", "all", "--families", "tiyn"]) == 2
    assert "did you mean 'tiny'" in capsys.readouterr().err
    assert not os.path.exists(os.environ["HARNESS_DB"])


def test_sweep_all_means_every_registered_method(quick_registry):
    from harness.config import plugins, registry
    from harness.protocol import sweep
    from harness.protocol.request import EvalRequest

    cells = sweep.grid(EvalRequest(method="", registry=quick_registry), ["all"], [], [], [0])
    registered = set(plugins.load(registry.load(quick_registry)).methods)
    assert {c.method for c in cells} == registered and len(cells) == len(registered) == 16
    assert {"soft-kd", "hard-kd", "minillm", "topk-kd", "rs-kd", "dp-kd", "dp-ft"} <= registered


def test_shards_split_the_grid_into_whole_groups(quick_registry):
    from harness.protocol import sweep
    from harness.protocol.request import EvalRequest

    cells = sweep.grid(EvalRequest(method="", registry=quick_registry), ["soft-kd", "hard-kd"], [], [],
                       [0, 1, 2])
    shards = [sweep.shard(cells, i, 2) for i in range(2)]
    assert sorted(map(str, shards[0] + shards[1])) == sorted(map(str, cells))  # every cell once
    assert {c.seed for c in shards[0]} == {0, 2} and {c.seed for c in shards[1]} == {1}
    assert all(len(s) == 2 * len({c.seed for c in s}) for s in shards)  # a seed's methods stay together


def test_a_bad_shard_is_one_line(quick_registry, capsys):
    for bad in ("3/2", "0/2", "1", "a/b"):
        assert exit_code(["--registry", str(quick_registry), "sweep", "--methods", "soft-kd", "--shard", bad]) == 2
        err = capsys.readouterr().err
        assert "argument --shard: expected I/N with 1 <= I <= N" in err and err.count("\n") == 1
