"""The CUDA backend against Keras. In CI these run under NUMBA_ENABLE_CUDASIM=1 (numba's simulator runs
every CUDA thread as a Python thread, so the models are tiny); on a machine with a GPU the same tests
run for real, and the `slow` ones compile whole models."""
import os

import numpy as np
import pytest

cuda_spec = pytest.importorskip("numba_cuda", reason="numba-cuda is not installed (pip install 'kerasjit[cuda]')")

from numba import config as numba_config  # noqa: E402

import kerasjit  # noqa: E402
from oracle import assert_matches, keras, keras_predict, random_input, randomize_batchnorm  # noqa: E402

SIMULATED = bool(numba_config.ENABLE_CUDASIM)


def _gpu() -> bool:
    if SIMULATED:
        return True
    from numba import cuda
    return cuda.is_available()


pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not _gpu(), reason="no CUDA GPU and NUMBA_ENABLE_CUDASIM unset")]


def _compile(model, tmp_path, cache_dir):
    path = tmp_path / "m.keras"
    model.save(path)
    return kerasjit.compile(str(path), target="cuda", cache_dir=cache_dir)


def _compare(model, tmp_path, cache_dir, batches=(1, 3)):
    cm = _compile(model, tmp_path, cache_dir)
    for b in batches:
        xs = [random_input(i.shape[1:], b, seed=b + k) for k, i in enumerate(model.inputs)]
        x = xs if len(xs) > 1 else xs[0]
        assert_matches(cm.predict(x), keras_predict(model, x), f"{model.name} [cuda, batch {b}]")
    return cm


def test_conv_block_fuses_into_few_kernels(tmp_path, cache_dir):
    """Conv + BN + ReLU, a residual add, a depthwise conv + BN + ReLU6, pooling, a dense head."""
    k = keras()
    L = k.layers
    x_in = k.Input((6, 6, 4))
    x = L.Conv2D(8, 3, padding="same", use_bias=False)(x_in)
    x = L.BatchNormalization()(x)
    s = L.ReLU()(x)
    x = L.Conv2D(8, 3, padding="same")(s)
    x = L.BatchNormalization()(x)
    x = L.Activation("relu")(L.Add()([x, s]))
    x = L.DepthwiseConv2D(3, strides=2, padding="same")(x)
    x = L.ReLU(6.0)(L.BatchNormalization()(x))
    x = L.MaxPooling2D(2)(x)
    x = L.Dense(5)(L.GlobalAveragePooling2D()(x))
    m = k.Model(x_in, x, name="convblock")
    randomize_batchnorm(m)
    cm = _compare(m, tmp_path, cache_dir)
    # conv, conv(+BN+add+relu), depthwise(+BN+relu6), maxpool, mean, dense: one kernel each
    assert len(cm._batch(1).launches) == 6


def test_layout_and_elementwise(tmp_path, cache_dir):
    """Strided and grouped convs, padding, concat, permute, average pooling, broadcasts, softmax."""
    k = keras()
    L = k.layers
    x_in = k.Input((5, 6, 4))
    a = L.ZeroPadding2D(((1, 0), (0, 1)))(x_in)
    a = L.Conv2D(6, 2, strides=(2, 1), groups=2, activation="tanh")(a)
    b = L.AveragePooling2D(2, strides=1, padding="same")(x_in)
    b = L.Conv2D(6, 1, activation="sigmoid")(b)
    b = L.Cropping2D(((0, 2), (0, 0)))(b)
    c = L.Concatenate()([a, b])
    c = L.Multiply()([c, L.Dense(1)(c)])         # a per-pixel scale broadcast over channels
    c = L.Permute((2, 1, 3))(c)
    c = L.Softmax(axis=1)(c)
    m = k.Model(x_in, c, name="layout")
    _compare(m, tmp_path, cache_dir, batches=(2,))


def test_conv1d_and_dense_on_sequences(tmp_path, cache_dir):
    k = keras()
    L = k.layers
    x_in = k.Input((7, 3))
    x = L.Conv1D(5, 3, dilation_rate=2, padding="causal", activation="elu")(x_in)
    x = L.Dense(6, activation="gelu")(x)
    x = L.GlobalMaxPooling1D()(x)
    m = k.Model(x_in, x, name="seq")
    _compare(m, tmp_path, cache_dir, batches=(2,))


def test_split_k_with_fused_epilogue(tmp_path, cache_dir):
    """A product too small to fill many multiprocessors splits its reduction over blocks; the
    reduction kernel then applies the bias and activation."""
    k = keras()
    m = k.Sequential([k.Input((260,)), k.layers.Dense(8, activation="relu")], name="splitk")
    cm = _compile(m, tmp_path, cache_dir)
    cm._sms = 10_000  # pretend to be a huge GPU: gemm.choose then splits K (before the first predict)
    x = random_input((260,), 5)  # a batch size that compile's own checks did not use
    assert_matches(cm.predict(x), keras_predict(m, x), "split-K")
    assert len(cm._batch(5).launches) == 2  # partial products, then reduction + epilogue


