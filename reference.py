"""Real Keras as the reference, when it is installed: load a model from its files (or take a live one),
run it, and compare outputs with design.md's tolerance.

Used at compile time (the self-test stored in an artifact), by `kerasjit check` and by `kerasjit bench`.
Nothing here is imported at run time.
"""
from __future__ import annotations

import importlib.util
import logging
import os
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .errors import KerasJitError
from .runtime.selftest import max_error  # noqa: F401  (the one comparison rule)

log = logging.getLogger("kerasjit")


class KerasUnavailable(KerasJitError):
    """Keras is not installed here, cannot be imported, or cannot load this model."""


def _choose_backend() -> None:
    """Keras 3 defaults to TensorFlow; when the user chose no backend, use one that is installed."""
    if "keras" in sys.modules or os.environ.get("KERAS_BACKEND"):
        return
    if (Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "keras.json").exists():
        return
    for backend in ("jax", "tensorflow", "torch"):
        if importlib.util.find_spec(backend) is not None:
            os.environ["KERAS_BACKEND"] = backend
            return


def keras_installed() -> bool:
    """Whether a `keras` package is installed (without importing it)."""
    return "keras" in sys.modules or importlib.util.find_spec("keras") is not None


def import_keras() -> Any:
    """The `keras` module; `KerasUnavailable` when it is missing or does not import."""
    if not keras_installed():
        raise KerasUnavailable("Keras is not installed (pip install keras jax[cpu])")
    _choose_backend()
    try:
        import keras
    except Exception as e:  # a broken backend install surfaces as anything
        raise KerasUnavailable(f"Keras does not import: {type(e).__name__}: {e}") from e
    return keras


def describe_keras() -> str:
    """'keras 3.15.1 (jax)' for messages and the manifest."""
    keras = import_keras()
    return f"keras {keras.__version__} ({keras.backend.backend()})"


def is_live_model(obj: Any) -> bool:
    """Whether `obj` is a Keras model object rather than a path."""
    return not isinstance(obj, (str, os.PathLike)) and hasattr(obj, "get_config") and hasattr(obj, "layers")


def load_keras_model(model: Any, weights: Any = None, spec: Any = None) -> Any:
    """A Keras model from what `kerasjit.compile` accepts: a live model is returned as it is; files are
    loaded with Keras. When Keras cannot read the weights file (a Keras.js `.buf`), the weights of
    `spec` (a `ModelSpec` of the same model) are set layer by layer."""
    if is_live_model(model):
        return model
    keras = import_keras()
    path = Path(model)
    try:
        if weights is None and path.suffix != ".json":
            return keras.saving.load_model(path, compile=False, safe_mode=False)
        text = path.read_text()
        kmodel = keras.models.model_from_json(text)
        if weights is not None and str(weights).endswith((".h5", ".hdf5", ".keras")):
            kmodel.load_weights(str(weights))
        elif spec is not None:
            _set_weights_from_spec(kmodel, spec)
        else:
            raise KerasUnavailable(f"{weights}: Keras cannot read this weights file")
        return kmodel
    except KerasJitError:
        raise
    except Exception as e:
        raise KerasUnavailable(f"{model}: Keras cannot load this model: {type(e).__name__}: {str(e)[:500]}") from e


def _set_weights_from_spec(kmodel: Any, spec: Any) -> None:
    for path, arrays in spec.weights.items():
        layer = kmodel
        for part in path.split("/"):
            layer = layer.get_layer(part)
        layer.set_weights(list(arrays))


def is_stateful(kmodel: Any) -> bool:
    """Whether any layer keeps state across calls (running it would change the user's model)."""
    stack = list(getattr(kmodel, "layers", []))
    while stack:
        layer = stack.pop()
        if getattr(layer, "stateful", False):
            return True
        stack.extend(getattr(layer, "layers", []) or [])
        for attr in ("layer", "forward_layer", "backward_layer", "cell"):
            sub = getattr(layer, attr, None)
            if sub is not None and not isinstance(sub, (list, tuple)):
                if getattr(sub, "stateful", False):
                    return True
    return False


def keras_outputs(kmodel: Any, xs: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Run `kmodel` in inference mode; its outputs as float32 arrays, in the model's output order."""
    out = kmodel(list(xs) if len(xs) > 1 else xs[0], training=False)
    if isinstance(out, dict):
        out = list(out.values())
    outs = out if isinstance(out, (list, tuple)) else [out]
    return [np.asarray(o, dtype=np.float32) for o in outs]


def reset_states(kmodel: Any) -> None:
    """Zero the states of every stateful layer (Keras 3 models have no `reset_states` of their own)."""
    stack = list(getattr(kmodel, "layers", []))
    while stack:
        layer = stack.pop()
        stack.extend(getattr(layer, "layers", []) or [])
        if getattr(layer, "stateful", False) and hasattr(layer, "reset_state"):
            layer.reset_state()


def random_inputs(shapes: Sequence[Sequence[int]], dtypes: Sequence[Any], batch: int = 2,
                  seed: int = 0) -> list[np.ndarray]:
    """Random test inputs of the model's shapes (batch dimension replaced): standard normal floats;
    integer inputs (token ids) get 0 or 1, valid indices for any embedding."""
    rng = np.random.default_rng(seed)
    xs = []
    for shape, dtype in zip(shapes, dtypes):
        dims = (batch,) + tuple(int(d) for d in shape[1:])
        dt = np.dtype(dtype)
        if dt.kind in "iub":
            xs.append(rng.integers(0, 2, dims).astype(dt))
        else:
            xs.append(rng.standard_normal(dims).astype(dt))
    return xs
