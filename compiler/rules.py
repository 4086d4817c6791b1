"""One rule per primitive: its shape rule and its NumPy meaning.

`shape_of(op, in_shapes, attrs)` gives the output shape; `evaluate(op, arrays, attrs)` computes the op
with NumPy in float32 (float64 where the math needs it), which is the meaning every backend must match.
Unary functions also have a scalar form (`scalar_unary`) used by the interpreter for fused epilogues.
"""
from __future__ import annotations

import itertools
import math
from typing import Any, Callable, Sequence

import numpy as np

from .ir import Group, Op, Shape, Step
from . import rules_seq

SELU_ALPHA = 1.6732632423543772
SELU_SCALE = 1.0507009873554805


# ----------------------------------------------------------------------------- elementwise meaning
def _relu(x: np.ndarray, max_value: float | None = None, negative_slope: float = 0.0,
          threshold: float = 0.0) -> np.ndarray:
    # Follows keras.activations.relu step by step, including its behaviour for threshold != 0.
    neg = np.maximum(threshold - x, 0) if negative_slope else None
    y = x * (x > threshold) if threshold else np.maximum(x, 0)
    if max_value is not None:
        y = np.clip(y, 0, max_value)
    if negative_slope:
        y = y - negative_slope * neg
    return y


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _gelu(x: np.ndarray, approximate: bool = False) -> np.ndarray:
    if approximate:
        return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))
    erf = np.vectorize(math.erf, otypes=[np.float64])
    return (0.5 * x * (1.0 + erf(x.astype(np.float64) / math.sqrt(2.0)))).astype(x.dtype)


UNARY: dict[Op, Callable[..., np.ndarray]] = {
    Op.IDENTITY: lambda x: x,
    Op.RELU: _relu,
    Op.SIGMOID: _sigmoid,
    Op.HARD_SIGMOID: lambda x, slope, offset: np.clip(slope * x + offset, 0.0, 1.0),
    Op.HARD_SWISH: lambda x: x * np.clip(x + 3.0, 0.0, 6.0) / 6.0,
    Op.TANH: np.tanh,
    Op.ELU: lambda x, alpha=1.0: np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0))),
    Op.SELU: lambda x: SELU_SCALE * np.where(x > 0, x, SELU_ALPHA * np.expm1(np.minimum(x, 0))),
    Op.SILU: lambda x, beta=1.0: x * _sigmoid(beta * x),
    Op.GELU: _gelu,
    Op.SOFTPLUS: lambda x: np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x))),
    Op.SOFTSIGN: lambda x: x / (1.0 + np.abs(x)),
    Op.EXP: np.exp,
    Op.NEG: np.negative,
    Op.POW: lambda x, exponent: _pow(x, exponent),
    Op.LOG: np.log,
    Op.SIGN: np.sign,
    Op.CAST: lambda x: x.astype(np.float32),
    Op.FLOOR: np.floor,
}


def _pow(x: np.ndarray, exponent: float) -> np.ndarray:
    # The exponents normalizations use, computed as Keras computes them (square, sqrt, rsqrt).
    if exponent == 2.0:
        return x * x
    if exponent == 0.5:
        return np.sqrt(x)
    if exponent == -0.5:
        return (1.0 / np.sqrt(x.astype(np.float64))).astype(x.dtype)
    return np.power(x, np.float32(exponent))

BINARY: dict[Op, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    Op.ADD: np.add,
    Op.SUB: np.subtract,
    Op.MUL: np.multiply,
    Op.DIV: np.divide,
    Op.MAXIMUM: np.maximum,
    Op.MINIMUM: np.minimum,
    Op.SELECT: lambda a, b: np.where(b != 0, a, np.float32(0)),
}


def apply_step(step: Step, v: np.ndarray, inputs: Sequence[np.ndarray]) -> np.ndarray:
    """Apply one epilogue step to `v` (the interpreter's meaning of a fused step)."""
    attrs = dict(step.attrs)
    if step.op.group is Group.UNARY:
        return UNARY[step.op](v, **attrs).astype(np.float32, copy=False)
    other = inputs[step.operand]
    a, b = (other, v) if step.swap else (v, other)
    return BINARY[step.op](a, b).astype(np.float32, copy=False)


def apply_epilogue(v: np.ndarray, steps: Sequence[Step], inputs: Sequence[np.ndarray]) -> np.ndarray:
    for s in steps:
        v = apply_step(s, v, inputs)
    return v


