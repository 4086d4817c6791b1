"""Whole sequence models against Keras at batch 1 and 32, in all three file formats (layer_check): an
IMDB-style bidirectional LSTM, a stacked GRU/SimpleRNN tagger with a TimeDistributed head, a masked LSTM
over variable-length padded sequences, and a small transformer text classifier."""
import numpy as np

from benchmarks import models as zoo
from layer_check import check_all_formats
from oracle import keras
from seq_util import randomize, tokens

BATCHES = (1, 32)


def test_imdb_bidirectional_lstm(tmp_path, cache_dir):
    model = randomize(zoo.imdb_bilstm(keras()), scale=0.1)
    check_all_formats(model, tmp_path, cache_dir, batches=BATCHES, inputs=lambda b: [tokens(b, 200, 20000, seed=b)])


def test_stacked_gru_simple_rnn_tagger(tmp_path, cache_dir):
    k = keras()
    L = k.layers
    ids = k.Input((30,), dtype="int32", name="tokens")
    x = L.Embedding(1000, 32, mask_zero=True)(ids)
    x = L.GRU(32, return_sequences=True)(x)
    x = L.SimpleRNN(24, return_sequences=True)(x)
    x = L.Dropout(0.2)(x)
    tags = L.TimeDistributed(L.Dense(10))(x)  # logits
    model = randomize(k.Model(ids, tags, name="tagger"), scale=0.2)
    check_all_formats(model, tmp_path, cache_dir, batches=BATCHES, inputs=lambda b: [tokens(b, 30, 1000, seed=b)])


def test_masked_lstm_variable_length(tmp_path, cache_dir):
    k = keras()
    L = k.layers
    seq = k.Input((40, 8), name="frames")
    x = L.Masking(mask_value=0.0)(seq)
    x = L.LSTM(32, return_sequences=True)(x)
    x = L.LSTM(16)(x)
    model = randomize(k.Model(seq, L.Dense(5)(x), name="masked_lstm"), scale=0.2)

    def inputs(b):
        rng = np.random.default_rng(b)
        x = rng.standard_normal((b, 40, 8)).astype(np.float32)
        for i, n in enumerate(rng.integers(1, 41, b)):
            x[i, n:] = 0.0  # padding after each sequence's own length
        return [x]
    check_all_formats(model, tmp_path, cache_dir, batches=BATCHES, inputs=inputs)


def test_transformer_text_classifier(tmp_path, cache_dir):
    model = randomize(zoo.transformer_classifier(keras()), scale=0.2)

    def inputs(b):
        return [tokens(b, 200, 20000, seed=b), np.tile(np.arange(200, dtype=np.int32), (b, 1))]
    check_all_formats(model, tmp_path, cache_dir, batches=BATCHES, inputs=inputs)
