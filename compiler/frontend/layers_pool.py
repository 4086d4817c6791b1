"""Pooling of 1 and 3 spatial dims, local and global (2D pooling is in `layers.py`). MAXPOOL and AVGPOOL
take any spatial rank; channels_first inputs are transposed to channels-last and back."""
from __future__ import annotations

from ..ir import Op
from .context import LayerCall, layer
from .layers import _channels_first, _spatial_pads, _to_first, _to_last, _tuple, lower_gap, lower_gmp

# (GlobalAveragePooling1D, which reads Keras masks, is in layers_seq.py)
layer("GlobalAveragePooling3D", "GlobalAvgPool3D")(lower_gap)
layer("GlobalMaxPooling1D", "GlobalMaxPool1D", "GlobalMaxPooling3D", "GlobalMaxPool3D")(lower_gmp)


def _pool(call: LayerCall, xs: list[str], op: Op, rank: int) -> list[str]:
    x = xs[0]
    first = _channels_first(call)
    if first:
        x = _to_last(call, x)
    pool = _tuple(call.get("pool_size", 2, "pool_length"), rank)
    strides = call.get("strides", None, "stride")
    strides = pool if strides is None else _tuple(strides, rank)
    pads = _spatial_pads(call, call.shape(x)[1:1 + rank], pool, strides, (1,) * rank)
    y = call.add(op, [x], {"pool": pool, "strides": strides, "pads": pads})
    return [_to_first(call, y) if first else y]


@layer("MaxPooling1D", "MaxPool1D")
def lower_maxpool1d(call: LayerCall, xs: list[str]) -> list[str]:
    return _pool(call, xs, Op.MAXPOOL, 1)


@layer("AveragePooling1D", "AvgPool1D")
def lower_avgpool1d(call: LayerCall, xs: list[str]) -> list[str]:
    return _pool(call, xs, Op.AVGPOOL, 1)


@layer("MaxPooling3D", "MaxPool3D")
def lower_maxpool3d(call: LayerCall, xs: list[str]) -> list[str]:
    return _pool(call, xs, Op.MAXPOOL, 3)


@layer("AveragePooling3D", "AvgPool3D")
def lower_avgpool3d(call: LayerCall, xs: list[str]) -> list[str]:
    return _pool(call, xs, Op.AVGPOOL, 3)