# ----------------------------------------------------------------------------- shapes
def broadcast_shapes(a: Shape, b: Shape) -> Shape:
    """NumPy broadcasting of two shapes whose dimension 0 may be the symbolic batch (None)."""
    n = max(len(a), len(b))
    a = (1,) * (n - len(a)) + tuple(a)
    b = (1,) * (n - len(b)) + tuple(b)
    out = []
    for x, y in zip(a, b):
        if x is None or y is None:
            if (x not in (None, 1)) or (y not in (None, 1)):
                raise ValueError(f"cannot broadcast {a} with {b}")
            out.append(None)
        elif x == y or y == 1:
            out.append(x)
        elif x == 1:
            out.append(y)
        else:
            raise ValueError(f"cannot broadcast {a} with {b}")
    return tuple(out)


def conv_out_dim(size: int, k: int, stride: int, dilation: int, lo: int, hi: int) -> int:
    return (size + lo + hi - ((k - 1) * dilation + 1)) // stride + 1


def conv_transpose_out_dim(size: int, k: int, stride: int, dilation: int, lo: int, hi: int, extra: int = 0) -> int:
    return (size - 1) * stride + (k - 1) * dilation + 1 - lo - hi + extra


def _spatial_rank(x: Shape, w: Shape, attrs: dict[str, Any]) -> int:
    rank = len(attrs["strides"])
    if not (len(x) == rank + 2 and len(w) == rank + 2 and len(attrs["dilation"]) == rank == len(attrs["pads"])):
        raise ValueError(f"input {tuple(x)}, kernel {tuple(w)} and attrs {attrs} disagree on the spatial rank")
    return rank


