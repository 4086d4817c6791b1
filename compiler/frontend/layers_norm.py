"""Normalization layers lowered to reductions and elementwise primitives: LayerNormalization,
GroupNormalization, UnitNormalization, RMSNormalization and the preprocessing Normalization
(BatchNormalization, a per-channel scale and shift at inference, is in `layers.py`).

Statistics come from MEAN reductions (any axes: `primitives.reduce`); the elementwise tail (scale by
the inverse deviation, gamma, beta) fuses into one generated loop. A dedicated normalization op would
save one pass over the data; these layers are rare in the models kerasjit targets, so the op set wins.
"""
from __future__ import annotations

import numpy as np

from ...errors import WeightsMismatchError
from ..ir import Op
from .context import LayerCall, layer
from .primitives import axes_of, l2_normalize, moments, reduce, rsqrt_plus

KERAS_EPSILON = 1e-7  # keras.config.epsilon()


def _param_shape(call: LayerCall, x: str, axes: tuple[int, ...]) -> tuple:
    """Broadcast shape (without the batch) of a parameter defined on `axes` of `x`."""
    shape = call.shape(x)
    return tuple(shape[a] if a in axes else 1 for a in range(1, len(shape)))


def _affine(call: LayerCall, y: str, gamma: np.ndarray | None, beta: np.ndarray | None, pshape: tuple) -> str:
    if gamma is not None:
        y = call.add(Op.MUL, [y, call.param("gamma", gamma.reshape(pshape))])
    if beta is not None:
        y = call.add(Op.ADD, [y, call.param("beta", beta.reshape(pshape))])
    return y


@layer("LayerNormalization")
def lower_layer_norm(call: LayerCall, xs: list[str]) -> list[str]:
    x = xs[0]
    axes = axes_of(call, x, call.get("axis", -1))
    shape = call.shape(x)
    wshape = tuple(shape[a] for a in axes)
    rms = bool(call.get("rms_scaling", False))
    scale, center = bool(call.get("scale", True)) or rms, bool(call.get("center", True)) and not rms
    ws = call.weights(([("gamma", None)] if scale else []) + ([("beta", None)] if center else []))
    for w in ws:
        if w.size != int(np.prod(wshape)):
            raise WeightsMismatchError(f"{call.spec.source}: layer {call.name!r} (LayerNormalization) weight of "
                                       f"shape {w.shape} does not fit axes {axes} of input {shape}")
    gamma = ws[0] if scale else None
    beta = ws[-1] if center else None
    eps = float(call.get("epsilon", 1e-3))
    _, dev, var = moments(call, x, axes)
    # rms_scaling (deprecated in Keras 3) scales x itself by the inverse standard deviation
    y = call.add(Op.MUL, [x if rms else dev, rsqrt_plus(call, var, eps)])
    return [_affine(call, y, gamma, beta, _param_shape(call, x, axes))]


@layer("GroupNormalization")
def lower_group_norm(call: LayerCall, xs: list[str]) -> list[str]:
    x = xs[0]
    shape = call.shape(x)
    a = axes_of(call, x, call.get("axis", -1))[0]
    channels = shape[a]
    groups = int(call.get("groups", 32))
    groups = channels if groups == -1 else groups
    if channels % groups:
        raise call.unsupported(f"{groups} groups do not divide {channels} channels")
    scale, center = bool(call.get("scale", True)), bool(call.get("center", True))
    ws = call.weights(([("gamma", (channels,))] if scale else []) + ([("beta", (channels,))] if center else []))
    # statistics per (sample, group): split the channel axis into (groups, channels per group)
    grouped = shape[1:a] + (groups, channels // groups) + shape[a + 1:]
    g = call.add(Op.RESHAPE, [x], {"shape": grouped})
    stat_axes = tuple(i for i in range(1, len(grouped) + 1) if i != a)
    _, dev, var = moments(call, g, stat_axes)
    y = call.add(Op.MUL, [dev, rsqrt_plus(call, var, float(call.get("epsilon", 1e-3)))])
    y = call.add(Op.RESHAPE, [y], {"shape": shape[1:]})
    return [_affine(call, y, ws[0] if scale else None, ws[-1] if center else None, _param_shape(call, x, (a,)))]


@layer("UnitNormalization")
def lower_unit_norm(call: LayerCall, xs: list[str]) -> list[str]:
    return [l2_normalize(call, xs[0], axes_of(call, xs[0], call.get("axis", -1)), 1e-12)]


@layer("RMSNormalization")
def lower_rms_norm(call: LayerCall, xs: list[str]) -> list[str]:
    x = xs[0]
    axes = axes_of(call, x, call.get("axis", -1))
    shape = call.shape(x)
    scale = call.weights([("scale", tuple(shape[a] for a in axes))])[0]
    ms = reduce(call, Op.MEAN, call.add(Op.POW, [x], {"exponent": 2.0}), axes, True)
    y = call.add(Op.MUL, [x, rsqrt_plus(call, ms, float(call.get("epsilon", 1e-6)))])
    return [call.add(Op.MUL, [y, call.param("scale", scale.reshape(_param_shape(call, x, axes)))])]


@layer("Normalization")
def lower_normalization(call: LayerCall, xs: list[str]) -> list[str]:
    """(x - mean) / max(sqrt(variance), epsilon), or its inverse with `invert`."""
    x = xs[0]
    axis = call.get("axis", -1)
    keep = () if axis is None else axes_of(call, x, axis)
    pshape = _param_shape(call, x, keep)
    mean, var = _normalization_stats(call, keep, pshape)
    denom = np.maximum(np.sqrt(var.astype(np.float32)), np.float32(KERAS_EPSILON)).astype(np.float32)
    mean_p = call.param("mean", mean.reshape(pshape))
    denom_p = call.param("denominator", denom.reshape(pshape))
    if call.get("invert", False):
        return [call.add(Op.ADD, [call.add(Op.MUL, [x, denom_p]), mean_p])]
    return [call.add(Op.DIV, [call.add(Op.SUB, [x, mean_p]), denom_p])]


def _normalization_stats(call: LayerCall, keep: tuple, pshape: tuple) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance broadcast to `pshape`: from the config (`mean`, `variance`) if it has them,
    else from the layer's weights (mean, variance, and an integer `count` that inference ignores)."""
    size = int(np.prod(pshape))
    if call.get("mean") is not None:
        mean = np.asarray(call.get("mean"), np.float32)
        var = np.asarray(call.get("variance"), np.float32)
        # Keras aligns a lower-rank mean with the last kept axes, then broadcasts
        expanded = [1] * len(pshape)
        for i in range(1, mean.ndim + 1):
            expanded[keep[-i] - 1] = mean.shape[-i]
        return (np.broadcast_to(mean.reshape(expanded), pshape).astype(np.float32),
                np.broadcast_to(var.reshape(expanded), pshape).astype(np.float32))
    got = call.spec.weights.get(call.path, [])
    if len(got) < 2 or got[0].size != size or got[1].size != size:
        raise WeightsMismatchError(
            f"{call.spec.source}: layer {call.name!r} (Normalization) expects mean and variance weights of "
            f"{size} values (and a count), the file has {[tuple(w.shape) for w in got]}")
    return np.asarray(got[0], np.float32).reshape(pshape), np.asarray(got[1], np.float32).reshape(pshape)
