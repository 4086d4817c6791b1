"""Convolutions of any spatial rank: Conv1D/3D, DepthwiseConv1D, SeparableConv1D and the transposed
convolutions (Conv2D, DepthwiseConv2D and SeparableConv2D are in `layers.py`).

The IR's CONV and CONV_TRANSPOSE take 1, 2 or 3 spatial dims directly (the CPU backend runs 1D ones as
2D kernels on a unit-height view), so a BatchNormalization or activation after a Conv1D folds and fuses
into it exactly as after a Conv2D. channels_first inputs are transposed to channels-last and back.
"""
from __future__ import annotations

import numpy as np

from ..ir import Op
from .context import LayerCall, layer
from .layers import _bias_and_activation, _channels_first, _spatial_pads, _to_first, _to_last, _tuple

RANK = {"Conv1D": 1, "Convolution1D": 1, "Conv3D": 3, "Convolution3D": 3,
        "DepthwiseConv1D": 1, "SeparableConv1D": 1, "SeparableConvolution1D": 1,
        "Conv1DTranspose": 1, "Convolution1DTranspose": 1, "Conv2DTranspose": 2, "Convolution2DTranspose": 2,
        "Conv3DTranspose": 3, "Convolution3DTranspose": 3}


def kernel_size(call: LayerCall, rank: int) -> tuple:
    """`kernel_size`, or Keras 1's `filter_length` / `kernel_dim1..3`."""
    ks = call.get("kernel_size", None)
    if ks is None:
        ks = call.get("filter_length") if rank == 1 else [call.get(f"kernel_dim{i + 1}") for i in range(rank)]
    if ks is None or (isinstance(ks, list) and None in ks):
        raise call.unsupported("the config gives no kernel size")
    return _tuple(ks, rank)


def geometry(call: LayerCall, rank: int) -> tuple[tuple, tuple]:
    """(strides, dilation_rate), under their Keras 1 names too."""
    strides = _tuple(call.get("strides", 1, "subsample", "subsample_length"), rank)
    dilation = _tuple(call.get("dilation_rate", 1, "atrous_rate"), rank)
    if max(strides) > 1 and max(dilation) > 1:
        raise call.unsupported("strides > 1 together with dilation_rate > 1 (Keras rejects it too)")
    return strides, dilation


def conv_pads(call: LayerCall, spatial: tuple, kernel: tuple, strides: tuple, dilation: tuple) -> tuple:
    """Padding per spatial dim; 'causal' pads only the start, by the dilated kernel's reach."""
    if str(call.get("padding", "valid", "border_mode")).lower() == "causal":
        if len(kernel) != 1:
            raise call.unsupported("causal padding outside 1D convolutions")
        return (((kernel[0] - 1) * dilation[0], 0),)
    return _spatial_pads(call, spatial, kernel, strides, dilation)


def conv(call: LayerCall, x: str, kernel: np.ndarray, groups: int, strides: tuple, dilation: tuple,
         what: str = "kernel") -> str:
    """A channels-last convolution of `x` with a (*k, C_in/groups, C_out) kernel, padded as configured."""
    rank = kernel.ndim - 2
    pads = conv_pads(call, call.shape(x)[1:1 + rank], kernel.shape[:rank], strides, dilation)
    return call.add(Op.CONV, [x, call.param(what, kernel)],
                    {"strides": strides, "dilation": dilation, "pads": pads, "groups": groups})


def depthwise(call: LayerCall, x: str, kernel: np.ndarray, strides: tuple, dilation: tuple) -> str:
    """Depthwise conv with a (*k, C_in, multiplier) kernel: a grouped conv, one group per channel;
    Keras orders outputs channel-major (c * multiplier + m), exactly a reshape of the kernel."""
    *k, cin, mult = kernel.shape
    return conv(call, x, kernel.reshape(*k, 1, cin * mult), cin, strides, dilation, "depthwise_kernel")


def _channels_last_input(call: LayerCall, xs: list[str]) -> tuple[str, bool]:
    first = _channels_first(call)
    return (_to_last(call, xs[0]) if first else xs[0]), first


