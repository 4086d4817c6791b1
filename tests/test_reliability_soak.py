"""Soak: thousands of predicts with mixed models, batch sizes, dtypes, layouts and bad inputs leave the
resident memory where the first few hundred left it (within a bound): no leak per call."""
from __future__ import annotations

import gc
import sys

import numpy as np
import pytest

import kerasjit
from kerasjit.errors import InputError
from reliability_util import report, rss_bytes, saved

WARM_UP = 300
CALLS = 4000
BOUND_MB = 32
BATCHES = (0, 1, 2, 3, 7, 16, 33, 64)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads resident memory from /proc")
def test_thousands_of_mixed_predicts_do_not_grow_memory(cache_dir):
    models = [kerasjit.compile(*saved(kind)[1]["keras"], cache_dir=cache_dir) for kind in ("conv", "functional")]
    rng = np.random.default_rng(0)

    def one_call(i: int) -> int:
        cm = models[i % 2]
        n = BATCHES[rng.integers(len(BATCHES))]
        shape = (n,) + tuple(cm.input_shapes[0][1:])
        x = rng.standard_normal(shape)
        kind = i % 5
        if kind == 0:
            x = x.astype(np.float32)
        elif kind == 1:
            x = np.asfortranarray(x)                # float64, not C-contiguous
        elif kind == 2:
            x = x.astype(np.float32)[::-1]          # negative stride
        elif kind == 3:
            x = {cm.input_names[0]: x.astype(np.int32)}
        else:
            try:
                cm.predict(np.zeros((n + 1,) + shape[1:-1] + (shape[-1] + 1,)))
            except InputError:
                return 1
            raise AssertionError("a bad input was accepted")
        y = cm.predict(x)
        assert y.shape == (n,) + tuple(cm.output_shapes[0][1:])
        return 0

    for i in range(WARM_UP):
        one_call(i)
    for cm in models:  # the largest batch once, so each thread-local arena has its final size
        cm.predict(np.zeros((max(BATCHES),) + tuple(cm.input_shapes[0][1:]), np.float32))
    gc.collect()
    start = rss_bytes()
    samples, bad = [], 0
    for i in range(CALLS):
        bad += one_call(i)
        if i % 500 == 499:
            gc.collect()
            samples.append(round((rss_bytes() - start) / 2**20, 2))
    growth = samples[-1]
    report("soak", calls=CALLS + WARM_UP, bad_inputs=bad, rss_at_start_mib=round(start / 2**20),
           rss_growth_mib=growth, samples_mib=samples, bound_mib=BOUND_MB)
    assert start > 0
    assert growth < BOUND_MB, f"resident memory grew by {growth} MiB over {CALLS} calls: {samples}"
