"""The harness's one logger, `harness`: progress and warnings on stderr as `harness: message`.

Under `accelerate launch` every process runs the whole command, so only the main process says
what it does; the others report warnings only. Set up once per process, by `harness.cli.main`
or by the first message of a library caller (a test, the app, a benchmark), so the lines look
the same either way.
"""

from __future__ import annotations

import logging
import sys

logger = logging.getLogger("harness")


class _Stderr(logging.Handler):
    """Writes to whatever `sys.stderr` is at the time, as print did (a test's capture, a redirect)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
            sys.stderr.flush()
        except Exception:  # noqa: BLE001 - logging's own contract: a failed write never raises
            self.handleError(record)


class _Format(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        warning = "warning: " if record.levelno >= logging.WARNING else ""
        return f"harness: {warning}{record.getMessage()}"


def setup() -> logging.Logger:
    """Attach the stderr handler once, at INFO on the main process and WARNING on the others."""
    from harness.runtime.processes import is_main

    if not any(isinstance(h, _Stderr) for h in logger.handlers):
        handler = _Stderr()
        handler.setFormatter(_Format())
        logger.addHandler(handler)
        logger.propagate = False  # a caller's root handler would print every line twice
    logger.setLevel(logging.INFO if is_main() else logging.WARNING)
    return logger


def info(message: str) -> None:
    setup().info(message)


def warning(message: str) -> None:
    """Printed as `harness: warning: message`, on every process."""
    setup().warning(message)


def quiet_libraries() -> None:
    """The libraries' own chatter off before a command loads them: tokenizers' fork warning, the hub's
    telemetry, transformers' info lines, and its progress bars where ours are off or on another process."""
    import os
    import warnings

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    warnings.filterwarnings("ignore", message=".*TRANSFORMERS_CACHE.*")
    from transformers.utils import logging as transformers_logging

    from harness.runtime import processes, progress

    transformers_logging.set_verbosity_error()
    if not progress.enabled() or not processes.is_main():  # its loading and saving bars too
        transformers_logging.disable_progress_bar()
