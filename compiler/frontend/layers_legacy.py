"""Layers only older Keras writes: Keras 1/2.0's Merge, MaxoutDense and Highway, and Keras 2's
LocallyConnected1D/2D (all three implementations), which Keras.js never had.

Semantics follow the Keras that wrote them (keras/legacy/layers.py of Keras 2.0, Keras 1's
topology.py, tf_keras's locally_connected*), cited per rule.
"""
from __future__ import annotations

import itertools

import numpy as np

from ...errors import WeightsMismatchError
from ..ir import Op
from .activations import apply_activation
from .context import LayerCall, layer
from .layers import _channels_first, _to_first, _to_last, _tuple
from .layers_merge import batch_dot, merge
from .primitives import const

KERAS_EPSILON = 1e-7


@layer("Merge")
def lower_merge(call: LayerCall, xs: list[str]) -> list[str]:
    """Keras 1/2.0 Merge: modes sum, mul, ave, max, concat, dot, cos (`mode_type` 'raw' only: a
    lambda mode is Python code)."""
    if call.get("layers"):
        raise call.unsupported("a Merge of Sequential branches (Keras 1 branching Sequential model)")
    mode = call.get("mode", "sum")
    if call.get("mode_type", "raw") != "raw" or not isinstance(mode, str):
        raise call.unsupported(f"merge mode {mode!r} is a Python function")
    if len(xs) < 2:
        raise call.unsupported(f"Merge needs at least 2 inputs, got {len(xs)}")
    if mode in ("sum", "mul", "max", "ave"):
        if any(call.shape(x) != call.shape(xs[0]) for x in xs):
            raise call.unsupported(f"mode {mode!r} on inputs of shapes {[call.shape(x) for x in xs]}")
        y = merge(call, xs, {"sum": Op.ADD, "ave": Op.ADD, "mul": Op.MUL, "max": Op.MAXIMUM}[mode])
        return [call.add(Op.DIV, [y, const(call, "count", float(len(xs)))]) if mode == "ave" else y]
    if mode == "concat":
        rank = len(call.shape(xs[0]))
        axis = int(call.get("concat_axis", -1)) % rank
        if axis == 0:
            raise call.unsupported("concatenation along the batch axis")
        return [call.add(Op.CONCAT, xs, {"axis": axis})]
    if mode in ("dot", "cos"):
        if len(xs) != 2:
            raise call.unsupported(f"mode {mode!r} takes exactly 2 inputs, got {len(xs)}")
        x, y = xs
        axes = call.get("dot_axes", -1)
        axes = [axes, axes] if isinstance(axes, int) else list(axes)
        if isinstance(axes[0], (list, tuple)):  # Keras 1 wrote ([a], [b])
            axes = [axes[0][0], axes[1][0]]
        axes = [int(axes[0]) % len(call.shape(x)), int(axes[1]) % len(call.shape(y))]
        dot = batch_dot(call, x, y, tuple(axes))
        if mode == "dot":
            return [dot]
        # batch_dot / max(sqrt(batch_dot(x, x) * batch_dot(y, y)), epsilon); Keras 2.0 then adds a unit
        # axis its declared output shape does not have: the declared shape is kept, as later layers use it
        xx = batch_dot(call, x, x, (axes[0], axes[0]))
        yy = batch_dot(call, y, y, (axes[1], axes[1]))
        norm = call.add(Op.POW, [call.add(Op.MUL, [xx, yy])], {"exponent": 0.5})
        norm = call.add(Op.MAXIMUM, [norm, const(call, "epsilon", KERAS_EPSILON)])
        return [call.add(Op.DIV, [dot, norm])]
    raise call.unsupported(f"merge mode {mode!r}")


@layer("MaxoutDense")
def lower_maxout_dense(call: LayerCall, xs: list[str]) -> list[str]:
    """max over `nb_feature` affine maps: max_f(x @ W[f] + b[f]); no activation (Keras 2.0 legacy)."""
    x = xs[0]
    if len(call.shape(x)) != 2:
        raise call.unsupported(f"input of shape {call.shape(x)} (MaxoutDense takes (batch, features))")
    units, feats, k = int(call.get("output_dim")), int(call.get("nb_feature", 4)), call.shape(x)[1]
    use_bias = call.get("bias", True)
    ws = call.weights([("W", (feats, k, units))] + ([("b", (feats, units))] if use_bias else []))
    kernel = np.ascontiguousarray(ws[0].transpose(1, 0, 2).reshape(k, feats * units))
    y = call.add(Op.MATMUL, [x, call.param("W", kernel)])
    if use_bias:
        y = call.add(Op.ADD, [y, call.param("b", ws[1].reshape(feats * units))])
    y = call.add(Op.RESHAPE, [y], {"shape": (feats, units)})
    return [call.add(Op.MAX, [y], {"axes": (1,), "keepdims": False})]


