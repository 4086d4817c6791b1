"""Sequence layers against Keras 3 (JAX backend) in all three file formats (layer_check: `.keras`
compiled, `.h5` and JSON + weights lowered to the same graph and interpreted): recurrent layers and
their options, masks from Masking, Embedding and tensors, wrappers, embeddings and attention, stateful
RNNs, and a recurrent model written by tf.keras 2. Many options share one model: each model costs a
numba compile."""
import numpy as np
import pytest

import kerasjit
from layer_check import check_all_formats
from oracle import assert_matches, keras, keras_predict, save
from seq_util import floats, padded, randomize, tokens


# ---------------------------------------------------------------------------------------------- recurrent
def rnn_zoo():
    """SimpleRNN, LSTM and GRU with their options: return_sequences/state, go_backwards, unroll, initial
    states as inputs, use_bias, reset_after both ways, dropout (ignored), and many activations."""
    k = keras()
    L = k.layers
    seq = k.Input((6, 3), name="seq")
    h0, c0 = k.Input((4,), name="h0"), k.Input((4,), name="c0")
    a, ah, ac = L.LSTM(4, return_sequences=True, return_state=True, go_backwards=True, dropout=0.3,
                       recurrent_dropout=0.2, name="lstm_bwd")(seq, initial_state=[h0, c0])
    b = L.GRU(3, reset_after=False, activation="relu", recurrent_activation="hard_sigmoid", name="gru_v1")(seq)
    c, cs = L.SimpleRNN(5, return_state=True, unroll=True, activation="elu", use_bias=False, name="srnn")(seq)
    d = L.GRU(3, return_sequences=True, go_backwards=True, unroll=True, name="gru_unrolled")(a)
    e = L.LSTM(2, activation="softsign", recurrent_activation="tanh", unit_forget_bias=False, name="lstm_act")(d)
    f = L.GRU(3, reset_after=False, use_bias=False, go_backwards=True, return_sequences=True, name="gru_nobias")(seq)
    acts = [("selu", "softplus"), ("swish", "relu6"), ("gelu", "hard_silu"), ("exponential", "hard_sigmoid"),
            ("leaky_relu", "mish"), ("celu", "hard_tanh"), ("linear", "softsign")]
    more = [L.GRU(2, activation=a1, recurrent_activation=a2, name=f"gru_{a1}_{a2}")(seq) for a1, a2 in acts]
    return k.Model([seq, h0, c0], [a, ah, ac, b, c, cs, d, e, f] + more, name="rnn_zoo")


def gate_activations_zoo():
    """The activations of a whole gate (softmax, log_softmax, sparsemax; glu on 2 units, whose one value
    Keras broadcasts), which Keras's cells apply to each gate's units separately: every cell kind, masked."""
    k = keras()
    L = k.layers
    seq = k.Input((6, 4), name="seq")
    m = L.Masking(mask_value=-1.0, name="pad")(seq)
    outs = [L.SimpleRNN(4, activation="softmax", return_sequences=True, name="srnn_softmax")(m),
            L.LSTM(2, activation="glu", recurrent_activation="sparsemax", name="lstm_glu")(m),
            L.GRU(3, activation="log_softmax", recurrent_activation="softmax", name="gru_softmax")(m),
            L.GRU(2, reset_after=False, activation="sparsemax", recurrent_activation="glu", name="gru_v1_glu")(seq)]
    return k.Model(seq, outs, name="gate_activations_zoo")


