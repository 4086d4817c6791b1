"""What a layer's lowering rule sees: `LayerCall`, one call of one Keras layer."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ...errors import UnsupportedLayerError, WeightsMismatchError
from ...encoder.spec import ModelSpec
from ..builder import GraphBuilder
from ..ir import Op

#: class name -> lowering rule(call, input value names) -> output value names
LAYERS: dict[str, Callable[["LayerCall", list[str]], list[str]]] = {}

#: layer classes that read integer inputs as they are; any other layer gets an integer input cast to
#: float32 first, as Keras autocasts it
INTEGER_INPUT_LAYERS: set[str] = set()


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
    # -- tensors passed besides the positional inputs, and masks (see masking.py) --
    #: keyword arguments that are tensors (initial_state, attention_mask, ...), as value names
    tensor_kwargs: dict[str, list[str]] = field(default_factory=dict)
    #: the Keras mask (a float 0/1 value, usually (N, T)) each input carries, None where it has none
    input_masks: list = field(default_factory=list)
    #: the `mask` argument Keras passes to the layer's call, one entry per input of the first call
    #: argument, or None when it passes none
    mask: list | None = None
    #: how many inputs the first call argument holds (the others are further positional arguments)
    first_arg: int = 1
    #: how many call arguments, positional and keyword, hold tensors
    tensor_args: int = 1
    #: the positional arguments as the node records them (constants of keras.ops layers live here)
    args: list = field(default_factory=list)
    #: set by a rule that computes its outputs' masks (Keras's compute_mask); None: the default policy
    output_masks: list | None = None
    #: set by a rule whose layer removes the masks of its inputs as it runs (MultiHeadAttention)
    clears_input_masks: bool = False
    #: lowers a nested model config on this call's builder: (model config, path prefix, inputs, spec)
    lower_model: Callable | None = None
    #: the mask any value carries (for tensors passed by keyword); None where it has none
    mask_of: Callable[[str], str | None] = lambda name: None

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
