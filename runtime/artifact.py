"""The artifact: a directory with `manifest.json`, `weights.bin`, the generated module and numba's cache.

This module knows nothing of Keras or the compiler. It writes an artifact atomically, and reads one
back only after checking every file against the hashes in its manifest and the manifest against
this kerasjit, numba and machine, so a stale or tampered artifact is never run.
"""
from __future__ import annotations

import atexit
import hashlib
import json
import os
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..errors import ArtifactError, CacheWarning

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
WEIGHTS = "weights.bin"
MODULE = "model_gen.py"
#: where numba writes its cache of the generated module (in-tree, beside it)
NUMBA_CACHE = "__pycache__"
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


def manifest_checksum(manifest: dict[str, Any]) -> str:
    """The hash a manifest records of itself (every key but "checksum"): a hand-edited or corrupted
    manifest (say, a smaller arena than the generated code needs) is refused before anything runs.
    It detects edits, it does not authenticate: whoever can write the artifact can recompute it."""
    body = {k: v for k, v in manifest.items() if k != "checksum"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def write_manifest(path: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """Write `manifest` (with its checksum) into artifact directory `path`, atomically."""
    manifest = {**manifest, "checksum": manifest_checksum(manifest)}
    tmp = Path(path) / f".{MANIFEST}.tmp"
    tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True))
    os.replace(tmp, Path(path) / MANIFEST)
    return manifest


@dataclass
class StagedArtifact:
    """An artifact written into a private directory, not yet visible at its cache path `dest`.

    `in_cache` is False when the cache directory could not be written: the artifact then lives in a
    temporary directory for this process only (removed at exit) and is never published."""

    path: Path
    dest: Path
    in_cache: bool

    def discard(self) -> None:
        """Remove the staged directory if it is still there (not published, or never publishable)."""
        shutil.rmtree(self.path, ignore_errors=True)


def stage_artifact(dest: Path, files: dict[str, bytes], manifest: dict[str, Any]) -> StagedArtifact:
    """Write `files` and a manifest hashing them into a new private directory beside `dest`, or, when
    the cache directory is not writable, into a temporary directory (with a `CacheWarning`).

    Numba writes its cache into the staged directory when the model first runs there; the artifact
    becomes visible at `dest` only through `publish_artifact`, complete and sealed."""
    dest = Path(dest)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp, in_cache = Path(tempfile.mkdtemp(prefix=f".{dest.name}.staging-", dir=dest.parent)), True
    except OSError as e:
        tmp, in_cache = Path(tempfile.mkdtemp(prefix="kerasjit-")), False
        warnings.warn(f"kerasjit: the cache directory {dest.parent} is not writable ({e.strerror or e}); "
                      f"compiling into the temporary directory {tmp} instead, removed when this process "
                      f"exits: the next process compiles the model again", CacheWarning, stacklevel=3)
    # an artifact that is never published (a failed compile, an unwritable cache) leaves nothing behind
    atexit.register(shutil.rmtree, tmp, ignore_errors=True)
    try:
        hashes = {}
        for name, data in files.items():
            (tmp / name).write_bytes(data)
            hashes[name] = hashlib.sha256(data).hexdigest()
        write_manifest(tmp, {**manifest, "format": FORMAT_VERSION, "files": hashes})
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return StagedArtifact(tmp, dest, in_cache)


def seal_numba_cache(path: Path) -> None:
    """Add numba's cache files (`__pycache__/*`, written when the model first ran) to the manifest's
    hashes, so a corrupted or edited `.nbi`/`.nbc` is refused like any other file instead of running
    machine code that nobody checked. Also records the generated module's modification time: numba's
    index is keyed on it, and `check_artifact` restores it after a copy that did not keep it."""
    path = Path(path)
    manifest = json.loads((path / MANIFEST).read_text())
    files = dict(manifest["files"])
    cache = path / NUMBA_CACHE
    if cache.is_dir():
        for p in sorted(cache.iterdir()):
            if p.is_file():
                files[f"{NUMBA_CACHE}/{p.name}"] = file_hash(p)
    write_manifest(path, {**manifest, "files": files, "module_mtime_ns": (path / MODULE).stat().st_mtime_ns})


#: cache_root/CODE_INDEX/<code key> names an artifact whose numba cache compiled that generated module
CODE_INDEX = ".code"


def code_key(module_source: bytes, env: dict[str, Any]) -> str:
    """The key of a compilation of the generated module: its source and the environment compiling it.
    Weights are data the module reads at run time, so models differing only in weights share it."""
    h = hashlib.sha256(module_source)
    h.update(json.dumps(env, sort_keys=True).encode())
    return h.hexdigest()[:40]


