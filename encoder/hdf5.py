"""Legacy HDF5: full models (`model.save("x.h5")`, Keras 1, 2 and 3) and Keras 1/2-style weights files
(`save_weights("w.h5")`).

Layout: a weights group (the file root of a weights file, `model_weights` of a full model) has the
attribute `layer_names`; each layer has a group of that name whose attribute `weight_names` lists its
weights, each stored as a dataset at that (possibly nested) name, in the writer's legacy order
`trainable_weights + non_trainable_weights` (for one plain layer, its `get_weights` order). A nested
model's group holds the weights of all its inner layers in that order, all trainable ones first;
`match.resolve_inner` files each under its inner layer, which keeps each layer's own order.
"""
from __future__ import annotations

from pathlib import Path

import h5py

from ..errors import ModelFormatError, WeightsMismatchError
from . import h5util
from .config import infer_keras_version, is_model, layers_of, name_of, unwrap
from .files import open_hdf5, parse_json
from .match import check_layer_names, resolve_inner
from .weights import Weights


def is_legacy_weights_group(group: h5py.Group) -> bool:
    """Whether `group` is a legacy weights group (it records `layer_names`)."""
    return h5util.has_list_attr(group, "layer_names")


def read_full_model(path: Path, with_weights: bool = True) -> tuple[dict, Weights]:
    """Read a full-model legacy HDF5 file: (model config as stored, weights with the recorded
    keras_version and backend). Without `with_weights`, only the config and the version are read."""
    where = str(path)
    with open_hdf5(path, where) as f:
        if "model_config" not in f.attrs:
            if is_legacy_weights_group(f) or "layers" in f or "vars" in f:
                raise ModelFormatError(
                    f"{where}: is a weights-only file (no model_config); pass the architecture JSON as "
                    f"model_path and this file as weights_path"
                )
            raise ModelFormatError(f"{where}: HDF5 file without a model_config attribute: not a Keras model")
        model, json_version, json_backend = unwrap(parse_json(h5util.str_attr(f, "model_config"), where), where)
        if not with_weights:
            weights = Weights()
        elif "model_weights" in f:
            weights = read_weights_group(f["model_weights"], model, where)
        else:
            raise ModelFormatError(f"{where}: full-model HDF5 file without a model_weights group")
        weights.keras_version = (
            h5util.str_attr(f, "keras_version") or weights.keras_version or json_version or infer_keras_version(model)
        )
        weights.backend = h5util.str_attr(f, "backend") or weights.backend or json_backend
        return model, weights


def read_weights_group(group: h5py.Group, model: dict, where: str) -> Weights:
    """Read a legacy weights group (layer_names + per-layer weight_names) for `model`'s config."""
    if not is_legacy_weights_group(group):
        raise ModelFormatError(f"{where}: weights group {group.name} has no layer_names attribute")
    layer_names = h5util.list_attr(group, "layer_names")
    check_layer_names(model, layer_names, where, weightless_may_be_absent=False)
    by_name = {name_of(layer): layer for layer in layers_of(model)}
    out = Weights(
        keras_version=h5util.str_attr(group, "keras_version"), backend=h5util.str_attr(group, "backend")
    )
    for layer_name in layer_names:
        if layer_name not in group:
            raise ModelFormatError(f"{where}: layer {layer_name!r} is in layer_names but has no group")
        layer_group = group[layer_name]
        layer = by_name[layer_name]
        for weight_name in h5util.list_attr(layer_group, "weight_names"):
            value = h5util.array(layer_group, weight_name, f"{where}: layer {layer_name!r}")
            out.add(_layer_path(layer, layer_name, weight_name, where), weight_name, value)
    return out


def _layer_path(layer: dict, layer_name: str, weight_name: str, where: str) -> str:
    """The layer path a weight recorded in layer `layer_name`'s group belongs to."""
    if not is_model(layer):
        return layer_name
    inner = resolve_inner(layer, weight_name)
    if inner is None:
        raise WeightsMismatchError(
            f"{where}: nested model {layer_name!r} records weight {weight_name!r}, which names none of "
            f"its layers ({', '.join(name_of(inner_layer) for inner_layer in layers_of(layer))})"
        )
    return f"{layer_name}/{inner}"
