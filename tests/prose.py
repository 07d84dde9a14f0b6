"""Real English prose for tests, offline and licence-clean: the docstrings of Python's standard library.

They ship with every Python (under the PSF licence), so a test of the text-files dataset on prose
needs no download and no file outside the repository. Written in WikiText's layout: ` = Title = `
headings, and blank lines that hold a space between paragraphs, which a reader must still split on.
"""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path

MODULES = ("argparse", "asyncio", "collections", "contextlib", "csv", "dataclasses", "datetime", "decimal",
           "email.message", "enum", "fractions", "functools", "heapq", "http.client", "inspect", "io", "itertools",
           "json", "logging", "os", "pathlib", "pickle", "random", "re", "shutil", "socket", "statistics", "string",
           "subprocess", "tarfile", "textwrap", "threading", "typing", "unittest", "urllib.request", "uuid",
           "zipfile", "ast", "calendar", "codecs", "configparser", "copy", "difflib", "doctest", "ftplib", "gettext",
           "glob", "gzip", "hashlib", "imaplib", "locale", "mailbox", "optparse", "pdb", "pprint", "pydoc", "queue",
           "sched", "selectors", "smtplib", "tempfile", "timeit", "tokenize", "traceback")


def paragraphs() -> dict[str, list[str]]:
    """Each module's docstrings (its own, its classes' and functions', their methods'), one paragraph each."""
    seen: set[str] = set()
    out: dict[str, list[str]] = {}
    for name in MODULES:
        module = importlib.import_module(name)
        objs = [module, *(v for _, v in sorted(vars(module).items()) if inspect.isclass(v) or inspect.isfunction(v))]
        objs += [m for c in objs if inspect.isclass(c) for _, m in sorted(vars(c).items()) if inspect.isfunction(m)]
        for obj in objs:
            text = re.sub(r"\s+", " ", inspect.getdoc(obj) or "").strip()
            if len(text) >= 80 and text not in seen:
                seen.add(text)
                out.setdefault(name, []).append(text)
    return out


def write(path: Path) -> Path:
    lines = []
    for name, texts in paragraphs().items():
        lines += [" ", f" = {name} = ", " "]
        for text in texts:
            lines += [f" {text} ", " "]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
