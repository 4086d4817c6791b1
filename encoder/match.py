"""Matching what a weights file holds to the layers a config lists, without regular expressions."""
from __future__ import annotations

from typing import Iterable

from ..errors import WeightsMismatchError
from .config import is_input_layer, is_model, is_operation, layers_of, name_of


def check_layer_names(model: dict, found: Iterable[str], where: str, *, weightless_may_be_absent: bool) -> None:
    """Raise `WeightsMismatchError` naming the missing and extra layers when the layer names a weights
    file records (`found`, for one model level) differ from those the config lists.

    An InputLayer may always be absent (a Sequential's `model.layers` leaves it out), and so may a Keras
    3 operation (not a layer: `model.layers` leaves it out). With
    `weightless_may_be_absent`, any config layer may be absent (writers that make a group only for a
    layer with variables); a file layer the config does not list is always an error.
    """
    expected = [name_of(layer) for layer in layers_of(model)]
    found = list(found)
    found_set, expected_set = set(found), set(expected)
    extra = [n for n in found if n not in expected_set]
    missing = [
        name_of(layer) for layer in layers_of(model)
        if name_of(layer) not in found_set and not is_input_layer(layer) and not is_operation(layer)
        and not weightless_may_be_absent
    ]
    if extra or missing:
        parts = []
        if missing:
            parts.append(f"layers in the config but not in the weights file: {', '.join(missing)}")
        if extra:
            parts.append(f"layers in the weights file but not in the config: {', '.join(extra)}")
        raise WeightsMismatchError(f"{where}: the weights file does not match the model config; " + "; ".join(parts))


def resolve_inner(model: dict, weight_name: str) -> str | None:
    """The path, relative to nested model `model`, of the inner layer that a weight recorded in the
    nested model's group belongs to, or None.

    Writers name these weights differently: Keras 3 "subseq/inner/kernel" (Sequential) or
    "inner/kernel" (Functional); Keras 2 "inner/kernel:0", where a layer of a model nested twice is
    recorded without the middle model's name ("deep/kernel:0"); Keras 1 "dense_2_W". The name is
    split on "/" and its components compared with the config's layer names exactly: the first
    component naming a layer of `model` decides; failing that, nested models are searched.
    """
    parts = weight_name.split("/")
    if len(parts) == 1:
        return _resolve_keras1(model, weight_name)
    return _resolve(model, parts[:-1])


def _resolve(model: dict, scopes: list[str]) -> str | None:
    children = {name_of(layer): layer for layer in layers_of(model)}
    for i, scope in enumerate(scopes):
        child = children.get(scope)
        if child is None:
            continue
        if not is_model(child):
            return scope
        inner = _resolve(child, scopes[i + 1:])
        return f"{scope}/{inner}" if inner else None
    for name, child in children.items():
        if is_model(child):
            inner = _resolve(child, scopes)
            if inner:
                return f"{name}/{inner}"
    return None


def _resolve_keras1(model: dict, weight_name: str) -> str | None:
    """Keras 1 names a weight "<layer>_<var>" ("convolution2d_1_W"): the longest layer name that is a
    prefix followed by "_" wins, so "dense_10_W" goes to dense_10, not dense_1."""
    best: str | None = None
    for layer in layers_of(model):
        name = name_of(layer)
        if is_model(layer):
            inner = _resolve_keras1(layer, weight_name)
            candidate = f"{name}/{inner}" if inner else None
            length = len(inner.rsplit("/", 1)[-1]) if inner else 0
        else:
            candidate = name if weight_name.startswith(name + "_") else None
            length = len(name)
        if candidate and (best is None or length > len(best.rsplit("/", 1)[-1])):
            best = candidate
    return best
