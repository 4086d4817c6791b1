"""The verifier: checks a graph's invariants (see `ir.py`) and names the node that breaks one."""
from __future__ import annotations

from ..errors import CompileError
from .ir import Graph, Group
from .rules import shape_of


def verify(g: Graph) -> Graph:
    """Raise `CompileError` naming the first node that breaks an invariant; return `g` unchanged."""
    shapes: dict[str, tuple] = {}
    for v in g.inputs:
        if not v.shape or v.shape[0] is not None:
            raise CompileError(f"graph input {v} must have the symbolic batch as dimension 0")
        shapes[v.name] = v.shape
    for name, p in g.params.items():
        if name in shapes:
            raise CompileError(f"parameter {name} shadows a graph input")
        shapes[name] = tuple(p.shape)
    for n in g.nodes:
        where = f"while verifying node {n}"
        for i in n.inputs:
            if i not in shapes:
                raise CompileError(f"{where}: input {i!r} is not defined before use")
        if n.out.name in shapes:
            raise CompileError(f"{where}: value {n.out.name!r} is defined twice")
        if not n.out.shape or n.out.shape[0] is not None or any(d is None for d in n.out.shape[1:]):
            raise CompileError(f"{where}: output must be batched with static inner dimensions")
        for s in n.epilogue:
            if s.op.group not in (Group.UNARY, Group.BINARY):
                raise CompileError(f"{where}: epilogue step {s} is not elementwise")
            if s.op.group is Group.BINARY and not (s.operand is not None and 0 <= s.operand < len(n.inputs)):
                raise CompileError(f"{where}: epilogue step {s} names no input")
        try:
            expect = shape_of(n.op, [shapes[i] for i in n.inputs], dict(n.attrs))
        except Exception as e:  # a shape rule's complaint, re-raised with the node it is about
            raise CompileError(f"{where}: {e}") from e
        if tuple(expect) != tuple(n.out.shape):
            raise CompileError(f"{where}: shape rule gives {expect}, node says {n.out.shape}")
        shapes[n.out.name] = n.out.shape
    for o in g.outputs:
        if o not in shapes or o in g.params:
            raise CompileError(f"graph output {o!r} is not a runtime value")
    return g
