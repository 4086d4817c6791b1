"""Sequence inputs and masks: Embedding, CategoryEncoding, Masking, and masked GlobalAveragePooling1D.
(The keras.ops operations Keras 3 records in configs to compute masks, NotEqual, Any, ..., are
operation nodes: ops_keras3.py.)

Masks are float 0/1 values (see masking.py); a comparison is `sign(x - v)**2` (1 where x != v).
"""
from __future__ import annotations

from ..ir import Op
from .context import INTEGER_INPUT_LAYERS, LayerCall, layer
from .layers import _channels_first, lower_gap
from .primitives import const

INTEGER_INPUT_LAYERS.update({"Embedding", "CategoryEncoding"})


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
