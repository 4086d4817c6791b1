"""The CPU backend's GEMM drivers: how a GEMM is cut into tiles for the threads, and whole models
whose GEMMs take each tiling path, against Keras at 1 and 2 threads."""
import re

import numba
import numpy as np
import pytest

import kerasjit
from kerasjit.kernels.cpu.gemm import tiles
from oracle import assert_matches, keras, save

# one xdist worker runs this module (the same models in one worker: later tests reuse the compiled code)
pytestmark = pytest.mark.xdist_group("cpu_gemm")


def _matches_keras(cm, m, inputs, runs) -> None:
    """`cm`'s outputs against Keras's model `m` on `inputs(n)` (an array or a list of them) at each
    (threads, batch) of `runs`, within design.md's tolerance (oracle.assert_matches); numba's
    thread count restored after."""
    before = numba.get_num_threads()
    try:
        for threads, n in runs:
            numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
            x = inputs(n)
            ref = m(x)
            ref = [np.asarray(r) for r in (ref if isinstance(ref, (list, tuple)) else [ref])]
            assert_matches(cm.predict(x), ref, f"{m.name} threads={threads} batch={n}")
    finally:
        numba.set_num_threads(before)


@pytest.mark.parametrize("rows,k,m", [(1, 2048, 1000), (49, 4608, 512), (196, 2304, 256), (196, 64, 384),
                                      (3136, 576, 64), (100000, 27, 32), (7, 10, 3)])
