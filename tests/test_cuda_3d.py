"""The CUDA backend's 3D convolutions and pooling, and ConvLSTM2D, against Keras (issue 5: every op of the
CPU backend on CUDA). In CI these run in numba's simulator: tiny shapes, batch 1 and 3."""
import numpy as np
import pytest

pytest.importorskip("numba_cuda", reason="numba-cuda is not installed (pip install 'kerasjit[cuda]')")

import kerasjit  # noqa: E402
from oracle import assert_matches, keras, keras_predict, random_input, randomize_batchnorm  # noqa: E402
from seq_util import randomize  # noqa: E402
from test_cuda import _gpu  # noqa: E402

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not _gpu(), reason="no CUDA GPU and NUMBA_ENABLE_CUDASIM unset")]


def _compare(model, tmp_path, cache_dir, batches=(1, 3), inputs=None):
    path = tmp_path / "m.keras"
    model.save(path)
    cm = kerasjit.compile(str(path), target="cuda", cache_dir=cache_dir)
    for b in batches:
        if inputs is None:
            xs = [random_input(i.shape[1:], b, seed=b + k) for k, i in enumerate(model.inputs)]
            x = xs if len(xs) > 1 else xs[0]
        else:
            x = inputs(b)
        assert_matches(cm.predict(x), keras_predict(model, x), f"{model.name} [cuda, batch {b}]")
    return cm


def _kernels(cm) -> list[str]:
    """The kernel of every launch in the generated launch list, in order."""
    return [ln.strip()[len("L.append(("):].split(",")[0] for ln in (cm.path / "model_gen.py").read_text().splitlines()
            if ln.strip().startswith("L.append((")]


def test_conv3d_pool3d(tmp_path, cache_dir):
    """Conv3D: strides, dilation, 'same' and 'valid', groups, a kernel of depth 1 (the folded 2D path),
    Conv3D + BatchNormalization + ReLU fused; MaxPooling3D and AveragePooling3D 'same' and 'valid';
    the global 3D poolings; Conv3DTranspose."""
    k = keras()
    L = k.layers
    x_in = k.Input((4, 5, 4, 2))
    a = L.Conv3D(3, 2, strides=(1, 2, 1), padding="same", activation="tanh", name="c_strided")(x_in)
    b = L.Conv3D(4, (2, 3, 1), dilation_rate=(2, 1, 1), padding="valid", name="c_dilated")(x_in)
    c = L.Conv3D(4, 3, padding="same", groups=2, use_bias=False, name="c_grouped")(x_in)
    c = L.ReLU(name="c_relu")(L.BatchNormalization(name="c_bn")(c))
    d = L.Conv3D(3, (1, 3, 3), padding="same", activation="relu", name="c_frames")(x_in)
    e = L.Conv3D(2, (1, 2, 2), strides=(1, 2, 2), name="c_frames_strided")(c)
    pm = L.MaxPooling3D(2, padding="same", name="max_same")(c)
    pa = L.AveragePooling3D((2, 3, 2), strides=(1, 2, 1), padding="same", name="avg_same")(x_in)
    pv = L.AveragePooling3D(2, name="avg_valid")(c)
    pmv = L.MaxPooling3D((3, 2, 2), strides=(1, 1, 2), name="max_valid")(x_in)
    ga = L.GlobalAveragePooling3D(name="gap")(c)
    gm = L.GlobalMaxPooling3D(name="gmp")(d)
    t = L.Conv3DTranspose(2, 2, strides=(2, 1, 2), name="c_transposed")(pv)
    model = k.Model(x_in, [a, b, c, d, e, pm, pa, pv, pmv, ga, gm, t], name="threed")
    randomize_batchnorm(model)
    cm = _compare(model, tmp_path, cache_dir)
    ks = _kernels(cm)
    assert not any(name.startswith("_ew") for name in ks), "the epilogues are fused into the convolutions"


