"""Lowering rules: each Keras layer class becomes a few primitive ops.

A rule gets a `LayerCall` and the names of its input values and returns the names of its outputs.
Config keys are Keras's own; older Keras 1/2 spellings are read through `call.get(new, default, *old)`.
"""
from __future__ import annotations

import numpy as np

from ...errors import WeightsMismatchError
from ..ir import Op
from ..rules import same_pads
from .activations import apply_activation
from .context import LayerCall, layer


def _tuple(v, n: int) -> tuple:
    if isinstance(v, (list, tuple)):
        if len(v) == 1 and n > 1:
            return tuple(int(v[0]) for _ in range(n))
        return tuple(int(x) for x in v)
    return (int(v),) * n


def _channels_first(call: LayerCall) -> bool:
    fmt = call.get("data_format", None, "dim_ordering")
    return fmt in ("channels_first", "th")


def _to_last(call: LayerCall, x: str) -> str:
    """NCHW -> NHWC (the IR's layout for spatial ops)."""
    rank = len(call.shape(x))
    return call.add(Op.TRANSPOSE, [x], {"perm": (0,) + tuple(range(2, rank)) + (1,)})


def _to_first(call: LayerCall, x: str) -> str:
    rank = len(call.shape(x))
    return call.add(Op.TRANSPOSE, [x], {"perm": (0, rank - 1) + tuple(range(1, rank - 1))})


def _spatial_pads(call: LayerCall, in_hw: tuple, kernel: tuple, strides: tuple, dilation: tuple) -> tuple:
    padding = str(call.get("padding", "valid", "border_mode")).lower()
    if padding == "valid":
        return tuple((0, 0) for _ in kernel)
    if padding == "same":
        return tuple(same_pads(s, k, st, d) for s, k, st, d in zip(in_hw, kernel, strides, dilation))
    raise call.unsupported(f"padding {padding!r} is not supported here")


def _bias_and_activation(call: LayerCall, y: str, bias: np.ndarray | None) -> str:
    if bias is not None:
        y = call.add(Op.ADD, [y, call.param("bias", bias)])
    return apply_activation(call, y, call.get("activation", "linear"))


def conv2d(call: LayerCall, x: str, kernel: np.ndarray, groups: int, strides: tuple, dilation: tuple) -> str:
    """A 2D convolution of NHWC `x` with an HWIO kernel, padded as the layer config says."""
    shape = call.shape(x)
    pads = _spatial_pads(call, shape[1:3], kernel.shape[:2], strides, dilation)
    return call.add(Op.CONV, [x, call.param("kernel" if groups == 1 else "depthwise_kernel", kernel)],
                    {"strides": strides, "dilation": dilation, "pads": pads, "groups": groups})


def _conv_geometry(call: LayerCall) -> tuple[tuple, tuple]:
    strides = _tuple(call.get("strides", 1, "subsample"), 2)
    dilation = _tuple(call.get("dilation_rate", 1), 2)
    if max(strides) > 1 and max(dilation) > 1:
        raise call.unsupported("strides > 1 together with dilation_rate > 1 (Keras rejects it too)")
    return strides, dilation


