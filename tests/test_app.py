"""The Streamlit app under AppTest, against databases the tests build; and the server's health check."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request

import duckdb
import pytest
from streamlit.testing.v1 import AppTest

from harness.store import connection, labels
from tests.board_data import build, token_ids
from tests.conftest import ROOT

SEPARATOR = "── not ranked ──"

APP = str(ROOT / "harness" / "present" / "app.py")


@pytest.fixture
def app_env(tmp_path, monkeypatch):
    """The app reads $HARNESS_DB and finds no published snapshot."""
    (tmp_path / "boards").mkdir()
    monkeypatch.setenv("HARNESS_LEADERBOARDS", str(tmp_path / "boards"))
    return tmp_path


def run_app(db) -> AppTest:
    os.environ["HARNESS_DB"] = str(db)
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def board_methods(at: AppTest) -> list[str]:
    return at.dataframe[0].value["method"].tolist()


def test_board_rows_in_order_with_baseline_reference(app_env):
    at = run_app(build(app_env / "h.duckdb", methods=("soft-kd", "hard-kd", "topk-kd")))
    assert board_methods(at) == ["soft-kd", "topk-kd", "◦ (baseline: fine-tuned)", SEPARATOR, "hard-kd"]
    table = at.dataframe[0].value
    assert table["rank"].tolist() == ["=1", "=1", "–", "", "–"]  # 2 and 5 of 20 members: not separated
    assert table["student memorization"].tolist()[0] == "10.0% [1.1, 30.7]"  # 2 of 20; lower end exact (Clopper-Pearson)
    assert table["reduction vs baseline"].tolist()[0] == "–"  # 6 / 2 memorized members: too few for a ratio
    assert table["teacher access"].tolist() == ["logits", "top-k logits", "none", "", "text"]
    assert any("hard-kd: perplexity 33.0 against the baseline's 30.0" in m.value.replace("\\", "") for m in at.markdown)
    # leaks least: no single method, as the two share rank 1; the delta names them
    assert at.metric[0].value == "not separated"  # the delta is markdown: escaped plain text
    assert at.metric[0].delta.replace("\\", "") == "=1: soft-kd, topk-kd"


def test_filters_change_the_board(app_env):
    at = run_app(build(app_env / "h.duckdb", methods=("soft-kd", "hard-kd", "topk-kd")))
    at.multiselect(key="f_access").set_value(["text", "logits"]).run()
    assert board_methods(at) == ["soft-kd", "◦ (baseline: fine-tuned)", SEPARATOR, "hard-kd"]
    at.multiselect(key="f_access").set_value([]).run()
    at.text_input(key="f_search").set_value("TOPK").run()
    assert board_methods(at) == ["topk-kd", "◦ (baseline: fine-tuned)"]
    at.text_input(key="f_search").set_value("").run()
    at.text_input(key="f_search").set_value("no such method").run()
    assert "No run matches" in at.warning[0].value


def test_columns_can_be_chosen(app_env):
    at = run_app(build(app_env / "h.duckdb"))
    at.multiselect(key="columns").set_value(["mem_rate_student", "config_hash", "git_commit"]).run()
    table = at.dataframe[0].value
    assert list(table.columns) == ["rank", "method", "student memorization", "config hash", "git commit"]
    assert table["git commit"].tolist()[0] == "abc1234"


def test_drill_down_shows_each_roles_continuation(app_env):
    at = run_app(build(app_env / "h.duckdb"))
    run = next(o for o in at.selectbox(key="drill_run").options if "run-hard-kd" in o)
    at.selectbox(key="drill_run").set_value(run).run()
    at.selectbox(key="drill_who").set_value("teacher").run()
    example = next(o for o in at.selectbox(key="drill_example").options if o.startswith("m000005"))
    at.selectbox(key="drill_example").set_value(example).run()
    texts = {m.value.split("**")[1]: m.value for m in at.markdown if m.value.startswith("**")}
    suffix = token_ids(5)[4:]
    green = '<span style="background:#c7f0c2">'
    red = '<span style="background:#f6c6c6">'
    # The teacher memorized member 5: every token of its continuation is the true one.
    assert texts["teacher"].count(green) == 4 and red not in texts["teacher"]
    assert "memorized, 4/4" in texts["teacher"]
    for t in suffix:
        assert f"w{t} " in texts["True suffix"]
    # hard-kd's student did not: two right, then token 49 twice.
    assert texts["student"].count(green) == 2 and texts["student"].count(f"{red}w49 </span>") == 2
    assert "not memorized, 2/4" in texts["student"]


def test_empty_database_gets_a_message(app_env):
    db = app_env / "empty.duckdb"
    duckdb.connect(str(db)).close()
    at = run_app(db)
    assert "empty" in at.info[0].value


def test_missing_database_gets_a_message(app_env):
    at = run_app(app_env / "nothing-here.duckdb")
    assert "No results database" in at.info[0].value


def test_older_schema_gets_a_message(app_env):
    db = app_env / "old.duckdb"
    con = duckdb.connect(str(db))
    con.execute("CREATE TABLE runs (run_id VARCHAR, method VARCHAR, status VARCHAR)")
    con.execute("INSERT INTO runs VALUES ('r1', 'soft-kd', 'finished')")
    con.close()
    at = run_app(db)
    assert "older harness" in at.info[0].value


def test_failed_run_is_reported_not_ranked(app_env):
    at = run_app(build(app_env / "h.duckdb", methods=(), failed=True))
    assert "No finished run" in at.info[0].value and "1 failed" in at.info[0].value
    at = run_app(build(app_env / "h2.duckdb", methods=("soft-kd",), failed=True))
    assert board_methods(at) == ["soft-kd", "◦ (baseline: fine-tuned)"]
    assert any("1 run(s) failed" in e.label for e in at.expander)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_streamlit_server_answers_health(app_env):
    db = build(app_env / "h.duckdb")
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", APP, "--server.port", str(port),
                             "--server.address", "127.0.0.1", "--server.headless", "true",
                             "--browser.gatherUsageStats", "false", "--", "--db", str(db)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=app_env)
    try:
        deadline = time.monotonic() + 90
        body = None
        while time.monotonic() < deadline and body is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as resp:
                    body = resp.read().decode()
            except OSError:
                assert proc.poll() is None, proc.stdout.read().decode()
                time.sleep(0.5)
        assert body == "ok"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.slow
def test_drill_down_on_a_real_run_agrees_with_the_verdicts(app_env, quick_registry):
    """The app shows the continuations the run stored (the quick preset samples every member), and
    the greedy tokens it highlights agree with the one-pass `match_len` of every role."""
    import re

    from harness.cli import main
    from tests.conftest import quick_args

    assert main(quick_args(quick_registry, "soft-kd")) == 0
    db = os.environ["HARNESS_DB"]
    at = run_app(db)
    at.selectbox(key="drill_who").set_value("anyone (all members)").run()
    options = at.selectbox(key="drill_example").options
    con = duckdb.connect(db, read_only=True)
    matches = dict(con.execute("SELECT role || sample_id, match_len FROM samples").fetchall())
    con.close()
    for option in options[:3]:
        at.selectbox(key="drill_example").set_value(option).run()
        assert not at.exception
        sample_id = option.split(" ")[0]
        for m in at.markdown:
            role = m.value.split("**")[1] if m.value.startswith("**") else None
            if role not in ("teacher", "baseline", "student"):
                continue
            spans = re.findall(r'background:(#[0-9a-f]+)', m.value)
            assert len(spans) == 8  # suffix_len of the quick preset
            k = matches[role + sample_id]
            assert spans[:k] == ["#c7f0c2"] * k
            if k < 8:
                assert spans[k] == "#f6c6c6"


def test_the_reproduction_has_a_page_of_its_own(app_env):
    from harness.store.database import Store

    db = build(app_env / "h.duckdb", methods=("soft-kd",))
    rows = [{"finding": "reduction", "claim": "fewer", "published": ">= 2.4x fewer", "source": "Borkar et al. (2026)",
             "unit": "x", "n": 3, "mean": 0.8, "lo": 0.5, "hi": 1.1, "holds": None, "per_seed": "[]", "runs": "{}",
             "verdict": "not established", "requested": 3, "figure": 2.4, "magnitude": "weaker", "caveat": ""},
            {"finding": "easy share", "claim": "most", "published": "95.7%", "source": "Borkar et al. (2026)",
             "unit": "%", "n": 3, "mean": 0.95, "lo": 0.92, "hi": 0.97, "holds": True, "per_seed": "[]", "runs": "{}",
             "verdict": "holds", "requested": 3, "figure": 0.957, "magnitude": "within", "caveat": ""},
            {"finding": "containment", "claim": "most", "published": "80%", "source": "Borkar et al. (2026)",
             "unit": "%", "n": 2, "mean": None, "lo": None, "hi": None, "holds": None, "per_seed": "[]", "runs": "{}",
             "verdict": "n/a", "requested": 3, "figure": 0.8, "magnitude": "",
             "caveat": "n/a: the baseline memorized 4 members over 2 seeds, fewer than 10"}]
    Store(db).record_reproduction("r1", {"family": "tiny", "dataset": "synthetic-pii", "preset": "tiny"}, rows)
    at = run_app(db)
    assert any("?page=reproduce" in m.value for m in at.markdown)  # linked from the board
    os.environ["HARNESS_DB"] = str(db)
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params["page"] = "reproduce"
    at.run()
    assert not at.exception
    table = at.dataframe[0].value
    assert table["measured here"].tolist() == ["0.80x [0.50x, 1.10x]", "95.0% [92.0%, 97.0%]", "n/a"]
    assert table["verdict"].tolist() == ["not established", "holds", "n/a"]
    assert table["seeds"].tolist() == ["3 of 3", "3 of 3", "2 of 3"]
    assert table["magnitude"].tolist() == ["weaker (2.40x published)", "within (95.7% published)", ""]
    assert table["caveats"].tolist()[2] == "n/a: the baseline memorized 4 members over 2 seeds, fewer than 10"
    assert at.metric[0].value == "1 of 3"
    assert any(m.value == "1 not established, 0 fail, 1 n/a" for m in at.markdown)


@pytest.mark.parametrize("board", sorted(p.stem for p in (ROOT / "leaderboards").glob("*.duckdb")))
def test_every_shipped_board_shows_its_title_regime_and_the_clis_rank_1(app_env, board):
    """Both published boards (the default's and the studies' regime) open in the app under their spec's title,
    with the regime in one line beneath it, and lead with the row the CLI ranks first."""
    from harness.leaderboard.board_specs import spec_of
    from harness.present import board_report
    from harness.store.database import Store

    snapshot = ROOT / "leaderboards" / f"{board}.duckdb"
    spec = spec_of(snapshot)
    assert spec is not None and spec.title and spec.regime
    [cli] = board_report.leaderboard(Store(snapshot), rules=spec.ranking)
    at = run_app(snapshot)
    assert at.header[0].value.replace("\\", "") == spec.title
    regime = [m.value.replace("\\", "") for m in at.markdown if m.value.startswith("**Regime:**")]
    assert regime == [f"**Regime:** {spec.regime}"]
    assert at.dataframe[0].value["method"].iloc[0] == cli.rows[0][2]
    # the headline's leakage figure is the one the board ranks by (the loss gap on the studies' board, where
    # extraction and exact match read 0 for every row)
    assert at.metric[1].label.startswith(labels.COLUMNS[spec.ranking.primary][0])


def test_the_plane_chart_leads_with_the_measure_a_board_ranks_by():
    """The studies' board ranks by the loss gap on members seen once, where extraction and exact match read about
    0: its privacy-and-utility chart plots that gap first; the default's (ranked by extraction) does not add it."""
    import json

    from harness.leaderboard import standings
    from harness.leaderboard.board_specs import spec_of
    from harness.present.charts import chart_plane

    def first_fields(board: str) -> list[str]:
        snapshot = ROOT / "leaderboards" / f"{board}.duckdb"
        spec = spec_of(snapshot)
        with connection.reading(snapshot) as con:
            group = standings.board(con, rules=lambda keys: spec.ranking)
        chart = chart_plane(group.reset_index(drop=True), spec.ranking.primary).to_dict()
        return [json.dumps(panel) for panel in chart["hconcat"]]

    studies, default = first_fields("studies"), first_fields("default")
    assert len(studies) == len(default) + 1
    assert '"field": "membership_gap_student"' in studies[0] and "membership_gap_student_lo" in studies[0]
    assert all('"field": "membership_gap_student"' not in panel for panel in default)