def gate_activations_wrapped_zoo():
    """The same activations in every other place a cell's options come from (interpreted only: the
    kernels are those of gate_activations_zoo)."""
    k = keras()
    L = k.layers
    seq = k.Input((6, 4), name="seq")
    clip = k.Input((3, 4, 4, 2), name="clip")
    m = L.Masking(mask_value=-1.0, name="pad")(seq)
    outs = [L.SimpleRNN(3, activation="log_softmax", go_backwards=True, name="srnn_log_softmax")(seq),
            L.SimpleRNN(5, activation="sparsemax", return_state=True, name="srnn_sparsemax")(m)[1],
            L.LSTM(4, activation="softmax", recurrent_activation="log_softmax", return_sequences=True,
                   name="lstm_softmax")(m),
            L.LSTM(2, recurrent_activation="glu", unroll=True, name="lstm_rglu")(m),
            L.GRU(2, activation="glu", recurrent_activation="sparsemax", name="gru_glu")(seq),
            L.GRU(3, reset_after=False, activation="softmax", recurrent_activation="log_softmax", name="gru_v1")(m),
            L.Bidirectional(L.LSTM(3, recurrent_activation="softmax", return_sequences=True), name="bi")(m),
            L.Bidirectional(L.GRU(2, activation="sparsemax"), backward_layer=L.GRU(
                2, activation="glu", go_backwards=True), merge_mode="mul", name="bi_back")(seq),
            L.RNN(L.SimpleRNNCell(3, activation="softmax"), name="rnn_cell")(m),
            L.RNN([L.GRUCell(3, recurrent_activation="sparsemax"), L.LSTMCell(2, activation="glu")],
                  return_sequences=True, name="stacked")(m),
            L.ConvLSTM2D(3, 3, activation="sparsemax", recurrent_activation="log_softmax", return_sequences=True,
                         name="clstm")(clip)]
    return k.Model([seq, clip], outs, name="gate_activations_wrapped_zoo")


def gate_inputs(b):
    x, clip = floats((b, 6, 4), (b, 3, 4, 4, 2), seed=b)
    return [padded(x, [6 - (i * 2) % 6 for i in range(b)], -1.0), clip]


def cells_zoo():
    """`RNN` over single cells and StackedRNNCells (states of every cell returned), masked by Masking."""
    k = keras()
    L = k.layers
    seq = k.Input((7, 3), name="seq")
    x = L.Masking(mask_value=-1.0, name="pad")(seq)
    s = L.RNN([L.LSTMCell(4), L.GRUCell(3, reset_after=False), L.SimpleRNNCell(2), L.LSTMCell(3)],
              return_sequences=True, return_state=True, name="stacked")(x)
    r = L.RNN(L.GRUCell(3), go_backwards=True, name="rnn_gru")(s[0])
    u = L.RNN([L.SimpleRNNCell(3), L.GRUCell(2)], unroll=True, return_sequences=True, name="stacked_unrolled")(x)
    return k.Model(seq, k.tree.flatten(s) + [r, u], name="cells_zoo")


def bidirectional_zoo():
    """Bidirectional in every merge mode, with a backward_layer, states, initial states and a mask."""
    k = keras()
    L = k.layers
    seq = k.Input((5, 3), name="seq")
    ids = k.Input((5,), dtype="int32", name="ids")
    outs = [L.Bidirectional(L.LSTM(3, return_sequences=True), merge_mode=m, name=f"bi_{m}")(seq)
            for m in ("concat", "sum", "mul", "ave")]
    outs += list(L.Bidirectional(L.GRU(2), merge_mode=None, name="bi_none")(seq))
    outs.append(L.Bidirectional(
        L.SimpleRNN(3, return_sequences=True),
        backward_layer=L.SimpleRNN(3, return_sequences=True, go_backwards=True, activation="relu", name="my_back"),
        name="bi_custom")(seq))
    outs += list(L.Bidirectional(L.LSTM(2, return_state=True), name="bi_state")(seq))
    h = [L.Dense(2, name=f"init_{i}")(L.Flatten()(seq)) for i in range(2)]
    outs.append(L.Bidirectional(L.GRU(2, return_sequences=True), name="bi_init")(seq, initial_state=h))
    emb = L.Embedding(10, 4, mask_zero=True, name="emb")(ids)
    outs.append(L.Bidirectional(L.LSTM(3, return_sequences=True), name="bi_masked_seq")(emb))
    outs.append(L.Bidirectional(L.GRU(3, unroll=True), merge_mode="sum", name="bi_masked_last")(emb))
    return k.Model([seq, ids], outs, name="bidirectional_zoo")


