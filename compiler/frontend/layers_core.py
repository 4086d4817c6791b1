"""Core and reshaping layers: Permute, RepeatVector, Cropping, ZeroPadding and UpSampling of every rank,
the inference no-ops Keras added after the foundation, and the activation layers PReLU, ELU and
ThresholdedReLU. (Masking, which produces a Keras mask, is in `layers_seq.py` with the mask consumers.)

Spatial layers read `data_format` (Keras 1: `dim_ordering`); channels_first inputs are handled in
place by choosing the spatial axes, not by transposing.
"""
from __future__ import annotations

import numpy as np

from ..ir import Op
from .context import LayerCall, layer
from .layers import _channels_first, lower_identity
from .primitives import const, repeat

# Inference no-ops; SpatialDropout2D and the noise layers are registered with `lower_identity` already.
layer("SpatialDropout1D", "SpatialDropout3D")(lower_identity)

def spatial_axes(call: LayerCall, x: str) -> tuple[int, ...]:
    """The spatial axes of `x` under the layer's data_format."""
    rank = len(call.shape(x))
    return tuple(range(2, rank)) if _channels_first(call) else tuple(range(1, rank - 1))


def per_axis(call: LayerCall, value, n: int, what: str) -> tuple[tuple[int, int], ...]:
    """Keras's (lo, hi) amounts per spatial axis from an int, n ints (symmetric), or n (lo, hi) pairs."""
    if isinstance(value, (int, np.integer)):
        return ((int(value), int(value)),) * n
    value = list(value)
    if n == 1 and len(value) == 2 and all(isinstance(v, (int, np.integer)) for v in value):
        return ((int(value[0]), int(value[1])),)
    if len(value) != n:
        raise call.unsupported(f"{what} {value!r} for {n} spatial dims")
    return tuple((int(v), int(v)) if isinstance(v, (int, np.integer)) else (int(v[0]), int(v[1])) for v in value)


def _rank(call: LayerCall) -> int:
    return int(call.class_name[-2])  # "Cropping2D" -> 2


@layer("Permute")
def lower_permute(call: LayerCall, xs: list[str]) -> list[str]:
    dims = tuple(int(d) for d in call.get("dims"))
    if sorted(dims) != list(range(1, len(call.shape(xs[0])))):
        raise call.unsupported(f"dims {dims} is not a permutation of the non-batch axes")
    return [call.add(Op.TRANSPOSE, xs[:1], {"perm": (0,) + dims})]


@layer("RepeatVector")
def lower_repeat_vector(call: LayerCall, xs: list[str]) -> list[str]:
    n = int(call.get("n"))
    x = call.add(Op.RESHAPE, xs[:1], {"shape": (1,) + tuple(call.shape(xs[0])[1:])})
    return [repeat(call, x, {1: n})]


@layer("Cropping1D", "Cropping2D", "Cropping3D")
def lower_cropping(call: LayerCall, xs: list[str]) -> list[str]:
    x = xs[0]
    shape = call.shape(x)
    axes = spatial_axes(call, x)
    crops = dict(zip(axes, per_axis(call, call.get("cropping", 1), _rank(call), "cropping")))
    ranges = []
    for a in range(1, len(shape)):
        lo, hi = crops.get(a, (0, 0))
        if lo + hi >= shape[a]:
            raise call.unsupported(f"cropping {lo + hi} of an axis of size {shape[a]}")
        ranges.append((lo, shape[a] - hi, 1))
    return [call.add(Op.SLICE, [x], {"ranges": tuple(ranges)})]


@layer("ZeroPadding1D", "ZeroPadding3D")
def lower_zero_padding(call: LayerCall, xs: list[str]) -> list[str]:
    x = xs[0]
    axes = spatial_axes(call, x)
    pads = dict(zip(axes, per_axis(call, call.get("padding", 1), _rank(call), "padding")))
    widths = tuple(pads.get(a, (0, 0)) for a in range(len(call.shape(x))))
    return [call.add(Op.PAD, [x], {"pads": widths, "value": 0.0})]


@layer("UpSampling1D", "UpSampling3D")
def lower_upsampling(call: LayerCall, xs: list[str]) -> list[str]:
    x = xs[0]
    rank = _rank(call)
    size = call.get("size", 2, "length")
    size = (int(size),) * rank if isinstance(size, (int, np.integer)) else tuple(int(s) for s in size)
    axes = (1,) if rank == 1 else spatial_axes(call, x)
    return [repeat(call, x, dict(zip(axes, size)))]


@layer("PReLU")
def lower_prelu(call: LayerCall, xs: list[str]) -> list[str]:
    x = xs[0]
    shape = list(call.shape(x)[1:])
    shared = call.get("shared_axes", None)
    for a in ([shared] if isinstance(shared, int) else shared or []):
        shape[int(a) - 1] = 1
    alpha = call.weights([("alpha", tuple(shape))])[0]
    # Keras: relu(x) - alpha * relu(-x), which is relu(x) + alpha * min(x, 0)
    neg = call.add(Op.MUL, [call.add(Op.MINIMUM, [x, const(call, "zero", 0.0)]), call.param("alpha", alpha)])
    return [call.add(Op.ADD, [call.add(Op.RELU, [x]), neg])]


@layer("ELU")
def lower_elu(call: LayerCall, xs: list[str]) -> list[str]:
    return [call.add(Op.ELU, xs[:1], {"alpha": float(call.get("alpha", 1.0))})]


@layer("ThresholdedReLU")
def lower_thresholded_relu(call: LayerCall, xs: list[str]) -> list[str]:
    # Keras 2: x * (x > theta)
    return [call.add(Op.RELU, xs[:1], {"threshold": float(call.get("theta", 1.0))})]
