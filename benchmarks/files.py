"""Where the prepared files of one model live, and the numbers every engine is checked against.

`<out>/models/<name>/` holds:
  model.keras         Keras 3 save (what kerasjit and the JAX peer load)
  weights.npz         the same weights by layer index (see weights.export_layers)
  model.h5            the tf.keras build with those weights (TensorFlow peer)
  model.onnx          tf2onnx conversion of model.h5 (ONNX Runtime peer)
  verify_inputs.npz   a fixed input batch, `x0`, `x1`, ... in model input order
  reference.npz       Keras 3 (JAX backend, eager) output on it: the oracle, `y`
  prep_keras3.json, prep_tf.json   what the preparation steps did and how long it took
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .models import ModelInfo, get

__all__ = ["PreparedModel", "tolerance", "compare"]

VERIFY_BATCH = 2
SEED_WEIGHTS, SEED_VERIFY, SEED_CALIBRATION, SEED_BENCH = 0, 1, 2, 3


@dataclass(frozen=True)
class PreparedModel:
    """The files of one prepared model (see the module docstring)."""

    name: str
    dir: Path

    @property
    def info(self) -> ModelInfo:
        return get(self.name)

    @property
    def keras_path(self) -> Path:
        return self.dir / "model.keras"

    @property
    def h5_path(self) -> Path:
        return self.dir / "model.h5"

    @property
    def onnx_path(self) -> Path:
        return self.dir / "model.onnx"

    def verify_inputs(self) -> list[np.ndarray]:
        with np.load(self.dir / "verify_inputs.npz") as f:
            return [f[f"x{i}"] for i in range(len(f.files))]

    def reference(self) -> np.ndarray:
        with np.load(self.dir / "reference.npz") as f:
            return f["y"]

    def prep(self, step: str) -> dict[str, Any]:
        """The JSON record of preparation `step` ("keras3" or "tf"), `{}` when it did not run."""
        p = self.dir / f"prep_{step}.json"
        return json.loads(p.read_text()) if p.exists() else {}


def tolerance(reference: np.ndarray) -> float:
    """design.md's bound: `1e-4 * max(1, max|keras|)`."""
    return 1e-4 * max(1.0, float(np.max(np.abs(reference))) if reference.size else 1.0)


def compare(y: Any, reference: np.ndarray) -> dict[str, Any]:
    """Max abs difference of an engine's output against the reference, and whether it is in tolerance."""
    y = np.asarray(y, dtype=np.float64)
    if y.shape != reference.shape:
        return {"ok": False, "max_abs_diff": None, "error": f"shape {y.shape} != reference {reference.shape}"}
    diff = float(np.max(np.abs(y - reference))) if y.size else 0.0
    tol = tolerance(reference)
    return {"ok": bool(diff <= tol), "max_abs_diff": diff, "tolerance": tol,
            "reference_max_abs": float(np.max(np.abs(reference))) if reference.size else 0.0}