def mask_zoo():
    """Masks from Embedding(mask_zero) and Masking through Dense, TimeDistributed and merges, consumed by
    RNNs (masked steps keep the state and repeat the output), GlobalAveragePooling1D and attention; and
    a boolean mask tensor passed explicitly."""
    k = keras()
    L = k.layers
    ids = k.Input((8,), dtype="int32", name="ids")
    seq = k.Input((8, 3), name="seq")
    keep = k.Input((8,), dtype="bool", name="keep")
    e = L.Embedding(12, 4, mask_zero=True, name="emb")(ids)
    d = L.Dense(4, activation="tanh", name="dense")(e)
    a = L.LSTM(3, return_sequences=True, name="lstm_seq")(d)
    b = L.GRU(3, name="gru_last")(a)
    z = L.SimpleRNN(3, zero_output_for_mask=True, return_sequences=True, name="srnn_zero")(e)
    u = L.LSTM(2, unroll=True, return_sequences=True, name="lstm_unrolled")(e)
    t = L.TimeDistributed(L.Dense(2), name="td")(a)
    g = L.GlobalAveragePooling1D(name="gap")(t)
    m = L.Masking(mask_value=0.0, name="masking")(seq)
    cat = L.Concatenate(name="cat")([m, L.Dense(4, name="proj")(e)])
    c = L.GRU(2, name="gru_cat")(cat)
    s = L.Add(name="add")([L.Dense(3, name="p1")(m), L.Dense(3, name="p2")(e)])
    sg = L.GlobalAveragePooling1D(name="gap_add")(s)
    att = L.Attention(name="att")([d, e])
    # MultiHeadAttention masks its scores with the query's and value's masks (never recorded in the
    # config) and takes them off its inputs as it runs; the pooling reads the mask Keras recorded when
    # the model was built (the OR of the residual's inputs' masks)
    e2 = L.Embedding(12, 4, mask_zero=True, name="emb_mha")(ids)
    mha = L.MultiHeadAttention(2, 2, name="mha")(e2, e2)
    pooled = L.GlobalAveragePooling1D(name="gap_residual")(L.Add(name="residual")([e2, mha]))
    x = L.LSTM(3, name="lstm_explicit")(seq, mask=keep)
    return k.Model([ids, seq, keep], [a, b, z, u, t, g, c, sg, att, mha, pooled, x], name="mask_zoo")


def mask_inputs(b):
    x = padded(floats((b, 8, 3), seed=b)[0], [8 - (i * 3) % 8 for i in range(b)])
    keep = np.ones((b, 8), bool)
    keep[:, -2:] = False
    return [tokens(b, 8, 12), x, keep]


# ---------------------------------------------------------------------------------------------- inputs
def embedding_zoo():
    """Embeddings of integer inputs of several dtypes and of float inputs, and CategoryEncoding."""
    k = keras()
    L = k.layers
    i32 = k.Input((5,), dtype="int32", name="i32")
    i64 = k.Input((5,), dtype="int64", name="i64")
    u8 = k.Input((5,), dtype="uint8", name="u8")
    f32 = k.Input((5,), name="f32")
    i8, u16 = k.Input((5,), dtype="int8", name="i8"), k.Input((5,), dtype="uint16", name="u16")
    outs = [L.Embedding(9, 3, name=f"emb_{n}", mask_zero=(n in ("u8", "i8")))(x)
            for n, x in (("i32", i32), ("i64", i64), ("u8", u8), ("f32", f32), ("i8", i8), ("u16", u16))]
    outs.append(L.GRU(2, name="gru_u8")(outs[2]))
    outs += [L.CategoryEncoding(9, output_mode=m, name=f"cat_{m}")(i32) for m in ("multi_hot", "count")]
    outs.append(L.CategoryEncoding(9, output_mode="one_hot", name="cat_one_hot")(u8))
    outs.append(L.Dense(2, name="dense_of_ints")(i64))
    return k.Model([i32, i64, u8, f32, i8, u16], outs, name="embedding_zoo")