def test_the_shipped_boards_rank_1_leads_the_app_as_it_leads_the_cli(app_env):
    from harness.leaderboard import standings
    from harness.leaderboard.board_specs import spec_of
    from harness.present import board_report
    from harness.store.database import Store

    snapshot = ROOT / "leaderboards" / "default.duckdb"
    spec = spec_of(snapshot)
    [cli] = board_report.leaderboard(Store(snapshot), rules=spec.ranking)
    at = run_app(snapshot)
    # "leaks least": the CLI's rank 1, inside the band, named only when no other row shares its rank
    assert at.metric[0].value == (cli.rows[0][2] if not cli.rows[0][0].startswith("=") else "not separated")
    table = at.dataframe[0].value
    assert table["rank"].iloc[0] in ("1", "=1") and table["method"].iloc[0] == cli.rows[0][2]
    methods = table["method"].tolist()  # dedup-ft sees each member once: the recipe section, before the band's;
    # minillm's 12 epochs are the preset's cap now, so it is judged by the band, and falls outside it
    assert methods.index("── another recipe ──") < methods.index("dedup-ft") < methods.index(SEPARATOR)
    assert methods.index(SEPARATOR) < methods.index("minillm")
    said = " ".join(m.value.replace("\\", "") for m in at.markdown if "Not ranked" in m.value)
    assert "Not ranked with the KD methods: another recipe or data exposure" in said
    unranked = cli.rows[cli.ranked + 1:]  # after the ranked rows and the baseline: each with its reason, as the CLI's
    assert unranked and all(f"{row[2]}: {row[-1]}" in said for row in unranked), said
    assert "dedup-ft: each member seen once per epoch" in said and "minillm: its own recipe" not in said
    assert at.header[0].value.replace("\\", "") == spec.title  # the markdown escapes of plain()
    with connection.reading(snapshot) as con:
        assert standings.board(con, rules=lambda keys: spec.ranking)["method"].iloc[0] == cli.rows[0][2]
    # the DP rows' bound check: the app's table holds the cells the CLI prints under the board
    [check] = [d.value for d in at.dataframe if list(d.value.columns) == board_report.BOUND_HEADERS]
    printed = [line.split() for line in cli.privacy.splitlines()]
    assert len(check) == 8 and set(check["verdict"]) == {"holds"}
    assert all(" ".join(row).split() in printed for row in check.itertuples(index=False))
    assert check.set_index("method").loc["dp-kd epsilon=1.0", "TPR [95%]"] == "1.0% [0.5%, 2.0%]"
    assert check.set_index("method").loc["dp-kd epsilon=1.0", "FPR (95% upper)"] == "1% (<= 1.50%)"


