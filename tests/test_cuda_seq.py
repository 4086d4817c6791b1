"""The CUDA backend's sequence ops against Keras: recurrent layers (one kernel launch per RNN node),
embeddings and integer inputs, stateful RNNs, attention, transposed convolutions, CategoryEncoding and
sparsemax. In CI these run in numba's simulator (every CUDA thread a Python thread): tiny models, few
batch sizes, many options per model."""
import numpy as np
import pytest

pytest.importorskip("numba_cuda", reason="numba-cuda is not installed (pip install 'kerasjit[cuda]')")

import kerasjit  # noqa: E402
from oracle import assert_matches, keras, keras_predict  # noqa: E402
from seq_util import floats, randomize, tokens  # noqa: E402
from test_cuda import SIMULATED, _gpu  # noqa: E402

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not _gpu(), reason="no CUDA GPU and NUMBA_ENABLE_CUDASIM unset")]


def _compile(model, tmp_path, cache_dir):
    path = tmp_path / "m.keras"
    model.save(path)
    return kerasjit.compile(str(path), target="cuda", cache_dir=cache_dir)


def _rnn_launches(cm) -> int:
    """RNN kernel launches per predict (in the generated launch list; no other launch is conditional)."""
    return sum(1 for ln in (cm.path / "model_gen.py").read_text().splitlines()
               if ln.strip().startswith("L.append((_rnn"))


def recurrent_model():
    """LSTM, GRU (reset_after both ways), SimpleRNN; masks from Embedding(mask_zero) (kept state, repeated
    output, zero_output_for_mask, unroll); go_backwards, return_sequences/state, initial states, and
    Bidirectional in three merge modes."""
    k = keras()
    L = k.layers
    ids = k.Input((5,), dtype="int32", name="ids")
    seq = k.Input((5, 3), name="seq")
    e = L.Embedding(12, 4, mask_zero=True, name="emb")(ids)
    a = L.LSTM(3, return_sequences=True, name="lstm_masked")(e)
    b = L.GRU(3, name="gru_masked_last")(a)
    z = L.SimpleRNN(2, zero_output_for_mask=True, return_sequences=True, name="srnn_zero")(e)
    u = L.LSTM(2, unroll=True, return_sequences=True, go_backwards=True, name="lstm_unrolled")(e)
    bi = L.Bidirectional(L.LSTM(2), name="bi_concat")(e)
    g, gs = L.GRU(2, reset_after=False, go_backwards=True, return_sequences=True, return_state=True,
                  recurrent_activation="hard_sigmoid", name="gru_v1")(seq)
    h0 = L.Dense(3, name="h0")(L.Flatten()(seq))
    s, sh = L.SimpleRNN(3, activation="relu", return_state=True, name="srnn")(seq, initial_state=[h0])
    c = [L.Dense(2, name=f"c{i}")(L.Flatten()(seq)) for i in range(2)]
    ls, lh, lc = L.LSTM(2, return_sequences=True, return_state=True, name="lstm_init")(seq, initial_state=c)
    ave = L.Bidirectional(L.GRU(2, return_sequences=True), merge_mode="ave", name="bi_ave")(seq)
    mul = L.Bidirectional(L.SimpleRNN(2), merge_mode="mul", name="bi_mul")(seq)
    outs = [a, b, z, u, bi, g, gs, s, sh, ls, lh, lc, ave, mul]
    return k.Model([ids, seq], outs, name="recurrent")


def test_recurrent_layers_one_launch_per_rnn(tmp_path, cache_dir):
    model = randomize(recurrent_model())
    cm = _compile(model, tmp_path, cache_dir)
    x = [tokens(2, 5, 12, seed=2), floats((2, 5, 3), seed=2)[0]]  # (batch 1: the other tests)
    assert_matches(cm.predict(x), keras_predict(model, x), "recurrent [cuda]")
    rnn_nodes = [m for m in cm.manifest["nodes"] if m["op"] == "rnn"]
    # at most one launch per RNN node, whatever the steps; independent ones (Bidirectional) share one
    assert len(rnn_nodes) == 13 and _rnn_launches(cm) <= 9


