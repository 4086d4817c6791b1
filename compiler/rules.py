"""One rule per primitive: its shape rule and its NumPy meaning.

`shape_of(op, in_shapes, attrs)` gives the output shape; `evaluate(op, arrays, attrs)` computes the op
with NumPy in float32 (float64 where the math needs it), which is the meaning every backend must match.
Unary functions also have a scalar form (`scalar_unary`) used by the interpreter for fused epilogues.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import numpy as np

from .ir import Group, Op, Shape, Step

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
}

BINARY: dict[Op, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    Op.ADD: np.add,
    Op.SUB: np.subtract,
    Op.MUL: np.multiply,
    Op.DIV: np.divide,
    Op.MAXIMUM: np.maximum,
    Op.MINIMUM: np.minimum,
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


def same_pads(size: int, k: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """TensorFlow/Keras 'same' padding for one spatial dimension: (before, after)."""
    out = -(-size // stride)
    total = max((out - 1) * stride + (k - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def shape_of(op: Op, ins: Sequence[Shape], attrs: dict[str, Any]) -> Shape:
    """Output shape of `op` applied to inputs of shapes `ins`."""
    g = op.group
    if g is Group.UNARY or g is Group.FUSED:
        return tuple(ins[0])
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
        if x[-1] != w[2] * groups:
            raise ValueError(f"conv: input has {x[-1]} channels, kernel expects {w[2] * groups}")
        (sh, sw), (dh, dw) = attrs["strides"], attrs["dilation"]
        (pt, pb), (pl, pr) = attrs["pads"]
        return (x[0], conv_out_dim(x[1], w[0], sh, dh, pt, pb), conv_out_dim(x[2], w[1], sw, dw, pl, pr), w[3])
    if g is Group.WINDOW:
        x = ins[0]
        (kh, kw), (sh, sw) = attrs["pool"], attrs["strides"]
        (pt, pb), (pl, pr) = attrs["pads"]
        return (x[0], conv_out_dim(x[1], kh, sh, 1, pt, pb), conv_out_dim(x[2], kw, sw, 1, pl, pr), x[3])
    if op in (Op.MEAN, Op.MAX):
        axes = set(attrs["axes"])
        if attrs.get("keepdims"):
            return tuple(1 if i in axes else d for i, d in enumerate(ins[0]))
        return tuple(d for i, d in enumerate(ins[0]) if i not in axes)
    if op is Op.SOFTMAX:
        return tuple(ins[0])
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
def _conv(x: np.ndarray, w: np.ndarray, strides, dilation, pads, groups: int) -> np.ndarray:
    (sh, sw), (dh, dw) = strides, dilation
    (pt, pb), (pl, pr) = pads
    x = np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)))
    kh, kw, cig, co = w.shape
    n, h, wd, _ = x.shape
    oh = (h - ((kh - 1) * dh + 1)) // sh + 1
    ow = (wd - ((kw - 1) * dw + 1)) // sw + 1
    cog = co // groups
    out = np.zeros((n, oh, ow, co), np.float64)
    for g in range(groups):
        xs = x[..., g * cig:(g + 1) * cig].astype(np.float64)
        ws = w[..., g * cog:(g + 1) * cog].astype(np.float64)
        for i in range(kh):
            for j in range(kw):
                patch = xs[:, i * dh: i * dh + (oh - 1) * sh + 1: sh, j * dw: j * dw + (ow - 1) * sw + 1: sw, :]
                out[..., g * cog:(g + 1) * cog] += patch @ ws[i, j]
    return out.astype(np.float32)


def _pool(x: np.ndarray, pool, strides, pads, kind: str) -> np.ndarray:
    (kh, kw), (sh, sw) = pool, strides
    (pt, pb), (pl, pr) = pads
    fill = -np.inf if kind == "max" else 0.0
    xp = np.pad(x.astype(np.float64), ((0, 0), (pt, pb), (pl, pr), (0, 0)), constant_values=fill)
    ones = np.pad(np.ones(x.shape[1:3]), ((pt, pb), (pl, pr)))
    oh = (xp.shape[1] - kh) // sh + 1
    ow = (xp.shape[2] - kw) // sw + 1
    acc = np.full((x.shape[0], oh, ow, x.shape[3]), fill)
    cnt = np.zeros((oh, ow))
    for i in range(kh):
        for j in range(kw):
            win = xp[:, i: i + (oh - 1) * sh + 1: sh, j: j + (ow - 1) * sw + 1: sw, :]
            acc = np.maximum(acc, win) if kind == "max" else acc + win
            cnt += ones[i: i + (oh - 1) * sh + 1: sh, j: j + (ow - 1) * sw + 1: sw]
    if kind == "avg":
        acc = acc / cnt[None, :, :, None]
    return acc.astype(np.float32)


def _softmax(x: np.ndarray, axis: int) -> np.ndarray:
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def evaluate(op: Op, xs: Sequence[np.ndarray], attrs: dict[str, Any]) -> np.ndarray:
    """The NumPy meaning of one node; `attrs` includes `epilogue` for contraction and fused ops."""
    g = op.group
    epi = attrs.get("epilogue", ())
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
    if op is Op.RESHAPE:
        return xs[0].reshape((xs[0].shape[0],) + tuple(attrs["shape"]))
    if op is Op.TRANSPOSE:
        return np.ascontiguousarray(np.transpose(xs[0], attrs["perm"]))
    if op is Op.PAD:
        return np.pad(xs[0], attrs["pads"], constant_values=attrs.get("value", 0.0))
    if op is Op.CONCAT:
        return np.concatenate(xs, axis=attrs["axis"])
    raise NotImplementedError(f"no NumPy rule for {op}")
