"""What a layer's lowering rule sees: `LayerCall`, one call of one Keras layer."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ...errors import UnsupportedLayerError, WeightsMismatchError
from ...encoder.spec import ModelSpec
from ..builder import GraphBuilder
from ..ir import Op

#: class name -> lowering rule(call, input value names) -> output value names
LAYERS: dict[str, Callable[["LayerCall", list[str]], list[str]]] = {}


def layer(*class_names: str):
    """Register a lowering rule for the Keras layer classes named (config `class_name`s, unchanged)."""
    def deco(fn):
        for c in class_names:
            LAYERS[c] = fn
        return fn
    return deco


@dataclass
class LayerCall:
    """One call of a Keras layer while lowering: its config, weights and the builder to emit into."""

    builder: GraphBuilder
    spec: ModelSpec
    class_name: str
    config: dict
    path: str            # weight path: nested models' names, then this layer's name, joined by "/"
    kwargs: dict          # call keyword arguments recorded in the node (e.g. Keras 3 `training`)

    @property
    def name(self) -> str:
        return self.config.get("name", self.path.rsplit("/", 1)[-1])

    @property
    def keras_major(self) -> int:
        return self.spec.keras_major

    def get(self, key: str, default: Any = None, *old_names: str) -> Any:
        """A config option, also under the older names Keras 1/2 used for it."""
        for k in (key,) + old_names:
            if k in self.config:
                return self.config[k]
        return default

    def unsupported(self, what: str) -> UnsupportedLayerError:
        return UnsupportedLayerError(
            f"{self.spec.source}: layer {self.name!r} ({self.class_name}): {what}",
            [(self.name, self.class_name, what)])

    def weights(self, expected: list[tuple[str, tuple | None]]) -> list[np.ndarray]:
        """This layer's weights, checked against `expected` [(what, shape or None)] in order."""
        got = self.spec.weights.get(self.path, [])
        names = [w for w, _ in expected]
        if len(got) != len(expected):
            raise WeightsMismatchError(
                f"{self.spec.source}: layer {self.name!r} ({self.class_name}) expects {len(expected)} weights "
                f"{names}, the file has {len(got)}"
                + (f" {self.spec.weight_names.get(self.path, [])}" if got else ""))
        out = []
        for (what, shape), arr in zip(expected, got):
            if shape is not None and tuple(arr.shape) != tuple(shape):
                raise WeightsMismatchError(
                    f"{self.spec.source}: layer {self.name!r} ({self.class_name}) weight {what!r} "
                    f"has shape {tuple(arr.shape)}, expected {tuple(shape)}")
            if not np.issubdtype(arr.dtype, np.floating):
                raise WeightsMismatchError(
                    f"{self.spec.source}: layer {self.name!r} ({self.class_name}) weight {what!r} "
                    f"has dtype {arr.dtype}, expected a float type")
            out.append(np.asarray(arr, dtype=np.float32))
        return out

    def param(self, what: str, array: np.ndarray) -> str:
        return self.builder.param(f"{self.path}/{what}", array)

    def add(self, op: Op, inputs: list[str], attrs: dict | None = None) -> str:
        return self.builder.add(op, inputs, attrs, layer=self.path)

    def shape(self, value: str) -> tuple:
        return self.builder.shape(value)
