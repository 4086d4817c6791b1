"""Sequence inputs and masks: Embedding, CategoryEncoding, Masking, masked GlobalAveragePooling1D, and
the keras.ops operations Keras 3 records in configs to compute masks (NotEqual, Any, LogicalAnd, ...).

Masks are float 0/1 values (see masking.py); a comparison is `sign(x - v)**2` (1 where x != v).
"""
from __future__ import annotations

from ..ir import Op
from .context import INTEGER_INPUT_LAYERS, LayerCall, layer
from .layers import _channels_first, lower_gap
from .primitives import const

INTEGER_INPUT_LAYERS.update({"Embedding", "CategoryEncoding", "NotEqual", "Equal"})


def not_equal(call: LayerCall, x: str, value: float) -> str:
    """1.0 where x != value, else 0.0 (x of any dtype)."""
    d = x if value == 0.0 else call.add(Op.SUB, [x, const(call, "compare_to", value)])
    return call.add(Op.POW, [call.add(Op.SIGN, [d])], {"exponent": 2.0})


def any_nonzero(call: LayerCall, x: str, axis: int, keepdims: bool = False) -> str:
    """1.0 where any x != 0 along `axis`, else 0.0."""
    return call.add(Op.MAX, [not_equal(call, x, 0.0)], {"axes": (axis,), "keepdims": keepdims})


@layer("Embedding")
def lower_embedding(call: LayerCall, xs: list[str]) -> list[str]:
    x = xs[0]
    v, d = int(call.get("input_dim")), int(call.get("output_dim"))
    (table,) = call.weights([("embeddings", (v, d))])
    y = call.add(Op.GATHER, [x, call.param("embeddings", table)])
    # Keras compares the inputs themselves (not their int32 cast) with 0
    call.output_masks = [not_equal(call, x, 0.0) if call.get("mask_zero", False) else None]
    return [y]


@layer("CategoryEncoding")
def lower_category_encoding(call: LayerCall, xs: list[str]) -> list[str]:
    if len(xs) > 1 or call.tensor_kwargs:
        raise call.unsupported("count_weights")
    x = xs[0]
    depth = int(call.get("num_tokens"))
    mode = call.get("output_mode", "multi_hot")
    shape = call.shape(x)
    if mode == "one_hot":
        if len(shape) > 1 and shape[-1] == 1:
            x = call.add(Op.RESHAPE, [x], {"shape": tuple(shape[1:-1])})
        return [call.add(Op.ONE_HOT, [x], {"depth": depth})]
    if mode not in ("multi_hot", "count"):
        raise call.unsupported(f"output_mode {mode!r}")
    if len(shape) != 2:
        raise call.unsupported(f"output_mode {mode!r} on inputs of rank {len(shape)} (kerasjit takes (batch, n))")
    # multi_hot: the max of int32-cast one-hots over the inputs; count: their sum (of exact one-hots)
    hot = call.add(Op.ONE_HOT, [x], {"depth": depth, "truncate": mode == "multi_hot"})
    if mode == "multi_hot":
        return [call.add(Op.MAX, [hot], {"axes": (1,), "keepdims": False})]
    mean = call.add(Op.MEAN, [hot], {"axes": (1,), "keepdims": False})
    return [call.add(Op.MUL, [mean, const(call, "count", float(shape[1]))])]


@layer("Masking")
def lower_masking(call: LayerCall, xs: list[str]) -> list[str]:
    """Keras: mask = any(x != mask_value) over the features; masked timesteps' outputs are zeroed."""
    x = xs[0]
    rank = len(call.shape(x))
    keep = any_nonzero(call, not_equal(call, x, float(call.get("mask_value", 0.0))), rank - 1, keepdims=True)
    call.output_masks = [call.add(Op.RESHAPE, [keep], {"shape": tuple(call.shape(keep)[1:-1])})]
    return [call.add(Op.MUL, [x, keep])]


@layer("GlobalAveragePooling1D", "GlobalAvgPool1D")
def lower_gap1d(call: LayerCall, xs: list[str]) -> list[str]:
    """With a mask, the mean over the unmasked timesteps only (Keras: sum(x * m) / sum(m))."""
    mask = call.mask[0] if call.mask else None
    call.output_masks = [None]
    if mask is None:
        return lower_gap(call, xs)
    x = xs[0]
    first = _channels_first(call)
    steps = 2 if first else 1
    t = call.shape(x)[steps]
    m = call.add(Op.RESHAPE, [mask], {"shape": (1, t) if first else (t, 1)})
    keepdims = bool(call.get("keepdims", False))
    total = call.add(Op.MEAN, [call.add(Op.MUL, [x, m])], {"axes": (steps,), "keepdims": keepdims})
    count = call.add(Op.MEAN, [m], {"axes": (steps,), "keepdims": keepdims})
    return [call.add(Op.DIV, [total, count])]


