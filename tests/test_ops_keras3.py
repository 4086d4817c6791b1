"""Keras 3 operation nodes (`x * 0.5`, `keras.ops.mean(x, 1)`, `x[:, -1]`, ...) in functional models,
against Keras 3 in every file format (compiled from `.keras`, the same graph from `.h5` and JSON)."""
import re

import numpy as np
import pytest

import kerasjit
from kerasjit.errors import UnsupportedLayerError
from layer_check import check_all_formats, graph_of
from oracle import keras, save


def numpy_zoo():
    """Every keras.ops numpy-like operation the issue lists, mixed with layers, several per output."""
    k = keras()
    ops, L = k.ops, k.layers
    x = k.Input((4, 6), name="x")
    y = k.Input((4, 6), name="y")
    h = L.Dense(6, name="proj")(x)
    # arithmetic with broadcasting and constants (scalars, numpy arrays, constant tensors)
    a = h * 0.5 + y
    b = 2.0 - a / 3.0 + (h - y) * np.linspace(0.5, 1.5, 6).astype("float32")
    c = -b + ops.sqrt(16.0) * ops.convert_to_tensor(np.full((4, 1), 0.25, "float32"))
    arith = ops.maximum(a, b) - ops.minimum(b, c) + ops.square(c) * 0.1 + 1.0 / (ops.abs(c) + 1.0)
    # comparisons, where, clip, logic, floor
    cmp = (ops.cast(a > 0.1, "float32") + ops.cast(ops.less_equal(b, c), "float32") * 2.0
           + ops.cast(ops.equal(ops.sign(a), ops.sign(b)), "float32") * 4.0
           + ops.cast(ops.logical_and(a > 0, ops.logical_not(b > 0)), "float32") * 8.0)
    sel = ops.where(a > 0, a, -1.0) + ops.where(ops.greater_equal(b, 0.0), ops.zeros_like(b), b)
    sel = sel + ops.exp(ops.where(c < 0.5, -np.inf, c * 0.1))              # exact with an infinite branch
    clipped = ops.clip(b, -0.7, 0.9) + ops.floor(c * 3.0) / 3.0 + ops.mod(a * 5.0, 2.0)
    # math functions and powers
    math_ = ops.sqrt(ops.abs(a) + 1e-3) + ops.exp(-ops.square(b)) - ops.log(ops.abs(c) + 1.0) \
        + ops.power(clipped, 3) + abs(h) ** 0.5 + ops.log1p(ops.abs(a)) + ops.rsqrt(ops.abs(b) + 0.5)
    elementwise = arith + cmp + sel + clipped + math_
    # reductions
    red = [ops.mean(elementwise, axis=1), ops.sum(elementwise, axis=(1, 2), keepdims=True)[:, 0, :],
           ops.max(elementwise, axis=-1), ops.min(elementwise, axis=1), ops.var(h, axis=1), ops.std(h, axis=-1)]
    # layout: reshape, transpose, expand_dims, squeeze, concatenate, stack, split, take, slicing
    t = ops.transpose(elementwise, (0, 2, 1))                            # (N, 6, 4)
    r = ops.reshape(t, (-1, 3, 8))
    e = ops.squeeze(ops.expand_dims(r, 2), axis=2)
    parts = ops.split(e, 2, axis=-1)                                     # 2 x (N, 3, 4)
    st = ops.stack(parts, axis=1)                                        # (N, 2, 3, 4)
    taken = ops.take(elementwise, [3, 0, 1, 1], axis=1) \
        + ops.take(elementwise, [[0], [2], [4], [5], [5], [1]], axis=2)[..., 0]
    sl = [elementwise[:, -1, :], elementwise[:, ::2, None, 1:-1], elementwise[..., 0], st[:, 1:, ..., ::-2],
          elementwise[:, 3:0:-2, -2::-3], ops.flip(h, axis=1)[:, 0]]
    cat = ops.concatenate([parts[1], taken[:, :3, :4]], axis=-1)         # (N, 3, 8)
    # contractions: matmul and einsum between tensors and with constants
    att = ops.matmul(h, ops.transpose(y, (0, 2, 1))) / np.sqrt(6.0)     # (N, 4, 4)
    ctx = ops.einsum("bij,bjk->bik", ops.softmax(att, axis=-1), h)       # (N, 4, 6)
    w = ops.matmul(ctx, np.arange(18, dtype="float32").reshape(6, 3) / 18.0)
    heads = ops.einsum("bqhd,bkhd->bhqk", ops.reshape(h, (-1, 4, 2, 3)), ops.reshape(y, (-1, 4, 2, 3)))
    proj = ops.einsum("btd,de->bte", y, np.ones((6, 2), "float32") * 0.3) + ops.einsum("btd->bd", y)[:, None, :2]
    return k.Model([x, y], red + sl + [st, cat, att, ctx, w, heads, proj], name="numpy_zoo")


