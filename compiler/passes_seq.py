"""Passes for sequence models (registered in `passes.PASSES`).

fold_gather_matmul: an embedding followed by a dense projection, `MATMUL(GATHER(ids, E), W) + b`, is a
gather from the projected table `E @ W + b`, computed once at compile time: for an Embedding feeding
an RNN, that is the whole input projection of every timestep gone from run time (an IMDB-style LSTM
spends most of its time there). The table grows from K to M columns, so the fold is limited in size.
"""
from __future__ import annotations

import numpy as np

from .ir import Graph, Group, Node, Op, freeze
from .rules import apply_epilogue

#: the largest projected table the fold makes, in bytes (the weights file holds it)
MAX_FOLDED_TABLE = 64 << 20


def _row_operand(p: np.ndarray, m: int) -> bool:
    """Whether an epilogue parameter broadcasts along rows only (a per-column bias or a scalar)."""
    return p.size in (1, m) and (p.ndim <= 1 or all(d == 1 for d in p.shape[:-1]))


def fold_gather_matmul(g: Graph) -> Graph:
    """Rewrite MATMUL(GATHER(ids, E), W) with an elementwise epilogue of per-column constants as
    GATHER(ids, epilogue(E @ W)); the gather disappears when nothing else reads it."""
    params = dict(g.params)
    producers = g.producers()
    replaced: dict[str, Node] = {}
    for n in g.nodes:
        if n.op is not Op.MATMUL or n.inputs[1] not in params:
            continue
        src = producers.get(n.inputs[0])
        if src is None or src.op is not Op.GATHER or src.inputs[1] not in params:
            continue
        table, w = params[src.inputs[1]], params[n.inputs[1]]
        if table.ndim != 2 or table.shape[0] * w.shape[1] * 4 > MAX_FOLDED_TABLE:
            continue
        m = w.shape[1]
        ok = all(s.op.group is Group.UNARY or (s.operand is not None and n.inputs[s.operand] in params
                                               and _row_operand(params[n.inputs[s.operand]], m))
                 for s in n.epilogue)
        if not ok:
            continue
        projected = (table.astype(np.float64) @ w.astype(np.float64)).astype(np.float32)
        operands = [params.get(i) for i in n.inputs]
        projected = apply_epilogue(projected, n.epilogue, operands)
        name = f"{src.inputs[1]}@{n.inputs[1]}"
        params[name] = np.ascontiguousarray(projected, dtype=np.float32)
        replaced[n.out.name] = Node(Op.GATHER, (src.inputs[0], name), n.out, freeze({}), n.layer)
    if not replaced:
        return g
    nodes = [replaced.get(n.out.name, n) for n in g.nodes]
    # drop what no longer has a reader (the gathers of the original table, most often)
    used = set(g.outputs)
    keep: list[Node] = []
    for n in reversed(nodes):
        if n.out.name in used or n.op is Op.RNN and n.attr("stateful"):
            keep.append(n)
            used.update(n.inputs)
    keep.reverse()
    return g.with_nodes(keep, params={k: v for k, v in params.items() if k in used})