def reuse_compiled_code(root: Path, key: str, staged: Path) -> bool:
    """Give the staged artifact the numba cache of a published artifact in `root` with the same
    generated code (the code index names it), so numba loads instead of compiling. The donor's files
    are checked against its manifest first; any doubt means compiling as usual. True if reused."""
    try:
        donor = root / (root / CODE_INDEX / key).read_text().strip()
        if not donor.name or donor.parent != root:
            return False
        manifest = json.loads((donor / MANIFEST).read_text())
        if manifest.get("checksum") != manifest_checksum(manifest):
            return False
        files = manifest.get("files", {})
        if files.get(MODULE) != file_hash(staged / MODULE) or not isinstance(manifest.get("module_mtime_ns"), int):
            return False
        cached = {n: h for n, h in files.items() if n.startswith(NUMBA_CACHE + "/")}
        if not cached:
            return False
        (staged / NUMBA_CACHE).mkdir(exist_ok=True)
        for name, want in cached.items():
            data = (donor / name).read_bytes()
            if hashlib.sha256(data).hexdigest() != want:
                shutil.rmtree(staged / NUMBA_CACHE, ignore_errors=True)
                return False
            (staged / name).write_bytes(data)
        st = (staged / MODULE).stat()
        os.utime(staged / MODULE, ns=(st.st_atime_ns, manifest["module_mtime_ns"]))  # numba's index key
        return True
    except (OSError, ValueError, TypeError, AttributeError):
        return False


def record_compiled_code(root: Path, key: str, artifact: Path) -> None:
    """Name `artifact` (published in `root`) in the code index under `key`; best effort."""
    artifact = Path(artifact)
    if artifact.parent != Path(root):
        return
    try:
        index = Path(root) / CODE_INDEX
        index.mkdir(exist_ok=True)
        tmp = index / f".{key}.{os.getpid()}"
        tmp.write_text(artifact.name)
        os.replace(tmp, index / key)
    except OSError:
        pass


def publish_artifact(staged: StagedArtifact) -> Path:
    """Seal the staged artifact and move it to its cache path with one atomic rename; return where it is.

    When another process published the same key first, its artifact is kept and ours discarded: both
    are the same compilation of the same inputs. An unpublishable (temporary) artifact stays where it is.
    """
    seal_numba_cache(staged.path)
    if not staged.in_cache:
        return staged.path
    dest = staged.dest
    for _ in range(2):
        try:
            os.replace(staged.path, dest)
            return dest
        except OSError:
            if (dest / MANIFEST).exists():
                break
            shutil.rmtree(dest, ignore_errors=True)  # a directory left by a writer that crashed
    shutil.rmtree(staged.path, ignore_errors=True)
    if not (dest / MANIFEST).exists():
        raise ArtifactError(f"{dest}: cannot publish the compiled artifact there")
    return dest


def write_artifact(dest: Path, files: dict[str, bytes], manifest: dict[str, Any]) -> Path:
    """Write `files` and a manifest hashing them into `dest`, atomically (stage, then rename)."""
    return publish_artifact(stage_artifact(Path(dest), files, manifest))


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
    """Raise `ArtifactError` unless the manifest is intact, every file it lists matches its hash (numba's
    cache included) and the artifact fits this kerasjit, numba and machine."""
    path = Path(path)
    if manifest.get("checksum") != manifest_checksum(manifest):
        raise ArtifactError(f"{path / MANIFEST}: the manifest does not match its checksum: corrupted or edited")
    env = environment_key(manifest.get("target", "cpu"))
    for k in ("kerasjit", "source", "numba", "llvmlite", "cpu", "cpu_features", "gpu", "numba_cuda"):
        if manifest.get("env", {}).get(k) != env.get(k):
            raise ArtifactError(f"{path}: made for {k} {manifest.get('env', {}).get(k)!r}, this is {env.get(k)!r}; "
                                f"recompile the model")
    files = manifest.get("files")
    if not isinstance(files, dict) or MODULE not in files or WEIGHTS not in files:
        raise ArtifactError(f"{path / MANIFEST}: manifest lists no {MODULE}/{WEIGHTS}")
    for name, want in files.items():
        if not isinstance(name, str) or Path(name).is_absolute() or ".." in Path(name).parts:
            raise ArtifactError(f"{path / MANIFEST}: lists a file outside the artifact: {name!r}")
        p = path / name
        if not p.is_file():
            raise ArtifactError(f"{path}: file {name} is missing")
        got = file_hash(p)
        if got != want:
            raise ArtifactError(f"{p}: content does not match the manifest (sha256 {got[:12]}..., "
                                f"expected {want[:12]}...): corrupted or edited")
    _restore_module_mtime(path, manifest)


def _restore_module_mtime(path: Path, manifest: dict[str, Any]) -> None:
    """Numba's cache index is keyed on the generated module's (mtime, size): a copy that did not keep
    modification times would make numba compile again and overwrite its (hashed) cache files. The
    module's content is verified, so its recorded mtime is put back (where the file may be written)."""
    want = manifest.get("module_mtime_ns")
    p = path / MODULE
    try:
        st = p.stat()
        if isinstance(want, int) and st.st_mtime_ns != want:
            os.utime(p, ns=(st.st_atime_ns, want))
    except OSError:
        pass  # read-only: numba then keeps its cache elsewhere (its in-tree cache needs a writable dir)