# ---------------------------------------------------------------------- keras.ops operations of masks
def _arg_const(call: LayerCall, position: int) -> float:
    """A constant positional argument of a keras.ops layer (`ops.not_equal(x, 0)` records the 0)."""
    value = call.args[position] if position < len(call.args) else None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise call.unsupported(f"argument {position} is {value!r}, not a number")
    return float(value)


def _tensor_positions(call: LayerCall) -> list[bool]:
    return [isinstance(a, dict) and a.get("class_name") == "__keras_tensor__" for a in call.args]


def _comparison(call: LayerCall, xs: list[str]) -> str:
    if len(xs) == 2:
        return not_equal(call, call.add(Op.SUB, xs), 0.0)
    where = _tensor_positions(call)
    return not_equal(call, xs[0], _arg_const(call, 1 if where and where[0] else 0))


@layer("NotEqual")
def lower_not_equal(call: LayerCall, xs: list[str]) -> list[str]:
    return [_comparison(call, xs)]


@layer("Equal")
def lower_equal(call: LayerCall, xs: list[str]) -> list[str]:
    ne = _comparison(call, xs)
    return [call.add(Op.SUB, [const(call, "one", 1.0), ne])]


def _axis_reduction(call: LayerCall, xs: list[str], op: Op) -> list[str]:
    x = not_equal(call, xs[0], 0.0)
    rank = len(call.shape(x))
    axis = call.get("axis")
    axes = tuple(range(1, rank)) if axis is None else \
        tuple(sorted({int(a) % rank for a in (axis if isinstance(axis, (list, tuple)) else [axis])}))
    if 0 in axes:
        raise call.unsupported("a reduction over the batch axis")
    return [call.add(op, [x], {"axes": axes, "keepdims": bool(call.get("keepdims", False))})]


@layer("Any")
def lower_any(call: LayerCall, xs: list[str]) -> list[str]:
    return _axis_reduction(call, xs, Op.MAX)


@layer("All")
def lower_all(call: LayerCall, xs: list[str]) -> list[str]:
    # all(x) = 1 - max(1 - x) over 0/1 values
    flipped = call.add(Op.SUB, [const(call, "one", 1.0), not_equal(call, xs[0], 0.0)])
    anyzero = _axis_reduction(call, [flipped], Op.MAX)[0]
    return [call.add(Op.SUB, [const(call, "one", 1.0), anyzero])]


def _logical(call: LayerCall, xs: list[str], op: Op) -> list[str]:
    if len(xs) != 2:
        raise call.unsupported(f"{len(xs)} tensor arguments")
    return [call.add(op, [not_equal(call, xs[0], 0.0), not_equal(call, xs[1], 0.0)])]


@layer("LogicalOr")
def lower_logical_or(call: LayerCall, xs: list[str]) -> list[str]:
    return _logical(call, xs, Op.MAXIMUM)


@layer("LogicalAnd")
def lower_logical_and(call: LayerCall, xs: list[str]) -> list[str]:
    return _logical(call, xs, Op.MINIMUM)


@layer("LogicalNot")
def lower_logical_not(call: LayerCall, xs: list[str]) -> list[str]:
    return [call.add(Op.SUB, [const(call, "one", 1.0), not_equal(call, xs[0], 0.0)])]


@layer("ExpandDims")
def lower_expand_dims(call: LayerCall, xs: list[str]) -> list[str]:
    shape = list(call.shape(xs[0]))
    axis = int(call.get("axis"))
    axis = axis % (len(shape) + 1)
    if axis == 0:
        raise call.unsupported("a new axis before the batch axis")
    shape.insert(axis, 1)
    return [call.add(Op.RESHAPE, xs[:1], {"shape": tuple(shape[1:])})]


@layer("Squeeze")
def lower_squeeze(call: LayerCall, xs: list[str]) -> list[str]:
    shape = call.shape(xs[0])
    axis = call.get("axis")
    axes = {a for a in range(1, len(shape)) if shape[a] == 1} if axis is None else \
        {int(a) % len(shape) for a in (axis if isinstance(axis, (list, tuple)) else [axis])}
    if 0 in axes or any(shape[a] != 1 for a in axes):
        raise call.unsupported(f"squeezing axes {sorted(axes)} of shape {shape}")
    return [call.add(Op.RESHAPE, xs[:1], {"shape": tuple(d for a, d in enumerate(shape) if a and a not in axes)})]


@layer("ZerosLike", "OnesLike")
def lower_zeros_like(call: LayerCall, xs: list[str]) -> list[str]:
    zeros = call.add(Op.MUL, [xs[0], const(call, "zero", 0.0)])
    if call.class_name == "ZerosLike":
        return [zeros]
    return [call.add(Op.ADD, [zeros, const(call, "one", 1.0)])]


@layer("ConvertToTensor", "Cast")
def lower_cast(call: LayerCall, xs: list[str]) -> list[str]:
    dtype = str(call.get("dtype") or "float32")
    if dtype == "bool":
        return [not_equal(call, xs[0], 0.0)]
    if dtype.startswith("float") or dtype.startswith("bfloat"):
        return [call.add(Op.IDENTITY, xs[:1])]
    raise call.unsupported(f"a cast to {dtype}")
