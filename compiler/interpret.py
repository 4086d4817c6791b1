"""The NumPy reference interpreter: runs any graph, before or after passes.

It is the oracle that tells a front-end bug (interpreter disagrees with Keras) from a pass or codegen
bug (interpreter agrees with Keras, compiled code does not).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..errors import CompileError
from .ir import Graph
from .rules import evaluate


def interpret(g: Graph, inputs: Sequence[np.ndarray], keep: bool = False) -> list[np.ndarray] | dict[str, np.ndarray]:
    """Run `g` on `inputs` (in `g.inputs` order); return its outputs, or every value when `keep`."""
    env: dict[str, np.ndarray] = dict(g.params)
    for v, x in zip(g.inputs, inputs, strict=True):
        env[v.name] = np.asarray(x, dtype=v.dtype)
    for n in g.nodes:
        try:
            env[n.out.name] = evaluate(n.op, [env[i] for i in n.inputs], dict(n.attrs))
        except Exception as e:
            raise CompileError(f"while executing {n}: {e}") from e
    if keep:
        return env
    return [env[o] for o in g.outputs]
