"""The content-addressed artifact cache.

An artifact's key is a hash of everything that produced it, so a changed input can never hit
a stale artifact and an unchanged one is never rebuilt. An artifact is written to a temporary
folder and renamed into place whole, with a sha256 per file: a killed writer leaves nothing
that looks finished, and a truncated or altered file is detected before it is loaded.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.faults import fault

MANIFEST = "artifact.json"


def key(deps: dict[str, Any]) -> str:
    blob = json.dumps(deps, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def default_dir() -> Path:
    return Path(os.environ.get("HARNESS_CACHE") or Path.home() / ".cache" / "harness")


class Cache:
    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)

    def path(self, kind: str, k: str) -> Path:
        return self.root / kind / k

    def get(self, kind: str, k: str) -> Path | None:
        """The artifact's folder if it is whole and its files match their checksums; else None."""
        folder = self.path(kind, k)
        manifest = folder / MANIFEST
        if not folder.exists():
            return None
        try:
            files = json.loads(manifest.read_text())["files"]
            if not isinstance(files, dict):
                raise TypeError(f"files is a {type(files).__name__}")
        except (OSError, ValueError, KeyError, TypeError):
            bad = [f"{MANIFEST} missing or unreadable"]
        else:
            present = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()} - {MANIFEST}
            bad = [f"{name} missing" if name not in present else f"{name} changed"
                   for name, digest in files.items() if name not in present or _sha256(folder / name) != digest]
            bad += [f"{name} not in the manifest" for name in sorted(present - set(files))]
        if bad:
            print(f"harness: cached {kind} {k} is corrupt ({', '.join(bad)}); rebuilding it", file=sys.stderr)
            shutil.rmtree(folder, ignore_errors=True)
            return None
        return folder

    def build(self, kind: str, k: str, deps: dict[str, Any], write: Callable[[Path], None]) -> Path:
        """Run `write(tmp_folder)`, checksum what it wrote, and move it into place atomically."""
        final = self.path(kind, k)
        final.parent.mkdir(parents=True, exist_ok=True)
        _remove_orphans(final.parent, k)
        tmp = final.parent / f".tmp-{k}-{os.getpid()}-{time.monotonic_ns()}"
        tmp.mkdir()
        try:
            write(tmp)
            fault("cache:write")
            files = {p.relative_to(tmp).as_posix(): _sha256(p) for p in sorted(tmp.rglob("*")) if p.is_file()}
            (tmp / MANIFEST).write_text(json.dumps({"key": k, "kind": kind, "deps": deps, "files": files},
                                                   indent=2, sort_keys=True, default=str))
            try:
                os.rename(tmp, final)
            except OSError:  # another process finished the same artifact first: keep theirs
                if self.get(kind, k) is None:
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return final


def _remove_orphans(parent: Path, k: str) -> None:
    """Temporary folders of writers that were killed: never artifacts, only wasted disk."""
    for tmp in parent.glob(f".tmp-{k}-*"):
        pid = tmp.name.removeprefix(f".tmp-{k}-").split("-")[0]
        if pid.isdigit() and not pid_alive(int(pid)):
            shutil.rmtree(tmp, ignore_errors=True)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
