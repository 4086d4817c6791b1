"""The public API: `compile` a Keras model (files or a live object) and `load` a compiled artifact."""
from __future__ import annotations

import hashlib
import json
import logging
import os
import time
import weakref
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ArtifactError, KerasJitError, ModelFormatError
from .runtime.artifact import MODULE, code_key, environment_key, file_hash, publish_artifact, \
    record_compiled_code, reuse_compiled_code, stage_artifact
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


def _input_key(model: Any, weights: Any, metadata: Any = None) -> tuple[str, Any]:
    """(hash of what the user gave, a way to read it) without reading it when only hashing is needed."""
    h = hashlib.sha256()
    if isinstance(model, (str, os.PathLike)):
        paths = [Path(p) for p in (model, weights, metadata) if p is not None]
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


def compile(model: Any, weights: str | os.PathLike | None = None, metadata: str | os.PathLike | None = None, *,
            target: str = "cpu", cache_dir: str | os.PathLike | None = None, test_input: Any = None,
            test_output: Any = None, self_test: bool | None = None, progress: bool | None = None) -> CompiledModel:
    """Compile a Keras model to a `CompiledModel`, reusing a cached artifact when there is one.

    `model` is a `.keras` file, a full-model `.h5` file, an architecture `.json` (with `weights`, an
    HDF5 weights file, or a Keras.js `model_weights.buf` whose `model_metadata.json` is `metadata` or
    lies beside it), or a live `keras.Model`. The artifact is cached under `cache_dir`; compiling
    the same inputs again (in any process) loads it without compiling anything.

    Self-test: the artifact stores a test input and the reference outputs for it, which `load`
    re-runs (`SelfTestError` on a mismatch). They are `test_input` and `test_output` when given (an
    array, a list or a dict, as `predict` takes; without `test_output`, Keras computes it), else a
    random input and Keras's outputs when Keras is installed. `self_test=False` stores none,
    `self_test=True` fails without one; $KERASJIT_SELF_TEST=0 turns the automatic one off. Compiling
    runs the self-test once, so a model kerasjit gets wrong fails here, loudly.
    `progress` draws a bar of the stages on a terminal (default: when stderr is one).
    """
    from .progress import Bar
    t0 = time.perf_counter()
    digest, spec = _input_key(model, weights, metadata)
    user_test = _user_test_key(test_input, test_output)
    if user_test:
        digest = hashlib.sha256((digest + user_test).encode()).hexdigest()
    from .registry import fingerprint as registry_fingerprint
    lowerings = registry_fingerprint()  # the user's registered lowerings compile into the artifact too
    if lowerings:
        digest = hashlib.sha256((digest + lowerings).encode()).hexdigest()
    env = environment_key(target)
    key = hashlib.sha256((digest + json.dumps(env, sort_keys=True)).encode()).hexdigest()[:40]
    dest = cache_root(cache_dir) / key
    if (dest / "manifest.json").exists():
        try:
            cm = load(dest)
            log.info("loaded cached artifact %s in %.3fs", dest, time.perf_counter() - t0)
            _warn_nonfinite(cm.manifest)
            return cm
        except ArtifactError as e:
            log.warning("cached artifact %s is unusable (%s); recompiling", dest, e)
            import shutil
            shutil.rmtree(dest, ignore_errors=True)
    bar = Bar(5, desc="compile", unit="stage", show=progress)
    bar.describe("reading the model")
    from .compiler.driver import build  # the compiler is imported only when something must be compiled
    if spec is None:
        from .encoder import read_model
        spec = read_model(model, weights, metadata) if metadata is not None else read_model(model, weights)
    bar.update()
    bar.describe(f"compiling {spec.source or 'the model'}")
    files, manifest, _ = build(spec, target)
    from .encoder.checks import nonfinite_weights
    nonfinite = nonfinite_weights(spec)
    if nonfinite:
        manifest = {**manifest, "model_source": spec.source, "nonfinite_weights": nonfinite}
    bar.update()
    bar.describe("self-test reference")
    test = _self_test_data(model, weights, spec, manifest, test_input, test_output, self_test)
    if test is not None:
        from .runtime.selftest import SELF_TEST, self_test_bytes
        files = {**files, SELF_TEST: self_test_bytes(*test[:2])}
        manifest = {**manifest, "self_test": {"file": SELF_TEST, "source": test[2]}}
    bar.update()
    manifest = {**manifest, "key": key, "env": env}
    # Staged beside `dest` and published by one rename once numba's cache is written and the self-test
    # passed: a concurrent compile of the same model, or one that fails, never leaves a partial artifact
    staged = stage_artifact(dest, files, manifest)
    code = code_key(files[MODULE], env)
    if staged.in_cache and reuse_compiled_code(dest.parent, code, staged.path):
        log.info("the generated code was compiled before (same architecture); reusing numba's cache")
    cm = load(staged.path, self_test=False)
    weakref.finalize(cm, staged.discard)  # a failed compile's staging dir goes with its model
    t1 = time.perf_counter()
    bar.describe("numba: compiling the generated code")
    try:
        _warm_up(cm)
    except KerasJitError:
        bar.close()
        raise
    except Exception as e:  # numba typing/lowering errors are ours, not the user's
        from .errors import CompileError
        raise CompileError(f"numba failed to compile the generated code for {manifest['model_name']!r} "
                           f"({cm.path / 'model_gen.py'}): {type(e).__name__}: {str(e)[:2000]}") from e
    finally:
        bar.update()
    bar.describe("self-test")
    try:
        from .runtime.selftest import run_self_test
        result = run_self_test(cm)
        if result is not None:
            log.info("%s", result)
    finally:
        bar.update()
        bar.close()
    # the in-memory model stays valid across the rename (same files; the mmap follows the inode)
    cm.path = publish_artifact(staged)
    record_compiled_code(dest.parent, code, cm.path)
    log.info("compiled %s in %.2fs (numba %.2fs)", manifest["model_name"], time.perf_counter() - t0,
             time.perf_counter() - t1)
    _warn_nonfinite(cm.manifest)
    return cm


