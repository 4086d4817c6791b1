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
    report("bad inputs from threads", threads=8, calls=8 * 30, bad_inputs=sum(e for e, _ in results))


# ------------------------------------------------------------------ stateful models

@pytest.fixture(scope="module")
def stateful(tmp_path_factory, cache_dir):
    k = keras()
    L = k.layers
    # long enough (1000 steps) that unserialized calls would overlap: `run` releases the GIL
    x = k.Input(batch_shape=(4, 1000, 16), name="x")
    m = k.Model(x, L.Dense(2, name="y")(L.LSTM(64, stateful=True, name="lstm")(x)), name="stateful")
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
    """The rule: a stateful model's calls hold a per-model lock, so N concurrent calls are N whole steps
    in some order. Each thread passes its own input; replaying the calls one at a time must find an
    order that gives every thread exactly its output, and the states must end where that order ends.
    (Without the lock, calls that overlap read half-updated states: this test then fails.)"""
    cm, m = stateful
    n = 10
    xs = [np.random.default_rng(10 + t).standard_normal((4, 1000, 16)).astype(np.float32) * 0.5 for t in range(n)]
    cm.reset_states()
    ref = [keras_predict(m, xs[k])[0] for k in range(2)]
    m.get_layer("lstm").reset_states()
    for k in range(2):
        assert_matches(cm.predict(xs[k]), [ref[k]], f"stateful step {k}")
    cm.reset_states()
    start = threading.Barrier(n)

    def step(t: int) -> np.ndarray:
        start.wait()
        return cm.predict(xs[t])

    with ThreadPoolExecutor(n) as pool:
        outs = list(pool.map(step, range(n)))
    replay, order = kerasjit.load(cm.path), []
    while len(order) < n:
        for t in (t for t in range(n) if t not in order):
            replay.reset_states()
            for u in order:
                replay.predict(xs[u])
            if np.array_equal(replay.predict(xs[t]), outs[t]):
                order.append(t)
                break
        else:
            pytest.fail(f"no serial order explains the concurrent outputs (found a prefix {order})")
    assert np.array_equal(cm.predict(xs[0]), replay.predict(xs[0])), "the states did not end where the calls did"
    report("stateful threads", threads=n, calls=n + 1, serial_order=order)


def test_stateful_model_refuses_another_batch_size(stateful):
    cm, _ = stateful
    cm.reset_states()
    cm.predict(np.zeros((4, 1000, 16), np.float32))
    with pytest.raises(KerasJitError, match="reset_states"):
        cm.predict(np.zeros((3, 1000, 16), np.float32))
    cm.reset_states()