def embedding_inputs(b):
    x = tokens(b, 5, 9, seed=b)
    return [x, (x.astype(np.int64) + 1) % 9, x.astype(np.uint8), x.astype(np.float32), x.astype(np.int8),
            ((x + 2) % 9).astype(np.uint16)]


# ---------------------------------------------------------------------------------------------- wrappers
def time_distributed_zoo():
    """TimeDistributed around Dense, Conv2D and a nested model; ConvLSTM2D with its options (and
    activations of a whole gate)."""
    k = keras()
    L = k.layers
    fi = k.Input((6, 6, 2))
    frame = k.Model(fi, L.Dense(3, name="frame_dense")(L.Flatten()(L.Conv2D(2, 3, name="frame_conv")(fi))),
                    name="frame_model")
    clip = k.Input((3, 6, 6, 2), name="clip")
    a = L.TimeDistributed(L.Conv2D(4, 3, padding="same"), name="td_conv")(clip)
    b = L.TimeDistributed(frame, name="td_model")(clip)
    c = L.TimeDistributed(L.Dense(5), name="td_dense")(clip)
    d = L.ConvLSTM2D(3, 3, padding="same", return_sequences=True, name="clstm")(clip)
    e = L.ConvLSTM2D(2, (3, 2), strides=(2, 1), go_backwards=True, return_state=True, activation="log_softmax",
                     recurrent_activation="glu", name="clstm_state")(d)
    return k.Model(clip, [a, b, c, d] + list(e), name="time_distributed_zoo")


def attention_zoo():
    """Attention (dot and concat scores, scale, causal, scores returned), AdditiveAttention,
    MultiHeadAttention (attention mask, causal mask, sliding window, value_dim and output_shape, both of
    Keras's code paths) and EinsumDense."""
    k = keras()
    L = k.layers
    q, v = k.Input((5, 8), name="q"), k.Input((6, 8), name="v")
    am = k.Input((5, 6), name="attention_mask")
    outs = [*L.Attention(name="att")([q, v], return_attention_scores=True),
            L.Attention(use_scale=True, score_mode="concat", name="att_concat")([q, v, v], use_causal_mask=True),
            L.AdditiveAttention(name="add_att")([q, v]),
            L.AdditiveAttention(use_scale=False, name="add_att_noscale")([q, v, v]),
            L.MultiHeadAttention(2, 4, name="mha")(q, v, attention_mask=am),
            # dropout > 0 takes Keras's explicit-scores path (inference ignores the dropout itself)
            L.MultiHeadAttention(3, 2, value_dim=3, dropout=0.1, output_shape=(2, 3), name="mha_shapes")(
                q, q, use_causal_mask=True),
            L.MultiHeadAttention(2, 3, use_bias=False, sliding_window=2, name="mha_key")(q, v, key=v,
                                                                                      use_causal_mask=True),
            L.EinsumDense("abc,cde->abde", output_shape=(None, 2, 3), bias_axes="de", activation="relu",
                          name="einsum_3d")(q),
            L.EinsumDense("...b,bc->...c", output_shape=4, bias_axes="c", name="einsum_ellipsis")(q)]
    return k.Model([q, v, am], outs, name="attention_zoo")


