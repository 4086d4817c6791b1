"""Random but non-trivial weights, and copying them between Keras 3 and tf.keras builds of one model.

Invariants:
- after `randomize`, no bias or BatchNormalization beta is all zeros and BatchNormalization moving
  statistics are neither the initial (0, 1) nor so far off that deep models blow up: they are the
  statistics of a calibration batch, then perturbed, so each engine's folding of them is exercised;
- `export_layers` / `import_layers` move weights by layer index (`model.layers` order), the order both
  builds share; class names and shapes are checked so a silent misalignment cannot happen.
"""
from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["randomize", "export_layers", "import_layers"]


def _is_batchnorm(layer: Any) -> bool:
    return type(layer).__name__ == "BatchNormalization"


def randomize(keras: Any, model: Any, calibration: list[np.ndarray], seed: int) -> None:
    """Give `model` non-trivial weights in place (see the module invariants).

    `calibration` is one input batch; BatchNormalization moving statistics become the batch statistics
    of their inputs on it (one training-mode call with momentum 0), times a random perturbation.
    """
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        ws = layer.get_weights()
        if not ws:
            continue
        if _is_batchnorm(layer):
            ws = _random_bn_affine(layer, ws, rng)
        else:
            # zero-initialised tensors (biases) get small values so that a dropped bias shows up
            ws = [w if w.dtype.kind != "f" or np.any(w) else (0.05 * rng.standard_normal(w.shape)).astype(w.dtype)
                  for w in ws]
        layer.set_weights(ws)

    bns = [layer for layer in model.layers if _is_batchnorm(layer)]
    if not bns:
        return
    saved = [bn.momentum for bn in bns]
    try:
        for bn in bns:
            bn.momentum = 0.0
        model(calibration if len(calibration) > 1 else calibration[0], training=True)
    finally:
        for bn, m in zip(bns, saved):
            bn.momentum = m
    for bn in bns:
        _perturb_bn_stats(bn, rng)


def _random_bn_affine(layer: Any, ws: list[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
    """gamma in [0.6, 1.4], beta ~ N(0, 0.1); moving statistics are left for the calibration."""
    names = [v.name.split("/")[-1].split(":")[0] for v in layer.weights]
    out = []
    for name, w in zip(names, ws):
        if name == "gamma":
            w = rng.uniform(0.6, 1.4, w.shape)
        elif name == "beta":
            w = 0.1 * rng.standard_normal(w.shape)
        out.append(np.asarray(w, dtype=np.float32))
    return out


def _perturb_bn_stats(layer: Any, rng: np.random.Generator) -> None:
    """Scale the variance by [0.7, 1.4] and shift the mean by 0.1 standard deviations at random."""
    names = [v.name.split("/")[-1].split(":")[0] for v in layer.weights]
    ws = dict(zip(names, layer.get_weights()))
    var = ws["moving_variance"]
    ws["moving_mean"] = ws["moving_mean"] + 0.1 * np.sqrt(var) * rng.standard_normal(var.shape)
    ws["moving_variance"] = var * rng.uniform(0.7, 1.4, var.shape) + 1e-3
    layer.set_weights([np.asarray(ws[n], dtype=np.float32) for n in names])


def export_layers(model: Any) -> dict[str, np.ndarray]:
    """Weights of `model` as an npz-ready map `"{layer:04d}/{weight:02d}" -> array`, plus class names."""
    out: dict[str, np.ndarray] = {}
    classes = []
    for i, layer in enumerate(model.layers):
        classes.append(type(layer).__name__)
        for j, w in enumerate(layer.get_weights()):
            out[f"{i:04d}/{j:02d}"] = w
    out["__classes__"] = np.array(classes)
    return out


def import_layers(model: Any, arrays: dict[str, np.ndarray]) -> None:
    """Set the weights exported by `export_layers` (from the other Keras) on `model`, layer by layer."""
    classes = [str(c) for c in arrays["__classes__"]]
    if len(classes) != len(model.layers):
        raise ValueError(f"layer count differs: source has {len(classes)}, target {len(model.layers)}")
    for i, layer in enumerate(model.layers):
        mine = type(layer).__name__
        if mine != classes[i]:
            raise ValueError(f"layer {i} ({layer.name}) is {mine}, source layer {i} is {classes[i]}")
        ws = [arrays[k] for k in sorted(k for k in arrays if k.startswith(f"{i:04d}/"))]
        current = layer.get_weights()
        if [w.shape for w in ws] != [w.shape for w in current]:
            raise ValueError(f"layer {i} ({layer.name}, {mine}): weight shapes "
                             f"{[w.shape for w in ws]} != {[w.shape for w in current]}")
        if ws:
            layer.set_weights(ws)