def nn_zoo():
    """Every activation function of keras.ops, softmax, log_softmax, normalize and one_hot."""
    k = keras()
    ops, L = k.ops, k.layers
    x = k.Input((5, 8), name="x")
    codes = k.Input((5,), dtype="int32", name="codes")
    h = L.Dense(8, name="proj")(x) * 2.0
    acts = [ops.relu(h), ops.relu6(h * 3.0), ops.sigmoid(h), ops.sparse_sigmoid(h), ops.softplus(h),
            ops.softsign(h), ops.soft_shrink(h, 0.3), ops.sparse_plus(h), ops.silu(h), ops.squareplus(h, 2.0),
            ops.log_sigmoid(h), ops.leaky_relu(h, 0.15), ops.hard_sigmoid(h), ops.hard_silu(h), ops.elu(h, 0.8),
            ops.selu(h), ops.gelu(h), ops.gelu(h, approximate=False), ops.celu(h, 0.7), ops.tanh(h),
            ops.tanh_shrink(h), ops.hard_tanh(h), ops.hard_shrink(h, 0.4), ops.threshold(h, 0.2, -1.0),
            ops.softmax(h, axis=1), ops.log_softmax(h), ops.log_softmax(h, axis=1), ops.sparsemax(h),
            ops.normalize(h), ops.normalize(h, axis=1, order=1), ops.concatenate([ops.glu(h), ops.glu(h)], -1)]
    total = acts[0]
    for a in acts[1:]:
        total = total + a * 0.5
    hot = ops.one_hot(codes, 6) + ops.transpose(ops.one_hot(codes, 6, axis=1), (0, 2, 1)) * 0.5
    return k.Model([x, codes], [total, hot, ops.mean(total, axis=1) @ np.eye(8, 3, dtype="float32")],
                   name="nn_zoo")


def keras_io_block():
    """Written the way the keras.io examples write them: a scaled embedding `x * sqrt(d)`, a residual
    block with `x + y`, and the last timestep `x[:, -1, :]`."""
    k = keras()
    ops, L = k.ops, k.layers
    d = 16
    inp = k.Input((7, 5), name="tokens")
    x = L.Dense(d, name="embed")(inp)
    x = x * ops.sqrt(ops.cast(d, "float32"))
    y = L.Dense(d, activation="relu", name="ff1")(x)
    y = L.Dense(d, name="ff2")(y)
    x = x + y
    x = L.LayerNormalization(epsilon=1e-6, name="norm")(x)
    last = x[:, -1, :]
    return k.Model(inp, L.Dense(3, name="logits")(last), name="keras_io_block")


def _codes(b):
    return np.random.default_rng(b).integers(0, 6, (b, 5)).astype("int32")


@pytest.mark.parametrize("make", [numpy_zoo, keras_io_block])
def test_keras3_operations(make, tmp_path, cache_dir):
    errs = check_all_formats(make(), tmp_path, cache_dir)
    assert max(errs.values()) < 1e-3


def test_keras3_nn_operations(tmp_path, cache_dir):
    model = nn_zoo()
    rng = np.random.default_rng(3)
    errs = check_all_formats(model, tmp_path, cache_dir, inputs=lambda b: [
        rng.standard_normal((b, 5, 8)).astype("float32"), _codes(b)])
    assert max(errs.values()) < 1e-3


def test_unknown_operations_are_listed_with_arguments(tmp_path, cache_dir):
    k = keras()
    x = k.Input((4,), name="x")
    y = k.ops.sin(x * 2.0) + k.ops.arctan2(x, 0.5) + k.ops.cumsum(x, axis=1)
    path, weights = save(k.Model(x, y), tmp_path, "keras")
    with pytest.raises(UnsupportedLayerError) as e:
        kerasjit.compile(path, weights, cache_dir=cache_dir)
    msg = str(e.value)
    assert "3 layer(s)" in msg and "kerasjit.register_layer" in msg
    # (names get a suffix when other tests made operations of the same kind in this process)
    assert re.search(r"sin(_\d+)? \(Sin\): operation keras\.src\.ops\.numpy\.Sin\(<tensor multiply(_\d+)?\[N, 4\]>\)",
                     msg), msg
    assert "(Arctan2): operation keras.src.ops.numpy.Arctan2(<tensor x[N, 4]>, 0.5)" in msg
    assert "(Cumsum): operation keras.src.ops.numpy.Cumsum(<tensor x[N, 4]>) {axis: 1}" in msg
    assert sorted(c for _, c, _ in e.value.layers) == ["Arctan2", "Cumsum", "Sin"]


def test_indexing_the_batch_axis_is_refused(tmp_path):
    k = keras()
    x = k.Input((4,), name="x")
    model = k.Model(x, k.ops.take(x, [0, 1], axis=0) + 1.0)
    with pytest.raises(UnsupportedLayerError, match="batch axis"):
        graph_of(save(model, tmp_path, "keras"))


def test_primitives_the_operations_added():
    """FLOOR, SELECT and SLICE with negative steps: shape rules and NumPy meaning."""
    from kerasjit.compiler.ir import Op
    from kerasjit.compiler.rules import evaluate, shape_of
    x = np.array([[-1.5, -0.0, 0.5, 2.0, np.inf, 3e9]], np.float32)
    np.testing.assert_array_equal(evaluate(Op.FLOOR, [x], {}), np.floor(x))
    inf = np.array([[np.inf, -np.inf, 1.0]], np.float32)
    chosen = evaluate(Op.SELECT, [inf, np.array([1.0, 0.0, np.nan], np.float32)], {})
    np.testing.assert_array_equal(chosen, [[np.inf, 0.0, 1.0]])  # no inf * 0 = NaN
    a = np.arange(2 * 5 * 4, dtype=np.float32).reshape(2, 5, 4)
    ranges = ((4, -1, -2), (2, 0, -1))
    assert shape_of(Op.SLICE, [(None, 5, 4)], {"ranges": ranges}) == (None, 3, 2)
    np.testing.assert_array_equal(evaluate(Op.SLICE, [a], {"ranges": ranges}), a[:, 4::-2, 2:0:-1])
    with pytest.raises(ValueError):
        shape_of(Op.SLICE, [(None, 5, 4)], {"ranges": ((5, -1, -1), (0, 4, 1))})
