"""Graph passes, run by one driver as a flat, named list; each is optional and testable alone.

Every pass takes a verified `Graph` and returns a new one with the same meaning (the reference
interpreter gives the same outputs before and after, up to float32 rounding). Set
`KERASJIT_DUMP_AFTER=<pass name>` (or `all`) to print the graph after a pass.
"""
from __future__ import annotations

import os
import sys
from typing import Callable, Iterable

import numpy as np

from .ir import Graph, Group, Node, Op, Step, freeze
from .rules import evaluate
from .verify import verify
from .passes_seq import fold_gather_matmul

Pass = Callable[[Graph], Graph]


def _rename(nodes: Iterable[Node], mapping: dict[str, str]) -> list[Node]:
    """Replace input names through `mapping` (chains resolved)."""
    def resolve(n: str) -> str:
        while n in mapping:
            n = mapping[n]
        return n
    return [n.with_(inputs=tuple(resolve(i) for i in n.inputs)) for n in nodes]


def _resolve_outputs(g: Graph, mapping: dict[str, str]) -> list[str]:
    out = []
    for o in g.outputs:
        while o in mapping:
            o = mapping[o]
        out.append(o)
    return out


def remove_noops(g: Graph) -> Graph:
    """Drop inference no-ops (IDENTITY from Dropout, noise, ...) and reshapes to the same shape."""
    mapping: dict[str, str] = {}
    keep = []
    shapes = {v.name: v.shape for v in g.inputs}
    for n in g.nodes:
        shapes[n.out.name] = n.out.shape
        src = n.inputs[0] if n.inputs else None
        if n.op is Op.IDENTITY or (n.op is Op.RESHAPE and shapes.get(src) == n.out.shape):
            mapping[n.out.name] = src
        else:
            keep.append(n)
    outputs = _resolve_outputs(g, mapping)
    if any(o in {v.name for v in g.inputs} for o in outputs):
        # an output that is just an input still needs a node that copies it
        return g
    return g.with_nodes(_rename(keep, mapping), outputs=outputs)


def fold_constants(g: Graph) -> Graph:
    """Evaluate nodes whose inputs are all parameters; their results become parameters."""
    params = dict(g.params)
    keep = []
    for n in g.nodes:
        if n.inputs and all(i in params for i in n.inputs) and n.op is not Op.RESHAPE:
            params[n.out.name] = evaluate(n.op, [params[i] for i in n.inputs], dict(n.attrs))
        else:
            keep.append(n)
    if len(keep) == len(g.nodes):
        return g
    # a folded value with a batch dimension cannot be a parameter; keep the graph as it was then
    return g.with_nodes(keep, params=params)


def _channel_vector(p: np.ndarray, channels: int) -> np.ndarray | None:
    """`p` as a per-output-channel vector, if it broadcasts only along the last axis."""
    if p.size == 1:
        return np.full(channels, p.reshape(()), np.float32)
    if p.shape and p.shape[-1] == channels and p.size == channels:
        return p.reshape(channels)
    return None


def _only_bias_epilogue(n: Node, params) -> bool:
    return all(s.op is Op.ADD and s.operand is not None and n.inputs[s.operand] in params for s in n.epilogue)


