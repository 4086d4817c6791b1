"""`predict` inputs: every bad input is an `InputError` that says what was expected (shapes with the
batch dimension); every input Keras accepts gives Keras's numbers (float64 and integers cast as Keras
casts them, any memory layout); inputs are never modified; a very large batch runs in chunks within
a memory bound."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import kerasjit
from kerasjit.errors import InputError
from kerasjit.runtime.inputs import CACHE_CHUNK_BYTES, arena_limit_bytes, batch_chunks, cache_limit_bytes
from oracle import assert_matches, keras, keras_predict
from reliability_util import report, saved

COUNTS = {"bad_inputs": 0, "accepted_inputs": 0}


@pytest.fixture(scope="module", autouse=True)
def _report_counts():
    yield
    report("predict inputs", **COUNTS)


@pytest.fixture(scope="module")
def flat(cache_dir):
    m, files = saved("flat")
    return kerasjit.compile(*files["keras"], cache_dir=cache_dir), m


@pytest.fixture(scope="module")
def wide(cache_dir):
    m, files = saved("wide")
    return kerasjit.compile(*files["keras"], cache_dir=cache_dir), m


@pytest.fixture(scope="module")
def two_inputs(tmp_path_factory, cache_dir):
    """Inputs 'a' (3,) and 'b' (2, 2); the first layers are a ReLU and an Add of an input with itself,
    the ops a memory planner could be tempted to run in place on an input buffer."""
    k = keras()
    L = k.layers
    a, b = k.Input((3,), name="a"), k.Input((2, 2), name="b")
    ra = L.ReLU(name="ra")(a)
    bb = L.Flatten(name="flat")(L.Add(name="bb")([b, b]))
    m = k.Model([a, b], [L.Dense(2, name="y")(L.Concatenate(name="cat")([ra, bb])), ra], name="two")
    path = tmp_path_factory.mktemp("two") / "two.keras"
    m.save(path)
    return kerasjit.compile(path, cache_dir=cache_dir), m


def _bad(cm, x, *fragments: str) -> None:
    COUNTS["bad_inputs"] += 1
    with pytest.raises(InputError) as info:
        cm.predict(x)
    for frag in fragments:
        assert frag in str(info.value), f"{frag!r} not in: {info.value}"


def test_wrong_shapes_name_the_expected_shape(flat):
    cm, _ = flat
    want = "expected shape (batch, 5, 4, 3)"
    for x in (np.zeros((5, 4, 3)), np.zeros((2, 5, 4)), np.zeros((2, 5, 4, 3, 1)), np.zeros((2, 5, 3, 3)),
              np.zeros((2, 3, 5, 4)), np.float32(1.0), np.zeros((0,)), [], [[1.0, 2.0]]):
        _bad(cm, x, want, "'img'", "got (")


def test_wrong_number_and_names_of_inputs(two_inputs):
    cm, _ = two_inputs
    a, b = np.zeros((2, 3), np.float32), np.zeros((2, 2, 2), np.float32)
    _bad(cm, [a], "takes 2 input(s) ['a', 'b'], got 1")
    _bad(cm, [a, b, b], "takes 2 input(s)", "got 3")
    _bad(cm, (a,), "takes 2 input(s)")
    _bad(cm, a, "takes 2 input(s)")
    _bad(cm, {"a": a, "b": b, "c": a}, "inputs are ['a', 'b']", "unknown ['c']")
    _bad(cm, {"a": a}, "missing ['b']")
    _bad(cm, {"A": a, "b": b}, "unknown ['A']", "missing ['a']")
    _bad(cm, {}, "missing ['a', 'b']")
    _bad(cm, [a, b[:1]], "input 'b': batch 1 differs from the first input's 2")
    _bad(cm, [b, a], "input 'a': expected shape (batch, 3), got (2, 2, 2)")


@pytest.mark.parametrize("make", [
    lambda s: np.full(s, "x"), lambda s: np.empty(s, object), lambda s: np.zeros(s, np.complex64),
    lambda s: np.zeros(s, "datetime64[s]"), lambda s: np.zeros(s, "timedelta64[s]"),
    lambda s: np.zeros(s, [("f", np.float32)]), lambda s: np.zeros(s, "S4"), lambda s: None,
], ids=["str", "object", "complex", "datetime", "timedelta", "structured", "bytes", "None"])
def test_non_numeric_inputs(flat, make):
    cm, _ = flat
    _bad(cm, make((2, 5, 4, 3)), "'img'")


def test_ragged_input(flat):
    cm, _ = flat
    _bad(cm, [np.zeros((5, 4, 3)).tolist(), np.zeros((4, 4, 3)).tolist()], "'img'")


def _layouts(x: np.ndarray) -> dict[str, np.ndarray]:
    """The same values in many memory layouts and dtypes Keras accepts."""
    ro = x.copy()
    ro.flags.writeable = False
    big = np.zeros((x.shape[0] * 2,) + x.shape[1:], x.dtype)
    big[::2] = x
    return {
        "float32": x, "float64": x.astype(np.float64), "float16": x.astype(np.float16),
        "big-endian": x.astype(">f4"), "fortran": np.asfortranarray(x), "strided": big[::2],
        "reversed": np.ascontiguousarray(x[::-1])[::-1], "read-only": ro,
        "transposed-view": np.ascontiguousarray(np.moveaxis(x, -1, 0)).transpose(list(range(1, x.ndim)) + [0]),
        "list": x.tolist(),
    }


def test_layouts_and_float_dtypes_give_kerass_numbers(flat):
    cm, m = flat
    x = np.random.default_rng(0).standard_normal((5, 5, 4, 3)).astype(np.float32)
    ref = keras_predict(m, x)
    for name, v in _layouts(x).items():
        COUNTS["accepted_inputs"] += 1
        want = keras_predict(m, np.asarray(v, np.float32)) if name == "float16" else ref
        assert_matches(cm.predict(v), want, name)
    assert len(cm._run.signatures) == 1, "an input layout made numba compile another signature"


@pytest.mark.parametrize("dtype", ["int8", "uint8", "int16", "int32", "int64", "bool"])
def test_integer_inputs_are_cast_as_keras_casts_them(flat, dtype):
    cm, m = flat
    x = np.random.default_rng(1).integers(-3, 4, (3, 5, 4, 3)).astype(dtype)
    COUNTS["accepted_inputs"] += 1
    assert_matches(cm.predict(x), keras_predict(m, x), dtype)


def test_broadcast_view_input(flat):
    cm, m = flat
    row = np.random.default_rng(2).standard_normal((1, 5, 4, 3)).astype(np.float32)
    x = np.broadcast_to(row, (4, 5, 4, 3))  # zero stride on the batch axis, read-only
    COUNTS["accepted_inputs"] += 1
    assert_matches(cm.predict(x), keras_predict(m, np.array(x)), "broadcast view")


def test_inputs_are_never_modified(two_inputs):
    cm, m = two_inputs
    rng = np.random.default_rng(3)
    a = rng.standard_normal((4, 3)).astype(np.float32)  # exactly the model's dtype and layout: no copy
    b = rng.standard_normal((4, 2, 2)).astype(np.float32)
    for x in ([a, b], {"a": a, "b": b}, (a, b), [a.astype(np.float64), np.asfortranarray(b)]):
        before = [np.array(v, copy=True) for v in (x.values() if isinstance(x, dict) else x)]
        COUNTS["accepted_inputs"] += 1
        ys = cm.predict(x)
        after = list(x.values()) if isinstance(x, dict) else list(x)
        assert all(np.array_equal(u, v) and u.dtype == v.dtype for u, v in zip(before, after))
        assert_matches(ys, keras_predict(m, [a, b]), "two inputs")
        assert not any(np.shares_memory(y, v) for y in ys for v in after)


def test_batch_zero(two_inputs, flat):
    cm, _ = two_inputs
    COUNTS["accepted_inputs"] += 2
    ys = cm.predict([np.zeros((0, 3), np.float32), np.zeros((0, 2, 2), np.float32)])
    assert [y.shape for y in ys] == [(0, 2), (0, 3)] and all(y.dtype == np.float32 for y in ys)
    assert flat[0].predict(np.zeros((0, 5, 4, 3), np.float64)).shape == (0, 3)


# ------------------------------------------------------------------ large batches

def test_batch_chunks_cover_every_row_within_the_bound():
    for n, per, limit in [(1, 10, 1), (10, 10, 40), (10, 10, 400), (1000, 7, 1 << 10), (5, 1 << 20, 1 << 30),
                          (12345, 2100, 1 << 20)]:
        chunks = batch_chunks(n, per, limit)
        assert chunks[0][0] == 0 and chunks[-1][1] == n
        assert all(a[1] == b[0] for a, b in zip(chunks, chunks[1:]))
        assert all((hi - lo) * per * 4 <= limit or hi - lo == 1 for lo, hi in chunks)
    assert arena_limit_bytes() == 1 << 30 and arena_limit_bytes(4096) == 4096


def test_memory_bound_models_run_large_batches_in_cache_sized_chunks(wide):
    """A model with few FLOPs per byte of its arena (MobileNetV2: 90) runs a large batch in chunks of
    about CACHE_CHUNK_BYTES of arena; a compute-bound one (ResNet50: 482) whole; an artifact without
    a FLOP count whole."""
    assert cache_limit_bytes(1_705_984, 614_612_552) == CACHE_CHUNK_BYTES
    assert cache_limit_bytes(4_014_080, 7_740_000_000) is None
    assert cache_limit_bytes(1_705_984, None) is None
    cm, _ = wide
    flops = cm.manifest["flops_per_sample"]
    assert flops > 0
    assert cm._cache_limit == cache_limit_bytes(cm._arena_per_sample, flops)


def test_large_batch_runs_in_chunks_within_the_bound(wide):
    cm, m = wide
    cm = kerasjit.load(cm.path)  # a fresh model: no arena yet
    x = np.random.default_rng(4).standard_normal((3001, 8))
    bound = 1 << 20
    cm.max_arena_bytes = bound
    chunked = cm.predict(x)
    assert cm._local.arena.nbytes <= bound, "the arena grew past the bound"
    assert len(batch_chunks(3001, cm._arena_per_sample, bound)) > 10
    cm.max_arena_bytes = None
    whole = cm.predict(x)
    # chunks of other sizes are cut into other GEMM tiles (one row: BLAS's matrix-vector path): other
    # summation orders, so the project's tolerance relative to the outputs' size, not bit equality
    np.testing.assert_allclose(chunked, whole, rtol=0, atol=1e-5 * max(1.0, float(np.abs(whole).max())))
    assert_matches(chunked, keras_predict(m, x.astype(np.float32)), "chunked")
    COUNTS["accepted_inputs"] += 2


CHILD = textwrap.dedent("""
    import json, resource, sys
    import numpy as np
    import kerasjit
    cm = kerasjit.load(sys.argv[1])
    x = np.random.default_rng(0).standard_normal((int(sys.argv[2]), 8)).astype(np.float32)
    cm.predict(x[:10])
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    y = cm.predict(x)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    ok = bool(np.allclose(y[:7], cm.predict(x[:7]), rtol=1e-5, atol=1e-6))
    print(json.dumps({"peak_growth_kb": after - before, "arena_floats_per_sample": cm._arena_per_sample,
                      "rows": len(y), "ok": ok}))
