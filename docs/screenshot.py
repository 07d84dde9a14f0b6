"""Screenshots of the leaderboard app with Debian's headless Chromium (`apt-get install chromium`).

    python docs/screenshot.py [--db leaderboards/default.duckdb] [--out docs/leaderboard.png] [--parts DIR]

Starts `streamlit run harness/present/app.py`, drives Chromium over its DevTools protocol (tests/chromium.py, the
same driver the browser test uses) until the board and its charts have rendered, then captures
the whole page; with --parts, also the headline card, the privacy-and-utility chart and the
k-extractability chart and the DP-SGD epsilon chart (where the board has one), each on its own.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.chromium import app_server, browser  # noqa: E402

READY = ("document.querySelectorAll('[class*=\"st-key-headline\"]').length > 0 && "
         "document.querySelectorAll('svg.marks').length >= 4 && "
         "document.body.innerText.includes('Scores per role')")
PARTS = {"headline": '[class*="st-key-headline"]', "plane": '[class*="st-key-plane"]',
         "k-extractability": '[class*="st-key-k_"]', "privacy": '[class*="st-key-privacy_"]'}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--db", default=str(ROOT / "leaderboards" / "default.duckdb"))
    ap.add_argument("--out", default=str(ROOT / "docs" / "leaderboard.png"))
    ap.add_argument("--parts", type=Path, help="also write headline.png, plane.png, k-extractability.png, privacy.png here")
    ap.add_argument("--width", type=int, default=1400)
    args = ap.parse_args()
    with app_server(Path(args.db)) as url, browser(args.width, 1000) as tab:
        tab.open(url, args.width, 1000)
        tab.wait(READY, 180)
        time.sleep(3)  # the data grid draws on a canvas after its element appears
        tab.fit(args.width)
        tab.screenshot(Path(args.out))
        print(f"wrote {args.out}")
        for name, selector in PARTS.items() if args.parts else ():
            path = tab.screenshot(args.parts / f"{name}.png", selector)
            print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
