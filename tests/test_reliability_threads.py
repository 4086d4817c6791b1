"""Concurrency: `predict` on one CompiledModel from many threads at once gives exactly the results of
sequential calls (mixed batch sizes, chunked and whole batches); a stateful model serializes its calls
(its states are one shared buffer that every call advances, as in Keras)."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import kerasjit
from kerasjit.errors import KerasJitError
from oracle import assert_matches, keras, keras_predict
from reliability_util import report, saved

THREADS = 16
CALLS_PER_THREAD = 60
BATCHES = (1, 2, 3, 5, 8, 13, 32, 0, 64)


@pytest.fixture(scope="module")
def conv(cache_dir):
    m, files = saved("conv")
    return kerasjit.compile(*files["keras"], cache_dir=cache_dir), m


def test_many_threads_mixed_batches_match_sequential_calls(conv):
    cm, m = conv
    rng = np.random.default_rng(0)
    inputs = [rng.standard_normal((BATCHES[i % len(BATCHES)], 9, 9, 3)).astype(np.float32) for i in range(48)]
    # a second model on the same artifact runs big batches in chunks (a small arena bound) at the same time
    chunked = kerasjit.load(cm.path)
    chunked.max_arena_bytes = 3 * 4 * chunked._arena_per_sample  # three rows per chunk
    models = (cm, chunked)
    expected = [[mod.predict(x) for x in inputs] for mod in models]
    assert_matches(expected[0][6], keras_predict(m, inputs[6]), "sequential reference")
    np.testing.assert_allclose(expected[1][6], expected[0][6], rtol=1e-5, atol=1e-5)
    start = threading.Barrier(THREADS)

    def worker(t: int) -> int:
        order = np.random.default_rng(100 + t).integers(0, len(inputs), CALLS_PER_THREAD)
        start.wait()
        wrong = 0
        for k, i in enumerate(order):
            which = (t + k) % 2
            y = models[which].predict(inputs[i])
            wrong += not np.array_equal(y, expected[which][i])
        return wrong

    with ThreadPoolExecutor(THREADS) as pool:
        wrong = sum(pool.map(worker, range(THREADS)))
    calls = THREADS * CALLS_PER_THREAD
    report("threads", threads=THREADS, calls=calls, distinct_inputs=len(inputs), batch_sizes=list(BATCHES),
           wrong_results=wrong)
    assert wrong == 0, f"{wrong} of {calls} concurrent calls differ from the sequential result"


def test_bad_inputs_from_threads_do_not_disturb_good_ones(conv):
    cm, _ = conv
    x = np.random.default_rng(1).standard_normal((4, 9, 9, 3)).astype(np.float32)
    want = cm.predict(x)

    def worker(t: int) -> tuple[int, int]:
        errors = wrong = 0
        for k in range(30):
            if (t + k) % 3 == 0:
                try:
                    cm.predict(np.zeros((2, 9, 9, 4)))
                except KerasJitError:
                    errors += 1
            else:
                wrong += not np.array_equal(cm.predict(x), want)
        return errors, wrong

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(worker, range(8)))
    assert sum(w for _, w in results) == 0
    assert sum(e for e, _ in results) == sum(sum((t + k) % 3 == 0 for k in range(30)) for t in range(8))


# ------------------------------------------------------------------ stateful models

@pytest.fixture(scope="module")
def stateful(tmp_path_factory, cache_dir):
    k = keras()
    L = k.layers
    x = k.Input(batch_shape=(2, 3, 4), name="x")
    m = k.Model(x, L.Dense(2, name="y")(L.LSTM(5, stateful=True, name="lstm")(x)), name="stateful")
    path = tmp_path_factory.mktemp("stateful") / "stateful.keras"
    m.save(path)
    try:
        cm = kerasjit.compile(path, cache_dir=cache_dir)
    except KerasJitError as e:
        pytest.skip(f"stateful RNNs do not compile in this build (issue 4): {e}")
    if not getattr(cm, "stateful", False):
        pytest.skip("this build does not keep recurrent states across calls (issue 4)")
    return cm, m


def test_stateful_model_serializes_concurrent_calls(stateful):
    """The rule: a stateful model's calls hold a per-model lock, so N concurrent calls are N whole
    steps in some order. With one input for all, step k's output depends only on k: the concurrent
    outputs are exactly the sequential outputs 1..N, each once, and the states end where N steps end."""
    cm, m = stateful
    x = np.random.default_rng(2).standard_normal((2, 3, 4)).astype(np.float32)
    n = 12
    cm.reset_states()
    sequential = [cm.predict(x) for _ in range(n + 1)]
    ref = [keras_predict(m, x)[0] for _ in range(3)]
    m.get_layer("lstm").reset_states()
    for k in range(3):
        assert_matches(sequential[k], ref[k], f"stateful step {k}")
    cm.reset_states()
    start = threading.Barrier(n)

    def step(_: int) -> np.ndarray:
        start.wait()
        return cm.predict(x)

    with ThreadPoolExecutor(n) as pool:
        outs = list(pool.map(step, range(n)))
    matched = sorted(next(k for k, s in enumerate(sequential[:n]) if np.array_equal(o, s)) for o in outs)
    assert matched == list(range(n)), matched
    assert np.array_equal(cm.predict(x), sequential[n]), "the states did not advance by exactly n steps"
    report("stateful threads", threads=n, calls=n + 1)


def test_stateful_model_refuses_another_batch_size(stateful):
    cm, _ = stateful
    cm.reset_states()
    cm.predict(np.zeros((2, 3, 4), np.float32))
    with pytest.raises(KerasJitError, match="reset_states"):
        cm.predict(np.zeros((3, 3, 4), np.float32))
    cm.reset_states()
