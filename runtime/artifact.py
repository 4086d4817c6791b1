"""The artifact: a directory with `manifest.json`, `weights.bin`, the generated module and numba's cache.

This module knows nothing of Keras or the compiler. It writes an artifact atomically, and reads one
back only after checking every file against the hashes in its manifest and the manifest against
this kerasjit, numba and machine, so a stale or tampered artifact is never run.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..errors import ArtifactError

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
WEIGHTS = "weights.bin"
MODULE = "model_gen.py"
_PKG_ROOT = Path(__file__).resolve().parent.parent
#: the sources whose change must invalidate every artifact (numba does not track cross-module calls)
_SOURCE_DIRS = ("compiler", "kernels", "runtime", "encoder")


def file_hash(path: str | os.PathLike, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(chunk)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


@lru_cache(maxsize=1)
def source_hash() -> str:
    """Hash of kerasjit's own compiler, kernel and runtime sources."""
    h = hashlib.sha256()
    for d in _SOURCE_DIRS:
        for p in sorted((_PKG_ROOT / d).rglob("*.py")):
            h.update(str(p.relative_to(_PKG_ROOT)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()[:32]


@lru_cache(maxsize=1)
def machine_id() -> dict[str, str]:
    """What compiled machine code depends on: numba's version and the host CPU (name and features)."""
    import llvmlite.binding as llvm
    import numba

    features = llvm.get_host_cpu_features().flatten()
    return {"numba": numba.__version__, "llvmlite": llvm.llvm_version_info and ".".join(map(str, llvm.llvm_version_info)),
            "cpu": llvm.get_host_cpu_name(), "cpu_features": hashlib.sha256(features.encode()).hexdigest()[:16]}


def environment_key(target: str) -> dict[str, str]:
    """What an artifact for `target` depends on; for "cuda" also the GPU (raises TargetError without one)."""
    from .. import __version__
    env = {"kerasjit": __version__, "source": source_hash(), "target": target, **machine_id()}
    if target == "cuda":
        from .cuda_device import cuda_environment
        env.update(cuda_environment())
    return env


def write_artifact(dest: Path, files: dict[str, bytes], manifest: dict[str, Any]) -> Path:
    """Write `files` and a manifest hashing them into `dest`, atomically (temp dir + rename).

    If another process wrote `dest` first, its artifact is kept and ours discarded: both are the same
    compilation of the same inputs.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        hashes = {}
        for name, data in files.items():
            (tmp / name).write_bytes(data)
            hashes[name] = hashlib.sha256(data).hexdigest()
        manifest = {**manifest, "format": FORMAT_VERSION, "files": hashes}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True))
        try:
            os.replace(tmp, dest)
        except OSError:
            if not (dest / MANIFEST).exists():
                shutil.rmtree(dest, ignore_errors=True)
                os.replace(tmp, dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return dest


def read_manifest(path: Path) -> dict[str, Any]:
    mpath = Path(path) / MANIFEST
    try:
        manifest = json.loads(mpath.read_text())
    except FileNotFoundError:
        raise ArtifactError(f"{path}: not a kerasjit artifact (no {MANIFEST})") from None
    except (OSError, ValueError) as e:
        raise ArtifactError(f"{mpath}: unreadable manifest: {e}") from e
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_VERSION:
        raise ArtifactError(f"{mpath}: artifact format {manifest.get('format') if isinstance(manifest, dict) else '?'}"
                            f", this kerasjit reads format {FORMAT_VERSION}")
    return manifest


def check_artifact(path: Path, manifest: dict[str, Any]) -> None:
    """Raise `ArtifactError` unless every file matches its hash and the artifact fits this machine."""
    path = Path(path)
    env = environment_key(manifest.get("target", "cpu"))
    for k in ("kerasjit", "source", "numba", "cpu", "cpu_features", "gpu", "numba_cuda"):
        if manifest.get("env", {}).get(k) != env.get(k):
            raise ArtifactError(f"{path}: made for {k} {manifest.get('env', {}).get(k)!r}, this is {env.get(k)!r}; "
                                f"recompile the model")
    files = manifest.get("files")
    if not isinstance(files, dict) or MODULE not in files or WEIGHTS not in files:
        raise ArtifactError(f"{path / MANIFEST}: manifest lists no {MODULE}/{WEIGHTS}")
    for name, want in files.items():
        p = path / name
        if not p.is_file():
            raise ArtifactError(f"{path}: file {name} is missing")
        got = file_hash(p)
        if got != want:
            raise ArtifactError(f"{p}: content does not match the manifest (sha256 {got[:12]}..., "
                                f"expected {want[:12]}...): corrupted or edited")
