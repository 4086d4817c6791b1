"""The artifact cache: a second process finds the compiled model and compiles nothing."""
import json
import subprocess
import sys
import textwrap

import numpy as np

import kerasjit
from oracle import assert_matches, keras, keras_predict, randomize_batchnorm, save
from test_layers import conv_zoo
import pytest

# one xdist worker runs this module (the same models in one worker: later tests reuse the compiled code)
pytestmark = pytest.mark.xdist_group("cache")

CHILD = textwrap.dedent("""
    import json, sys, time
    t0 = time.perf_counter()
    import numpy as np
    import kerasjit
    model, weights, cache, xfile = sys.argv[1:5]
    cm = kerasjit.compile(model, weights if weights != "-" else None, cache_dir=cache)
    t1 = time.perf_counter()
    x = np.load(xfile)
    ys = cm.predict(x)
    ys = ys if isinstance(ys, list) else [ys]
    t2 = time.perf_counter()
    np.savez(xfile + ".out.npz", *ys)
    stats = cm._run.stats
    print(json.dumps({"compile_s": t1 - t0, "first_predict_s": t2 - t1,
                      "compiler_imported": any(m.startswith("kerasjit.compiler") for m in sys.modules),
                      "keras_imported": "keras" in sys.modules,
                      "cache_hits": sum(stats.cache_hits.values()), "cache_misses": sum(stats.cache_misses.values()),
                      "signatures": len(cm._run.signatures)}))
""")


def small_convnet():
    """Conv + BatchNormalization + pooling + Dense: the cache's tests need a model, not many layers
    (conv_zoo's many emitters are what test_generated_code_is_cacheable compiles)."""
    k = keras()
    L = k.layers
    inp = k.Input((9, 8, 3), name="image")
    x = L.Conv2D(4, 3, padding="same", name="conv")(inp)
    x = L.BatchNormalization(name="bn")(x)
    x = L.ReLU(name="relu")(x)
    x = L.MaxPooling2D(name="pool")(x)
    out = L.Dense(5, name="logits")(L.Flatten(name="flat")(x))
    m = k.Model(inp, out, name="small_convnet")
    randomize_batchnorm(m)
    return m


def _child(args, tmp_path):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    out = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_second_process_loads_without_compiling(tmp_path):
    m = small_convnet()
    model_path, _ = save(m, tmp_path / "m", "keras")
    cache = tmp_path / "cache"
    kerasjit.compile(model_path, cache_dir=cache)  # cold: compiles and fills numba's cache in the artifact
    x = np.random.default_rng(0).standard_normal((2, 9, 8, 3)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    info = _child([model_path, "-", str(cache), str(tmp_path / "x.npy")], tmp_path)
    assert not info["compiler_imported"], "a cached compile imported the compiler"
    assert not info["keras_imported"]
    assert info["cache_misses"] == 0 and info["cache_hits"] >= 1, info
    ours = list(np.load(str(tmp_path / "x.npy") + ".out.npz").values())
    assert_matches(ours, keras_predict(m, x), "fresh process")


def test_saved_artifact_loads_in_fresh_process(tmp_path, cache_dir):
    m = conv_zoo()
    cm = kerasjit.compile(*save(m, tmp_path / "m", "h5"), cache_dir=cache_dir)
    dest = cm.save(tmp_path / "model.kjit")
    cm2 = kerasjit.load(dest)
    x = np.random.default_rng(1).standard_normal((3, 17, 15, 6)).astype(np.float32)
    assert_matches(cm2.predict(x), keras_predict(m, x), "loaded artifact")
    code = ("import sys, numpy as np, kerasjit; cm = kerasjit.load(sys.argv[1]); cm.predict(np.zeros((1, 17, 15, 6), "
            "np.float32)); s = cm._run.stats; print(sum(s.cache_misses.values()), sum(s.cache_hits.values()))")
    out = subprocess.run([sys.executable, "-c", code, str(dest)], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    misses, hits = map(int, out.stdout.split())
    assert misses == 0 and hits >= 1


def test_changed_weights_give_a_new_artifact(tmp_path, cache_dir):
    m = conv_zoo()
    p1, _ = save(m, tmp_path / "a", "keras")
    cm1 = kerasjit.compile(p1, cache_dir=cache_dir)
    w = m.get_layer("logits").get_weights()
    m.get_layer("logits").set_weights([w[0] * 2, w[1]])
    p2, _ = save(m, tmp_path / "b", "keras")
    cm2 = kerasjit.compile(p2, cache_dir=cache_dir)
    assert cm1.path != cm2.path
    x = np.random.default_rng(2).standard_normal((2, 17, 15, 6)).astype(np.float32)
    assert_matches(cm2.predict(x), keras_predict(m, x), "recompiled")


def test_generated_code_is_cacheable(tmp_path):
    """numba refuses to cache a function that uses dynamic globals (it only warns); then every
    process would recompile. The warm-up compile must not warn about caching."""
    import warnings
    m = conv_zoo()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        kerasjit.compile(save(m, tmp_path, "json")[0], str(tmp_path / "model.weights.h5"), cache_dir=tmp_path / "c")
    bad = [w for w in caught if "Cannot cache" in str(w.message)]
    assert not bad, [str(w.message) for w in bad]


def test_same_architecture_other_weights_reuses_the_compiled_code(tmp_path):
    """A retrained model (same layers, new weights) is a new artifact whose generated code numba already
    compiled: its cache is taken from the first artifact, and each gives its own weights' numbers."""
    m = small_convnet()
    x = np.random.default_rng(1).standard_normal((3, 9, 8, 3)).astype(np.float32)
    cache = tmp_path / "cache"
    first = kerasjit.compile(save(m, tmp_path / "a", "keras")[0], cache_dir=cache, self_test=False)
    want_first = keras_predict(m, x)
    m.set_weights([w * 1.5 + 0.01 for w in m.get_weights()])  # variances stay positive
    second = kerasjit.compile(save(m, tmp_path / "b", "keras")[0], cache_dir=cache, self_test=False)
    assert second.path != first.path
    stats = second._run.stats
    assert sum(stats.cache_misses.values()) == 0 and sum(stats.cache_hits.values()) >= 1, stats
    assert_matches(second.predict(x), keras_predict(m, x), "retrained weights")
    assert_matches(first.predict(x), want_first, "first weights, after the second model loaded")
    # the reused cache is sealed into the second artifact: it verifies and loads on its own
    again = kerasjit.load(second.path)
    assert_matches(again.predict(x), keras_predict(m, x), "reloaded")