def mha_axes_zoo(wide=False):
    """MultiHeadAttention over other attention_axes than time (inputs of rank 4 and 5, axes in any order,
    several at once, negative), with Keras masks, attention_mask and use_causal_mask where Keras can
    broadcast them, attention scores returned, and a query that may attend nothing (Keras's explicit
    path gives it zero weights). `wide`: the variants interpreted only (the kernels are the same)."""
    k = keras()
    L = k.layers
    x4, y4 = k.Input((3, 4, 6), name="x4"), k.Input((3, 5, 6), name="y4")
    sq, x5 = k.Input((4, 4, 6), name="sq"), k.Input((2, 3, 2, 4), name="x5")
    am = k.Input((3, 4, 5), name="am")
    ids = k.Input((5,), dtype="int32", name="ids")
    m4 = L.Masking(mask_value=-1.0, name="pad")(x4)
    if not wide:
        outs = [L.MultiHeadAttention(2, 3, attention_axes=2, name="mha_ax2")(m4, y4, attention_mask=am),
                *L.MultiHeadAttention(2, 2, attention_axes=(2, 1), value_dim=3, output_shape=(2, 2),
                                      name="mha_ax21")(x4, x4, return_attention_scores=True)]
    else:
        # (one Embedding each: Keras takes the masks off an MHA's inputs as it runs)
        e, e2 = (L.Embedding(9, 4, mask_zero=True, name=f"emb{i}")(ids) for i in range(2))
        outs = [L.MultiHeadAttention(2, 3, name="mha_default_axes")(x4, x4),
                L.MultiHeadAttention(2, 2, attention_axes=(1, 2), name="mha_ax12")(x4, x4),
                L.MultiHeadAttention(2, 2, attention_axes=(-2,), name="mha_neg")(m4, m4),
                L.MultiHeadAttention(2, 2, attention_axes=(2,), name="mha_causal")(sq, sq, use_causal_mask=True),
                L.MultiHeadAttention(3, 2, attention_axes=(1, 3), name="mha_5d")(x5, x5),
                L.MultiHeadAttention(2, 2, dropout=0.2, name="mha_explicit_masked")(e, e),
                *L.MultiHeadAttention(2, 2, name="mha_scores_masked")(e2, e2, return_attention_scores=True)]
        return k.Model([x4, sq, x5, ids], outs, name="mha_axes_zoo_wide")
    return k.Model([x4, y4, am], outs, name="mha_axes_zoo")


def mha_axes_inputs(b, wide=False):
    x4, y4, sq, x5 = floats((b, 3, 4, 6), (b, 3, 5, 6), (b, 4, 4, 6), (b, 2, 3, 2, 4), seed=b)
    x4[:, :, -1] = -1.0
    x4[0, 1] = -1.0
    am = (np.random.default_rng(b).random((b, 3, 4, 5)) > 0.4).astype(np.float32)
    return [x4, sq, x5, tokens(b, 5, 9, seed=b)] if wide else [x4, y4, am]


def test_mha_attention_axes_wide(tmp_path, cache_dir):
    model = randomize(mha_axes_zoo(wide=True))
    check_all_formats(model, tmp_path, cache_dir, inputs=lambda b: mha_axes_inputs(b, True), compile=False)


def attention_inputs(b):
    q, v = floats((b, 5, 8), (b, 6, 8), seed=b)
    am = (np.random.default_rng(b).random((b, 5, 6)) > 0.3).astype(np.float32)
    am[:, :, 0] = 1
    return [q, v, am]


ZOOS = {
    "rnn": (rnn_zoo, lambda b: floats((b, 6, 3), (b, 4), (b, 4), seed=b)),
    "gate_activations": (gate_activations_zoo, lambda b: gate_inputs(b)[:1]),
    "cells": (cells_zoo, lambda b: [padded(floats((b, 7, 3), seed=b)[0], [7 - (i * 2) % 7 for i in range(b)], -1.0)]),
    "bidirectional": (bidirectional_zoo, lambda b: floats((b, 5, 3), seed=b) + [tokens(b, 5, 10)]),
    "mask": (mask_zoo, mask_inputs),
    "embedding": (embedding_zoo, embedding_inputs),
    "time_distributed": (time_distributed_zoo, lambda b: floats((b, 3, 6, 6, 2), seed=b)),
    "attention": (attention_zoo, attention_inputs),
    "mha_axes": (mha_axes_zoo, mha_axes_inputs),
}


@pytest.mark.parametrize("name", list(ZOOS))
def test_sequence_layers(name, tmp_path, cache_dir):
    build, inputs = ZOOS[name]
    model = randomize(build())
    check_all_formats(model, tmp_path, cache_dir, batches=(1, 3), inputs=inputs)


