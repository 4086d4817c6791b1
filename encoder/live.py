"""A `ModelSpec` from a live `keras.Model` object (Keras 3), without saving it to a file."""
from __future__ import annotations

from typing import Any

import numpy as np

from .spec import ModelSpec

_MODEL_CLASSES = ("Functional", "Sequential", "Model")


def _collect(layer: Any, prefix: str, weights: dict, names: dict) -> None:
    for sub in getattr(layer, "layers", []):
        path = f"{prefix}{sub.name}"
        if sub.__class__.__name__ in _MODEL_CLASSES or hasattr(sub, "layers") and sub.layers:
            _collect(sub, path + "/", weights, names)
        ws = sub.get_weights() if not hasattr(sub, "layers") else []
        if ws:
            weights[path] = [np.array(w) for w in ws]
            names[path] = [getattr(v, "path", getattr(v, "name", str(i))) for i, v in enumerate(sub.weights)]


def spec_from_model(model: Any) -> ModelSpec:
    """Read config and weights straight from a Keras 3 model object."""
    import keras  # only when the user hands us a live model

    config = keras.saving.serialize_keras_object(model)
    weights: dict[str, list[np.ndarray]] = {}
    names: dict[str, list[str]] = {}
    _collect(model, "", weights, names)
    return ModelSpec(config=config, weights=weights, weight_names=names, keras_version=keras.__version__,
                     backend=keras.backend.backend(), source=f"<live model {model.name!r}>", format="live")