def test_the_dp_sweep_plots_the_boards_own_leakage_share_with_labels_that_do_not_collide():
    # Exact match reads 0 for every DP row on the shipped default, so its panel said nothing; the board ranks by
    # the share extractable by sampling, and the sweep plots that. Two close reference lines' labels sit one above
    # its line and one below the other's.
    from harness.leaderboard import privacy, standings
    from harness.leaderboard.board_specs import spec_of
    from harness.present.charts import chart_privacy

    snapshot = ROOT / "leaderboards" / "default.duckdb"
    spec = spec_of(snapshot)
    with connection.reading(snapshot) as con:
        group = standings.board(con, rules=lambda keys: spec.ranking)
        rows = privacy.private(group)
        found = privacy.checks(con, rows)
        points, refs = privacy.chart_data(rows, found, group, privacy.reference_tpr(con, group))
    assert standings.leak_column(group) == "extractable_rate_student"
    assert list(points["panel"].unique()) == ["extractable by sampling", "strongest attack's AUC",
                                              privacy.TPR_PANEL, "validation perplexity"]
    leak = points[points["panel"] == "extractable by sampling"]
    assert sorted(leak["value"]) == sorted(rows["extractable_rate_student"])
    spec_json = chart_privacy(points, refs).to_dict()
    texts = [layer for panel in spec_json["vconcat"] for chart in panel["hconcat"] for layer in chart["layer"]
             if layer["mark"].get("type") == "text"]
    assert texts and {t["mark"]["dy"] for t in texts} == {-7, 9}
    for t in texts:  # the higher line's label above it, the lower's below
        data = spec_json["datasets"][t["data"]["name"]]
        assert all(row["upper"] == (t["mark"]["dy"] < 0) for row in data)
    assert "soft-kd 0.73%" in {row["label"] for name in spec_json["datasets"] for row in spec_json["datasets"][name]
                              if isinstance(row, dict) and "label" in row}