def test_gate_activations_everywhere(tmp_path, cache_dir):
    model = randomize(gate_activations_wrapped_zoo())
    check_all_formats(model, tmp_path, cache_dir, inputs=gate_inputs, compile=False)


def options_zoo():
    """Options whose kernels the compiled zoos cover, interpreted in all formats: initial states of GRU
    and SimpleRNN, Bidirectional over RNN(StackedRNNCells) and RNN(cell), ConvLSTM2D's dilation,
    strides, unroll, channels_first and initial states, TimeDistributed over recurrent layers, a
    Bidirectional and a nested model with one, and integer inputs of every width."""
    k = keras()
    L = k.layers
    seq, h4, h3 = k.Input((5, 3), name="seq"), k.Input((4,), name="h4"), k.Input((3,), name="h3")
    clip, cf = k.Input((3, 7, 6, 2), name="clip"), k.Input((3, 2, 6, 5), name="cf")
    s0, s1 = k.Input((7, 6, 2), name="s0"), k.Input((7, 6, 2), name="s1")
    frames = k.Input((2, 5, 3), name="frames")
    dtypes = ("int8", "uint8", "int16", "uint16", "int32", "int64")
    ids = [k.Input((5,), dtype=d, name=d) for d in dtypes]
    x = L.Masking(mask_value=-1.0, name="pad")(seq)
    outs = [L.GRU(4, return_sequences=True, name="gru_init")(seq, initial_state=[h4]),
            L.SimpleRNN(3, go_backwards=True, name="srnn_init")(seq, initial_state=h3),
            L.GRU(4, reset_after=False, unroll=True, name="gru_v1_init")(x, initial_state=[h4]),
            L.Bidirectional(L.RNN([L.LSTMCell(3), L.GRUCell(2)], return_sequences=True), name="bi_stacked")(x),
            L.Bidirectional(L.RNN(L.SimpleRNNCell(2)), merge_mode="ave", name="bi_cell")(x),
            L.ConvLSTM2D(2, 3, dilation_rate=2, padding="same", return_sequences=True, name="clstm_dilated")(clip),
            L.ConvLSTM2D(3, (2, 3), strides=2, unroll=True, use_bias=False, name="clstm_strided")(clip),
            *L.ConvLSTM2D(2, 3, data_format="channels_first", padding="same", return_sequences=True,
                          return_state=True, name="clstm_cf")(cf),
            L.ConvLSTM2D(2, 3, padding="same", name="clstm_init")(clip, initial_state=[s0, s1]),
            L.TimeDistributed(L.LSTM(4), name="td_lstm")(frames),
            L.TimeDistributed(L.Bidirectional(L.GRU(2, return_sequences=True)), name="td_bi")(frames),
            L.TimeDistributed(k.Sequential([k.Input((5, 3)), L.SimpleRNN(3), L.Dense(2)], name="rnn_model"),
                              name="td_model")(frames)]
    outs += [L.Embedding(9, 3, mask_zero=True, name=f"emb_{i.name}")(i) for i in ids]
    outs += [L.CategoryEncoding(9, output_mode="count", name=f"count_{i.name}")(i) for i in ids]
    return k.Model([seq, h4, h3, clip, cf, s0, s1, frames] + ids, outs, name="options_zoo")


def options_inputs(b):
    seq, h4, h3, clip, cf, s0, s1, frames = floats((b, 5, 3), (b, 4), (b, 3), (b, 3, 7, 6, 2), (b, 3, 2, 6, 5),
                                                   (b, 7, 6, 2), (b, 7, 6, 2), (b, 2, 5, 3), seed=b)
    ids = tokens(b, 5, 9, seed=b)
    return [padded(seq, [5 - i % 5 for i in range(b)], -1.0), h4, h3, clip, cf, s0, s1, frames] + \
        [ids.astype(d) for d in ("int8", "uint8", "int16", "uint16", "int32", "int64")]