def fold_scale_shift(g: Graph) -> Graph:
    """Fold `x * c` and `x + c` (c a per-channel constant) into the conv, transposed conv or dense
    that makes x.

    BatchNormalization lowers to exactly this pair, so after this pass a Conv+BN is one conv with a
    bias. A multiply folds only while the producer's epilogue is bias additions alone.
    """
    params = dict(g.params)
    producers = g.producers()
    consumers = g.consumers()
    outputs = set(g.outputs)
    mapping: dict[str, str] = {}
    replaced: dict[str, Node] = {}
    dropped: set[str] = set()
    for n in g.nodes:
        if n.op not in (Op.MUL, Op.ADD) or len(n.inputs) != 2:
            continue
        a, b = n.inputs
        if a in params and b not in params:
            a, b = b, a
        src = mapping.get(a, a)
        prod = replaced.get(src) or producers.get(src)
        # any contraction whose weight (inputs[1]) is a constant with output channels on its last axis
        if b not in params or prod is None or prod.op.group is not Group.CONTRACTION or prod.inputs[1] not in params:
            continue
        if len(consumers.get(a, [])) != 1 or a in outputs or prod.out.shape != n.out.shape:
            continue
        channels = prod.out.shape[-1]
        vec = _channel_vector(params[b], channels)
        if vec is None or not _only_bias_epilogue(prod, params):
            continue
        inputs = list(prod.inputs)
        steps = list(prod.epilogue)
        if n.op is Op.MUL:
            wname = f"{inputs[1]}*{n.out.name}"
            params[wname] = (params[inputs[1]] * vec).astype(np.float32)
            inputs[1] = wname
            for s in steps:
                bname = f"{inputs[s.operand]}*{n.out.name}"
                params[bname] = (params[inputs[s.operand]].reshape(-1) * vec).astype(np.float32)
                inputs[s.operand] = bname
        else:
            if steps:
                s = steps[0]
                bname = f"{inputs[s.operand]}+{n.out.name}"
                params[bname] = (params[inputs[s.operand]].reshape(-1) + vec).astype(np.float32)
                inputs[s.operand] = bname
            else:
                bname = f"{n.out.name}/bias"
                params[bname] = vec.astype(np.float32)
                inputs.append(bname)
                steps.append(Step(Op.ADD, (), len(inputs) - 1))
        new = prod.with_(inputs=tuple(inputs), attrs=freeze({**dict(prod.attrs), "epilogue": tuple(steps)}),
                         out=n.out)
        replaced[n.out.name] = new
        dropped.add(prod.out.name)
        mapping[prod.out.name] = n.out.name
    if not replaced:
        return g
    nodes = []
    for n in g.nodes:
        if n.out.name in dropped:
            continue
        nodes.append(replaced.get(n.out.name, n))
    # bias additions merged into one vector per producer
    nodes = [_merge_bias_steps(n, params) for n in nodes]
    used = {i for n in nodes for i in n.inputs}
    return g.with_nodes(nodes, params={k: v for k, v in params.items() if k in used})


def _merge_bias_steps(n: Node, params: dict) -> Node:
    steps = n.epilogue
    if len(steps) < 2 or not _only_bias_epilogue(n, params):
        return n
    total = sum(params[n.inputs[s.operand]].reshape(-1) for s in steps)
    name = f"{n.out.name}/bias"
    params[name] = np.asarray(total, np.float32)
    keep = [i for k, i in enumerate(n.inputs) if k not in {s.operand for s in steps}]
    keep.append(name)
    return n.with_(inputs=tuple(keep), attrs=freeze({**dict(n.attrs), "epilogue": (Step(Op.ADD, (), len(keep) - 1),)}))


def _as_fused(n: Node, vals: dict) -> Node:
    """An elementwise node as a one-step FUSED node; inputs[0], the running value, is the input
    with the output's shape where there is one."""
    if n.op.group is Group.UNARY:
        return Node(Op.FUSED, n.inputs[:1], n.out, freeze({"epilogue": (Step(n.op, n.attrs),)}), n.layer)
    a, b = n.inputs
    if vals.get(a) != n.out.shape and vals.get(b) == n.out.shape:
        return Node(Op.FUSED, (b, a), n.out, freeze({"epilogue": (Step(n.op, (), 1, swap=True),)}), n.layer)
    return Node(Op.FUSED, (a, b), n.out, freeze({"epilogue": (Step(n.op, (), 1),)}), n.layer)


