"""`GraphBuilder`: the one way the front end (and passes that add nodes) create values.

Every node gets its output shape from the op's shape rule, so a built graph verifies by construction.
"""
from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np

from .ir import Graph, Node, Op, Value, freeze
from .rules import shape_of


#: geometry attributes that must be positive integers (a scalar or a tuple), and one that must not be negative
_POSITIVE_ATTRS = ("strides", "dilation", "pool", "groups", "units", "depth")
_NON_NEGATIVE_ATTRS = ("pads", "extra")
#: the largest tensor per sample a node may produce (2**31 - 1 float32 values: 8 GiB per sample)
MAX_SAMPLE_ELEMENTS = 2**31 - 1


def _check_geometry(op: Op, attrs: dict[str, Any]) -> None:
    """Raise `ValueError` for a stride, dilation, pool size, padding, ... that is not a (positive)
    integer: such a config reaches the shape rules and the kernels otherwise, which assume them."""
    def ints(v: Any) -> list:
        return [x for item in v for x in ints(item)] if isinstance(v, (tuple, list)) else [v]

    def whole(v: Any, low: int) -> bool:
        if isinstance(v, (bool, np.bool_)):
            return False
        if isinstance(v, (float, np.floating)) and not (math.isfinite(v) and v == int(v)):
            return False
        return isinstance(v, (int, np.integer, float, np.floating)) and low <= v <= MAX_SAMPLE_ELEMENTS

    for key, low in [(k, 1) for k in _POSITIVE_ATTRS] + [(k, 0) for k in _NON_NEGATIVE_ATTRS]:
        if key in attrs and attrs[key] is not None:
            if not all(whole(v, low) for v in ints(attrs[key])):
                raise ValueError(f"{op.label}: {key} {attrs[key]!r} must be {'positive' if low else 'non-negative'} "
                                 f"integers (at most {MAX_SAMPLE_ELEMENTS})")


class GraphBuilder:
    """Accumulates inputs, nodes and parameters; `finish()` returns the immutable `Graph`."""

    def __init__(self, name: str = "model"):
        self.name = name
        self.inputs: list[Value] = []
        self.input_names: list[str] = []
        self.nodes: list[Node] = []
        self.params: dict[str, np.ndarray] = {}
        self.values: dict[str, Value] = {}
        self._counts: dict[str, int] = {}

    def fresh(self, base: str) -> str:
        """A value name not used yet, derived from `base` (usually the Keras layer path)."""
        n = self._counts.get(base, 0)
        self._counts[base] = n + 1
        name = base if n == 0 else f"{base}.{n}"
        while name in self.values or name in self.params:
            n += 1
            self._counts[base] = n + 1
            name = f"{base}.{n}"
        return name

    def input(self, keras_name: str, shape: tuple, dtype: str = "float32") -> str:
        v = Value(self.fresh(keras_name), (None,) + tuple(int(d) for d in shape), dtype)
        self.inputs.append(v)
        self.input_names.append(keras_name)
        self.values[v.name] = v
        return v.name

    def param(self, name: str, array: np.ndarray) -> str:
        """Register a constant; the same name registered twice (a shared layer) is the same array."""
        if name in self.params:
            return name
        if name in self.values:
            name = self.fresh(name)
        self.params[name] = np.ascontiguousarray(array, dtype=np.float32)
        return name

    def shape(self, name: str) -> tuple:
        if name in self.values:
            return self.values[name].shape
        return tuple(self.params[name].shape)

    def add(self, op: Op, inputs: list[str] | tuple[str, ...], attrs: Mapping[str, Any] | None = None,
            layer: str = "", name: str | None = None) -> str:
        attrs = dict(attrs or {})
        _check_geometry(op, attrs)
        try:
            shape = shape_of(op, [self.shape(i) for i in inputs], attrs)
        except ArithmeticError as e:  # a division by a zero stride, say: the config's fault, named by the caller
            raise ValueError(f"{op.label}: {type(e).__name__}: {e}") from e
        if any(not isinstance(d, (int, np.integer)) or d < 1 for d in shape[1:]) or \
                int(np.prod([int(d) for d in shape[1:]], dtype=np.float64)) > MAX_SAMPLE_ELEMENTS:
            raise ValueError(f"{op.label} gives an output of shape {tuple(shape)}: every dimension must be a "
                             f"positive integer, at most {MAX_SAMPLE_ELEMENTS} values per sample")
        out = Value(self.fresh(name or layer or op.label), tuple(shape))
        self.nodes.append(Node(op, tuple(inputs), out, freeze(attrs), layer))
        self.values[out.name] = out
        return out.name

    def finish(self, outputs: list[str], output_names: list[str]) -> Graph:
        return Graph(tuple(self.inputs), tuple(self.nodes), tuple(outputs), dict(self.params),
                     tuple(self.input_names), tuple(output_names), self.name)