def test_convlstm2d(tmp_path, cache_dir):
    """ConvLSTM2D: return_sequences, 'same' and 'valid', strides, go_backwards, return_state, initial
    states, channels_first; one RNN launch per node."""
    k = keras()
    L = k.layers
    clip = k.Input((3, 5, 4, 2), name="clip")
    a = L.ConvLSTM2D(3, 3, padding="same", return_sequences=True, name="clstm_seq")(clip)
    b, bh, bc = L.ConvLSTM2D(2, (3, 2), strides=(2, 1), go_backwards=True, return_state=True,
                             recurrent_activation="hard_sigmoid", name="clstm_back")(a)
    h0 = k.Input((3, 3, 2), name="h0")
    c0 = k.Input((3, 3, 2), name="c0")
    v = L.ConvLSTM2D(2, (3, 2), padding="valid", return_sequences=True, go_backwards=True,
                     name="clstm_valid_init")(clip, initial_state=[h0, c0])
    r, rh, rc = L.ConvLSTM2D(2, (3, 2), strides=(2, 1), return_state=True, activation="log_softmax",
                             recurrent_activation="glu", name="clstm_rows")(clip)  # activations of a whole gate
    model = randomize(k.Model([clip, h0, c0], [a, b, bh, bc, v, r, rh, rc], name="convlstm"), scale=0.4)
    cm = _compare(model, tmp_path, cache_dir)
    assert sum(1 for name in _kernels(cm) if name.startswith("_rnn")) == 4


def test_convlstm2d_states_in_global_memory(tmp_path, cache_dir, monkeypatch):
    """The fallback for ConvLSTMs too big for shared memory (states in the arena's scratch) and for more
    (position, unit) items than threads, on small ones; channels_first, a dilated input conv, and
    activations of a whole gate."""
    from kerasjit.compiler.codegen import cuda_seq
    monkeypatch.setattr(cuda_seq, "SHARED_BYTES", 64)
    monkeypatch.setattr(cuda_seq, "MAX_THREADS", 7)
    k = keras()
    L = k.layers
    clip = k.Input((3, 2, 5, 4), name="clip")  # channels_first: (T, C, H, W)
    y = L.ConvLSTM2D(3, 2, padding="same", dilation_rate=2, return_sequences=True, data_format="channels_first",
                     name="clstm_first")(clip)
    z = L.ConvLSTM2D(3, 2, padding="same", activation="sparsemax", recurrent_activation="softmax",
                     return_sequences=True, go_backwards=True, name="clstm_rows_global")(clip)
    model = randomize(k.Model(clip, [y, z], name="convlstm_global"), scale=0.4)
    cm = _compare(model, tmp_path, tmp_path / "own-cache")
    assert "wk[" in (cm.path / "model_gen.py").read_text()


def test_convlstm2d_stateful_and_bidirectional(tmp_path, cache_dir):
    """stateful=True: the states stay on the device between predicts until reset_states(); a
    Bidirectional ConvLSTM2D (its two directions are two launches: a ConvLSTM is never grouped)."""
    k = keras()
    L = k.layers
    clip = k.Input(batch_shape=(2, 2, 3, 3, 1), name="clip")
    a = L.ConvLSTM2D(2, 2, padding="same", stateful=True, return_sequences=True, name="clstm_stateful")(clip)
    bi = L.Bidirectional(L.ConvLSTM2D(2, 2, padding="same"), name="bi_clstm")(clip)
    model = randomize(k.Model(clip, [a, bi], name="convlstm_stateful"), scale=0.4)
    xs = [random_input((2, 3, 3, 1), 2, seed=s) for s in range(3)]
    path = tmp_path / "m.keras"
    model.save(path)
    cm = kerasjit.compile(str(path), target="cuda", cache_dir=cache_dir)
    assert cm.stateful
    model.get_layer("clstm_stateful").reset_state()
    for i, x in enumerate(xs):
        if i == 2:
            model.get_layer("clstm_stateful").reset_state()
            cm.reset_states()
        assert_matches(cm.predict(x), keras_predict(model, x), f"stateful convlstm call {i}")
    assert sum(1 for name in _kernels(cm) if name.startswith("_rnn")) == 3
