"""Keras 3 weights HDF5 (`model.weights.h5` inside a `.keras` zip, `save_weights("x.weights.h5")`),
also written by tf.keras 2.13+ for `.keras` files.

Layout (from `keras.src.saving.saving_lib._save_state`): a model's layers are groups under `layers/`
named by snake-cased class and a counter (`conv2d`, `conv2d_1`), not by layer name; each has a `vars`
group holding `0`, `1`, ... and, since Keras 3.x, the attribute `name` with the layer's name. A nested
model repeats the layout (`layers/sequential/layers/dense/vars`); a layer's sub-objects (an RNN's
`cell`, Bidirectional's `forward_layer`) are subgroups with their own `vars`. tf.keras wrote
`_layer_checkpoint_dependencies` for `layers` and no `name` attributes.
"""
from __future__ import annotations

import re

import h5py
import numpy as np

from ..errors import ModelFormatError
from . import h5util
from .config import is_input_layer, is_model, is_operation, layers_of, name_of
from .match import check_layer_names
from .weights import Weights

_LAYERS_KEYS = ("layers", "_layer_checkpoint_dependencies")


def is_vars_layout(group: h5py.Group) -> bool:
    """Whether `group` is the root of a Keras 3 layout weights file."""
    return any(k in group for k in _LAYERS_KEYS)


def read_vars_weights(root: h5py.Group, model: dict, where: str) -> Weights:
    """Read every layer's weights for `model`'s config, keyed by layer path ("outer/inner" inside
    nested models). Within a layer: its own `vars/<i>` in numeric order, then its sub-objects in the
    order `saving_lib` walks them (attribute names sorted, "_"-prefixed last), recursively; names are
    recorded relative to the layer ("vars/0", "cell/vars/0", "forward_layer/cell/vars/0")."""
    layers_group = _layers_group(root)
    if layers_group is None:
        raise ModelFormatError(f"{where}: no 'layers' group: not a Keras 3 weights file")
    out = Weights()
    _read_model(layers_group, model, "", out, where)
    return out


def _layers_group(group: h5py.Group) -> h5py.Group | None:
    for key in _LAYERS_KEYS:
        if key in group and isinstance(group[key], h5py.Group):
            return group[key]
    return None


def _read_model(layers_group: h5py.Group, model: dict, prefix: str, out: Weights, where: str) -> None:
    level = f"{where}: nested model {prefix.rstrip('/')!r}" if prefix else where
    groups = _groups_by_layer(layers_group, model, level)
    for layer in layers_of(model):
        name = name_of(layer)
        group = groups.get(name)
        if group is None:
            continue
        if is_model(layer):
            inner = _layers_group(group)
            if inner is not None:
                _read_model(inner, layer, f"{prefix}{name}/", out, where)
            continue
        for weight_name, value in _object_weights(group, "", f"{where}: layer {prefix + name!r}"):
            out.add(prefix + name, weight_name, value)


def _groups_by_layer(layers_group: h5py.Group, model: dict, where: str) -> dict[str, h5py.Group]:
    """Map each config layer name to its group: by the `vars` group's `name` attribute where the
    writer recorded it, else (tf.keras, early Keras 3) by the walk's own naming: snake-cased class
    name and a per-class counter over the model's layers in config order."""
    children = {key: g for key, g in layers_group.items() if isinstance(g, h5py.Group)}
    named = {key: h5util.str_attr(g["vars"], "name") for key, g in children.items() if "vars" in g}
    if any(named.values()):
        check_layer_names(model, named.values(), where, weightless_may_be_absent=False)
        return {layer_name: children[key] for key, layer_name in named.items() if layer_name}
    expected = _walk_group_names(model)
    extra = sorted(set(children) - set(expected))
    if extra:
        raise ModelFormatError(
            f"{where}: weights file groups {', '.join(extra)} match no layer of the config "
            f"(expected groups {', '.join(expected)})"
        )
    return {layer_name: children[key] for key, layer_name in expected.items() if key in children}


def _walk_group_names(model: dict) -> dict[str, str]:
    """Group name -> layer name, as `saving_lib._save_container_state` names `model.layers`."""
    counts: dict[str, int] = {}
    out: dict[str, str] = {}
    sequential = model.get("class_name") == "Sequential"
    for layer in layers_of(model):
        if sequential and is_input_layer(layer) or is_operation(layer):
            continue  # Sequential.layers leaves its InputLayer out, and every model its operations
        base = _snake_case(str(layer.get("class_name", "")))
        n = counts.get(base, -1) + 1
        counts[base] = n
        out[base if n == 0 else f"{base}_{n}"] = name_of(layer)
    return out


def _snake_case(name: str) -> str:
    """`keras.src.utils.naming.to_snake_case`."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def _object_weights(group: h5py.Group, prefix: str, where: str) -> list[tuple[str, np.ndarray]]:
    """(name, array) of an object's own variables, then of its sub-objects', in walk order."""
    out: list[tuple[str, np.ndarray]] = []
    own = group.get("vars")
    if isinstance(own, h5py.Group):
        for key in sorted(own.keys(), key=_var_key):
            out.append((f"{prefix}vars/{key}", h5util.array(own, key, where)))
    for key in sorted((k for k in group.keys() if k != "vars"), key=_walk_key):
        sub = group[key]
        if isinstance(sub, h5py.Group):
            out.extend(_object_weights(sub, f"{prefix}{key}/", where))
    return out


def _var_key(key: str) -> tuple[int, int, str]:
    """Variables are "0", "1", ..., "10": numeric order, not string order."""
    return (0, int(key), "") if key.isdigit() else (1, 0, key)


def _walk_key(key: str) -> tuple[str, ...]:
    """`saving_lib._walk_saveable` sorts attribute names with "_"-prefixed ones last; a list
    attribute's elements are groups "dense", "dense_1", ..., "dense_10", in list order, hence the
    numeric comparison of a trailing counter."""
    head, _, counter = key.rpartition("_")
    if head and counter.isdigit():
        key_main, n = head, int(counter) + 1
    else:
        key_main, n = key, 0
    return ("~" + key_main if key_main.startswith("_") else key_main, f"{n:09d}")
