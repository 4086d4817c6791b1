"""The self-test an artifact carries, as frugally-deep's: a test input and the reference outputs (Keras's,
or the user's) for it, stored at compile time in `self_test.npz` and hashed in the manifest like every
other file. `load(path)` re-runs it and raises `SelfTestError` on a mismatch, so an artifact that
computes something else than the model it came from is never used quietly.

Layout of `self_test.npz`: `input_0`, `input_1`, ... in the model's input order and `output_0`, ... in
its output order. The tolerance is design.md's, per output: max|ours - ref| <= 1e-4 * max(1, max|ref|).
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from ..errors import SelfTestError

SELF_TEST = "self_test.npz"


def self_test_bytes(inputs: Sequence[np.ndarray], outputs: Sequence[np.ndarray]) -> bytes:
    """The content of `self_test.npz` for these inputs and reference outputs."""
    buf = io.BytesIO()
    arrays = {f"input_{i}": np.asarray(x) for i, x in enumerate(inputs)}
    arrays.update({f"output_{i}": np.asarray(y, dtype=np.float32) for i, y in enumerate(outputs)})
    np.savez(buf, **arrays)
    return buf.getvalue()


def read_self_test(path: Any) -> tuple[list[np.ndarray], list[np.ndarray]] | None:
    """(inputs, reference outputs) stored in the artifact at `path`, or None when it stores none."""
    from pathlib import Path
    p = Path(path) / SELF_TEST
    if not p.is_file():
        return None
    with np.load(p, allow_pickle=False) as d:
        xs = [d[f"input_{i}"] for i in range(sum(k.startswith("input_") for k in d.files))]
        ys = [d[f"output_{i}"] for i in range(sum(k.startswith("output_") for k in d.files))]
    return xs, ys


@dataclass
class SelfTestResult:
    """What a self-test found: per output, the error, the bound, and whether it passed."""

    errors: list[float]
    bounds: list[float]
    source: str

    @property
    def ok(self) -> bool:
        return all(e <= b for e, b in zip(self.errors, self.bounds))

    def __str__(self) -> str:
        parts = [f"output {i}: max error {e:.3g} (bound {b:.3g})" for i, (e, b) in enumerate(zip(self.errors, self.bounds))]
        return f"self-test against {self.source}: " + "; ".join(parts)


def max_error(ours: np.ndarray, ref: np.ndarray) -> tuple[float, float]:
    """(max |ours - ref|, design.md's bound 1e-4 * max(1, max|ref|)); inf for a shape mismatch or a NaN
    on one side only."""
    a = np.asarray(ours, dtype=np.float64)
    b = np.asarray(ref, dtype=np.float64)
    if a.shape != b.shape:
        return float("inf"), 0.0
    finite = np.abs(b[np.isfinite(b)])
    bound = 1e-4 * max(1.0, float(finite.max()) if finite.size else 1.0)
    if not a.size:
        return 0.0, bound
    same = (a == b) | (np.isnan(a) & np.isnan(b))  # NaN where the reference has NaN is agreement
    diff = np.where(same, 0.0, np.abs(a - b))
    return (float("inf") if np.isnan(diff).any() else float(diff.max())), bound


def run_self_test(cm: Any) -> SelfTestResult | None:
    """Run the artifact's stored test input through `cm` and compare with the stored outputs.

    Returns None when the artifact stores no self-test; raises `SelfTestError` on a mismatch. A stateful
    model starts and ends the test with zero states.
    """
    stored = read_self_test(cm.path)
    if stored is None:
        return None
    xs, refs = stored
    cm.reset_states()
    try:
        ys = cm.predict(xs if len(xs) > 1 else xs[0])
    finally:
        cm.reset_states()
    ys = ys if isinstance(ys, list) else [ys]
    source = cm.manifest.get("self_test", {}).get("source", "the stored reference")
    if len(ys) != len(refs):
        raise SelfTestError(f"{cm.path}: the model gives {len(ys)} outputs, the self-test stores {len(refs)}")
    errs, bounds = zip(*(max_error(np.asarray(y), r) for y, r in zip(ys, refs))) if ys else ((), ())
    result = SelfTestResult(list(errs), list(bounds), source)
    if not result.ok:
        bad = [f"{cm.output_names[i] if i < len(cm.output_names) else i!r}: max error {e:.3g} > {b:.3g}"
               for i, (e, b) in enumerate(zip(errs, bounds)) if not e <= b]
        raise SelfTestError(f"{cm.path}: model {cm.name!r} fails its self-test against {source} "
                            f"({', '.join(bad)}); the compiled code does not compute the model it came from")
    return result