@layer("Conv1D", "Convolution1D", "Conv3D", "Convolution3D")
def lower_conv(call: LayerCall, xs: list[str]) -> list[str]:
    rank = RANK[call.class_name]
    x, first = _channels_last_input(call, xs)
    cin = call.shape(x)[-1]
    filters = int(call.get("filters", None, "nb_filter"))
    groups = int(call.get("groups", 1))
    use_bias = call.get("use_bias", True, "bias")
    ws = call.weights([("kernel", kernel_size(call, rank) + (cin // groups, filters))]
                      + ([("bias", (filters,))] if use_bias else []))
    y = conv(call, x, ws[0], groups, *geometry(call, rank))
    y = _bias_and_activation(call, y, ws[1] if use_bias else None)
    return [_to_first(call, y) if first else y]


@layer("DepthwiseConv1D")
def lower_depthwise1d(call: LayerCall, xs: list[str]) -> list[str]:
    x, first = _channels_last_input(call, xs)
    cin = call.shape(x)[-1]
    mult = int(call.get("depth_multiplier", 1))
    use_bias = call.get("use_bias", True)
    ws = call.weights([("depthwise_kernel", kernel_size(call, 1) + (cin, mult))]
                      + ([("bias", (cin * mult,))] if use_bias else []))
    y = depthwise(call, x, ws[0], *geometry(call, 1))
    y = _bias_and_activation(call, y, ws[1] if use_bias else None)
    return [_to_first(call, y) if first else y]


@layer("SeparableConv1D", "SeparableConvolution1D")
def lower_separable1d(call: LayerCall, xs: list[str]) -> list[str]:
    x, first = _channels_last_input(call, xs)
    cin = call.shape(x)[-1]
    mult = int(call.get("depth_multiplier", 1))
    filters = int(call.get("filters", None, "nb_filter"))
    use_bias = call.get("use_bias", True)
    ws = call.weights([("depthwise_kernel", kernel_size(call, 1) + (cin, mult)),
                       ("pointwise_kernel", (1, cin * mult, filters))]
                      + ([("bias", (filters,))] if use_bias else []))
    y = depthwise(call, x, ws[0], *geometry(call, 1))
    y = call.add(Op.CONV, [y, call.param("pointwise_kernel", ws[1])],
                 {"strides": (1,), "dilation": (1,), "pads": ((0, 0),), "groups": 1})
    y = _bias_and_activation(call, y, ws[2] if use_bias else None)
    return [_to_first(call, y) if first else y]


def transpose_crop(k: int, stride: int, dilation: int, padding: str, output_padding: int | None) -> tuple[int, int, int]:
    """(lo, hi, extra): the crop of each end of the full transposed-conv output and the zeros appended
    after it, from Keras's own padding rule (keras.src.backend.common.backend_utils, the JAX one)."""
    keff = (k - 1) * dilation + 1
    if padding == "valid":
        extra = max(keff, stride) - keff if output_padding is None else output_padding
        left, right = keff - 1, keff - 1 + extra
    else:
        total = stride + keff - 2 if output_padding is None else keff + keff % 2 - 2 + output_padding
        left = min(total // 2 + total % 2, keff - 1)
        right = total - left
    # Keras pads the stride-dilated input by (left, right) and convolves with the flipped kernel;
    # as a scatter, that is the full output cropped by keff - 1 - pad on each side (a pad past the
    # kernel's reach, from output_padding, adds zeros instead).
    return keff - 1 - left, max(keff - 1 - right, 0), max(right - (keff - 1), 0)


@layer("Conv1DTranspose", "Convolution1DTranspose", "Conv2DTranspose", "Convolution2DTranspose",
       "Conv3DTranspose", "Convolution3DTranspose")
def lower_conv_transpose(call: LayerCall, xs: list[str]) -> list[str]:
    rank = RANK[call.class_name]
    x, first = _channels_last_input(call, xs)
    cin = call.shape(x)[-1]
    filters = int(call.get("filters", None, "nb_filter"))
    if int(call.get("groups", 1) or 1) != 1:
        raise call.unsupported("grouped transposed convolution")
    ks = kernel_size(call, rank)
    use_bias = call.get("use_bias", True, "bias")
    # Keras stores (*k, filters, C_in); the IR keeps output channels last: (*k, C_in, filters)
    ws = call.weights([("kernel", ks + (filters, cin))] + ([("bias", (filters,))] if use_bias else []))
    strides = _tuple(call.get("strides", 1), rank)
    dilation = _tuple(call.get("dilation_rate", 1), rank)
    padding = str(call.get("padding", "valid")).lower()
    if padding not in ("valid", "same"):
        raise call.unsupported(f"padding {padding!r}")
    out_pad = call.get("output_padding", None)
    out_pad = (None,) * rank if out_pad is None else _tuple(out_pad, rank)
    crops = [transpose_crop(ks[i], strides[i], dilation[i], padding, out_pad[i]) for i in range(rank)]
    y = call.add(Op.CONV_TRANSPOSE, [x, call.param("kernel", np.swapaxes(ws[0], -1, -2))],
                 {"strides": strides, "dilation": dilation, "pads": tuple((lo, hi) for lo, hi, _ in crops),
                  "extra": tuple(e for _, _, e in crops)})
    y = _bias_and_activation(call, y, ws[1] if use_bias else None)
    return [_to_first(call, y) if first else y]
