"""The artifact cache as a user sees it: list, size, clear (`kerasjit cache ...`).

The cache is a folder of artifact directories named by their key (see `api.compile`). Only directories
that are artifacts (they hold a `manifest.json`) or kerasjit's own unfinished writes (`.<key>.*`) are
ever removed, so pointing `--cache-dir` at the wrong folder deletes nothing else.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from .api import cache_root


@dataclass
class CacheEntry:
    """One cached artifact."""

    key: str
    path: Path
    model_name: str
    target: str
    source_format: str
    size: int          # bytes, numba's cache files included
    modified: float    # seconds since the epoch (the manifest's mtime: when it was compiled)

    @property
    def date(self) -> str:
        return time.strftime("%Y-%m-%d %H:%M", time.localtime(self.modified))


def _tree_size(path: Path) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += (Path(root) / f).stat().st_size
            except OSError:
                pass
    return total


def _is_partial(p: Path) -> bool:
    """A temporary directory left by an interrupted `write_artifact` (`.<key>.<random>`)."""
    return p.is_dir() and p.name.startswith(".") and not (p / "manifest.json").exists() and p.name.count(".") >= 2


def list_entries(cache_dir: str | os.PathLike | None = None) -> list[CacheEntry]:
    """Every artifact in the cache, newest first."""
    root = cache_root(cache_dir)
    if not root.is_dir():
        return []
    out = []
    for p in root.iterdir():
        manifest = p / "manifest.json"
        if not p.is_dir() or not manifest.is_file():
            continue
        try:
            m = json.loads(manifest.read_text())
        except (OSError, ValueError):
            m = {}
        out.append(CacheEntry(p.name, p, str(m.get("model_name", "?")), str(m.get("target", "?")),
                              str(m.get("source_format", "?")), _tree_size(p), manifest.stat().st_mtime))
    return sorted(out, key=lambda e: -e.modified)


def total_size(cache_dir: str | os.PathLike | None = None) -> tuple[int, int]:
    """(number of artifacts, bytes they take, unfinished writes included)."""
    root = cache_root(cache_dir)
    entries = list_entries(cache_dir)
    partial = sum(_tree_size(p) for p in root.iterdir() if _is_partial(p)) if root.is_dir() else 0
    return len(entries), sum(e.size for e in entries) + partial


def clear(cache_dir: str | os.PathLike | None = None, keys: list[str] | None = None) -> tuple[int, int]:
    """Remove the artifacts named by `keys` (key prefixes; all when None) and unfinished writes.
    Returns (artifacts removed, bytes freed)."""
    root = cache_root(cache_dir)
    removed = freed = 0
    for e in list_entries(cache_dir):
        if keys is None or any(e.key.startswith(k) for k in keys):
            freed += e.size
            shutil.rmtree(e.path, ignore_errors=True)
            removed += 1
    if keys is None and root.is_dir():
        for p in root.iterdir():
            if _is_partial(p):
                freed += _tree_size(p)
                shutil.rmtree(p, ignore_errors=True)
    return removed, freed
