"""One leaderboard query: `harness leaderboard` and the app rank the same runs the same way, board by board,
and runs of a family with other arguments (pretrained or from-scratch weights) are a board of their own."""

from __future__ import annotations

import json

import pytest
from board_data import add_run

from harness.cli import main
from harness.leaderboard import standings
from harness.present import board_report, formats
from harness.store import connection, labels, read
from harness.store.database import Store

SCRATCH = json.dumps({"weights": "scratch"})


@pytest.fixture
def store(tmp_path) -> Store:
    store = Store(tmp_path / "results.duckdb")
    add_run(store, "r-soft", "soft-kd")
    add_run(store, "r-hard", "hard-kd", family_args=None)  # NULL: from before family arguments; the same board
    add_run(store, "r-topk", "topk-kd")
    # from scratch: another board, where the ranking is the other way round
    add_run(store, "s-soft", "soft-kd", family_args=SCRATCH, student=set(range(10)))
    add_run(store, "s-hard", "hard-kd", family_args=SCRATCH, student={0})
    return store


def app_boards(store: Store) -> list[tuple[dict, list[str]]]:
    with connection.reading(store.path) as con:
        table = standings.board(con)
    return [(keys, group.loc[~group["reference"], "method"].tolist()) for keys, group in standings.boards(table)]


def test_the_cli_and_the_app_give_the_same_ranking_with_family_args_apart(store):
    cli = board_report.leaderboard(store)
    app = app_boards(store)
    assert [b.family_args for b in cli] == [k["family_args"] for k, _ in app] == [SCRATCH, "{}"]  # in key order
    for board, (keys, methods) in zip(cli, app):
        assert [r[2] for r in board.rows if not r[2].startswith("(baseline")] == methods
        assert board.rows[board.ranked][2] == "(baseline: fine-tuned)"  # after the ranked methods, before the rest
        assert (board.family, board.dataset, board.preset, board.dataset_hash) == (
            keys["family"], keys["dataset"], keys["preset"], keys["dataset_hash"])
    assert app[1][1] == ["soft-kd", "topk-kd", "hard-kd"]  # by student memorization, lowest first
    # the scratch runs are not merged into the other board; there hard-kd memorizes least (1 member against
    # 10) but its perplexity is 10% above the baseline's: it is listed after the baseline, unranked
    assert app[0][1] == ["soft-kd", "hard-kd"]
    assert [r[0] for r in cli[0].rows] == ["1", "-", "-"] and cli[0].rows[-1][-1].startswith("perplexity 33.0")
    assert cli[0].title.startswith("tiny (weights=scratch) on synthetic-pii")
    assert cli[1].title.startswith("tiny on synthetic-pii")


def test_the_cli_prints_the_apps_figures(store):
    [_, board] = board_report.leaderboard(store)
    with connection.reading(store.path) as con:
        [_, (_, group)] = standings.boards(standings.board(con))
    for row, r in zip(board.rows, group.to_dict("records")):
        assert row[2] == r["method"] and row[5] == board_report.memorization(r)  # no sampling figures: exact match
        if not r["reference"]:
            assert row[6:12] == [formats.pct(r.get("once_attack_tpr")), formats.num(r["reduction"], 2, "x"),
                                 formats.pct(r["inheritance_rate"]), formats.num(r["val_ppl_student"]),
                                 board_report.epsilon(r), r["why"]]
            assert row[10] == "-"  # no DP-SGD row here: the epsilon column is empty


def test_the_labels_are_the_apps(store, capsys):
    assert main(["leaderboard", "--db", str(store.path)]) == 0
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if line.startswith("rank"))
    for label in labels.FIGURES.values():
        assert label in header
    assert out.count("-- not ranked: outside the utility band") == 2
    assert out.count(" on synthetic-pii (preset quick") == 2


def test_a_latest_rerun_replaces_its_seed_only_on_its_own_board(store):
    add_run(store, "s-soft-again", "soft-kd", family_args=SCRATCH, student=set())  # later: counts on the scratch board
    app = app_boards(store)
    assert app[1][1] == ["soft-kd", "topk-kd", "hard-kd"] and app[0][1] == ["soft-kd", "hard-kd"]
    assert [r[2] for r in board_report.leaderboard(store)[0].rows] == ["soft-kd", "(baseline: fine-tuned)", "hard-kd"]


def test_runs_from_an_installed_harness_without_a_commit_rank_too(store):
    with store.writing() as con:  # outside a git checkout (a wheel install) a run has no commit
        con.execute("UPDATE runs SET git_commit = NULL")
    with connection.reading(store.path) as con:
        table = standings.board(con)
    assert set(table.loc[table["reference"], "git_commit"]) == {"None"}
    assert [r[2] for r in board_report.leaderboard(store)[1].rows] == ["soft-kd", "topk-kd", "(baseline: fine-tuned)",
                                                                   "hard-kd"]


def test_the_apps_charts_keep_to_their_board(store):
    with connection.reading(store.path) as con:
        rates, runs = standings.role_rates(con), read.runs(con)
        [(scratch, _), (default, _)] = standings.boards(standings.board(con))
    mine = standings.of_board(rates, scratch)
    assert set(mine["method"]) == {"soft-kd", "hard-kd"} and set(mine["family_args"]) == {SCRATCH}
    assert set(standings.of_board(runs, default)["run_id"]) == {"r-soft", "r-hard", "r-topk"}
    soft = standings.of_board(rates, default).query("method == 'soft-kd' and role == 'student'")
    assert len(soft) == 1 and soft["seeds"].iloc[0] == 1  # the scratch run is not averaged in


def test_compare_takes_the_runs_the_board_counts(store):
    add_run(store, "r-soft-again", "soft-kd")  # a later rerun of soft-kd at seed 0 on the default board
    with connection.reading(store.path) as con:
        counted = set(read.runs(con)["run_id"])
        assert "r-soft-again" in counted and "r-soft" not in counted
        # the scratch board's soft-kd counts there; at one seed compare takes the latest of the two
        assert read.latest_by_seed(con, "tiny", "synthetic-pii", "soft-kd") == [(0, "r-soft-again")]
        assert read.latest_by_seed(con, "tiny", "synthetic-pii", "hard-kd") == [(0, "s-hard")]
        assert read.latest_by_seed(con, "tiny", "another-dataset", "soft-kd") == []


def test_every_filter_is_a_parameter(store):
    with connection.reading(store.path) as con:
        assert read.runs(con, read.Filters(search="soft' OR 1=1 --")).empty
        assert set(read.runs(con, read.Filters(search="SOFT"))["run_id"]) == {"r-soft", "s-soft"}
        assert read.runs(con, read.Filters(family=["tiny'; DROP TABLE runs; --"])).empty
        assert len(read.runs(con)) == 5


def test_latest_finished_is_the_latest_run_at_a_config_with_features_if_asked(store):
    _, [(config,)] = store.query("SELECT config_hash FROM runs WHERE run_id = 'r-soft'")
    with store.reading() as con:
        assert read.latest_finished(con, config) == "r-soft"
        assert read.latest_finished(con, config, require_features=True) is None  # no predictor features stored
    with store.writing() as con:
        con.execute("INSERT INTO features (run_id, sample_id) VALUES ('r-soft', 'm000000')")
    with connection.reading(store.path) as con:
        assert read.latest_finished(con, config, require_features=True) == "r-soft"
        assert read.latest_finished(con, "no-such-hash") is None