@layer("Conv2D", "Convolution2D")
def lower_conv2d(call: LayerCall, xs: list[str]) -> list[str]:
    x = xs[0]
    first = _channels_first(call)
    if first:
        x = _to_last(call, x)
    cin = call.shape(x)[-1]
    filters = int(call.get("filters", None, "nb_filter"))
    ks = _tuple(call.get("kernel_size", None) or (call.get("nb_row"), call.get("nb_col")), 2)
    groups = int(call.get("groups", 1))
    use_bias = call.get("use_bias", True, "bias")
    spec = [("kernel", ks + (cin // groups, filters))] + ([("bias", (filters,))] if use_bias else [])
    ws = call.weights(spec)
    strides, dilation = _conv_geometry(call)
    y = conv2d(call, x, ws[0], groups, strides, dilation)
    y = _bias_and_activation(call, y, ws[1] if use_bias else None)
    return [_to_first(call, y) if first else y]


def _depthwise(call: LayerCall, x: str, kernel: np.ndarray) -> str:
    kh, kw, cin, mult = kernel.shape
    strides, dilation = _conv_geometry(call)
    # Keras orders depthwise outputs channel-major (c * multiplier + m): exactly a reshape of HWCM.
    return conv2d(call, x, kernel.reshape(kh, kw, 1, cin * mult), cin, strides, dilation)


@layer("DepthwiseConv2D")
def lower_depthwise(call: LayerCall, xs: list[str]) -> list[str]:
    x = xs[0]
    first = _channels_first(call)
    if first:
        x = _to_last(call, x)
    cin = call.shape(x)[-1]
    mult = int(call.get("depth_multiplier", 1))
    ks = _tuple(call.get("kernel_size"), 2)
    use_bias = call.get("use_bias", True)
    ws = call.weights([("depthwise_kernel", ks + (cin, mult))] + ([("bias", (cin * mult,))] if use_bias else []))
    y = _depthwise(call, x, ws[0])
    y = _bias_and_activation(call, y, ws[1] if use_bias else None)
    return [_to_first(call, y) if first else y]


@layer("SeparableConv2D", "SeparableConvolution2D")
def lower_separable(call: LayerCall, xs: list[str]) -> list[str]:
    x = xs[0]
    first = _channels_first(call)
    if first:
        x = _to_last(call, x)
    cin = call.shape(x)[-1]
    mult = int(call.get("depth_multiplier", 1))
    filters = int(call.get("filters", None, "nb_filter"))
    ks = _tuple(call.get("kernel_size"), 2)
    use_bias = call.get("use_bias", True)
    ws = call.weights([("depthwise_kernel", ks + (cin, mult)), ("pointwise_kernel", (1, 1, cin * mult, filters))]
                      + ([("bias", (filters,))] if use_bias else []))
    y = _depthwise(call, x, ws[0])
    y = call.add(Op.CONV, [y, call.param("pointwise_kernel", ws[1])],
                 {"strides": (1, 1), "dilation": (1, 1), "pads": ((0, 0), (0, 0)), "groups": 1})
    y = _bias_and_activation(call, y, ws[2] if use_bias else None)
    return [_to_first(call, y) if first else y]


@layer("Dense")
def lower_dense(call: LayerCall, xs: list[str]) -> list[str]:
    x = xs[0]
    units = int(call.get("units", None, "output_dim"))
    k = call.shape(x)[-1]
    use_bias = call.get("use_bias", True, "bias")
    ws = call.weights([("kernel", (k, units))] + ([("bias", (units,))] if use_bias else []))
    y = call.add(Op.MATMUL, [x, call.param("kernel", ws[0])])
    return [_bias_and_activation(call, y, ws[1] if use_bias else None)]


def _channel_param_shape(call: LayerCall, x: str, axes: list[int]) -> tuple:
    """Shape that broadcasts a per-axis parameter against `x` without its batch dimension."""
    shape = call.shape(x)
    rank = len(shape)
    axes = sorted(a % rank for a in axes)
    if 0 in axes:
        raise call.unsupported("normalizing over the batch axis")
    first = axes[0]
    return tuple(shape[a] if a in axes else 1 for a in range(first, rank))


@layer("BatchNormalization")
def lower_batchnorm(call: LayerCall, xs: list[str]) -> list[str]:
    x = xs[0]
    axis = call.get("axis", -1)
    axes = list(axis) if isinstance(axis, (list, tuple)) else [axis]
    pshape = _channel_param_shape(call, x, axes)
    size = int(np.prod(pshape))
    scale, center = call.get("scale", True), call.get("center", True)
    spec = ([("gamma", None)] if scale else []) + ([("beta", None)] if center else []) + \
           [("moving_mean", None), ("moving_variance", None)]
    ws = call.weights(spec)
    for (what, _), w in zip(spec, ws):
        if w.size != size:
            raise WeightsMismatchError(f"{call.spec.source}: layer {call.name!r} (BatchNormalization) weight "
                                       f"{what!r} has {w.size} values, the input has {size} channels on axis {axis}")
    it = iter(ws)
    gamma = next(it) if scale else np.ones(size, np.float32)
    beta = next(it) if center else np.zeros(size, np.float32)
    mean, var = next(it), next(it)
    eps = float(call.get("epsilon", 1e-3))
    mul = (gamma.astype(np.float64) / np.sqrt(var.astype(np.float64) + eps))
    add = beta.astype(np.float64) - mean.astype(np.float64) * mul
    y = call.add(Op.MUL, [x, call.param("scale", mul.reshape(pshape))])
    return [call.add(Op.ADD, [y, call.param("shift", add.reshape(pshape))])]


@layer("Activation")
def lower_activation(call: LayerCall, xs: list[str]) -> list[str]:
    if "activation" not in call.config:  # required by Keras; None elsewhere means linear, not here
        raise KeyError("an Activation layer's config must name its activation")
    return [apply_activation(call, xs[0], call.get("activation"))]


@layer("ReLU")
def lower_relu(call: LayerCall, xs: list[str]) -> list[str]:
    mv = call.get("max_value")
    attrs = {"max_value": None if mv is None else float(mv),
             "negative_slope": float(call.get("negative_slope", 0.0) or 0.0),
             "threshold": float(call.get("threshold", 0.0) or 0.0)}
    if any(v is not None and v < 0 for v in attrs.values()):
        raise ValueError(f"ReLU arguments must not be negative, as Keras requires: {attrs}")
    return [call.add(Op.RELU, xs[:1], {k: v for k, v in attrs.items() if v})]


@layer("LeakyReLU")
def lower_leaky(call: LayerCall, xs: list[str]) -> list[str]:
    return [call.add(Op.RELU, xs[:1], {"negative_slope": float(call.get("negative_slope", 0.3, "alpha"))})]


@layer("Softmax")
def lower_softmax(call: LayerCall, xs: list[str]) -> list[str]:
    axis = call.get("axis", -1)
    if isinstance(axis, (list, tuple)):
        if len(axis) != 1:
            raise call.unsupported(f"softmax over several axes {axis}")
        axis = axis[0]
    rank = len(call.shape(xs[0]))
    return [call.add(Op.SOFTMAX, xs[:1], {"axis": axis % rank})]


def _pool(call: LayerCall, xs: list[str], op: Op) -> list[str]:
    x = xs[0]
    first = _channels_first(call)
    if first:
        x = _to_last(call, x)
    pool = _tuple(call.get("pool_size", 2), 2)
    strides = call.get("strides", None)
    strides = pool if strides is None else _tuple(strides, 2)
    pads = _spatial_pads(call, call.shape(x)[1:3], pool, strides, (1, 1))
    y = call.add(op, [x], {"pool": pool, "strides": strides, "pads": pads})
    return [_to_first(call, y) if first else y]


@layer("MaxPooling2D", "MaxPool2D")
def lower_maxpool(call: LayerCall, xs: list[str]) -> list[str]:
    return _pool(call, xs, Op.MAXPOOL)


@layer("AveragePooling2D", "AvgPool2D")
def lower_avgpool(call: LayerCall, xs: list[str]) -> list[str]:
    return _pool(call, xs, Op.AVGPOOL)


def _global_pool(call: LayerCall, xs: list[str], op: Op) -> list[str]:
    rank = len(call.shape(xs[0]))
    axes = tuple(range(2, rank)) if _channels_first(call) else tuple(range(1, rank - 1))
    return [call.add(op, xs[:1], {"axes": axes, "keepdims": bool(call.get("keepdims", False))})]


@layer("GlobalAveragePooling2D", "GlobalAvgPool2D")
def lower_gap(call: LayerCall, xs: list[str]) -> list[str]:
    return _global_pool(call, xs, Op.MEAN)


@layer("GlobalMaxPooling2D", "GlobalMaxPool2D")
def lower_gmp(call: LayerCall, xs: list[str]) -> list[str]:
    return _global_pool(call, xs, Op.MAX)


@layer("Flatten")
def lower_flatten(call: LayerCall, xs: list[str]) -> list[str]:
    x = xs[0]
    shape = call.shape(x)
    if _channels_first(call) and len(shape) > 2:
        x = _to_last(call, x)
    return [call.add(Op.RESHAPE, [x], {"shape": (int(np.prod(shape[1:])),)})]


@layer("Reshape")
def lower_reshape(call: LayerCall, xs: list[str]) -> list[str]:
    total = int(np.prod(call.shape(xs[0])[1:]))
    target = [int(d) for d in call.get("target_shape")]
    if target.count(-1) > 1:
        raise call.unsupported(f"target_shape {target} has more than one -1")
    if -1 in target:
        known = int(np.prod([d for d in target if d != -1]))
        target[target.index(-1)] = total // known if known else 0
    if int(np.prod(target)) != total:
        raise call.unsupported(f"cannot reshape {total} values per sample to {tuple(target)}")
    return [call.add(Op.RESHAPE, xs[:1], {"shape": tuple(target)})]


@layer("Dropout", "SpatialDropout2D", "GaussianNoise", "GaussianDropout", "AlphaDropout", "ActivityRegularization",
       "Identity")
def lower_identity(call: LayerCall, xs: list[str]) -> list[str]:
    # Inference no-ops; a pass removes them, the node keeps the layer visible in dumps until then.
    required = _NOOP_REQUIRED.get(call.class_name)
    if required and not any(k in call.config for k in required):  # Keras refuses the layer without it
        raise KeyError(f"a {call.class_name} layer's config must give {required[0]!r}")
    return [call.add(Op.IDENTITY, xs[:1])]


#: the argument each inference no-op requires in Keras (with its Keras 1 name), though inference ignores it
_NOOP_REQUIRED = {"Dropout": ("rate", "p"), "SpatialDropout2D": ("rate", "p"), "GaussianDropout": ("rate", "p"),
                  "AlphaDropout": ("rate", "p"), "GaussianNoise": ("stddev", "sigma")}


@layer("ZeroPadding2D")
def lower_zeropad2d(call: LayerCall, xs: list[str]) -> list[str]:
    p = call.get("padding", 1)
    if isinstance(p, int):
        pads = ((p, p), (p, p))
    elif all(isinstance(v, int) for v in p):
        pads = ((p[0], p[0]), (p[1], p[1]))
    else:
        pads = (tuple(p[0]), tuple(p[1]))
    spatial = ((0, 0),) + pads if _channels_first(call) else pads + ((0, 0),)
    return [call.add(Op.PAD, xs[:1], {"pads": ((0, 0),) + spatial, "value": 0.0})]


# Add, Multiply and the other elementwise merges are in layers_merge.py.


@layer("Concatenate")
def lower_concat(call: LayerCall, xs: list[str]) -> list[str]:
    rank = len(call.shape(xs[0]))
    axis = int(call.get("axis", -1, "concat_axis")) % rank
    if axis == 0:
        raise call.unsupported("concatenation along the batch axis")
    return [call.add(Op.CONCAT, xs, {"axis": axis})]


@layer("Rescaling")
def lower_rescaling(call: LayerCall, xs: list[str]) -> list[str]:
    scale = np.asarray(call.get("scale", 1.0), np.float32)
    offset = np.asarray(call.get("offset", 0.0), np.float32)
    y = call.add(Op.MUL, [xs[0], call.param("scale", scale.reshape(scale.shape or (1,)))])
    return [call.add(Op.ADD, [y, call.param("offset", offset.reshape(offset.shape or (1,)))])]
