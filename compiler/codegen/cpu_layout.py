"""CPU emitters of the layout ops (TRANSPOSE, SLICE, PAD, CONCAT): each is one or a few calls of the
strided-copy kernel `kernels/cpu/layout.copy6`, compiled once for every such move in every model
(numba compiles each NumPy slice assignment in `run` separately, ~0.3 s apiece)."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ...errors import CompileError
from ..ir import Node

if TYPE_CHECKING:
    from .cpu import CpuCodegen


def _row_major(shape: tuple) -> list[int]:
    """Element strides of a C-contiguous array of `shape`; the batch dim's is the per-sample size."""
    strides, acc = [], 1
    for d in reversed(shape[1:]):
        strides.append(acc)
        acc *= d
    return [acc] + strides[::-1]


def _flat(expr: str, shape: tuple) -> str:
    return f"{expr}.reshape((n * {int(np.prod(shape[1:], dtype=np.int64))},))"


def copy(cg: "CpuCodegen", src: str, src_shape: tuple, s_off: int, s_str: list[int],
         dst: str, dst_shape: tuple, d_off: int, d_str: list[int], shape: tuple) -> None:
    """Emit a strided copy over the index space `shape` (dim 0 the batch, None): axes contiguous in
    both source and destination merge, unit axes drop, and what is left (at most 6 axes) is one call."""
    groups: list[list] = []  # [size, batched, src stride, dst stride], innermost first
    for k in range(len(shape) - 1, -1, -1):
        size, batched = (1, True) if shape[k] is None else (int(shape[k]), False)
        if size == 1 and not batched:
            continue
        last = groups[-1] if groups else None
        if last and not last[1] and s_str[k] == last[2] * last[0] and d_str[k] == last[3] * last[0]:
            last[0] *= size
            last[1] = batched
        else:
            groups.append([size, batched, s_str[k], d_str[k]])
    if len(groups) > 6:
        raise CompileError(f"a layout move over {len(groups)} non-contiguous axes (at most 6)")
    groups = [[1, False, 0, 0]] * (6 - len(groups)) + groups[::-1]

    def size(g: list) -> str:
        return ("n" if g[0] == 1 else f"n * {g[0]}") if g[1] else str(g[0])
    cg.line(f"_layout.copy6({_flat(src, src_shape)}, {s_off}, ({', '.join(str(g[2]) for g in groups)}), "
            f"{_flat(dst, dst_shape)}, {d_off}, ({', '.join(str(g[3]) for g in groups)}), "
            f"({', '.join(size(g) for g in groups)}))")


def emit_transpose(cg: "CpuCodegen", node: Node, out: str) -> None:
    x = node.inputs[0]
    xs = cg.shape(x)
    s_str = _row_major(xs)
    copy(cg, cg.ref(x), xs, 0, [s_str[p] for p in node.attr("perm")], out, node.out.shape, 0,
         _row_major(node.out.shape), node.out.shape)


def emit_slice(cg: "CpuCodegen", node: Node, out: str) -> None:
    x = node.inputs[0]
    xs = cg.shape(x)
    in_str = _row_major(xs)
    ranges = node.attr("ranges")
    s_off = sum(start * st for (start, _, _), st in zip(ranges, in_str[1:]))
    s_str = [in_str[0]] + [st * step for (_, _, step), st in zip(ranges, in_str[1:])]
    copy(cg, cg.ref(x), xs, s_off, s_str, out, node.out.shape, 0, _row_major(node.out.shape), node.out.shape)


def emit_pad(cg: "CpuCodegen", node: Node, out: str) -> None:
    x = node.inputs[0]
    xs, ys = cg.shape(x), node.out.shape
    d_str = _row_major(ys)
    d_off = sum(lo * st for (lo, _), st in zip(node.attr("pads")[1:], d_str[1:]))
    cg.line(f"_layout.fill({_flat(out, ys)}, {cg.c(node.attr('value', 0.0))})")
    copy(cg, cg.ref(x), xs, 0, _row_major(xs), out, ys, d_off, d_str, xs)


def emit_concat(cg: "CpuCodegen", node: Node, out: str) -> None:
    axis = node.attr("axis")
    ys = node.out.shape
    d_str = _row_major(ys)
    off = 0
    for i in node.inputs:
        xs = cg.shape(i)
        kind, where = cg.plan.storage[i]
        if not (kind == "slice" and where[0] == node.out.name):  # else its node wrote it in place
            copy(cg, cg.ref(i), xs, 0, _row_major(xs), out, ys, off * d_str[axis], d_str, xs)
        off += xs[axis]
