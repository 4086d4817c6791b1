"""`kerasjit.compile(keras_model)` on live models (nested models, shared layers), the self-test it stores,
`check` on a live model, and prediction over a stream of batches."""
from __future__ import annotations

import numpy as np
import pytest

import kerasjit
from cli_fixtures import mnist  # noqa: F401  (fixture)
from kerasjit.runtime.batches import is_batch_stream
from kerasjit.runtime.selftest import read_self_test
from oracle import assert_matches, keras, keras_predict, randomize_batchnorm


def nested_shared_model():
    k = keras()
    inner = k.Sequential([k.Input((8,)), k.layers.Dense(6, activation="relu", name="d1"),
                          k.layers.Dense(4, name="d2")], name="inner")
    a, b = k.Input((8,), name="a"), k.Input((8,), name="b")
    shared = k.layers.Dense(8, activation="tanh", name="shared")
    z = k.layers.Add(name="add")([shared(a), shared(b)])
    z = k.layers.BatchNormalization(name="bn")(inner(z))
    m = k.Model([a, b], [k.layers.Dense(3, name="logits")(z), z], name="live_fn")
    randomize_batchnorm(m)
    return m


def test_live_model_with_nested_model_and_shared_layer(auto_self_test):
    cache_dir = auto_self_test
    m = nested_shared_model()
    cm = kerasjit.compile(m, cache_dir=cache_dir)
    rng = np.random.default_rng(3)
    xs = [rng.standard_normal((5, 8)).astype(np.float32) for _ in range(2)]
    assert_matches(cm.predict(xs), keras_predict(m, xs), "live model")
    assert_matches(cm.predict({"b": xs[1], "a": xs[0]}), keras_predict(m, xs), "live model, dict input")
    stored = read_self_test(cm.path)
    assert stored is not None and len(stored[0]) == 2 and len(stored[1]) == 2
    assert cm.manifest["self_test"]["source"].startswith("keras 3")
    assert kerasjit.compile(m, cache_dir=cache_dir).path == cm.path  # the same live model: cached

    from kerasjit.check import check_model
    report = check_model(m, compile_it=False)
    assert report.ok, report.verdict()
    paths = [r.path for r in report.layers]
    assert paths.count("shared") == 2 and "inner/d1" in paths and "inner" in paths


def test_self_test_options(mnist, monkeypatch, auto_self_test):
    cache_dir = auto_self_test
    x = mnist.x[:3]
    with pytest.raises(kerasjit.KerasJitError, match="test_output was given without test_input"):
        kerasjit.compile(mnist.dir / "model.keras", cache_dir=cache_dir, test_output=mnist.y)
    cm = kerasjit.compile(mnist.dir / "model.keras", cache_dir=cache_dir)
    xs, ys = read_self_test(cm.path)
    assert xs[0].shape == (2, 28, 28, 1)  # a random batch of 2, and Keras's outputs for it
    assert_matches([ys[0]], keras_predict(mnist.model, xs[0]), "stored reference")
    monkeypatch.setenv("KERASJIT_SELF_TEST", "0")
    # the cache key ignores where the reference came from: this reuses the artifact that has one
    assert kerasjit.compile(mnist.dir / "model.keras", cache_dir=cache_dir).path == cm.path
    with pytest.raises(kerasjit.KerasJitError, match="test_input lacks"):
        kerasjit.compile(mnist.dir / "model.keras", cache_dir=cache_dir, test_input={"other": x})


def test_predict_over_a_stream_of_batches(mnist, cache_dir):
    cm = kerasjit.compile(mnist.dir / "model.keras", cache_dir=cache_dir)
    x, y = mnist.x, mnist.y

    def batches():
        for i in range(0, len(x), 3):
            yield x[i:i + 3]

    out = cm.predict(batches())
    assert not isinstance(out, np.ndarray)  # a generator: nothing runs until it is consumed
    assert_matches([np.concatenate(list(out))], [y], "generator of batches")
    # Keras's generator convention: (x, y) tuples give their x
    pairs = iter([(x[:4], y[:4]), (x[4:], y[4:])])
    assert_matches([np.concatenate(list(cm.predict(pairs)))], [y], "(x, y) batches")
    got = list(cm.predict_iter([x[:5], x[5:]], progress=False))
    assert [g.shape for g in got] == [(5, 10), (3, 10)]
    # one batch is never a stream: arrays, lists, tuples, dicts
    for one in (x, [x], (x,), {"input_1": x}):
        assert not is_batch_stream(one)
    assert_matches(cm.predict({"input_1": x}), [y], "one batch as a dict")
    assert is_batch_stream(iter([x])) and is_batch_stream(b for b in [x])
