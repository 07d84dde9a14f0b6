"""Measure how much knowledge-distilled language models memorize their training data."""

__version__ = "0.1.0"

from harness.hookspecs import hookimpl  # noqa: E402  (re-exported for plugin authors)

__all__ = ["__version__", "hookimpl"]