""")


def test_very_large_batch_stays_within_memory(wide, tmp_path):
    """200,000 samples whose whole-batch arena would take 1.6 GB run within a 16 MiB arena bound: the
    process's peak memory grows by the inputs, outputs and one chunk's arena, not by the batch's arena
    (measured: 0 MiB over the peak of loading; 1.2 GiB with the bound lifted)."""
    cm, _ = wide
    n = 200_000
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    out = subprocess.run([sys.executable, str(script), str(cm.path), str(n)], capture_output=True, text=True,
                         timeout=300, env={**os.environ, "KERASJIT_MAX_ARENA_MB": "16"})
    assert out.returncode == 0, out.stderr[-3000:]
    info = json.loads(out.stdout.strip().splitlines()[-1])
    whole_arena_mb = n * info["arena_floats_per_sample"] * 4 / 2**20
    growth_mb = info["peak_growth_kb"] / 1024
    assert info["ok"] and info["rows"] == n
    assert whole_arena_mb > 1000, whole_arena_mb
    assert growth_mb < 150, f"peak memory grew by {growth_mb:.0f} MiB (whole-batch arena: {whole_arena_mb:.0f} MiB)"
    COUNTS["accepted_inputs"] += 1
    report("very large batch", rows=n, whole_batch_arena_mib=round(whole_arena_mb), peak_growth_mib=round(growth_mb, 1),
           bound_mib=16)