def fuse_elementwise(g: Graph) -> Graph:
    """Fuse elementwise ops into the epilogue of their producer (conv, dense or an elementwise chain).

    A consumer fuses when it is the producer's only reader, the producer's value is not a graph
    output, and the result keeps the producer's shape (so the fused loop runs over the same elements).
    """
    consumers = g.consumers()
    outputs = set(g.outputs)
    vals = {k: tuple(v.shape) for k, v in g.values().items()}
    order: list[str] = []
    nodes_by_out: dict[str, Node] = {}
    for n in g.nodes:
        fused = None
        if n.op.group in (Group.UNARY, Group.BINARY):
            for pos, src in enumerate(n.inputs[:2] if n.op.group is Group.BINARY else n.inputs[:1]):
                if pos == 1 and n.op not in (Op.ADD, Op.MUL, Op.MAXIMUM, Op.MINIMUM, Op.SUB, Op.DIV, Op.SELECT):
                    break
                prod = nodes_by_out.get(src)
                if prod is None or prod.op.group not in (Group.CONTRACTION, Group.FUSED):
                    continue
                if prod.out.name != src or len(consumers.get(src, [])) != 1 or src in outputs:
                    continue
                if tuple(prod.out.shape) != tuple(n.out.shape):
                    continue
                if n.op.group is Group.UNARY:
                    step, inputs = Step(n.op, n.attrs), prod.inputs
                else:
                    other = n.inputs[1 - pos]
                    if other == src:
                        continue
                    inputs = prod.inputs + (other,)
                    step = Step(n.op, (), len(inputs) - 1, swap=(pos == 1))
                fused = prod.with_(inputs=inputs, out=n.out,
                                   attrs=freeze({**dict(prod.attrs), "epilogue": prod.epilogue + (step,)}))
                del nodes_by_out[prod.out.name]
                order.remove(prod.out.name)
                break
            if fused is None:
                fused = _as_fused(n, vals)
        node = fused or n
        nodes_by_out[node.out.name] = node
        order.append(node.out.name)
    return g.with_nodes([nodes_by_out[o] for o in order])


def fold_pad_into_conv(g: Graph) -> Graph:
    """A zero PAD of spatial axes only (ZeroPadding2D before a 'valid' strided conv, as in MobileNetV2)
    whose readers are all convolutions becomes their padding: one copy of the tensor less."""
    consumers = g.consumers()
    outputs = set(g.outputs)
    mapping: dict[str, Node] = {}
    dropped: set[str] = set()
    for n in g.nodes:
        if n.op is not Op.PAD or float(n.attr("value", 0.0)) != 0.0 or n.out.name in outputs:
            continue
        pads = tuple(tuple(p) for p in n.attr("pads"))
        readers = consumers.get(n.out.name, [])
        if (len(pads) < 3 or pads[0] != (0, 0) or pads[-1] != (0, 0) or any(lo < 0 or hi < 0 for lo, hi in pads)
                or not readers or any(r.op is not Op.CONV or r.inputs[0] != n.out.name or r.inputs.count(n.out.name) != 1
                                      or len(r.attr("pads")) != len(pads) - 2 for r in readers)):
            continue
        for r in readers:
            r = mapping.get(r.out.name, r)
            new = tuple((lo + plo, hi + phi) for (lo, hi), (plo, phi) in zip(r.attr("pads"), pads[1:-1]))
            mapping[r.out.name] = r.with_(inputs=(n.inputs[0],) + r.inputs[1:],
                                         attrs={**dict(r.attrs), "pads": new})
        dropped.add(n.out.name)
    if not dropped:
        return g
    return g.with_nodes([mapping.get(n.out.name, n) for n in g.nodes if n.out.name not in dropped])


#: The default pipeline, in order. Names are what KERASJIT_DUMP_AFTER takes.
PASSES: list[tuple[str, Pass]] = [
    ("remove_noops", remove_noops),
    ("fold_constants", fold_constants),
    ("fold_scale_shift", fold_scale_shift),
    ("fold_pad_into_conv", fold_pad_into_conv),
    ("fuse_elementwise", fuse_elementwise),
    ("fold_gather_matmul", fold_gather_matmul),
]


def run_passes(g: Graph, passes: list[tuple[str, Pass]] | None = None, check: bool = True,
               dump_after: str | None = None) -> Graph:
    """Run `passes` (default `PASSES`) in order, verifying after each one when `check`."""
    dump = dump_after if dump_after is not None else os.environ.get("KERASJIT_DUMP_AFTER", "")
    verify(g)
    for name, p in passes if passes is not None else PASSES:
        g = p(g)
        if check:
            verify(g)
        if dump and (dump == name or dump == "all"):
            print(f"# after {name}\n{g}", file=sys.stderr)
    return g
