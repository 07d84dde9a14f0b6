"""Debian's headless Chromium driving the Streamlit app over the DevTools protocol.

Shared by the browser test and docs/screenshot.py, so the screenshot in the README is taken
the way CI checks the page. Needs only `websockets` (the DevTools protocol is JSON over a
websocket) and the `chromium` binary; nothing is downloaded.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars"]


def chromium() -> str | None:
    """The Chromium binary, if installed (`apt-get install chromium`)."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str, seconds: float = 90, alive: subprocess.Popen | None = None) -> str:
    """The body at `url` once it answers; fails early if the process serving it has died."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                return resp.read().decode()
        except OSError:
            if alive is not None and alive.poll() is not None:
                raise RuntimeError(f"the process serving {url} exited with status {alive.returncode}") from None
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


class Tab:
    """One page target: numbered DevTools calls, JavaScript evaluation, screenshots."""

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
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg["result"]

    def js(self, expr: str):
        result = self.call("Runtime.evaluate", expression=expr, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expr[:80]}...: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait(self, expr: str, seconds: float = 90) -> None:
        deadline = time.monotonic() + seconds
        while not self.js(expr):
            if time.monotonic() > deadline:
                raise TimeoutError(f"page never satisfied: {expr}")
            time.sleep(0.4)

    def open(self, url: str, width: int, height: int) -> None:
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)
        self.call("Page.enable")
        self.call("Page.navigate", url=url)

    def fit(self, width: int, settle: float = 2.0) -> int:
        """Make the viewport as tall as the page: Streamlit scrolls its main area, not the document, so
        content below the fold is only captured (and measured) once the viewport holds all of it."""
        height = self.js("Math.max(document.querySelector('[data-testid=\"stMain\"]')?.scrollHeight || 0, "
                         "document.body.scrollHeight)")
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)
        time.sleep(settle)
        return height

    def screenshot(self, path: Path, selector: str | None = None) -> Path:
        """The viewport (after `fit`, the whole page), or the element `selector` matches."""
        params: dict = {"format": "png"}
        if selector is not None:
            box = self.js(f"(() => {{const e = document.querySelector({json.dumps(selector)}); if (!e) return null;"
                          "const r = e.getBoundingClientRect(); return {x: r.x, y: r.y, width: r.width, "
                          "height: r.height};})()")
            if not box:
                raise RuntimeError(f"no element matches {selector}")
            params["clip"] = {**box, "scale": 1}
        shot = self.call("Page.captureScreenshot", **params)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))
        return path


@contextmanager
def app_server(db: Path | None, env: dict | None = None, script: Path | None = None):
    """`streamlit run harness/present/app.py` (or `script`, from the checkout's root) on a free loopback
    port; yields its URL."""
    port = free_port()
    app = script or ROOT / "harness" / "present" / "app.py"
    cmd = [sys.executable, "-m", "streamlit", "run", str(app), "--server.port", str(port),
           "--server.address", "127.0.0.1", "--server.headless", "true", "--browser.gatherUsageStats", "false",
           "--client.toolbarMode", "minimal", "--server.fileWatcherType", "none"]
    if db is not None:
        cmd += ["--", "--db", str(db)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT,
                            env={**os.environ, **(env or {})})
    try:
        wait_for(f"http://127.0.0.1:{port}/_stcore/health", alive=proc)
        yield f"http://127.0.0.1:{port}/"
    finally:
        _stop(proc)


@contextmanager
def browser(width: int = 1400, height: int = 1000):
    """A headless Chromium with a fresh profile; yields a Tab on its first page."""
    from websockets.sync.client import connect

    binary = chromium()
    if binary is None:
        raise RuntimeError("chromium is not installed (apt-get install chromium)")
    port = free_port()
    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    proc = subprocess.Popen([binary, *CHROMIUM_FLAGS, f"--remote-debugging-port={port}", f"--user-data-dir={profile}",
                             f"--window-size={width},{height}", "about:blank"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        targets = json.loads(wait_for(f"http://127.0.0.1:{port}/json", alive=proc))
        ws_url = next(t for t in targets if t["type"] == "page")["webSocketDebuggerUrl"]
        with connect(ws_url, max_size=None, open_timeout=30) as ws:
            yield Tab(ws)
    finally:
        _stop(proc)
        shutil.rmtree(profile, ignore_errors=True)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
