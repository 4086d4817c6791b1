"""Building blocks that lowering rules compose from primitive ops: constants, reductions over any axes,
moments, linear maps along one axis, repeats, and Keras's rank alignment of merge inputs.

Each helper emits into the layer being lowered (`call`) and returns the name of its result value.
"""
from __future__ import annotations

from typing import Iterable

import numpy as np

from ..ir import Op
from .context import LayerCall


def const(call: LayerCall, what: str, value: float | np.ndarray) -> str:
    """A constant parameter of this layer (a scalar becomes shape (1,), which broadcasts anywhere).

    Parameter names are keys (a shared layer's second call gets the first call's array), so a scalar's
    name carries its value; an array's `what` must name its content."""
    arr = np.asarray(value, np.float32)
    if arr.size == 1 and arr.ndim <= 1:
        what = f"{what}={float(arr.reshape(()))!r}"
    return call.param(what, arr.reshape(arr.shape or (1,)))


def axes_of(call: LayerCall, x: str, axis: int | Iterable[int]) -> tuple[int, ...]:
    """Keras `axis` (an int or a list, negatives from the end) as sorted non-negative axes of `x`."""
    rank = len(call.shape(x))
    axes = [axis] if isinstance(axis, (int, np.integer)) else list(axis)
    out = tuple(sorted({int(a) % rank for a in axes}))
    if 0 in out:
        raise call.unsupported(f"axis {axis} includes the batch axis")
    return out


def reduce(call: LayerCall, op: Op, x: str, axes: Iterable[int], keepdims: bool) -> str:
    """MEAN or MAX over any non-batch axes. Backends reduce one contiguous run of axes, so other sets
    are moved last by a transpose first; with keepdims the reduced axes are 1, so the result of the
    transposed reduction is the wanted one reshaped."""
    shape = call.shape(x)
    axes = sorted(axes)
    if axes == list(range(axes[0], axes[-1] + 1)):
        return call.add(op, [x], {"axes": tuple(axes), "keepdims": keepdims})
    kept = [a for a in range(1, len(shape)) if a not in axes]
    t = call.add(Op.TRANSPOSE, [x], {"perm": (0, *kept, *axes)})
    first = 1 + len(kept)
    r = call.add(op, [t], {"axes": tuple(range(first, len(shape))), "keepdims": keepdims})
    if not keepdims:
        return r
    return call.add(Op.RESHAPE, [r], {"shape": tuple(1 if a in axes else shape[a] for a in range(1, len(shape)))})


def moments(call: LayerCall, x: str, axes: Iterable[int]) -> tuple[str, str, str]:
    """(mean, x - mean, variance) over `axes`, mean and variance with kept dims (as jnp.var does it:
    the mean of squared deviations)."""
    axes = tuple(axes)
    mean = reduce(call, Op.MEAN, x, axes, True)
    dev = call.add(Op.SUB, [x, mean])
    var = reduce(call, Op.MEAN, call.add(Op.POW, [dev], {"exponent": 2.0}), axes, True)
    return mean, dev, var


def rsqrt_plus(call: LayerCall, v: str, eps: float) -> str:
    """1 / sqrt(v + eps)."""
    return call.add(Op.POW, [call.add(Op.ADD, [v, const(call, "epsilon", eps)])], {"exponent": -0.5})


def sum_of_squares(call: LayerCall, x: str, axes: Iterable[int]) -> str:
    """sum(x**2) over `axes`, with kept dims (a mean times the count: backends reduce by MEAN)."""
    axes = tuple(axes)
    count = int(np.prod([call.shape(x)[a] for a in axes]))
    m = reduce(call, Op.MEAN, call.add(Op.POW, [x], {"exponent": 2.0}), axes, True)
    return call.add(Op.MUL, [m, const(call, "count", float(count))])


def l2_normalize(call: LayerCall, x: str, axes: Iterable[int], epsilon: float) -> str:
    """keras.ops.normalize(order=2): x * min(rsqrt(sum(x**2)), 1 / epsilon)."""
    inv = call.add(Op.POW, [sum_of_squares(call, x, axes)], {"exponent": -0.5})
    inv = call.add(Op.MINIMUM, [inv, const(call, "inv_epsilon", 1.0 / epsilon)])
    return call.add(Op.MUL, [x, inv])


def linear_map(call: LayerCall, x: str, axis: int, matrix: np.ndarray, what: str) -> str:
    """y[..., j, ...] = sum_i x[..., i, ...] * matrix[i, j] along `axis` (a resize, a one-hot gather):
    a MATMUL with the axis moved last, and back."""
    rank = len(call.shape(x))
    if axis == rank - 1:
        return call.add(Op.MATMUL, [x, call.param(what, matrix)])
    perm = tuple(a for a in range(rank) if a != axis) + (axis,)
    y = call.add(Op.MATMUL, [call.add(Op.TRANSPOSE, [x], {"perm": perm}), call.param(what, matrix)])
    back = tuple(int(i) for i in np.argsort(perm))
    return call.add(Op.TRANSPOSE, [y], {"perm": back})


def repeat(call: LayerCall, x: str, factors: dict[int, int]) -> str:
    """Repeat every element `factors[axis]` times along each axis (numpy.repeat, several axes at
    once): a reshape that opens a unit axis after each repeated one, a broadcasting multiply by ones
    (one generated loop, exact for every value), and a reshape back."""
    shape = call.shape(x)
    factors = {a: f for a, f in factors.items() if f != 1}
    if not factors:
        return x
    opened, ones, final = [], [], []
    for a in range(1, len(shape)):
        opened.append(shape[a])
        ones.append(1)
        final.append(shape[a] * factors.get(a, 1))
        if a in factors:
            opened.append(1)
            ones.append(factors[a])
    y = call.add(Op.RESHAPE, [x], {"shape": tuple(opened)})
    y = call.add(Op.MUL, [y, call.param(f"ones{tuple(ones)}", np.ones(ones, np.float32))])
    return call.add(Op.RESHAPE, [y], {"shape": tuple(final)})


def align_ranks(call: LayerCall, xs: list[str]) -> list[str]:
    """Keras merge layers give lower-rank inputs new unit axes right after the batch axis (not at the
    front, as NumPy broadcasting would) before combining them elementwise."""
    rank = max(len(call.shape(x)) for x in xs)
    out = []
    for x in xs:
        s = call.shape(x)
        out.append(x if len(s) == rank else
                   call.add(Op.RESHAPE, [x], {"shape": (1,) * (rank - len(s)) + tuple(s[1:])}))
    return out


def slice_axis(call: LayerCall, x: str, axis: int, start: int, stop: int, step: int = 1) -> str:
    """x[..., start:stop:step, ...] along one non-batch axis."""
    shape = call.shape(x)
    ranges = tuple((start, stop, step) if a == axis else (0, shape[a], 1) for a in range(1, len(shape)))
    return call.add(Op.SLICE, [x], {"ranges": ranges})