def test_sequence_options(tmp_path, cache_dir):
    check_all_formats(randomize(options_zoo()), tmp_path, cache_dir, inputs=options_inputs, compile=False)


def _edited_config(tmp_path, build, edit):
    """A model's JSON + weights files with its config edited as no Keras would write it."""
    import json
    model = build()
    arch, weights = save(model, tmp_path, "json")
    cfg = json.loads(open(arch).read())
    edit(cfg["config"]["layers"])
    open(arch, "w").write(json.dumps(cfg))
    return arch, weights


@pytest.mark.parametrize("case", ["glu_units", "attention_axes"])
def test_sequence_config_errors_name_the_layer(case, tmp_path, cache_dir):
    """Options Keras itself cannot run are refused with an error naming the layer."""
    k = keras()
    L = k.layers

    def build():
        x = k.Input((4, 6), name="x")
        y = L.LSTM(4, name="the_lstm")(x) if case == "glu_units" else L.MultiHeadAttention(2, 2, name="the_mha")(x, x)
        return k.Model(x, y)

    def edit(layers):
        for layer in layers:
            if layer["class_name"] == "LSTM":
                layer["config"]["recurrent_activation"] = "glu"
            if layer["class_name"] == "MultiHeadAttention":
                layer["config"]["attention_axes"] = [2]
    files = _edited_config(tmp_path, build, edit)
    with pytest.raises(kerasjit.errors.UnsupportedLayerError, match="the_lstm.*glu|the_mha.*attention_axes"):
        kerasjit.compile(*files, cache_dir=cache_dir)


# ---------------------------------------------------------------------------------------------- state
def test_stateful_rnns_keep_state_across_calls(tmp_path, cache_dir):
    """stateful=True: states carry over from one predict to the next until reset_states(), as in Keras;
    the batch is the one the states were made for."""
    k = keras()
    L = k.layers
    seq = k.Input(batch_shape=(2, 5, 3), name="seq")
    a = L.LSTM(4, stateful=True, return_sequences=True, name="lstm")(seq)
    b = L.GRU(3, stateful=True, name="gru")(a)
    c = L.Bidirectional(L.SimpleRNN(2, stateful=True), name="bi")(seq)
    model = randomize(k.Model(seq, [b, c], name="stateful"))
    xs = floats((2, 5, 3), (2, 5, 3), (2, 5, 3), seed=4)

    def reset_keras():
        for layer in model.layers:
            if getattr(layer, "stateful", False):
                layer.reset_state()
    for fmt in ("keras", "h5", "json"):
        cm = kerasjit.compile(*save(model, tmp_path / fmt, fmt), cache_dir=cache_dir)
        assert cm.stateful
        reset_keras()
        for i, x in enumerate(xs):
            if i == 2:
                reset_keras()
                cm.reset_states()
            assert_matches(cm.predict(x), keras_predict(model, x), f"stateful [{fmt}] call {i}")
        with pytest.raises(kerasjit.errors.InputError, match="stateful"):
            cm.predict(xs[0][:1])
        cm.reset_states()
        assert cm.predict(xs[0][:1])[0].shape == (1, 3)


# ---------------------------------------------------------------------------------------------- Keras 2
def test_keras2_recurrent_model(cache_dir):
    """An LSTM and a Bidirectional GRU written by tf.keras 2.21 (GRU reset_after, weights named
    "bigru/forward_gru/gru_cell/kernel:0"), against tf.keras's own outputs: the full .h5 compiled, the
    other files lowered to its graph and interpreted."""
    from pathlib import Path
    from kerasjit.compiler.interpret import interpret
    from layer_check import graph_of
    fixtures = Path(__file__).parent / "fixtures" / "keras2"
    ref = np.load(fixtures / "rnn.npz")
    cm = kerasjit.compile(fixtures / "rnn.h5", cache_dir=cache_dir, self_test=False)
    assert_matches(cm.predict(ref["x"]), [ref["y"]], "keras2 rnn [h5]")
    base = graph_of((fixtures / "rnn.h5",))
    for files in (("rnn.json", "rnn_weights.h5"), ("rnn.keras",)):
        g = graph_of(tuple(fixtures / f for f in files))
        assert str(g) == str(base), files
        assert_matches(interpret(g, [ref["x"]]), [ref["y"]], f"keras2 rnn {files} [interpreted]")


