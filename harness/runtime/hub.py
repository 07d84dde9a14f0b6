"""Reaching the Hugging Face hub without ever hanging on a machine that cannot.

Hub families and datasets call through here. Whether the hub is reachable is decided once, up
front (`HF_HUB_OFFLINE`, else a short TCP probe of the endpoint), so that an unreachable hub is
one line naming what is missing and the three ways to provide it, never a stack of retries or a
traceback. Offline, models and tokenizers still load from the Hugging Face cache (`HF_HOME`).
"""

from __future__ import annotations

import functools
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlparse

from harness.errors import UsageError

PROBE_SECONDS = float(os.environ.get("HARNESS_HUB_PROBE_SECONDS", 3))
_TRUE = {"1", "true", "yes", "on"}

T = TypeVar("T")


def offline_by_choice() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in _TRUE


@functools.lru_cache(maxsize=1)
def reachable() -> bool:
    """True when the hub endpoint accepts a TCP connection within PROBE_SECONDS."""
    if offline_by_choice():
        return False
    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname or "huggingface.co", port), timeout=PROBE_SECONDS):
            return True
    except OSError:
        return False


def hf_home() -> str:
    return os.environ.get("HF_HOME") or str(Path("~/.cache/huggingface").expanduser())


def why_offline() -> str:
    return "HF_HUB_OFFLINE is set" if offline_by_choice() else "huggingface.co cannot be reached"


def pretrained(load: Callable[..., T], repo: str, *, owner: str, local_hint: str, **kwargs: Any) -> T:
    """`load(repo, ...)` (a `from_pretrained`) with remote code off, from the cache only when offline.

    A missing repo or file is one UsageError line: what is missing, why, and how to provide it.
    """
    online = reachable()
    try:
        return load(repo, trust_remote_code=False, local_files_only=not online, **kwargs)
    except (OSError, ValueError) as err:
        if online:
            raise UsageError(f"{owner}: cannot load {repo} from the hub: {_first_line(err)}") from None
        raise UsageError(
            f"{owner}: {repo} is not in the Hugging Face cache (HF_HOME={hf_home()}) and {why_offline()}: "
            f"connect to a network, download it into HF_HOME (`hf download {repo}`), or {local_hint}"
        ) from None


def require_online(what: str, *, owner: str, local_hint: str) -> None:
    """For sources that stream: refuse at once, before any retry loop starts, when the hub is out of reach."""
    if not reachable():
        raise UsageError(f"{owner}: {what} streams from the Hugging Face hub and {why_offline()}: "
                         f"connect to a network, or {local_hint}")


def _first_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return lines[0][:300] if lines else type(err).__name__
