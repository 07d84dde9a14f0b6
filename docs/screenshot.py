"""Screenshot of the leaderboard app with Debian's headless Chromium (`apt-get install chromium`).

    python docs/screenshot.py [--db leaderboards/default.duckdb] [--out docs/leaderboard.png]

Starts `streamlit run app.py`, drives Chromium over its DevTools protocol until the board and
its charts have rendered (the app renders over a websocket, after the page's load event), then
captures the page. Needs no package beyond the harness's own (websockets comes with streamlit).
"""

from __future__ import annotations

import argparse
import base64
import json
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from websockets.sync.client import connect

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str, seconds: float = 60) -> str:
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                return resp.read().decode()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


class Tab:
    def __init__(self, ws) -> None:
        self.ws = ws
        self.n = 0

    def call(self, method: str, **params):
        self.n += 1
        self.ws.send(json.dumps({"id": self.n, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self.n:
                if "error" in msg:
                    raise RuntimeError(msg["error"])
                return msg["result"]

    def js(self, expr: str):
        return self.call("Runtime.evaluate", expression=expr, returnByValue=True)["result"].get("value")


def capture(tab: Tab, app_port: int, args) -> None:
    tab.call("Emulation.setDeviceMetricsOverride", width=args.width, height=args.height, deviceScaleFactor=1,
             mobile=False)
    tab.call("Page.enable")
    tab.call("Page.navigate", url=f"http://127.0.0.1:{app_port}/")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        ready = tab.js("document.querySelectorAll('[data-testid=\"stDataFrame\"]').length > 0 && "
                       "document.querySelectorAll('canvas.marks, svg.marks').length > 0 && "
                       "document.body.innerText.includes('greedy continuation')")
        if ready:
            break
        time.sleep(0.5)
    time.sleep(4)  # let the charts and the data grid finish drawing
    shot = tab.call("Page.captureScreenshot", format="png")
    Path(args.out).write_bytes(base64.b64decode(shot["data"]))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--db", default=str(ROOT / "leaderboards" / "default.duckdb"))
    ap.add_argument("--out", default=str(ROOT / "docs" / "leaderboard.png"))
    ap.add_argument("--width", type=int, default=1400)
    ap.add_argument("--height", type=int, default=2400)
    args = ap.parse_args()
    app_port, cdp_port = free_port(), free_port()
    app = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.port",
                            str(app_port), "--server.address", "127.0.0.1", "--server.headless", "true",
                            "--browser.gatherUsageStats", "false", "--client.toolbarMode", "minimal",
                            "--", "--db", args.db], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    profile = tempfile.mkdtemp()
    browser = subprocess.Popen(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                                f"--remote-debugging-port={cdp_port}", f"--user-data-dir={profile}",
                                f"--window-size={args.width},{args.height}", "about:blank"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(f"http://127.0.0.1:{app_port}/_stcore/health")
        targets = json.loads(wait_for(f"http://127.0.0.1:{cdp_port}/json"))
        ws_url = next(t for t in targets if t["type"] == "page")["webSocketDebuggerUrl"]
        with connect(ws_url, max_size=None) as ws:
            capture(Tab(ws), app_port, args)
        print(f"wrote {args.out}")
    finally:
        browser.terminate()
        app.terminate()
        browser.wait(10)
        app.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