def test_device_arrays_stay_on_device(tmp_path, cache_dir):
    from numba import cuda
    k = keras()
    L = k.layers
    x_in = k.Input((4, 4, 2))
    m = k.Model(x_in, L.Dense(3)(L.Flatten()(L.Conv2D(4, 3, activation="relu")(x_in))), name="dev")
    cm = _compile(m, tmp_path, cache_dir)
    x = random_input((4, 4, 2), 2)
    y = cm.predict(cuda.to_device(x))
    assert hasattr(y, "copy_to_host") and y.shape == (2, 3)
    assert_matches(y.copy_to_host(), keras_predict(m, x), "device input")
    assert_matches(cm.predict(x), keras_predict(m, x), "numpy input after device input")
    with pytest.raises(kerasjit.InputError, match="float32"):
        cm.predict(cuda.to_device(x.astype(np.float64)))


def test_unsupported_op_names_op_and_layer(tmp_path, cache_dir, monkeypatch):
    """Every op of the CPU backend has a CUDA kernel; what is left is a dense RNN too wide for one block's
    shared memory (made so here by shrinking the limit)."""
    from kerasjit.compiler.codegen import cuda_seq
    monkeypatch.setattr(cuda_seq, "SHARED_BYTES", 16)
    k = keras()
    L = k.layers
    x_in = k.Input((3, 2))
    m = k.Model(x_in, L.LSTM(2, name="wide")(x_in), name="wide_lstm")
    with pytest.raises(kerasjit.CompileError, match="wide.*target='cpu'"):
        _compile(m, tmp_path, tmp_path / "own-cache")


def test_missing_numba_cuda_is_a_target_error(monkeypatch, tmp_path):
    import importlib.util

    from kerasjit.runtime import cuda_device
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "numba_cuda" else real(name, *a))
    cuda_device.cuda_environment.cache_clear()
    try:
        with pytest.raises(kerasjit.TargetError, match="numba-cuda"):
            kerasjit.compile(kerasjit_data_model(), target="cuda", cache_dir=tmp_path)
    finally:
        cuda_device.cuda_environment.cache_clear()


def kerasjit_data_model() -> str:
    from pathlib import Path
    return str(Path(kerasjit.__file__).parent / "data" / "digits_cnn.keras")


def test_gemm_template_tiles():
    """The GEMM template alone, with tiles that exercise partial blocks, VEC 1 and 4, and groups."""
    from numba import cuda

    from kerasjit.kernels.cuda import gemm, template
    rng = np.random.default_rng(0)
    for tile, vec, gather, (n, h, c, kk, co, s, groups) in [
            ((16, 16, 8, 4, 4), 1, True, (2, 5, 3, 3, 20, 2, 1)),
            ((16, 16, 8, 4, 4), 4, True, (1, 5, 8, 3, 12, 1, 2)),
            ((16, 16, 8, 4, 4), 4, False, (2, 3, 12, 1, 20, 1, 1))]:
        x = rng.standard_normal((n, h, h, c)).astype(np.float32)
        w = rng.standard_normal((kk, kk, c // groups, co)).astype(np.float32)
        pad = kk // 2 if gather else 0
        oh = (h + 2 * pad - kk) // s + 1
        xp = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0))).astype(np.float64)
        ref = np.zeros((n, oh, oh, co))
        cg, ng = c // groups, co // groups
        for g in range(groups):
            for p in range(kk):
                for q in range(kk):
                    patch = xp[:, p:p + s * oh:s, q:q + s * oh:s, g * cg:(g + 1) * cg]
                    ref[..., g * ng:(g + 1) * ng] += patch @ w[p, q, :, g * ng:(g + 1) * ng]
        packed = w.reshape(-1, groups, ng).transpose(1, 0, 2).copy()
        cf = gemm.config(*tile, vec=vec, gather=gather)
        kern = template.jit(gemm.conv_gemm, **cf)
        out = cuda.device_array(ref.size, np.float32)
        m = n * oh * oh
        kern[(-(-m // cf["BM"]), -(-ng // cf["BN"]), groups), cf["NT"]](
            cuda.to_device(x.ravel()), cuda.to_device(packed.ravel()), out, m, kk * kk * cg, kk * kk * cg, h, h, c,
            oh * oh, oh,
            kk, cg, s, s, 1, 1, pad, pad, co, ng, ())
        np.testing.assert_allclose(out.copy_to_host().reshape(ref.shape), ref, atol=1e-4, rtol=1e-4)


def test_unroll_expands_marked_loops():
    from kerasjit.kernels.cuda.template import unroll
    src = "def f(a):\n    for i in range(3):  # unroll\n        a[i] = i\n    return a\n"
    ns: dict = {}
    exec(unroll(src), ns)
    assert "for" not in unroll(src) and ns["f"]([0, 0, 0]) == [0, 1, 2]


# ---------------------------------------------------------------------- whole models (a real GPU only)
@pytest.mark.slow
@pytest.mark.skipif(SIMULATED, reason="whole models are too big for the simulator")
@pytest.mark.parametrize("name", ["mnist", "resnet50", "mobilenetv2"])
def test_models_on_gpu(name, tmp_path, cache_dir):
    from test_models import _build
    m = _build(name)
    path = tmp_path / "m.keras"
    m.save(path)
    cm = kerasjit.compile(str(path), target="cuda", cache_dir=cache_dir)
    for b in (1, 2):
        x = random_input(m.inputs[0].shape[1:], b, seed=b)
        assert_matches(cm.predict(x), keras_predict(m, x), f"{name} [cuda, batch {b}]")