def same_pads(size: int, k: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """TensorFlow/Keras 'same' padding for one spatial dimension: (before, after)."""
    out = -(-size // stride)
    total = max((out - 1) * stride + (k - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def shape_of(op: Op, ins: Sequence[Shape], attrs: dict[str, Any]) -> Shape:
    """Output shape of `op` applied to inputs of shapes `ins`."""
    g = op.group
    if op in rules_seq.SHAPES:
        return rules_seq.SHAPES[op](ins, attrs)
    if g is Group.UNARY:
        return tuple(ins[0])
    if g is Group.FUSED:
        # the running value broadcast against every operand (a repeat broadcasts it to a larger shape)
        shape = tuple(ins[0])
        for s in attrs.get("epilogue", ()):
            if s.operand is not None:
                shape = broadcast_shapes(shape, ins[s.operand])
        return shape
    if g is Group.BINARY:
        return broadcast_shapes(ins[0], ins[1])
    if op is Op.MATMUL:
        x, w = ins[0], ins[1]
        if x[-1] != w[0]:
            raise ValueError(f"matmul: input has {x[-1]} features, weight expects {w[0]}")
        return tuple(x[:-1]) + (w[1],)
    if op is Op.CONV:
        x, w = ins[0], ins[1]
        groups = attrs.get("groups", 1)
        rank = _spatial_rank(x, w, attrs)
        if x[-1] != w[-2] * groups:
            raise ValueError(f"conv: input has {x[-1]} channels, kernel expects {w[-2] * groups}")
        spatial = (conv_out_dim(x[1 + i], w[i], attrs["strides"][i], attrs["dilation"][i], *attrs["pads"][i])
                   for i in range(rank))
        return (x[0],) + tuple(spatial) + (w[-1],)
    if op is Op.CONV_TRANSPOSE:
        x, w = ins[0], ins[1]
        rank = _spatial_rank(x, w, attrs)
        if x[-1] != w[-2]:
            raise ValueError(f"conv_transpose: input has {x[-1]} channels, kernel expects {w[-2]}")
        extra = attrs.get("extra") or (0,) * rank
        spatial = (conv_transpose_out_dim(x[1 + i], w[i], attrs["strides"][i], attrs["dilation"][i], *attrs["pads"][i],
                                          extra[i]) for i in range(rank))
        return (x[0],) + tuple(spatial) + (w[-1],)
    if g is Group.WINDOW:
        x = ins[0]
        pool, strides, pads = attrs["pool"], attrs["strides"], attrs["pads"]
        if not len(pool) == len(strides) == len(pads) == len(x) - 2:
            raise ValueError(f"{op.label}: pool {pool}, strides {strides}, pads {pads} do not fit input {tuple(x)}")
        return (x[0],) + tuple(conv_out_dim(x[1 + i], pool[i], strides[i], 1, *pads[i]) for i in range(len(pool))) \
            + (x[-1],)
    if op in (Op.MEAN, Op.MAX):
        axes = set(attrs["axes"])
        if attrs.get("keepdims"):
            return tuple(1 if i in axes else d for i, d in enumerate(ins[0]))
        return tuple(d for i, d in enumerate(ins[0]) if i not in axes)
    if op in (Op.SOFTMAX, Op.SPARSEMAX):
        return tuple(ins[0])
    if op is Op.SLICE:
        ranges = attrs["ranges"]
        if len(ranges) != len(ins[0]) - 1:
            raise ValueError(f"slice: {len(ranges)} ranges for input {tuple(ins[0])}")
        for d, (start, stop, step) in zip(ins[0][1:], ranges):
            # a negative step walks down from start to stop + 1 (stop -1: down to index 0)
            inside = 0 <= start and stop <= d if step > 0 else start < d and stop >= -1
            if not (inside and step != 0):
                raise ValueError(f"slice: range {(start, stop, step)} out of an axis of size {d}")
        return (ins[0][0],) + tuple(len(range(*r)) for r in ranges)
    if op is Op.RESHAPE:
        return (ins[0][0],) + tuple(attrs["shape"])
    if op is Op.TRANSPOSE:
        return tuple(ins[0][p] for p in attrs["perm"])
    if op is Op.PAD:
        return tuple(d if d is None else d + lo + hi for d, (lo, hi) in zip(ins[0], attrs["pads"]))
    if op is Op.CONCAT:
        axis = attrs["axis"]
        base = list(ins[0])
        for s in ins[1:]:
            if len(s) != len(base) or any(a != b for i, (a, b) in enumerate(zip(s, base)) if i != axis):
                raise ValueError(f"concat on axis {axis}: shapes {[tuple(x) for x in ins]} differ off that axis")
        base[axis] = sum(s[axis] for s in ins)
        return tuple(base)
    raise NotImplementedError(f"no shape rule for {op}")


# ----------------------------------------------------------------------------- evaluation
def _window(start: int, count: int, step: int) -> slice:
    return slice(start, start + (count - 1) * step + 1, step)


def _conv(x: np.ndarray, w: np.ndarray, strides, dilation, pads, groups: int) -> np.ndarray:
    """Channels-last convolution with any number of spatial dims, accumulated in float64."""
    rank = len(strides)
    x = np.pad(x, ((0, 0),) + tuple(tuple(p) for p in pads) + ((0, 0),)).astype(np.float64)
    cig, co = w.shape[-2:]
    outs = [(x.shape[1 + i] - ((w.shape[i] - 1) * dilation[i] + 1)) // strides[i] + 1 for i in range(rank)]
    cog = co // groups
    out = np.zeros((x.shape[0], *outs, co), np.float64)
    for g in range(groups):
        xs = x[..., g * cig:(g + 1) * cig]
        ws = w[..., g * cog:(g + 1) * cog].astype(np.float64)
        for tap in itertools.product(*(range(k) for k in w.shape[:rank])):
            win = (slice(None),) + tuple(_window(tap[i] * dilation[i], outs[i], strides[i]) for i in range(rank))
            out[..., g * cog:(g + 1) * cog] += xs[win] @ ws[tap]
    return out.astype(np.float32)


def _conv_transpose(x: np.ndarray, w: np.ndarray, strides, dilation, pads, extra) -> np.ndarray:
    """Scatter each input pixel through the kernel into the full output, then crop it by `pads`."""
    rank = len(strides)
    full = [(x.shape[1 + i] - 1) * strides[i] + (w.shape[i] - 1) * dilation[i] + 1 for i in range(rank)]
    out = np.zeros((x.shape[0], *full, w.shape[-1]), np.float64)
    xs = x.astype(np.float64)
    for tap in itertools.product(*(range(k) for k in w.shape[:rank])):
        win = (slice(None),) + tuple(_window(tap[i] * dilation[i], x.shape[1 + i], strides[i]) for i in range(rank))
        out[win] += xs @ w[tap].astype(np.float64)
    crop = (slice(None),) + tuple(slice(lo, full[i] - hi) for i, (lo, hi) in enumerate(pads))
    out = np.pad(out[crop], ((0, 0),) + tuple((0, e) for e in (extra or (0,) * rank)) + ((0, 0),))
    return out.astype(np.float32)


def _pool(x: np.ndarray, pool, strides, pads, kind: str) -> np.ndarray:
    rank = len(pool)
    fill = -np.inf if kind == "max" else 0.0
    widths = tuple(tuple(p) for p in pads)
    xp = np.pad(x.astype(np.float64), ((0, 0),) + widths + ((0, 0),), constant_values=fill)
    ones = np.pad(np.ones(x.shape[1:1 + rank]), widths)
    outs = [(xp.shape[1 + i] - pool[i]) // strides[i] + 1 for i in range(rank)]
    acc = np.full((x.shape[0], *outs, x.shape[-1]), fill)
    cnt = np.zeros(outs)
    for tap in itertools.product(*(range(k) for k in pool)):
        win = tuple(_window(tap[i], outs[i], strides[i]) for i in range(rank))
        acc = np.maximum(acc, xp[(slice(None),) + win]) if kind == "max" else acc + xp[(slice(None),) + win]
        cnt += ones[win]
    if kind == "avg":
        acc = acc / cnt[None, ..., None]
    return acc.astype(np.float32)


def _sparsemax(x: np.ndarray, axis: int) -> np.ndarray:
    """keras.activations.sparsemax as Keras 3 computes it: tau = (sum over the support of the
    cumulative sums - 1) / k, which is not textbook sparsemax (that uses the k-th cumulative sum)."""
    z = np.moveaxis(x.astype(np.float64), axis, -1)
    zs = -np.sort(-z, axis=-1)
    cs = np.cumsum(zs, axis=-1)
    r = np.arange(1, z.shape[-1] + 1)
    support = zs - (cs - 1) / r > 0
    k = support.sum(axis=-1, keepdims=True)
    tau = (np.where(support, cs, 0.0).sum(axis=-1, keepdims=True) - 1) / k
    return np.moveaxis(np.maximum(z - tau, 0.0), -1, axis).astype(np.float32)


def _softmax(x: np.ndarray, axis: int) -> np.ndarray:
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def evaluate(op: Op, xs: Sequence[np.ndarray], attrs: dict[str, Any]) -> np.ndarray:
    """The NumPy meaning of one node; `attrs` includes `epilogue` for contraction and fused ops."""
    g = op.group
    epi = attrs.get("epilogue", ())
    if op in rules_seq.EVAL:
        return apply_epilogue(rules_seq.EVAL[op](xs, attrs), epi, xs)
    if g is Group.UNARY:
        return UNARY[op](xs[0], **attrs).astype(np.float32, copy=False)
    if g is Group.BINARY:
        return BINARY[op](xs[0], xs[1]).astype(np.float32, copy=False)
    if op is Op.MATMUL:
        y = (xs[0].astype(np.float64) @ xs[1].astype(np.float64)).astype(np.float32)
        return apply_epilogue(y, epi, xs)
    if op is Op.CONV:
        y = _conv(xs[0], xs[1], attrs["strides"], attrs["dilation"], attrs["pads"], attrs.get("groups", 1))
        return apply_epilogue(y, epi, xs)
    if op is Op.CONV_TRANSPOSE:
        y = _conv_transpose(xs[0], xs[1], attrs["strides"], attrs["dilation"], attrs["pads"], attrs.get("extra"))
        return apply_epilogue(y, epi, xs)
    if op is Op.FUSED:
        return apply_epilogue(xs[0], epi, xs)
    if op is Op.MAXPOOL:
        return _pool(xs[0], attrs["pool"], attrs["strides"], attrs["pads"], "max")
    if op is Op.AVGPOOL:
        return _pool(xs[0], attrs["pool"], attrs["strides"], attrs["pads"], "avg")
    if op is Op.MEAN:
        return xs[0].mean(axis=tuple(attrs["axes"]), keepdims=bool(attrs.get("keepdims")), dtype=np.float64).astype(np.float32)
    if op is Op.MAX:
        return xs[0].max(axis=tuple(attrs["axes"]), keepdims=bool(attrs.get("keepdims")))
    if op is Op.SOFTMAX:
        return _softmax(xs[0].astype(np.float64), attrs["axis"]).astype(np.float32)
    if op is Op.SPARSEMAX:
        return _sparsemax(xs[0], attrs["axis"])
    if op is Op.SLICE:
        return np.ascontiguousarray(xs[0][(slice(None),) + tuple(
            slice(start, None if stop < 0 else stop, step) for start, stop, step in attrs["ranges"])])
    if op is Op.RESHAPE:
        return xs[0].reshape((xs[0].shape[0],) + tuple(attrs["shape"]))
    if op is Op.TRANSPOSE:
        return np.ascontiguousarray(np.transpose(xs[0], attrs["perm"]))
    if op is Op.PAD:
        return np.pad(xs[0], attrs["pads"], constant_values=attrs.get("value", 0.0))
    if op is Op.CONCAT:
        return np.concatenate(xs, axis=attrs["axis"])
    raise NotImplementedError(f"no NumPy rule for {op}")
