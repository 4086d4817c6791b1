"""Merge layers: Add, Subtract, Multiply, Average, Maximum, Minimum (elementwise, broadcasting as
Keras does) and Dot (a batched dot product along chosen axes). Concatenate is in `layers.py`."""
from __future__ import annotations

import numpy as np

from ..ir import Op
from .context import LayerCall, layer
from .primitives import align_ranks, axes_of, const, l2_normalize

KERAS_EPSILON = 1e-7  # keras.config.epsilon(), used by Dot(normalize=True)


def merge(call: LayerCall, xs: list[str], op: Op) -> str:
    """Fold `xs` left to right with a binary op, after Keras's rank alignment."""
    if not xs:
        raise call.unsupported("a merge layer with no inputs")
    xs = align_ranks(call, xs)
    y = xs[0]
    for x in xs[1:]:
        y = call.add(op, [y, x])
    return y


@layer("Add")
def lower_add(call: LayerCall, xs: list[str]) -> list[str]:
    return [merge(call, xs, Op.ADD)]


@layer("Subtract")
def lower_subtract(call: LayerCall, xs: list[str]) -> list[str]:
    if len(xs) != 2:
        raise call.unsupported(f"Subtract takes exactly 2 inputs, got {len(xs)}")
    return [merge(call, xs, Op.SUB)]


@layer("Multiply")
def lower_multiply(call: LayerCall, xs: list[str]) -> list[str]:
    return [merge(call, xs, Op.MUL)]


@layer("Average")
def lower_average(call: LayerCall, xs: list[str]) -> list[str]:
    return [call.add(Op.DIV, [merge(call, xs, Op.ADD), const(call, "count", float(len(xs)))])]


@layer("Maximum")
def lower_maximum(call: LayerCall, xs: list[str]) -> list[str]:
    return [merge(call, xs, Op.MAXIMUM)]


@layer("Minimum")
def lower_minimum(call: LayerCall, xs: list[str]) -> list[str]:
    return [merge(call, xs, Op.MINIMUM)]


def _transpose(call: LayerCall, x: str, perm: tuple) -> str:
    return x if perm == tuple(range(len(perm))) else call.add(Op.TRANSPOSE, [x], {"perm": perm})


def batch_dot(call: LayerCall, x: str, y: str, axes: tuple[int, int]) -> str:
    """keras.src.layers.merging.dot.batch_dot: contract x's axis a0 with y's axis a1 per sample; the
    result has x's other axes then y's, with Keras's unit-axis rules for rank-2 inputs. As Keras does
    it: x as (N, rows, K), y as (N, K, cols), one batched matrix product (BMM)."""
    a0, a1 = axes
    x_rank, y_rank = len(call.shape(x)), len(call.shape(y))
    if x_rank == 2:
        x = call.add(Op.RESHAPE, [x], {"shape": (1, call.shape(x)[1])})
        a0 += 1
    if y_rank == 2:
        y = call.add(Op.RESHAPE, [y], {"shape": (call.shape(y)[1], 1)})
    xs, ys = call.shape(x), call.shape(y)
    if xs[a0] != ys[a1]:
        raise call.unsupported(f"dot of axis {a0} (size {xs[a0]}) with axis {a1} (size {ys[a1]})")
    x_rest = [i for i in range(1, len(xs)) if i != a0]
    y_rest = [i for i in range(1, len(ys)) if i != a1]
    rx, ry, k = [xs[i] for i in x_rest], [ys[i] for i in y_rest], xs[a0]
    xt = call.add(Op.RESHAPE, [_transpose(call, x, (0, *x_rest, a0))], {"shape": (int(np.prod(rx)), k)})
    yt = call.add(Op.RESHAPE, [_transpose(call, y, (0, a1, *y_rest))], {"shape": (k, int(np.prod(ry)))})
    out = rx + ry
    if x_rank == 2:
        out = out[1:]
    elif y_rank == 2:
        out = out[:-1]
    return call.add(Op.RESHAPE, [call.add(Op.BMM, [xt, yt])], {"shape": tuple(out)})


@layer("Dot")
def lower_dot(call: LayerCall, xs: list[str]) -> list[str]:
    if len(xs) != 2:
        raise call.unsupported(f"Dot takes exactly 2 inputs, got {len(xs)}")
    x, y = xs
    axes = call.get("axes", -1, "dot_axes")
    axes = [axes, axes] if isinstance(axes, int) else list(axes)
    a0, a1 = axes_of(call, x, axes[0])[0], axes_of(call, y, axes[1])[0]
    if call.get("normalize", False):
        x = l2_normalize(call, x, (a0,), KERAS_EPSILON)
        y = l2_normalize(call, y, (a1,), KERAS_EPSILON)
    return [batch_dot(call, x, y, (a0, a1))]
