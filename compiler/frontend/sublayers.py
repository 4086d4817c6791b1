"""Layers inside layers: the weights of a layer's sub-objects (an RNN's cell, Bidirectional's forward and
backward layers, TimeDistributed's layer, MultiHeadAttention's projections), selected by the names the
file records, exactly, and a `LayerCall` to lower a wrapped layer with its own weights.

Recorded names come in two styles (encoder/spec.py):
- Keras 3 files (`.keras`, `.weights.h5`): paths of attributes, relative to the layer, in the order
  the saver walks them (attribute names sorted): "backward_layer/cell/vars/0", "cell/vars/2";
- legacy HDF5 files and live models: variable paths made of layer and cell names, in the layer's own
  weight order: "bidirectional/forward_lstm/lstm_cell/kernel:0", "multi_head_attention/query/kernel".
A sub-object is named for both: by its attribute path for the first, by the scope names it may appear
under (any component but the last) for the second.
"""
from __future__ import annotations

import dataclasses
from typing import Iterable

import numpy as np

from ...errors import WeightsMismatchError
from .context import LayerCall


def is_vars_layout(names: list[str]) -> bool:
    """Whether recorded weight names are Keras 3 attribute paths ("<attr>/.../vars/<i>")."""
    return bool(names) and all(len(n.split("/")) >= 2 and n.split("/")[-2] == "vars" for n in names)


def recorded(call: LayerCall) -> tuple[list[str], list[np.ndarray]]:
    """The layer's recorded weight names and arrays, in the file's order."""
    return list(call.spec.weight_names.get(call.path, [])), list(call.spec.weights.get(call.path, []))


def select(call: LayerCall, attr_path: str, scopes: Iterable[str],
           weights: tuple[list[str], list[np.ndarray]] | None = None) -> tuple[list[str], list[np.ndarray]]:
    """The (names, arrays) of one sub-object among `weights` (default: all of the layer's): those under
    `attr_path` in a Keras 3 file (names returned relative to it), else those recorded under one of
    `scopes`. Order is kept: the sub-object's own weight order in either style."""
    names, arrays = weights if weights is not None else recorded(call)
    if is_vars_layout(names):
        prefix = attr_path.rstrip("/") + "/"
        picked = [(n[len(prefix):], a) for n, a in zip(names, arrays) if n.startswith(prefix)]
    else:
        wanted = set(scopes)
        picked = [(n, a) for n, a in zip(names, arrays) if wanted.intersection(n.split("/")[:-1])]
    return [n for n, _ in picked], [a for _, a in picked]


def check_all_used(call: LayerCall, used: int, weights: tuple[list[str], list[np.ndarray]] | None = None) -> None:
    """Raise `WeightsMismatchError` if the sub-objects selected did not account for every weight."""
    names, _ = weights if weights is not None else recorded(call)
    if used != len(names):
        raise WeightsMismatchError(
            f"{call.spec.source}: layer {call.name!r} ({call.class_name}): {len(names)} weights recorded "
            f"({', '.join(names)}), {used} of them identified as its sub-layers'")


def inner_call(call: LayerCall, cfg: dict, suffix: str, weights: tuple[list[str], list[np.ndarray]]) -> LayerCall:
    """A call of wrapped layer config `cfg` ({"class_name", "config"}) with the weights given, lowered
    into the same graph; its parameters are named under "<layer path>/<suffix>"."""
    path = f"{call.path}/{suffix}"
    names, arrays = weights
    spec = dataclasses.replace(call.spec, weights={**call.spec.weights, path: list(arrays)},
                               weight_names={**call.spec.weight_names, path: list(names)})
    return LayerCall(call.builder, spec, cfg.get("class_name", "?"), cfg.get("config", {}), path, {},
                     lower_model=call.lower_model)


def layer_name(cfg: dict) -> str:
    """The name in a serialized layer config."""
    return cfg.get("config", {}).get("name") or cfg.get("name", "")