def test_register_and_thread_limits(tmp_path, cache_dir, monkeypatch):
    """The fallbacks for wide layers, on small ones: U read from global memory instead of registers, and
    more columns than threads per block (each thread several columns and units)."""
    from kerasjit.compiler.codegen import cuda_seq
    monkeypatch.setattr(cuda_seq, "MAX_THREADS", 32)
    monkeypatch.setattr(cuda_seq, "MAX_CACHED", 0)
    k = keras()
    L = k.layers
    seq = k.Input((4, 3), name="seq")
    a = L.LSTM(9, return_sequences=True, name="lstm_wide")(seq)   # 36 columns over 32 threads
    b = L.GRU(5, reset_after=False, name="gru_split")(a)
    c = L.GRU(11, name="gru_wide")(seq)                            # 33 columns
    model = randomize(k.Model(seq, [a, b, c], name="limits"))
    cm = _compile(model, tmp_path, tmp_path / "own-cache")  # other code than the shared cache's
    src = (cm.path / "model_gen.py").read_text()
    assert "uc = cuda.local.array" not in src and "range(tid, 36, 32)" in src
    x = floats((2, 4, 3))[0]
    assert_matches(cm.predict(x), keras_predict(model, x), "rnn limits")


def test_stateful_rnn_keeps_state_on_device(tmp_path, cache_dir):
    """stateful=True: the states stay on the GPU from one predict to the next until reset_states()."""
    k = keras()
    L = k.layers
    seq = k.Input(batch_shape=(2, 4, 3), name="seq")
    a = L.LSTM(3, stateful=True, return_sequences=True, name="lstm")(seq)
    b = L.GRU(2, stateful=True, name="gru")(a)
    c = L.Bidirectional(L.SimpleRNN(2, stateful=True), name="bi")(seq)  # one launch with the LSTM
    model = randomize(k.Model(seq, [b, c], name="stateful"))
    xs = floats((2, 4, 3), (2, 4, 3), (2, 4, 3), seed=4)
    cm = _compile(model, tmp_path, cache_dir)
    assert cm.stateful
    for layer in model.layers:
        if getattr(layer, "stateful", False):
            layer.reset_state()
    for i, x in enumerate(xs):
        if i == 2:
            for layer in model.layers:
                if getattr(layer, "stateful", False):
                    layer.reset_state()
            cm.reset_states()
        assert_matches(cm.predict(x), keras_predict(model, x), f"stateful call {i}")
    with pytest.raises(kerasjit.InputError, match="stateful"):
        cm.predict(xs[0][:1])
    cm.reset_states()
    first = cm.predict(xs[0][:1])[0]
    assert first.shape == (1, 2)
    assert not np.array_equal(cm.predict(xs[0][:1])[0], first)  # the second call starts from the first's state
    assert _rnn_launches(cm) == 2 and "cuda.blockIdx.y == 1" in (cm.path / "model_gen.py").read_text()


def test_embedding_integer_inputs_host_and_device(tmp_path, cache_dir):
    """An IMDB-shaped model (Embedding -> Bidirectional(LSTM) -> Dense) at batch 1 and 32, from numpy
    inputs of any integer dtype and from device arrays of the declared one; the Embedding folded into the
    LSTM's input projection is one gather."""
    from numba import cuda
    k = keras()
    L = k.layers
    ids = k.Input((4,), dtype="int32", name="ids")
    x = L.Bidirectional(L.LSTM(4), name="bilstm")(L.Embedding(30, 6, name="emb")(ids))
    model = randomize(k.Model(ids, L.Dense(2, name="head")(x), name="imdb_tiny"))
    cm = _compile(model, tmp_path, cache_dir)
    for n in (1, 32):
        x = tokens(n, 4, 30, seed=n)
        assert_matches(cm.predict(x), keras_predict(model, x), f"imdb [int32, batch {n}]")
    x = tokens(3, 4, 30)
    ref = keras_predict(model, x)
    assert_matches(cm.predict(x.astype(np.int64)), ref, "imdb [int64 numpy]")
    assert_matches(cm.predict(x.astype(np.uint8)), ref, "imdb [uint8 numpy]")
    y = cm.predict(cuda.to_device(x))
    assert_matches(y.copy_to_host(), ref, "imdb [int32 device]")
    with pytest.raises(kerasjit.InputError, match="int32"):
        cm.predict(cuda.to_device(x.astype(np.int64)))
    # per direction a gather (of the Embedding folded into the LSTM's input projection); both LSTMs in
    # one launch; the concat's two copies; the dense head
    assert len(cm._batch(3).launches) == 6 and _rnn_launches(cm) == 1


def test_attention(tmp_path, cache_dir):
    """MultiHeadAttention (causal mask: a fused epilogue on the scores' product) and dot Attention with
    scores returned: batched products with b transposed or not, sizes across tile edges."""
    k = keras()
    L = k.layers
    q, v = k.Input((3, 4), name="q"), k.Input((17, 4), name="v")
    mha = L.MultiHeadAttention(2, 2, name="mha")(q, q, use_causal_mask=True)
    att, scores = L.Attention(use_scale=True, name="att")([q, v], return_attention_scores=True)
    model = randomize(k.Model([q, v], [mha, att, scores], name="attention"))
    cm = _compile(model, tmp_path, cache_dir)
    x = floats((2, 3, 4), (2, 17, 4), seed=3)
    assert_matches(cm.predict(x), keras_predict(model, x), "attention")


