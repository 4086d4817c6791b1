"""The few facts about a model config the encoder needs to file weights under layer paths: which
layers a model lists, their names, which of them are nested models, and the writer's Keras version
when the file does not record it. No layer semantics.
"""
from __future__ import annotations

from typing import Any, Iterator

from ..errors import ModelFormatError

#: classes whose config lists inner layers (Keras 1 "Model"/"Sequential", Keras 2/3 "Functional")
MODEL_CLASSES = frozenset({"Functional", "Model", "Sequential"})

#: config keys only Keras 1 wrote (Keras 2 renamed them: filters, units, padding, kernel_initializer, ...)
_KERAS1_KEYS = frozenset(
    {"nb_filter", "nb_row", "nb_col", "output_dim", "border_mode", "init", "subsample", "W_regularizer"}
)
_KERAS1_CLASSES = frozenset({"Merge", "Convolution2D", "Convolution1D", "MaxoutDense", "Highway"})


def unwrap(obj: dict, name: str) -> tuple[dict, str, str]:
    """Split a JSON document into (model config, keras_version, backend).

    Keras 2's `to_json()` puts "keras_version" and "backend" beside "class_name" and "config";
    Keras 3's records neither. The model config is returned as stored, those keys included.
    """
    if "class_name" not in obj or "config" not in obj:
        raise ModelFormatError(
            f"{name}: not a Keras model config: expected keys 'class_name' and 'config', "
            f"found {sorted(obj)[:8]}"
        )
    return obj, str(obj.get("keras_version", "") or ""), str(obj.get("backend", "") or "")


def layers_of(model: dict) -> list[dict]:
    """The layer entries a model config lists, in order. Keras 1 and early Keras 2 store a
    Sequential's config as the bare list of layers."""
    cfg = model.get("config")
    if isinstance(cfg, list):
        return cfg
    if isinstance(cfg, dict) and isinstance(cfg.get("layers"), list):
        return cfg["layers"]
    raise ModelFormatError(f"model config of class {model.get('class_name')!r} lists no layers")


def name_of(layer: dict) -> str:
    """A layer entry's name (top-level "name" in functional configs, config["name"] in Sequential)."""
    name = layer.get("name")
    if not name and isinstance(layer.get("config"), dict):
        name = layer["config"].get("name")
    if not isinstance(name, str) or not name:
        raise ModelFormatError(f"layer of class {layer.get('class_name')!r} has no name in the config")
    return name


def is_model(layer: dict) -> bool:
    """Whether a layer entry is a nested model whose config lists its own layers."""
    cfg = layer.get("config")
    if layer.get("class_name") in MODEL_CLASSES:
        return isinstance(cfg, list) or (isinstance(cfg, dict) and isinstance(cfg.get("layers"), list))
    return isinstance(cfg, dict) and isinstance(cfg.get("layers"), list) and "input_layers" in cfg


def is_input_layer(layer: dict) -> bool:
    """Whether a layer entry is an InputLayer (absent from a Sequential's `model.layers`, so weights
    files may leave it out)."""
    return layer.get("class_name") == "InputLayer"


def is_operation(layer: dict) -> bool:
    """Whether a layer entry is a Keras 3 operation (`keras.ops.not_equal` and the like, recorded in
    functional configs, notably where masks are computed): not a layer, so never in a weights file.
    `.keras` configs name the ops module; legacy HDF5 configs do not, but an operation's config lacks
    the `trainable` that every layer's has."""
    if str(layer.get("module", "")).startswith("keras.src.ops"):
        return True
    cfg = layer.get("config")
    return (not is_input_layer(layer) and not is_model(layer) and isinstance(cfg, dict)
            and "trainable" not in cfg and "module" not in layer)


def iter_layers(model: dict) -> Iterator[dict]:
    """Every layer entry of a model config, nested models' layers included, depth first."""
    for layer in layers_of(model):
        yield layer
        if is_model(layer):
            yield from iter_layers(layer)


def infer_keras_version(model: dict) -> str:
    """"1" when the config uses names only Keras 1 wrote (`nb_filter`, `output_dim` outside Embedding,
    `border_mode`, class `Merge`, ...), else "" (unknown). For files that record no version."""
    def keras1(node: Any) -> bool:
        if isinstance(node, dict):
            keys = _KERAS1_KEYS & node.keys()
            if node.get("class_name") in _KERAS1_CLASSES:
                return True
            if isinstance(node.get("config"), dict) and node.get("class_name") == "Embedding":
                return keras1({k: v for k, v in node["config"].items() if k != "output_dim"})
            if keys:
                return True
            return any(keras1(v) for v in node.values())
        if isinstance(node, list):
            return any(keras1(v) for v in node)
        return False

    if "module" in model:  # only Keras 3 writes it
        return ""
    return "1" if keras1(model.get("config")) else ""