def _warn_nonfinite(manifest: dict) -> None:
    """A `NonFiniteWeightsWarning` naming every weight with NaN or Inf (recorded in the manifest at compile
    time, so a cached load says it again)."""
    found = manifest.get("nonfinite_weights")
    if found:
        import warnings
        from .errors import NonFiniteWeightsWarning
        warnings.warn(f"kerasjit: {manifest.get('model_source') or manifest.get('model_name')}: the weights hold "
                      f"non-finite values, the outputs will too: " + "; ".join(found[:10])
                      + (f"; and {len(found) - 10} more" if len(found) > 10 else ""),
                      NonFiniteWeightsWarning, stacklevel=3)


def _user_test_key(test_input: Any, test_output: Any) -> str:
    """A hash of the user's own self-test data ('' without any): it is part of the artifact."""
    if test_input is None and test_output is None:
        return ""
    h = hashlib.sha256()
    for part in (test_input, test_output):
        for a in _as_list(part):
            a = np.ascontiguousarray(a)
            h.update(f"{a.dtype}{a.shape}".encode())
            h.update(a.tobytes())
    return h.hexdigest()


def _as_list(x: Any) -> list[np.ndarray]:
    if x is None:
        return []
    if isinstance(x, dict):
        return [np.asarray(v) for v in x.values()]
    if isinstance(x, (list, tuple)):
        return [np.asarray(v) for v in x]
    return [np.asarray(x)]


def _self_test_data(model: Any, weights: Any, spec: Any, manifest: dict, test_input: Any, test_output: Any,
                    self_test: bool | None) -> tuple[list, list, str] | None:
    """(inputs, reference outputs, where the outputs come from) to store in the artifact, or None."""
    from .reference import KerasUnavailable, describe_keras, is_stateful, keras_installed, keras_outputs, \
        load_keras_model, random_inputs, reset_states
    names = [i["name"] for i in manifest["inputs"]]
    if test_input is None and test_output is not None:
        raise KerasJitError("test_output was given without test_input")
    if self_test is False:
        return None
    if test_input is not None:
        if isinstance(test_input, dict):
            missing = [n for n in names if n not in test_input]
            if missing:
                raise KerasJitError(f"test_input lacks the model input(s) {missing}")
            xs = [np.asarray(test_input[n]) for n in names]
        else:
            xs = _as_list(test_input) if len(names) > 1 or isinstance(test_input, (list, tuple)) \
                else [np.asarray(test_input)]
        if len(xs) != len(names):
            raise KerasJitError(f"test_input holds {len(xs)} array(s); the model takes {len(names)} {names}")
        xs = [np.asarray(x, dtype=i["dtype"]) for x, i in zip(xs, manifest["inputs"])]
        if test_output is not None:
            return xs, [np.asarray(y, np.float32) for y in _as_list(test_output)], "the user's test output"
    elif self_test is None and (os.environ.get("KERASJIT_SELF_TEST") == "0" or not keras_installed()):
        return None
    else:
        xs = random_inputs([i["shape"] for i in manifest["inputs"]], [i["dtype"] for i in manifest["inputs"]])
    try:
        kmodel = load_keras_model(model, weights, spec)
        if is_stateful(kmodel) and not isinstance(model, (str, os.PathLike)):
            raise KerasUnavailable("the live model is stateful; running it would change its states")
        ys = keras_outputs(kmodel, xs)
        if is_stateful(kmodel):
            reset_states(kmodel)
        return xs, ys, describe_keras()
    except KerasUnavailable as e:
        if self_test or test_input is not None:
            raise KerasJitError(f"no self-test reference: {e}; pass test_output, or self_test=False") from e
        log.info("no self-test stored: %s", e)
        return None
    except Exception as e:  # Keras failing on a model it saved itself is not a reason to fail compiling
        if self_test or test_input is not None:
            raise KerasJitError(f"no self-test reference: Keras failed to run the model: "
                                f"{type(e).__name__}: {str(e)[:500]}") from e
        log.warning("no self-test stored: Keras failed to run the model: %s: %s", type(e).__name__, str(e)[:300])
        return None
