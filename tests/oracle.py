"""Helpers that compare kerasjit with real Keras: save in every format, compile, predict, compare."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

import kerasjit

FORMATS = ("keras", "h5", "json")


def keras():
    import keras as k
    return k


def randomize_batchnorm(model, seed: int = 0) -> None:
    """Give every BatchNormalization non-trivial statistics, so that a folding error shows."""
    k = keras()
    rng = np.random.default_rng(seed)
    for layer in _all_layers(model):
        if isinstance(layer, k.layers.BatchNormalization):
            new = []
            for w, v in zip(layer.weights, layer.get_weights()):
                name = w.path.rsplit("/", 1)[-1]
                if name in ("gamma", "moving_variance"):
                    new.append(rng.uniform(0.5, 1.5, v.shape).astype(v.dtype))
                else:
                    new.append((rng.standard_normal(v.shape) * 0.2).astype(v.dtype))
            layer.set_weights(new)


def _all_layers(model):
    for layer in model.layers:
        yield layer
        if hasattr(layer, "layers"):
            yield from _all_layers(layer)


def save(model, directory: Path, fmt: str) -> tuple[str, str | None]:
    """Save `model` as `fmt` ('keras', 'h5', 'json' = architecture JSON + weights HDF5)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if fmt == "keras":
        p = directory / "model.keras"
        model.save(p)
        return str(p), None
    if fmt == "h5":
        p = directory / "model.h5"
        model.save(p)
        return str(p), None
    if fmt == "json":
        j = directory / "model.json"
        j.write_text(model.to_json())
        w = directory / "model.weights.h5"
        model.save_weights(w)
        return str(j), str(w)
    raise ValueError(fmt)


def keras_predict(model, x):
    out = model(x, training=False)
    if isinstance(out, (list, tuple)):
        return [np.asarray(o) for o in out]
    if isinstance(out, dict):
        return [np.asarray(o) for o in out.values()]
    return [np.asarray(out)]


def assert_matches(ours, ref, what: str = "") -> float:
    """design.md's tolerance: max|ours - keras| <= 1e-4 * max(1, max|keras|), per output."""
    ours = ours if isinstance(ours, list) else [ours]
    assert len(ours) == len(ref), f"{what}: {len(ours)} outputs, Keras has {len(ref)}"
    worst = 0.0
    for i, (a, b) in enumerate(zip(ours, ref)):
        assert a.shape == b.shape, f"{what} output {i}: shape {a.shape}, Keras {b.shape}"
        err = float(np.max(np.abs(a.astype(np.float64) - b))) if a.size else 0.0
        bound = 1e-4 * max(1.0, float(np.max(np.abs(b))) if b.size else 1.0)
        assert err <= bound, f"{what} output {i}: max error {err:.3g} > {bound:.3g}"
        worst = max(worst, err)
    return worst


def random_input(shape, batch: int, seed: int = 1):
    return np.random.default_rng(seed).standard_normal((batch,) + tuple(shape)).astype(np.float32)


def check_model(model, tmp_path, cache_dir, formats=FORMATS, batches=(1, 3), inputs=None) -> dict:
    """Compile `model` from each format and compare with Keras at each batch size; return errors."""
    errs = {}
    for fmt in formats:
        paths = save(model, Path(tmp_path) / fmt, fmt)
        cm = kerasjit.compile(paths[0], paths[1], cache_dir=cache_dir)
        for b in batches:
            if inputs is None:
                xs = [random_input(i.shape[1:], b, seed=b + k) for k, i in enumerate(model.inputs)]
            else:
                xs = inputs(b)
            x = xs if len(xs) > 1 else xs[0]
            errs[(fmt, b)] = assert_matches(cm.predict(x), keras_predict(model, x), f"{model.name} [{fmt}, batch {b}]")
    return errs
