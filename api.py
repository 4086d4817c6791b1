"""The public API: `compile` a Keras model (files or a live object) and `load` a compiled artifact."""
from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ArtifactError, KerasJitError, ModelFormatError
from .runtime.artifact import environment_key, file_hash, write_artifact
from .runtime.model import CompiledModel, load

log = logging.getLogger("kerasjit")

__all__ = ["compile", "load", "cache_root"]


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """Where cached artifacts live: `cache_dir`, else $KERASJIT_CACHE_DIR, else the user's cache dir."""
    if cache_dir is not None:
        return Path(cache_dir)
    env = os.environ.get("KERASJIT_CACHE_DIR")
    if env:
        return Path(env)
    import platformdirs
    return Path(platformdirs.user_cache_dir("kerasjit"))


def _input_key(model: Any, weights: Any) -> tuple[str, Any]:
    """(hash of what the user gave, a way to read it) without reading it when only hashing is needed."""
    h = hashlib.sha256()
    if isinstance(model, (str, os.PathLike)):
        paths = [Path(model)] + ([Path(weights)] if weights is not None else [])
        for p in paths:
            if not p.is_file():
                raise ModelFormatError(f"{p}: no such file" if not p.exists() else f"{p}: not a file")
            h.update(p.suffix.encode())
            h.update(file_hash(p).encode())
        return h.hexdigest(), None
    from .encoder.live import spec_from_model
    spec = spec_from_model(model)
    h.update(json.dumps(spec.config, sort_keys=True, default=str).encode())
    for path in sorted(spec.weights):
        h.update(path.encode())
        for w in spec.weights[path]:
            h.update(np.ascontiguousarray(w).tobytes())
    return h.hexdigest(), spec


def _warm_up(cm: CompiledModel) -> None:
    """Run batch 1 once, so numba compiles `run` now and writes its cache into the artifact."""
    xs = [np.zeros((1,) + tuple(s[1:]), d) for s, d in zip(cm.input_shapes, cm.input_dtypes)]
    cm.predict(xs if len(xs) > 1 else xs[0])
    cm.reset_states()  # a stateful model starts from zero states, as Keras's does


def compile(model: Any, weights: str | os.PathLike | None = None, *, target: str = "cpu",
            cache_dir: str | os.PathLike | None = None) -> CompiledModel:
    """Compile a Keras model to a `CompiledModel`, reusing a cached artifact when there is one.

    `model` is a `.keras` file, a full-model `.h5` file, an architecture `.json` (with `weights`, an
    HDF5 weights file), or a live `keras.Model`. The artifact is cached under `cache_dir`; compiling
    the same inputs again (in any process) loads it without compiling anything.
    """
    t0 = time.perf_counter()
    digest, spec = _input_key(model, weights)
    env = environment_key(target)
    key = hashlib.sha256((digest + json.dumps(env, sort_keys=True)).encode()).hexdigest()[:40]
    dest = cache_root(cache_dir) / key
    if (dest / "manifest.json").exists():
        try:
            cm = load(dest)
            log.info("loaded cached artifact %s in %.3fs", dest, time.perf_counter() - t0)
            return cm
        except ArtifactError as e:
            log.warning("cached artifact %s is unusable (%s); recompiling", dest, e)
            import shutil
            shutil.rmtree(dest, ignore_errors=True)
    from .compiler.driver import build  # the compiler is imported only when something must be compiled
    if spec is None:
        from .encoder import read_model
        spec = read_model(model, weights)
    files, manifest, _ = build(spec, target)
    manifest = {**manifest, "key": key, "env": env}
    write_artifact(dest, files, manifest)
    cm = load(dest)
    t1 = time.perf_counter()
    try:
        _warm_up(cm)
    except KerasJitError:
        raise
    except Exception as e:  # numba typing/lowering errors are ours, not the user's
        from .errors import CompileError
        raise CompileError(f"numba failed to compile the generated code for {manifest['model_name']!r} "
                           f"({dest / 'model_gen.py'}): {type(e).__name__}: {str(e)[:2000]}") from e
    log.info("compiled %s in %.2fs (numba %.2fs)", manifest["model_name"], time.perf_counter() - t0,
             time.perf_counter() - t1)
    return cm