@layer("Highway")
def lower_highway(call: LayerCall, xs: list[str]) -> list[str]:
    """t = sigmoid(x @ W_carry + b_carry); out = act(x @ W + b) * t + (1 - t) * x. Keras 1 stores the
    weights as [W, b, W_carry, b_carry], Keras 2.0 as [W, W_carry, b, b_carry]: their shapes tell."""
    x = xs[0]
    if len(call.shape(x)) != 2:
        raise call.unsupported(f"input of shape {call.shape(x)} (Highway takes (batch, features))")
    d = call.shape(x)[1]
    if call.get("bias", True):
        got = call.spec.weights.get(call.path, [])
        keras1 = len(got) == 4 and np.ndim(got[1]) == 1
        names = ["W", "b", "W_carry", "b_carry"] if keras1 else ["W", "W_carry", "b", "b_carry"]
        ws = dict(zip(names, call.weights([(n, (d, d) if n.startswith("W") else (d,)) for n in names])))
    else:
        ws = dict(zip(["W", "W_carry"], call.weights([("W", (d, d)), ("W_carry", (d, d))])))

    def affine(w: str, b: str) -> str:
        y = call.add(Op.MATMUL, [x, call.param(w, ws[w])])
        return call.add(Op.ADD, [y, call.param(b, ws[b])]) if b in ws else y
    gate = call.add(Op.SIGMOID, [affine("W_carry", "b_carry")])
    act = apply_activation(call, affine("W", "b"), call.get("activation", "linear"))
    carry = call.add(Op.MUL, [call.add(Op.SUB, [const(call, "one", 1.0), gate]), x])
    return [call.add(Op.ADD, [call.add(Op.MUL, [act, gate]), carry])]


# ----------------------------------------------------------------------------- LocallyConnected
def _connected(size: int, k: int, stride: int, out_pos: int, padding: str) -> range:
    """tf_keras conv_utils.conv_connected_inputs along one dim."""
    left = k // 2
    center = out_pos * stride + (left if padding == "valid" else 0)
    return range(max(0, center - left), min(size, center + k - left))


def _out_size(size: int, k: int, stride: int, padding: str) -> int:
    return (size - k) // stride + 1 if padding == "valid" else -(-size // stride)


def _dense_matrix(call: LayerCall, kernel: np.ndarray, impl: int, spatial: tuple, outs: tuple, ks: tuple,
                  strides: tuple, padding: str, cin: int, filters: int, first: bool) -> np.ndarray:
    """Implementations 2 and 3 as the dense (input, output) matrix of a Dense over the flattened
    input, both flattened in the layer's data_format."""
    if impl == 2:
        mask = np.zeros(spatial + outs, np.float32)
        for o in itertools.product(*(range(n) for n in outs)):
            for i in itertools.product(*(_connected(spatial[d], ks[d], strides[d], o[d], padding)
                                         for d in range(len(spatial)))):
                mask[i + o] = 1.0
        if first:  # kernel (cin, *in, filters, *out); mask (1, *in, 1, *out)
            mask = mask.reshape((1,) + spatial + (1,) + outs)
        else:      # kernel (*in, cin, *out, filters); mask (*in, 1, *out, 1)
            mask = mask.reshape(spatial + (1,) + outs + (1,))
        rows = cin * int(np.prod(spatial))
        return (kernel * mask).reshape(rows, -1)
    # implementation 3: `kernel` holds the values at the sorted (output index, input index) pairs
    idxs = []
    in_dims = ((cin,) + spatial) if first else (spatial + (cin,))
    out_dims = ((filters,) + outs) if first else (outs + (filters,))
    for o in itertools.product(*(range(n) for n in outs)):
        for i in itertools.product(*(_connected(spatial[d], ks[d], strides[d], o[d], padding)
                                     for d in range(len(spatial)))):
            for fi in range(cin):
                for fo in range(filters):
                    oi = np.ravel_multi_index(((fo,) + o) if first else (o + (fo,)), out_dims)
                    ii = np.ravel_multi_index(((fi,) + i) if first else (i + (fi,)), in_dims)
                    idxs.append((oi, ii))
    idxs.sort()
    if len(idxs) != kernel.size:
        raise WeightsMismatchError(f"{call.spec.source}: layer {call.name!r} ({call.class_name}) has "
                                   f"{kernel.size} kernel values, its connectivity has {len(idxs)}")
    dense = np.zeros((int(np.prod(out_dims)), int(np.prod(in_dims))), np.float32)
    for (oi, ii), v in zip(idxs, kernel.reshape(-1)):
        dense[oi, ii] = v
    return np.ascontiguousarray(dense.T)


