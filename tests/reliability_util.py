"""Shared pieces of the reliability tests (tests/test_reliability_*.py): small real models, their files,
resident memory, and the counts each test reports (`-s` shows them; $KERASJIT_RELIABILITY_REPORT, a
file path, collects them as JSON lines for the closing note of issue 8)."""
from __future__ import annotations

import atexit
import functools
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from oracle import keras


def small_functional(name: str = "fun"):
    """x(6) -> Dense a (relu), Dense b (tanh) -> Add -> ReLU -> Dense out(3): two branches whose refs a
    mutation can swap, a weightless layer, and weights of two shapes."""
    k = keras()
    L = k.layers
    x = k.Input((6,), name="x")
    a = L.Dense(5, activation="relu", name="a")(x)
    b = L.Dense(5, activation="tanh", name="b")(x)
    h = L.ReLU(name="act")(L.Add(name="add")([a, b]))
    m = k.Model(x, L.Dense(3, name="out")(h), name=name)
    _randomize(m, seed=7)
    return m


def flat_dense(name: str = "flat"):
    """(5, 4, 3) -> Flatten -> Dense(4, relu) -> Dense(3): a multi-dimensional input that is cheap to
    compile (the input tests need layouts, not convolutions)."""
    k = keras()
    L = k.layers
    x = k.Input((5, 4, 3), name="img")
    h = L.Dense(4, activation="relu", name="h")(L.Flatten(name="flatten")(x))
    m = k.Model(x, L.Dense(3, name="y")(h), name=name)
    _randomize(m, seed=11)
    return m


def small_conv(name: str = "conv"):
    """A small convnet with BatchNormalization (non-trivial statistics) and a residual add."""
    k = keras()
    L = k.layers
    x = k.Input((9, 9, 3), name="img")
    c = L.Conv2D(4, 3, padding="same", name="c1")(x)
    c = L.ReLU(name="r1")(L.BatchNormalization(name="bn")(c))
    c = L.Add(name="res")([c, L.Conv2D(4, 1, name="c2")(c)])
    g = L.GlobalAveragePooling2D(name="gap")(L.MaxPooling2D(2, name="pool")(c))
    m = k.Model(x, L.Dense(3, name="logits")(g), name=name)
    _randomize(m, seed=3)
    return m


def wide_dense(width: int = 2048, name: str = "wide"):
    """x(8) -> Dense(width, relu) -> Dense(1): a big arena per sample (the hidden layer) for a small input,
    the shape of model whose large batches must run in chunks."""
    k = keras()
    L = k.layers
    x = k.Input((8,), name="x")
    m = k.Model(x, L.Dense(1, name="y")(L.Dense(width, activation="relu", name="h")(x)), name=name)
    _randomize(m, seed=5)
    return m


def _randomize(model, seed: int) -> None:
    """Random weights everywhere (variances kept positive), so that an error shows."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if layer.weights:
            layer.set_weights([(rng.uniform(0.5, 1.5, w.shape) if "variance" in w.path else
                                rng.normal(0, 0.5, w.shape)).astype(np.float32) for w in layer.weights])


def save_all(model, d: Path) -> dict[str, tuple[str, ...]]:
    """The model in each file format: format -> `kerasjit.compile` arguments."""
    d = Path(d)
    d.mkdir(parents=True, exist_ok=True)
    model.save(d / "m.keras")
    model.save(d / "m.h5")
    (d / "m.json").write_text(model.to_json())
    model.save_weights(d / "m.weights.h5")
    return {"keras": (str(d / "m.keras"),), "h5": (str(d / "m.h5"),),
            "json": (str(d / "m.json"), str(d / "m.weights.h5"))}


BUILDERS = {"functional": small_functional, "flat": flat_dense, "conv": small_conv, "wide": wide_dense}


@functools.lru_cache(maxsize=None)
def saved(kind: str):
    """(Keras model, format -> compile arguments) of one of BUILDERS, built and saved once per process,
    so that test modules compiling it into the session's cache share one artifact."""
    d = Path(tempfile.mkdtemp(prefix=f"kjrel-{kind}-"))
    atexit.register(shutil.rmtree, d, ignore_errors=True)
    model = BUILDERS[kind]()
    return model, save_all(model, d)


def rss_bytes() -> int:
    """This process's resident set size now (Linux /proc; 0 where unavailable)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def report(what: str, **counts) -> None:
    """Print a test's counts (shown with -s) and append them to $KERASJIT_RELIABILITY_REPORT if set."""
    line = json.dumps({"test": what, **counts}, default=str)
    print(f"[reliability] {line}")
    path = os.environ.get("KERASJIT_RELIABILITY_REPORT")
    if path:
        with open(path, "a") as f:
            f.write(line + "\n")
