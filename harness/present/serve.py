"""`harness app`: the packaged Streamlit app served as a child process that stops when the harness does."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from harness.errors import UsageError


def loopback(host: str) -> bool:
    """Whether an address is this machine only: what decides if private training text may be served."""
    return host in ("localhost", "::1") or host.startswith("127.")


def app_file() -> Path:
    """The app's script: a module of the package, installed with it."""
    from importlib import resources

    app = Path(str(resources.files("harness.present").joinpath("app.py")))
    if not app.is_file():
        raise UsageError(f"the harness is installed without its app ({app}): reinstall it")
    return app


def serve_app(host: str, port: int | None, db: Path | None, serve_private_text: bool, boards: Path, where: str,
              registry: Path | None) -> int:
    """Streamlit on `host`:`port` over the results file `db` (else the app's own choice) and the boards folder
    `boards` (found `where`), with the flags `.streamlit/config.toml` holds for a checkout."""
    app = app_file()
    cmd = [sys.executable, "-m", "streamlit", "run", str(app), "--browser.gatherUsageStats", "false",
           "--client.toolbarMode", "minimal", "--server.address", host]
    if port is not None:  # the command line checked its range
        cmd += ["--server.port", str(port)]
    if serve_private_text and loopback(host):
        raise UsageError("--serve-private-text is for a non-loopback --host; on 127.0.0.1 all text is shown")
    env = {**os.environ, "HARNESS_LEADERBOARDS": str(boards)}
    if serve_private_text:
        env["HARNESS_APP_SERVE_PRIVATE_TEXT"] = "1"
    if registry is not None:
        env["HARNESS_REGISTRY"] = str(registry.resolve())
    if db is not None:
        if not db.is_file():
            raise UsageError(f"no results database at {db}")
        cmd += ["--", "--db", str(db.resolve())]
    print(f"harness: serving {app} on http://{host}:{port or 8501}/ (Ctrl-C stops it); leaderboards: {where}",
          file=sys.stderr)
    return run(cmd, env)


def run(cmd: list[str], env: dict[str, str]) -> int:
    """Run Streamlit as a child that goes when we go: SIGTERM, SIGHUP or Ctrl-C here stop it too."""
    import signal
    import subprocess

    child = subprocess.Popen(cmd, env=env)

    def stop(signum, frame):
        raise KeyboardInterrupt

    previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        return child.wait()
    except KeyboardInterrupt:
        return 130
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if child.poll() is None:
            child.terminate()
            try:
                child.wait(15)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
