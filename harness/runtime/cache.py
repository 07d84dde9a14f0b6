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
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.errors import UsageError
from harness.runtime import log
from harness.runtime.faults import fault

MANIFEST = "artifact.json"
# What torch and pickle write; the harness writes safetensors and JSON only (tests/test_security.py).
PICKLE_SUFFIXES = {".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt"}


def key(deps: dict[str, Any]) -> str:
    blob = json.dumps(deps, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def default_dir() -> Path:
    """The artifact cache: $HARNESS_CACHE, else ~/.cache/harness. The one place it is worked out."""
    return Path(os.environ.get("HARNESS_CACHE") or Path.home() / ".cache" / "harness")


class Cache:
    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)

    def path(self, kind: str, k: str) -> Path:
        return self.root / kind / k

    def get(self, kind: str, k: str) -> Path | None:
        """The artifact's folder if it is the one asked for, whole, and unaltered; else None.

        Identity as well as integrity: the manifest must name this kind and key (a folder copied
        under another key is not this artifact), the entry must be a real folder (a symlink could
        point anywhere), and it may hold only the files its manifest lists, none of them a link.
        Anything else is moved aside inside the cache, with one line, and rebuilt.
        """
        folder = self.path(kind, k)
        if not os.path.lexists(folder):
            return None
        bad = _problems(folder, kind, k)
        if bad:
            log.info(f"cached {kind} {k} is corrupt ({', '.join(bad)}); rebuilding it")
            self._move_aside(folder, kind, k)
            return None
        return folder

    def _move_aside(self, folder: Path, kind: str, k: str) -> None:
        """Rename a bad entry into the cache's `.rejected` folder: never followed, never deleted
        outside the cache (a symlink is moved as a link), and out of the way of its rebuild."""
        aside = self.root / ".rejected" / f"{kind}-{k}-{time.monotonic_ns()}"
        aside.parent.mkdir(parents=True, exist_ok=True)
        os.rename(folder, aside)
        if not aside.is_symlink():
            shutil.rmtree(aside, ignore_errors=True)

    def build(self, kind: str, k: str, deps: dict[str, Any], write: Callable[[Path], None]) -> Path:
        """Run `write(tmp_folder)`, checksum what it wrote, and move it into place atomically."""
        final = self.path(kind, k)
        tmp = final.parent / f".tmp-{k}-{os.getpid()}-{time.monotonic_ns()}"
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            _remove_orphans(final.parent, k)
            tmp.mkdir()
        except OSError as err:  # a read-only or full cache folder: the user's to fix, one line
            raise UsageError(f"cannot write to the cache at {self.root}: {err.strerror or err} "
                             f"(pass another --cache-dir or set HARNESS_CACHE)") from None
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


def _problems(folder: Path, kind: str, k: str) -> list[str]:
    """What is wrong with a cache entry, in a few words each; empty when it is the artifact asked for."""
    if folder.is_symlink() or not folder.is_dir():
        return ["a symlink, not a folder" if folder.is_symlink() else "not a folder"]
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
        files = manifest["files"]
        if not isinstance(files, dict):
            raise TypeError(f"files is a {type(files).__name__}")
    except (OSError, ValueError, KeyError, TypeError):
        return [f"{MANIFEST} missing or unreadable"]
    if (manifest.get("kind"), manifest.get("key")) != (kind, k):
        return [f"its manifest names {manifest.get('kind')} {manifest.get('key')}"]
    links = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_symlink())
    if links:
        return [f"{name} is a symlink" for name in links]
    present = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()} - {MANIFEST}
    pickles = sorted(name for name in present & set(files) if Path(name).suffix in PICKLE_SUFFIXES)
    if pickles:  # the harness writes none, so one listed in a manifest was put there by hand: never loaded
        return [f"{name} is a pickle" for name in pickles]
    bad = [f"{name} missing" if name not in present else f"{name} changed"
           for name, digest in files.items() if name not in present or _sha256(folder / name) != digest]
    return bad + [f"{name} not in the manifest" for name in sorted(present - set(files))]


def _remove_orphans(parent: Path, k: str) -> None:
    """Temporary folders of writers that were killed: never artifacts, only wasted disk."""
    for tmp in parent.glob(f".tmp-{k}-*"):
        pid = tmp.name.removeprefix(f".tmp-{k}-").split("-")[0]
        if pid.isdigit() and not pid_alive(int(pid)):
            shutil.rmtree(tmp, ignore_errors=True)


def pid_alive(pid: int) -> bool:
    """Whether process `pid` runs: it exists and is not a zombie (dead, not yet reaped by its own parent)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc (macOS): existing is alive
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def weights_hash(folder: Path) -> str | None:
    """One sha256 over a cached checkpoint's weight files, from its manifest's checksums: what tells two
    checkpoints apart when their keys agree (the same key trained on another machine gives other weights).
    None where the folder has no readable manifest or no safetensors file."""
    try:
        files = json.loads((Path(folder) / MANIFEST).read_text())["files"]
        weights = sorted((name, digest) for name, digest in files.items() if name.endswith(".safetensors"))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    if not weights or not all(isinstance(d, str) for _, d in weights):
        return None
    return hashlib.sha256(json.dumps(weights).encode()).hexdigest()[:20]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