@layer("LocallyConnected1D", "LocallyConnected2D")
def lower_locally_connected(call: LayerCall, xs: list[str]) -> list[str]:
    """A convolution with a separate kernel per output position (tf_keras). Implementation 1 stores
    (positions, taps * cin, filters): patches (a one-hot CONV extracts them) times the per-position
    kernels, summed over taps * cin. Implementations 2 and 3 are one masked/sparse Dense."""
    rank = 1 if call.class_name.endswith("1D") else 2
    x = xs[0]
    first = _channels_first(call)
    shape = call.shape(x)
    cin = shape[1] if first else shape[-1]
    spatial = tuple(shape[2:] if first else shape[1:-1])
    ks = _tuple(call.get("kernel_size"), rank)
    strides = _tuple(call.get("strides", 1), rank)
    padding = str(call.get("padding", "valid")).lower()
    filters = int(call.get("filters"))
    impl = int(call.get("implementation", 1))
    outs = tuple(_out_size(spatial[d], ks[d], strides[d], padding) for d in range(rank))
    use_bias = call.get("use_bias", True)
    bias_spec = [("bias", outs + (filters,))] if use_bias else []
    if impl == 1:
        if padding != "valid":
            raise call.unsupported("padding 'same' with implementation 1 (tf_keras has it only for 2 and 3)")
        taps = int(np.prod(ks))
        ws = call.weights([("kernel", (int(np.prod(outs)), taps * cin, filters))] + bias_spec)
        y = _patches_times_kernels(call, x if not first else _to_last(call, x), ws[0], ks, strides, cin, first)
        y = call.add(Op.RESHAPE, [y], {"shape": outs + (filters,)})
        return [_bias_activation(call, _to_first(call, y) if first else y, ws[1] if use_bias else None)]
    if impl == 2:
        kshape = ((cin,) + spatial + (filters,) + outs) if first else (spatial + (cin,) + outs + (filters,))
    elif impl == 3:
        kshape = None
    else:
        raise call.unsupported(f"implementation {impl}")
    ws = call.weights([("kernel", kshape)] + bias_spec)
    dense = _dense_matrix(call, ws[0], impl, spatial, outs, ks, strides, padding, cin, filters, first)
    flat = call.add(Op.RESHAPE, [x], {"shape": (int(np.prod(shape[1:])),)})
    y = call.add(Op.MATMUL, [flat, call.param("kernel_dense", dense)])
    out_shape = ((filters,) + outs) if first else (outs + (filters,))
    y = call.add(Op.RESHAPE, [y], {"shape": out_shape})
    return [_bias_activation(call, y, ws[1] if use_bias else None)]


def _bias_activation(call: LayerCall, y: str, bias: np.ndarray | None) -> str:
    """tf_keras's bias_add of the (*positions, filters) bias, then the activation. For channels_first
    it reshapes (does not transpose) the bias to (filters, *positions), and so do we."""
    if bias is not None:
        y = call.add(Op.ADD, [y, call.param("bias", bias.reshape(call.shape(y)[1:]))])
    return apply_activation(call, y, call.get("activation", "linear"))


def _patches_times_kernels(call: LayerCall, x: str, kernel: np.ndarray, ks: tuple, strides: tuple, cin: int,
                           channel_major: bool) -> str:
    """(batch, positions, filters): per output position p, sum_j patch[p, j] * kernel[p, j, :], where a
    patch is the window flattened as tf_keras's local_conv does: (taps, cin) in channels_last, (cin,
    taps) in channels_first."""
    rank = len(ks)
    taps = int(np.prod(ks))
    extract = np.zeros(ks + (cin, taps * cin), np.float32)
    for t, tap in enumerate(itertools.product(*(range(k) for k in ks))):
        for c in range(cin):
            extract[tap + (c, c * taps + t if channel_major else t * cin + c)] = 1.0
    patches = call.add(Op.CONV, [x, call.param("patch_extractor", extract)],
                       {"strides": strides, "dilation": (1,) * rank, "pads": ((0, 0),) * rank, "groups": 1})
    positions, width, filters = kernel.shape
    p = call.add(Op.RESHAPE, [patches], {"shape": (positions, width, 1)})
    prod = call.add(Op.MUL, [p, call.param("kernel", kernel)])
    s = call.add(Op.MEAN, [prod], {"axes": (2,), "keepdims": False})
    return call.add(Op.MUL, [s, const(call, "width", float(width))])
