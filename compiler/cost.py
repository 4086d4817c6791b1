"""A small cost model: floating-point operations and memory traffic of each node, for one sample.

What `kerasjit inspect` prints to show where a model's work is, not a performance prediction: a
multiply-add counts as 2 FLOPs, an elementwise op (or epilogue step) 1 per element, a window op 1 per
window element, a transcendental 1 like any other; bytes are what a node reads (runtime inputs and
parameters, each once) and writes, in float32, at batch 1.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .ir import Graph, Group, Node, Op


@dataclass(frozen=True)
class NodeCost:
    """The cost of one node at batch 1."""

    node: Node
    flops: int
    bytes_read: int
    bytes_written: int

    @property
    def bytes(self) -> int:
        return self.bytes_read + self.bytes_written

    @property
    def intensity(self) -> float:
        """FLOPs per byte moved: low values are memory-bound."""
        return self.flops / self.bytes if self.bytes else 0.0


def _size(shape: tuple) -> int:
    """Elements of one sample of a runtime value (batch dimension dropped) or of a parameter."""
    dims = [d for d in shape if d is not None]
    return int(np.prod(dims, dtype=np.int64)) if dims else 1


def _per_sample(shape: tuple) -> int:
    return _size(shape[1:]) if shape and shape[0] is None else _size(shape)


def node_flops(n: Node, shapes: dict[str, tuple]) -> int:
    """FLOPs of node `n` for one sample; `shapes` maps every value and parameter name to its shape."""
    out = _per_sample(n.out.shape)
    ins = [shapes[i] for i in n.inputs]
    epilogue = len(n.epilogue) * out
    if n.op is Op.MATMUL:
        k = ins[0][-1]
        return 2 * out * int(k) + epilogue
    if n.op is Op.CONV:
        w = ins[1]  # (*kernel, C_in/groups, C_out): every output element is one dot of that length
        return 2 * out * _size(w[:-1]) + epilogue
    if n.op is Op.CONV_TRANSPOSE:
        w = ins[1]  # (*kernel, C_in, C_out): every input element scatters into kernel * C_out outputs
        return 2 * _per_sample(ins[0]) * _size(w[:-2]) * int(w[-1]) + epilogue
    if n.op is Op.BMM:
        a = ins[0]
        k = a[-1]
        return 2 * out * int(k) + epilogue
    if n.op.group is Group.WINDOW:
        return out * _size(tuple(n.attr("pool", ())))
    if n.op.group is Group.REDUCTION:
        return _per_sample(ins[0]) * (5 if n.op in (Op.SOFTMAX, Op.SPARSEMAX) else 1)
    if n.op.group in (Group.UNARY, Group.BINARY):
        return out
    if n.op is Op.FUSED:
        return max(len(n.epilogue), 1) * out
    if n.op is Op.RNN:
        steps = int(ins[0][1]) if len(ins[0]) > 1 and ins[0][1] is not None else 1
        recurrent = _size(ins[1]) if len(ins) > 1 else 0
        return steps * (2 * recurrent + 10 * _size(ins[0][2:]))
    return 0  # layout ops move data only


def node_cost(n: Node, shapes: dict[str, tuple], params: set[str]) -> NodeCost:
    """FLOPs and bytes of node `n` at batch 1."""
    read = 0
    for i in dict.fromkeys(n.inputs):  # an input read twice is moved once
        read += 4 * (_size(shapes[i]) if i in params else _per_sample(shapes[i]))
    return NodeCost(n, node_flops(n, shapes), read, 4 * _per_sample(n.out.shape))


def graph_costs(g: Graph) -> list[NodeCost]:
    """The cost of every node of `g`, in execution order."""
    shapes = {k: tuple(v.shape) for k, v in g.values().items()}
    shapes.update({k: tuple(np.shape(v)) for k, v in g.params.items()})
    params = set(g.params)
    return [node_cost(n, shapes, params) for n in g.nodes]


def human(n: float, unit: str = "") -> str:
    """1234567 -> '1.23M' (decimal prefixes), for tables."""
    for prefix, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f}{prefix}{unit}"
    return f"{n:.0f}{unit}"