def test_bidirectional_directions_run_together(tmp_path, cache_dir):
    """The two directions of every Bidirectional layer, and other recurrences that do not read each
    other, run at once in one parallel region (cpu_seq `group_recurrences`, `emit_rnn_group`); a
    recurrence that reads another's sequence never runs with it; nothing that one member of a run
    writes (its output, its scratch) shares memory with anything another member reads or writes;
    Keras's numbers at 1 and 2 threads; the profile still names each node. A recurrence alone
    (first, chained) splits its batch rows into one block per thread (`emit_rnn`): uneven blocks
    at batch 3 and 5."""
    import re

    import numba
    from kerasjit.compiler.codegen.cpu import CpuCodegen
    from kerasjit.compiler.ir import Op
    from kerasjit.runtime.profile import profile
    from layer_check import graph_of

    k = keras()
    L = k.layers
    seq = k.Input((6, 3), name="seq")
    a = L.Bidirectional(L.LSTM(4, return_sequences=True), name="bi_lstm")(seq)
    b = L.Bidirectional(L.GRU(3), merge_mode="sum", name="bi_gru")(a)        # reads both of bi_lstm
    c = L.LSTM(2, name="chained")(L.SimpleRNN(3, return_sequences=True, name="first")(seq))
    model = randomize(k.Model(seq, [b, c], name="bi_runs"))
    path, _ = save(model, tmp_path, "keras")

    cg = CpuCodegen(graph_of((path,)))
    g, values = cg.g, cg.g.values()
    runs = {tuple(r) for r in cg.rnn_groups.values()}
    producers = g.producers()
    layers = sorted(sorted(producers[o].layer.split("/")[0] for o in r) for r in runs)
    assert layers == [["bi_gru", "bi_gru"], ["bi_lstm", "bi_lstm"]], layers

    def blocks(n, writes_only):
        out = []
        for v in [n.out.name] + ([] if writes_only else [i for i in n.inputs if i in values]):
            kind, where = cg.plan.storage[cg.plan.root(v)]
            if kind == "arena":
                out.append((where, where + values[cg.plan.root(v)].per_sample()))
        if n.out.name in cg.plan.scratch:
            off, size = cg.plan.scratch[n.out.name]
            out.append((off, off + size))
        return out

    for run in runs:
        members = [producers[o] for o in run]
        for x in members:
            for y in members:
                if x is y:
                    continue
                assert x.op is Op.RNN and x.out.name not in y.inputs
                for lo, hi in blocks(x, True):
                    for lo2, hi2 in blocks(y, False):
                        assert hi <= lo2 or hi2 <= lo, f"{x.layer} and {y.layer} share arena [{lo}, {hi})"

    cm = kerasjit.compile(path, cache_dir=cache_dir)
    src = (cm.path / "model_gen.py").read_text()
    assert len(re.findall(r"^\s+_rnns\d+\(", src[:src.index("_profiled(")], re.M)) == 2
    assert len(re.findall(r"^\s+_rnnb\d+\(", src[:src.index("_profiled(")], re.M)) == 2
    before = numba.get_num_threads()
    try:
        for threads in (1, 2):
            numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
            for n in (1, 3, 5):
                x = floats((n, 6, 3), seed=n)[0]
                assert_matches(cm.predict(x), keras_predict(model, x), f"bi_runs threads={threads} batch={n}")
    finally:
        numba.set_num_threads(before)
    rows = profile(cm, floats((1, 6, 3), seed=1)[0], repeats=2)
    assert [r["layer"] for r in rows] == [n["layer"] for n in cm.manifest["nodes"]]
    assert {r["layer"] for r in rows if r["op"] == "rnn"} >= {"first", "chained"}
