"""The graph IR: one node type, one op enum with named groups, immutable graphs.

Grammar (the printer writes exactly this, one node per line):

    graph   := "graph(" value* ")" node* "return" name*
    value   := name ":" dtype "[" dim ("," dim)* "]"        dim := "N" | int
    node    := value "=" OP "(" name ("," name)* ")" attrs  "# layer"

Invariants (checked by `verify`):
- every value is defined once, before use; a node input names a graph input, a parameter, or the
  output of an earlier node;
- dimension 0 of every runtime value is the symbolic batch dimension (`None`, printed `N`); parameters
  (weights and other constants) have fully static shapes and no batch dimension;
- every node's output shape and dtype equal what the op's shape rule gives for its inputs;
- nodes are never mutated: a pass builds a new `Graph`.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace
from typing import Any, Iterable, Mapping

import numpy as np

Shape = tuple  # tuple[int | None, ...]; None only at position 0 (the batch)


class Group(enum.Enum):
    UNARY = "unary"            # elementwise, one input
    BINARY = "binary"          # elementwise, two inputs, numpy broadcasting
    CONTRACTION = "contraction"  # matmul and convolution, with a fused epilogue
    WINDOW = "window"          # pooling over spatial windows
    REDUCTION = "reduction"    # reduce over axes, softmax
    LAYOUT = "layout"          # reshape, transpose, pad, concat: moves data, no arithmetic
    FUSED = "fused"            # an elementwise chain made by the fusion pass
    RECURRENT = "recurrent"    # a loop over time carrying state from step to step (RNN)


class Op(enum.Enum):
    # -- unary elementwise (attrs parametrise the function) --
    IDENTITY = ("identity", Group.UNARY)
    RELU = ("relu", Group.UNARY)              # attrs: max_value, negative_slope, threshold
    SIGMOID = ("sigmoid", Group.UNARY)
    HARD_SIGMOID = ("hard_sigmoid", Group.UNARY)  # attrs: slope, offset  (clip(slope*x+offset, 0, 1))
    HARD_SWISH = ("hard_swish", Group.UNARY)  # x * relu6(x + 3) / 6
    TANH = ("tanh", Group.UNARY)
    ELU = ("elu", Group.UNARY)                # attrs: alpha
    SELU = ("selu", Group.UNARY)
    SILU = ("silu", Group.UNARY)              # attrs: beta  (x * sigmoid(beta*x))
    GELU = ("gelu", Group.UNARY)              # attrs: approximate
    SOFTPLUS = ("softplus", Group.UNARY)
    SOFTSIGN = ("softsign", Group.UNARY)
    EXP = ("exp", Group.UNARY)
    NEG = ("neg", Group.UNARY)
    POW = ("pow", Group.UNARY)                # attrs: exponent  (2 square, 0.5 sqrt, -0.5 rsqrt, ...)
    LOG = ("log", Group.UNARY)
    SIGN = ("sign", Group.UNARY)              # -1, 0 or 1 (a comparison as arithmetic: masks, steps)
    CAST = ("cast", Group.UNARY)              # to float32: an integer graph input read by a float layer
    FLOOR = ("floor", Group.UNARY)            # largest integer <= x (ceil, trunc and int casts build on it)
    # -- binary elementwise --
    ADD = ("add", Group.BINARY)
    SUB = ("sub", Group.BINARY)
    MUL = ("mul", Group.BINARY)
    DIV = ("div", Group.BINARY)
    MAXIMUM = ("maximum", Group.BINARY)
    MINIMUM = ("minimum", Group.BINARY)
    # a where b != 0, else 0: where(c, x, y) = SELECT(x, c) + SELECT(y, c == 0), exact where
    # c * x + (1 - c) * y is not (inf * 0 is NaN, and masks are often -inf)
    SELECT = ("select", Group.BINARY)
    # -- contraction --
    MATMUL = ("matmul", Group.CONTRACTION)    # x[..., K] @ w[K, M]; attrs: epilogue
    # Spatial ops have 1, 2 or 3 spatial dims (len(strides)): x is (N, *spatial, C) channels-last, w is
    # (*kernel, C_in/groups, C_out). Contractions keep output channels on w's last axis (folding scales it).
    CONV = ("conv", Group.CONTRACTION)        # attrs: strides, dilation, pads, groups, epilogue
    # The transpose (gradient) of CONV: input pixel i, kernel tap p feed output pixel i*stride + p*dilation
    # - pads[lo] of the full (in-1)*stride + (k-1)*dilation + 1 output; pads (lo, hi) crop it, then `extra`
    # zeros are appended per spatial dim (Keras's output_padding past the kernel); w is (*k, C_in, C_out).
    CONV_TRANSPOSE = ("conv_transpose", Group.CONTRACTION)  # attrs: strides, dilation, pads, extra, epilogue
    # a[N, ..., M, K] @ b[N, ..., K, P] between two runtime values (b[N, ..., P, K] when transpose_b)
    BMM = ("bmm", Group.CONTRACTION)          # attrs: transpose_b, epilogue
    # -- window --
    MAXPOOL = ("maxpool", Group.WINDOW)       # attrs: pool, strides, pads
    AVGPOOL = ("avgpool", Group.WINDOW)       # attrs: pool, strides, pads (padding excluded from the mean)
    # -- reduction --
    MEAN = ("mean", Group.REDUCTION)          # attrs: axes, keepdims
    MAX = ("max", Group.REDUCTION)            # attrs: axes, keepdims
    SOFTMAX = ("softmax", Group.REDUCTION)    # attrs: axis
    SPARSEMAX = ("sparsemax", Group.REDUCTION)  # attrs: axis (Keras 3's formula, see rules._sparsemax)
    # -- layout --
    RESHAPE = ("reshape", Group.LAYOUT)       # attrs: shape (without batch)
    TRANSPOSE = ("transpose", Group.LAYOUT)   # attrs: perm (full rank, perm[0] == 0)
    PAD = ("pad", Group.LAYOUT)               # attrs: pads ((lo, hi) per axis), value
    CONCAT = ("concat", Group.LAYOUT)         # attrs: axis
    # attrs: ranges ((start, stop, step) per axis after the batch, as Python's range: a negative step
    # walks down, stop -1 meaning down to index 0)
    SLICE = ("slice", Group.LAYOUT)
    # table[int(i)] for every index i of a runtime value (any int or float dtype, truncated; negative
    # indices count from the end; out of range gives NaN rows, as jnp.take); table is a parameter
    GATHER = ("gather", Group.LAYOUT)
    # 1.0 at position j of a new last axis of size depth where i == j (int(i) == j when truncate), else 0
    ONE_HOT = ("one_hot", Group.LAYOUT)       # attrs: depth, truncate
    # -- recurrent: see rules_seq.py for the inputs, attrs and the packed output --
    RNN = ("rnn", Group.RECURRENT)
    # -- fused --
    FUSED = ("fused", Group.FUSED)            # inputs[0] through attrs.epilogue

    def __init__(self, label: str, group: Group):
        self.label = label
        self.group = group

    def __repr__(self) -> str:
        return f"Op.{self.name}"


@dataclass(frozen=True)
class Value:
    """A tensor in the graph: its name, shape (batch dimension `None`) and dtype."""

    name: str
    shape: Shape
    dtype: str = "float32"

    @property
    def rank(self) -> int:
        return len(self.shape)

    def per_sample(self) -> int:
        """Elements per batch item (the product of the static dimensions)."""
        return int(np.prod([d for d in self.shape[1:]], dtype=np.int64)) if len(self.shape) > 1 else 1

    def __str__(self) -> str:
        dims = ",".join("N" if d is None else str(d) for d in self.shape)
        return f"{self.name}:{self.dtype}[{dims}]"


@dataclass(frozen=True)
class Step:
    """One elementwise step of a fused epilogue, applied to the running value `v`.

    For a unary op: `v = op(v)`. For a binary op: `v = op(v, inputs[operand])`, or
    `op(inputs[operand], v)` when `swap` (it matters for SUB and DIV).
    """

    op: Op
    attrs: tuple = ()
    operand: int | None = None
    swap: bool = False

    def attr(self, key: str, default: Any = None) -> Any:
        return dict(self.attrs).get(key, default)

    def __str__(self) -> str:
        a = "".join(f" {k}={v}" for k, v in self.attrs)
        if self.operand is None:
            return f"{self.op.label}{a}"
        side = f"(#{self.operand}, v)" if self.swap else f"(v, #{self.operand})"
        return f"{self.op.label}{side}{a}"


def freeze(attrs: Mapping[str, Any] | Iterable[tuple[str, Any]]) -> tuple:
    """Attributes as a sorted tuple of pairs, so that nodes stay hashable and comparable."""
    items = attrs.items() if isinstance(attrs, Mapping) else attrs
    return tuple(sorted((k, _freeze_value(v)) for k, v in items))


def _freeze_value(v: Any) -> Any:
    if isinstance(v, list):
        return tuple(_freeze_value(x) for x in v)
    if isinstance(v, tuple):
        return tuple(_freeze_value(x) for x in v)
    if isinstance(v, np.generic):
        return v.item()
    return v


@dataclass(frozen=True)
class Node:
    """One operation: `out = op(*inputs, **attrs)`. `layer` is the Keras layer it came from."""

    op: Op
    inputs: tuple[str, ...]
    out: Value
    attrs: tuple = ()
    layer: str = ""

    def attr(self, key: str, default: Any = None) -> Any:
        for k, v in self.attrs:
            if k == key:
                return v
        return default

    @property
    def epilogue(self) -> tuple[Step, ...]:
        return self.attr("epilogue", ())

    def with_(self, **changes: Any) -> "Node":
        if "attrs" in changes and not isinstance(changes["attrs"], tuple):
            changes["attrs"] = freeze(changes["attrs"])
        return replace(self, **changes)

    def __str__(self) -> str:
        parts = []
        for k, v in self.attrs:
            if k == "epilogue":
                if v:
                    parts.append("epilogue=[" + "; ".join(str(s) for s in v) + "]")
            else:
                parts.append(f"{k}={v}")
        a = (" " + " ".join(parts)) if parts else ""
        where = f"  # {self.layer}" if self.layer else ""
        return f"{self.out} = {self.op.label}({', '.join(self.inputs)}){a}{where}"


@dataclass(frozen=True)
class Graph:
    """A whole model: inputs, nodes in execution order, outputs, and parameters by name.

    `input_names`/`output_names` are the Keras names users see (the names of the InputLayers and of
    the output layers), aligned with `inputs` and `outputs`.
    """

    inputs: tuple[Value, ...]
    nodes: tuple[Node, ...]
    outputs: tuple[str, ...]
    params: Mapping[str, np.ndarray] = field(default_factory=dict)
    input_names: tuple[str, ...] = ()
    output_names: tuple[str, ...] = ()
    name: str = "model"

    def values(self) -> dict[str, Value]:
        """Every runtime value by name (graph inputs and node outputs)."""
        vals = {v.name: v for v in self.inputs}
        for n in self.nodes:
            vals[n.out.name] = n.out
        return vals

    def producers(self) -> dict[str, Node]:
        return {n.out.name: n for n in self.nodes}

    def consumers(self) -> dict[str, list[Node]]:
        """For each value or parameter name, the nodes that read it (graph outputs not included)."""
        uses: dict[str, list[Node]] = {}
        for n in self.nodes:
            for i in n.inputs:
                uses.setdefault(i, []).append(n)
        return uses

    def with_nodes(self, nodes: Iterable[Node], params: Mapping[str, np.ndarray] | None = None,
                   outputs: Iterable[str] | None = None) -> "Graph":
        return replace(self, nodes=tuple(nodes), params=dict(self.params if params is None else params),
                       outputs=tuple(self.outputs if outputs is None else outputs))

    def __str__(self) -> str:
        lines = ["graph(" + ", ".join(str(v) for v in self.inputs) + ")"]
        for name, p in self.params.items():
            lines.append(f"  param {name}:{p.dtype}[{','.join(map(str, p.shape))}]")
        for n in self.nodes:
            lines.append("  " + str(n))
        lines.append("  return " + ", ".join(self.outputs))
        return "\n".join(lines)
