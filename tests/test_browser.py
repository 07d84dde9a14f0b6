"""The app in Debian's headless Chromium: every board row, the headline and every chart rendered, and
no chart's text boxes overlapping (what AppTest cannot see: the page as drawn).

Screenshots are kept under pytest's temporary folder (printed) for CI to collect.
"""

from __future__ import annotations

import json
import time

import pytest

from tests.board_data import build
from tests.chromium import app_server, browser, chromium
from tests.conftest import ROOT

pytestmark = [pytest.mark.slow, pytest.mark.skipif(chromium() is None, reason="chromium is not installed")]

WIDTH = 1400
READY = ("document.querySelectorAll('[class*=\"st-key-headline\"]').length > 0 && "
         "document.querySelectorAll('[class*=\"st-key-rocchart\"] svg.marks').length > 0 && "
         "document.body.innerText.includes('Scores per role')")
CHARTS = ("roles", "plane", "k", "rocchart")

# Every chart's visible text marks (axis labels and titles, legend labels, facet headers, mark labels) as
# boxes; Vega keeps the tick labels its own overlap rule hides, at opacity 0.
TEXT_BOXES = """(() => {
  const out = {};
  for (const key of %s) {
    const holder = document.querySelector(`[class*="st-key-${key}_"]`);
    const svg = holder && holder.querySelector('svg.marks');
    if (!svg) { out[key] = null; continue; }
    const shown = t => t.textContent.trim() && !t.closest('[opacity="0"]') && getComputedStyle(t).opacity !== '0';
    out[key] = [...svg.querySelectorAll('text')].filter(shown).map(t => {
      const r = t.getBoundingClientRect();
      return {text: t.textContent, x: r.x, y: r.y, w: r.width, h: r.height};
    }).filter(b => b.w > 0 && b.h > 0);
  }
  return out;
})()"""

# The board's data grid: its rows as drawn (glide renders a canvas, with an accessible table beside it).
GRID = """(() => {
  const grid = document.querySelector('[class*="st-key-board_"] [data-testid="stDataFrame"], [data-testid="stDataFrame"]');
  const scroller = grid.querySelector('.dvn-scroller');
  return {rows: grid.querySelectorAll('table [role="row"]').length,
          scrollX: scroller ? scroller.scrollWidth - scroller.clientWidth : 0,
          scrollY: scroller ? scroller.scrollHeight - scroller.clientHeight : 0};
})()"""


def overlaps(boxes: list[dict], slack: float = 1.0) -> list[tuple[str, str]]:
    """Pairs of text boxes that intersect by more than `slack` pixels each way."""
    out = []
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            dx = min(a["x"] + a["w"], b["x"] + b["w"]) - max(a["x"], b["x"])
            dy = min(a["y"] + a["h"], b["y"] + b["h"]) - max(a["y"], b["y"])
            if dx > slack and dy > slack:
                out.append((a["text"], b["text"]))
    return out


def test_overlap_check_can_fail():
    a = {"text": "imitkd", "x": 10, "y": 10, "w": 40, "h": 12}
    assert overlaps([a, {**a, "text": "minillm", "x": 30}]) == [("imitkd", "minillm")]
    assert overlaps([a, {**a, "text": "minillm", "y": 30}]) == []


def check_page(tab, url: str, shots, name: str, n_rows: int, charts: tuple[str, ...] = CHARTS) -> None:
    tab.open(url, WIDTH, 1000)
    tab.wait(READY, 150)
    time.sleep(2)
    tab.fit(WIDTH)
    tab.screenshot(shots / f"{name}.png")
    assert tab.js("document.querySelectorAll('[class*=\"st-key-headline\"] [data-testid=\"stMetric\"]').length") == 4
    assert "leaks least" in tab.js("document.querySelector('[class*=\"st-key-headline\"]').innerText")
    grid = tab.js(GRID)
    assert grid["rows"] == n_rows + 1, grid  # the header row and every board row
    assert grid["scrollY"] <= 1 and grid["scrollX"] <= 1, grid  # nothing hidden behind a scrollbar
    boxes = tab.js(TEXT_BOXES % json.dumps(list(charts)))
    for chart in charts:
        assert boxes[chart], f"chart {chart} did not render"
        assert not overlaps(boxes[chart]), (chart, overlaps(boxes[chart]))
    # bundle text is plain text: a label can carry neither an image nor a link off the page
    found = tab.js("[...document.querySelectorAll('img[src*=\"//evil\"], a[href*=\"//evil\"]')].map(e => e.outerHTML)")
    assert found == [], found


def test_app_in_chromium(tmp_path, monkeypatch):
    shots = tmp_path / "screenshots"
    print(f"screenshots: {shots}")
    db = build(tmp_path / "small.duckdb", methods=("soft-kd", "hard-kd", "topk-kd"))
    import duckdb

    con = duckdb.connect(str(db))  # a submitter's label trying markdown: an image and a link
    con.execute("UPDATE runs SET method_label = 'topk-kd ![x](http://evil.example/x.png) [y](http://evil.example)' "
                "WHERE method = 'topk-kd'")
    con.close()
    monkeypatch.setenv("HARNESS_DB", str(tmp_path / "none.duckdb"))
    with browser(WIDTH, 1000) as tab:
        published = ROOT / "leaderboards" / "default.duckdb"
        with duckdb.connect(str(published), read_only=True) as con:
            labels = con.execute("SELECT count(DISTINCT method_label) FROM runs").fetchone()[0]
        # `streamlit run app.py` at the root, as a Space runs it: the checkout's leaderboards/, no --db;
        # every method, the baseline, the two separators (another recipe; outside the band); and the DP chart
        with app_server(None, script=ROOT / "app.py") as url:
            check_page(tab, url, shots, "published", n_rows=labels + 3, charts=(*CHARTS, "privacy"))
        with app_server(db) as url:
            check_page(tab, url, shots, "small", n_rows=5)