@pytest.mark.parametrize("nt", [1, 2, 3, 16])
def test_tiles_cover_the_output(rows, k, m, nt):
    """Tiles cover every output element once; few rows split columns, many rows split rows; a single
    thread gets whole rows."""
    rc, cc = tiles(rows, k, m, nt)
    assert rc >= 1 and cc >= 1
    rt, ct = -(-rows // rc), -(-m // cc)
    assert (rt - 1) * rc < rows <= rt * rc and (ct - 1) * cc < m <= ct * cc
    if nt == 1:
        assert cc == m
    if nt > 1 and rows >= 128 * nt:
        assert cc == m and rt >= nt  # every thread gets rows
    if ct > 1:
        assert rc == rows and ct <= nt


def _tiling_model():
    """Convs and dense layers whose GEMMs take every tiling path at batch 1 and 2: many rows (im2col
    rows per task), few rows (columns per thread, im2col built first), one row (GEMV per column
    block), with fused bias, residual and activation."""
    k = keras()
    L = k.layers
    x = k.Input((20, 20, 3), name="img")
    h = L.Conv2D(32, 3, padding="same", activation="relu", name="many_rows")(x)          # 400 rows
    h = L.Conv2D(48, 3, strides=4, padding="same", name="few_rows_im2col")(h)            # 25 rows
    r = L.Conv2D(256, 1, activation="relu", name="few_rows_pointwise")(h)               # 25 x 48 x 256
    s = L.Conv2D(256, 3, padding="same", name="few_rows_deep")(L.Conv2D(64, 1)(h))      # 25 x 576 x 256
    h = L.Add()([r, s])
    h = L.Activation("relu")(h)
    h = L.GlobalAveragePooling2D()(h)
    h = L.Dense(300, activation="tanh", name="one_row")(h)                              # GEMV x 2
    out = L.Dense(10, name="logits")(h)
    return k.Model(x, out, name="tiling")


@pytest.mark.parametrize("threads", [1, 2])
def test_tilings_match_keras(threads, tmp_path, cache_dir):
    m = _tiling_model()
    path, _ = save(m, tmp_path, "keras")
    cm = kerasjit.compile(path, cache_dir=cache_dir)
    rng = np.random.default_rng(threads)
    _matches_keras(cm, m, lambda n: rng.standard_normal((n, 20, 20, 3)).astype(np.float32),
                   [(threads, 1), (threads, 2)])


def _winograd_model():
    """3x3 stride-1 convs that take the Winograd path (>= 64 input channels, saving >= 1.5x the
    multiplications): odd and even output sizes, 'valid' and 'same' padding (tiles over the border),
    a fused residual, folded BatchNormalization and activation; and two that take im2col: a 3x3
    output (saves 1.27x) and one with 24 input channels."""
    k = keras()
    L = k.layers
    x = k.Input((13, 12, 64), name="img")
    a = L.Conv2D(64, 3, padding="same", name="same_odd")(x)                    # 13x12: odd rows
    a = L.BatchNormalization(name="bn")(a)
    a = L.Activation("relu")(a)
    b = L.Conv2D(64, 3, padding="same", use_bias=False, name="residual")(a)
    b = L.Add()([a, b])
    b = L.Activation("swish")(b)
    c = L.Conv2D(64, 3, padding="valid", activation="relu", name="valid")(b)   # 11x10
    d = L.Conv2D(17, 3, padding="valid", name="valid_odd")(c)                  # 9x8
    e = L.Conv2D(17, 3, padding="valid", name="tiny")(L.Cropping2D(((0, 6), (0, 5)))(c))  # 3x3
    f = L.Conv2D(8, 3, padding="same", name="few_channels")(L.Conv2D(24, 1)(x))
    return k.Model(x, [b, c, d, e, f], name="winograd")


def test_winograd_convs_match_keras(tmp_path, cache_dir):
    from oracle import randomize_batchnorm
    m = _winograd_model()
    randomize_batchnorm(m)
    path, _ = save(m, tmp_path, "keras")
    cm = kerasjit.compile(path, cache_dir=cache_dir)
    src = (cm.path / "model_gen.py").read_text()
    run = src[:src.index("_profiled(")]
    assert len(re.findall(r"^\s+_wino\d+\(", run, re.M)) == 4  # not `tiny` nor `few_channels`
    rng = np.random.default_rng(0)
    nt = numba.get_num_threads()
    _matches_keras(cm, m, lambda n: rng.standard_normal((n, 13, 12, 64)).astype(np.float32), [(nt, 1), (nt, 3)])
    # the four Winograd convs differ in geometry, not in array types: each driver of the generated
    # module is compiled once, not once per layer's integer arguments (numba's literal types)
    drivers = {name: f for name, f in vars(cm._module).items()
               if re.fullmatch(r"_(wino|conv|gemm|dw|ew)\d+", name)}
    assert any(name.startswith("_wino") for name in drivers)
    assert {name: len(f.signatures) for name, f in drivers.items()} == {name: 1 for name in drivers}


def _winograd4_model():
    """3x3 stride-1 convs that take Winograd F(4x4, 3x3): output sizes that are not multiples of 4
    (partial tiles at the bottom and right), 'same' (tiles over the border) and 'valid', a fused
    residual, folded BatchNormalization and activation, an output written into a concatenation, 16
    input channels (the fewest), and one whose output has too few tiles for F(4x4) (F(2x2))."""
    k = keras()
    L = k.layers
    x = k.Input((26, 23, 24), name="img")
    a = L.Conv2D(32, 3, padding="same", name="same")(x)                        # 26x23: 7x6 tiles
    a = L.BatchNormalization(name="bn")(a)
    a = L.Activation("relu")(a)
    b = L.Conv2D(32, 3, padding="same", use_bias=False, name="residual")(a)
    b = L.Activation("swish")(L.Add()([a, b]))
    c = L.Conv2D(17, 3, activation="relu", name="valid")(b)                    # 24x21
    d = L.Concatenate(name="cat")([L.Conv2D(19, 3, name="in_cat")(L.Conv2D(16, 1)(b)), L.Conv2D(5, 1)(c)])
    small = L.Conv2D(64, 3, padding="same", name="f2")(L.Conv2D(64, 3, strides=3)(x))  # 9x8: F(2x2)
    return k.Model(x, [b, c, d, small], name="winograd4")


def test_winograd4_convs_match_keras(tmp_path, cache_dir):
    from oracle import randomize_batchnorm
    m = _winograd4_model()
    randomize_batchnorm(m)
    path, _ = save(m, tmp_path, "keras")
    cm = kerasjit.compile(path, cache_dir=cache_dir)
    src = (cm.path / "model_gen.py").read_text()
    run = src[:src.index("_profiled(")]
    assert len(re.findall(r"^\s+_winof\d+\(", run, re.M)) == 4  # same, residual, valid, in_cat
    assert len(re.findall(r"^\s+_wino\d+\(", run, re.M)) == 1   # f2
    rng = np.random.default_rng(0)
    _matches_keras(cm, m, lambda n: rng.standard_normal((n, 26, 23, 24)).astype(np.float32),
                   [(2, 1), (1, 2), (2, 3)])


def _winograd_pool_model():
    """2x2 stride-2 poolings that run inside the Winograd driver of the conv before them (max and
    average; F(4x4) and F(2x2); odd output sizes, whose last row or column no window reads; the
    activation and a folded BatchNormalization before the pooling), and ones that must not: a
    residual operand per pixel, a second reader of the conv's output, 'same' padding on an odd size."""
    k = keras()
    L = k.layers
    x = k.Input((26, 23, 24), name="img")
    a = L.MaxPooling2D(2)(L.Conv2D(32, 3, padding="same", activation="relu", name="max_f4")(x))         # 26x23
    b = L.AveragePooling2D(2)(L.BatchNormalization()(L.Conv2D(16, 3, name="avg_f4")(x)))               # 24x21
    s = L.Conv2D(64, 3, strides=3)(x)                                                                  # 8x7x64
    c = L.MaxPooling2D(2)(L.Conv2D(64, 3, padding="same", activation="tanh", name="max_f2")(s))       # F(2x2)
    d = L.MaxPooling2D(2)(L.Add()([L.Conv2D(24, 3, padding="same", name="residual")(x), x]))
    t = L.Conv2D(32, 3, padding="same", name="two_readers")(x)
    e1, e2 = L.MaxPooling2D(2)(t), L.GlobalAveragePooling2D()(t)
    f = L.MaxPooling2D(2, padding="same")(L.Conv2D(32, 3, padding="same", name="same_pool")(x))
    return k.Model(x, [a, b, c, d, e1, e2, f], name="winograd_pool")


def test_winograd_pooling_fused_matches_keras(tmp_path, cache_dir):
    from oracle import randomize_batchnorm
    m = _winograd_pool_model()
    randomize_batchnorm(m)
    path, _ = save(m, tmp_path, "keras")
    cm = kerasjit.compile(path, cache_dir=cache_dir)
    src = (cm.path / "model_gen.py").read_text()
    run = src[:src.index("_profiled(")]
    assert len(re.findall(r"^\s+_winofp\d+\(", run, re.M)) == 2  # max_f4, avg_f4
    assert len(re.findall(r"^\s+_winop\d+\(", run, re.M)) == 1   # max_f2
    assert len(re.findall(r"^\s+_winof\d+\(", run, re.M)) == 3   # residual, two_readers, same_pool
    rng = np.random.default_rng(1)
    _matches_keras(cm, m, lambda n: rng.standard_normal((n, 26, 23, 24)).astype(np.float32),
                   [(2, 1), (1, 2), (2, 3)])


def _rowconv_model():
    """Dense convs that run on the input lines (no im2col): 'valid' (read in place) and 'same' (a
    width-padded copy), strides and dilation along the height, stride 2 along the width ('same' with
    a right pad only, 'valid' with an unread last column, a padded 7x7 stem on 3 channels), a 7x1
    kernel, all kernel rows in the padding for the first lines (a folded ZeroPadding2D), causal and
    'same' Conv1D, a kernel row of 9 floats (3 channels), fused residual and activation, an output
    written into a concatenation; and one that keeps im2col: too narrow an output."""
    k = keras()
    L = k.layers
    x = k.Input((30, 28, 12), name="img")  # < 16 channels: the 3x3 convs do not take Winograd F(4x4)
    a = L.Conv2D(32, 3, activation="relu", name="valid")(x)                                     # 28x26
    b = L.Conv2D(32, (3, 5), strides=(2, 1), padding="same", name="same_s2")(x)
    b2 = L.Conv2D(16, 3, dilation_rate=(2, 1), padding="same", name="dilated_h")(x)
    c = L.Conv2D(24, (7, 1), padding="same", name="k7x1")(L.Conv2D(32, 1, name="to32")(x))
    d = L.Conv2D(32, 3, name="top_pad")(L.ZeroPadding2D(((5, 0), (1, 1)))(x))
    d = L.Activation("tanh")(L.Add()([d, L.Conv2D(32, 1, name="res")(L.ZeroPadding2D(((3, 0), (0, 0)))(x))]))
    # epilogues the GEMM applies in registers: on lines whose kernel rows all lie in the padding too
    d6 = L.Conv2D(32, 3, activation="relu6", name="top_pad_relu6")(L.ZeroPadding2D(((5, 0), (1, 1)))(x))
    r2 = L.ReLU()(L.Add()([L.Conv2D(32, 3, padding="same", name="res_relu")(x), L.Conv2D(32, 1)(x)]))
    cat = L.Concatenate(name="cat")([L.Conv2D(8, 3, padding="same", name="in_cat")(x), L.Conv2D(5, 1)(x)])
    narrow = L.Conv2D(8, 3, padding="same", name="narrow")(L.Cropping2D(((0, 0), (0, 16)))(x))  # 12 wide
    short = L.Conv2D(8, 3, padding="same", name="short")(L.Conv2D(3, 1)(x))                   # 9 per row
    wide = k.Input((12, 60, 16), name="wide")
    g = L.Conv2D(16, 3, strides=2, padding="same", name="s2_same")(wide)            # right pad 1: a copy
    g2 = L.Conv2D(16, 3, strides=(1, 2), name="s2_valid")(wide)                      # last column unread
    stem = L.Conv2D(8, 7, strides=2, name="stem")(L.ZeroPadding2D(3)(L.Conv2D(3, 1)(wide)))
    s = k.Input((40, 16), name="seq")
    e = L.Conv1D(32, 3, padding="causal", dilation_rate=1, activation="relu", name="causal")(s)
    f = L.Conv1D(24, 5, padding="same", name="same1d")(e)
    f = L.Concatenate()([f, L.Conv1D(256, 3, padding="same", name="column_tiles")(e)])   # 40 rows: columns split
    return k.Model([x, s, wide], [a, b, b2, c, d, cat, narrow, short, f, g, g2, stem, d6, r2], name="rowconv")


def test_row_convs_match_keras(tmp_path, cache_dir):
    m = _rowconv_model()
    path, _ = save(m, tmp_path, "keras")
    cm = kerasjit.compile(path, cache_dir=cache_dir)
    src = (cm.path / "model_gen.py").read_text()
    run = src[:src.index("_profiled(")]
    assert len(re.findall(r"^\s+_rowconv\d+\(", run, re.M)) == 16  # not `narrow` nor the 1x1s
    assert "sgemm_pk_ep(" in src
    rng = np.random.default_rng(0)
    _matches_keras(cm, m, lambda n: [rng.standard_normal((n, 30, 28, 12)).astype(np.float32),
                                     rng.standard_normal((n, 40, 16)).astype(np.float32),
                                     rng.standard_normal((n, 12, 60, 16)).astype(np.float32)],
                   [(2, 1), (1, 2), (2, 3)])


def test_unliteral_int_args_rewrites_call_arguments_only():
    from kerasjit.compiler.codegen.cpu import unliteral_int_args
    src = "def f(a, n):\n    g(a, 3, -2, (0, n, 7), x[4:5].reshape((n, 8)), True, 1.5)  # k(9)\n"
    assert unliteral_int_args(src) == (
        "def f(a, n):\n    g(a, _I(3), _I(-2), (_I(0), n, _I(7)), x[4:5].reshape((n, 8)), True, 1.5)  # k(9)\n")


def test_zero_padding_folds_into_the_convs_that_read_it(tmp_path, cache_dir):
    """ZeroPadding2D read only by convolutions becomes their padding (no copy); one also read by a
    pooling layer stays. Same numbers as Keras."""
    from kerasjit.compiler.ir import Op
    from layer_check import graph_of
    k = keras()
    L = k.layers
    x = k.Input((15, 14, 8), name="img")
    p = L.ZeroPadding2D(((0, 1), (2, 1)))(x)
    a = L.DepthwiseConv2D(3, strides=2, name="dw")(p)
    b = L.Conv2D(6, 3, strides=2, name="dense_conv")(p)
    q = L.ZeroPadding2D(1)(x)
    c = L.MaxPooling2D(3, strides=2)(q)
    d = L.Conv2D(6, 3, strides=2, name="conv_after_shared_pad")(q)
    m = k.Model(x, [a, b, c, d])
    path, _ = save(m, tmp_path, "keras")
    g = graph_of((path,))
    assert sum(n.op is Op.PAD for n in g.nodes) == 1  # the pad that the max pooling reads too
    cm = kerasjit.compile(path, cache_dir=cache_dir)
    xs = np.random.default_rng(1).standard_normal((2, 15, 14, 8)).astype(np.float32)
    for got, ref in zip(cm.predict(xs), m(xs)):
        np.testing.assert_allclose(got, np.asarray(ref), atol=1e-4, rtol=0)


def test_concatenated_convs_write_into_the_concatenation(tmp_path, cache_dir):
    """Convs and dense layers read only by a channel concatenation write their rows straight into its
    buffer (plan.py "slice" storage): Inception / SqueezeNet branches, a Winograd conv among them, one
    concatenation a graph output. Values also read elsewhere, pooled branches, and a concatenation
    along another axis are copied as before. Same numbers as Keras at batch 1 and 3, 1 and 2 threads."""
    from kerasjit.compiler.codegen.cpu import CpuCodegen
    from kerasjit.compiler.ir import Op
    from layer_check import graph_of
    k = keras()
    L = k.layers
    x = k.Input((10, 9, 64), name="img")
    s = L.Conv2D(16, 1, activation="relu", name="squeeze")(x)
    e1 = L.Conv2D(40, 1, activation="relu", name="expand1")(s)
    e3 = L.Conv2D(72, 3, padding="same", name="expand3")(s)
    w3 = L.Conv2D(48, 3, padding="same", activation="relu", name="wino")(x)
    fire = L.Concatenate(name="fire")([e1, e3, w3])                      # all three written in place
    shared = L.Conv2D(8, 1, name="shared")(fire)                         # also read by `side`
    pooled = L.MaxPooling2D(3, strides=1, padding="same")(fire)
    mixed = L.Concatenate(name="mixed")([shared, pooled, L.Conv2D(5, 3, padding="same", name="c5")(fire)])
    side = L.Activation("tanh")(shared)
    rows = L.Concatenate(axis=1, name="rows")([L.Conv2D(4, 1, name="r1")(mixed), L.Conv2D(4, 1, name="r2")(mixed)])
    flat = L.Flatten()(mixed)
    head = L.Concatenate(name="head")([L.Dense(7, name="d1")(flat), L.Dense(9, activation="relu", name="d2")(flat)])
    m = k.Model(x, [fire, side, rows, head], name="concat_in_place")
    path, _ = save(m, tmp_path, "keras")
    g = graph_of((path,))
    plan = CpuCodegen(g).plan
    layer = {n.out.name: n.layer for n in g.nodes}
    sliced = {layer[v]: where for v, (kind, where) in plan.storage.items() if kind == "slice"}
    concat = {n.layer: n.out.name for n in g.nodes if n.op is Op.CONCAT}
    assert {name: parent for name, (parent, _) in sliced.items()} == {
        "expand1": concat["fire"], "expand3": concat["fire"], "wino": concat["fire"],
        "c5": concat["mixed"], "d1": concat["head"], "d2": concat["head"]}
    assert [sliced[n][1] for n in ("expand1", "expand3", "wino", "c5", "d1", "d2")] == [0, 40, 112, 8 + 160, 0, 7]
    cm = kerasjit.compile(path, cache_dir=cache_dir)
    rng = np.random.default_rng(3)
    _matches_keras(cm, m, lambda n: rng.standard_normal((n, 10, 9, 64)).astype(np.float32),
                   [(1, 1), (1, 3), (2, 1), (2, 3)])