def test_conv_transpose_category_encoding_sparsemax(tmp_path, cache_dir):
    """Conv2DTranspose (strides, same padding, output_padding, fused bias + activation) and
    Conv1DTranspose (dilation); CategoryEncoding in three modes; a sparsemax activation."""
    k = keras()
    L = k.layers
    img = k.Input((3, 3, 2), name="img")
    t2 = L.Conv2DTranspose(3, 3, strides=2, padding="same", output_padding=1, activation="relu", name="up")(img)
    s1 = L.Reshape((9, 2))(img)
    t1 = L.Conv1DTranspose(2, 3, dilation_rate=2, name="up1d")(s1)
    ids = k.Input((4,), dtype="int32", name="ids")
    cats = [L.CategoryEncoding(6, output_mode=m, name=f"cat_{m}")(ids) for m in ("multi_hot", "count", "one_hot")]
    sm = L.Dense(5, activation="sparsemax", name="sparse")(L.Flatten()(img))
    outs = [t2, t1] + cats + [sm]
    model = randomize(k.Model([img, ids], outs, name="misc"))
    cm = _compile(model, tmp_path, cache_dir)
    x = [floats((2, 3, 3, 2), seed=5)[0], tokens(2, 4, 6)]
    assert_matches(cm.predict(x), keras_predict(model, x), "conv transpose, category encoding, sparsemax")


def test_sparsemax_kernel_ties_and_rows():
    """The sort-free sparsemax kernel against the IR's meaning, with tied values and a long row."""
    from numba import cuda

    from kerasjit.compiler.rules import _sparsemax
    from kerasjit.kernels.cuda import sparsemax, template
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 7, 2)).astype(np.float32)
    x[0, :3, 0] = 0.5   # ties in the support
    x[1, :, 1] = 1.0    # all equal
    kern = template.jit(sparsemax.sparsemax3)
    out = cuda.device_array(x.size, np.float32)
    kern[1, 32](cuda.to_device(x.ravel()), out, 3, 7, 2)
    np.testing.assert_allclose(out.copy_to_host().reshape(x.shape), _sparsemax(x, 1), atol=1e-6)


def test_gate_activations_of_a_whole_gate(tmp_path, cache_dir):
    """softmax, log_softmax, sparsemax and glu (on 2 units) as a cell's activations, which Keras applies
    to each gate's units: every dense cell kind, masked, with the row's update by one thread."""
    k = keras()
    L = k.layers
    seq = k.Input((4, 3), name="seq")
    m = L.Masking(mask_value=-1.0, name="pad")(seq)
    outs = [L.SimpleRNN(3, activation="softmax", return_sequences=True, name="srnn_softmax")(m),
            L.LSTM(2, activation="glu", recurrent_activation="sparsemax", name="lstm_glu")(m),
            L.GRU(3, activation="log_softmax", recurrent_activation="softmax", return_sequences=True,
                  name="gru_softmax")(m),
            L.GRU(2, reset_after=False, activation="sparsemax", recurrent_activation="glu", go_backwards=True,
                  name="gru_v1_glu")(seq)]
    model = randomize(k.Model(seq, outs, name="gate_activations"))
    cm = _compile(model, tmp_path, cache_dir)
    x = floats((3, 4, 3), seed=4)[0]
    x[0, 2:] = -1.0   # masked steps
    assert_matches(cm.predict(x), keras_predict(model, x), "gate activations [cuda]")


@pytest.mark.slow
@pytest.mark.skipif(SIMULATED, reason="a real-size model is too big for the simulator")
def test_imdb_bidirectional_lstm_on_gpu(tmp_path, cache_dir):
    """Issue 5's done-when: Embedding 20000x128, Bidirectional(LSTM(64)), Dense, at batch 1 and 32."""
    k = keras()
    L = k.layers
    ids = k.Input((200,), dtype="int32")
    x = L.Bidirectional(L.LSTM(64))(L.Embedding(20000, 128)(ids))
    model = randomize(k.Model(ids, L.Dense(1)(x), name="imdb"), scale=0.1)
    cm = _compile(model, tmp_path, cache_dir)
    for n in (1, 32):
        x = tokens(n, 200, 20000, seed=n)
        assert_matches(cm.predict(x), keras_predict(model, x), f"imdb [cuda, batch {n}]")
    assert _rnn_launches(cm) == 1  # both directions in one launch
