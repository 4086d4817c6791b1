"""`kerasjit bench`: one model, every engine this process can run, the same inputs, a small table.

Engines: kerasjit on the CPU; kerasjit on CUDA when a GPU (numba-cuda) is there; Keras itself when
installed (its configured backend; on JAX the model is a jitted `stateless_call`, as one serves it).
Each is warmed up, then timed per batch size for at least `min_repeats` calls and `seconds`; outputs
are compared with the first engine's. The benchmark suite (benchmarks/) is the place for careful
numbers; this is the quick look a user takes at their own model.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from .errors import KerasJitError
from .progress import Bar
from .reference import KerasUnavailable, import_keras, load_keras_model, max_error, random_inputs

Runner = Callable[[list[np.ndarray]], list[np.ndarray]]


@dataclass
class Timing:
    """One engine at one batch size."""

    engine: str
    batch: int
    median_s: float
    p90_s: float
    repeats: int
    max_error: float | None  # against the first engine's outputs; None for the first engine

    @property
    def samples_per_s(self) -> float:
        return self.batch / self.median_s if self.median_s else float("inf")


def _as_list(ys: Any) -> list[np.ndarray]:
    return [np.asarray(y) for y in ys] if isinstance(ys, (list, tuple)) else [np.asarray(ys)]


def engines(model: Any, weights: Any = None, metadata: Any = None, cache_dir: Any = None,
            include: Sequence[str] | None = None) -> tuple[list[tuple[str, Runner]], dict[str, str], Any]:
    """([(engine name, runner)], {engine: why it was skipped}, the kerasjit CPU model)."""
    from .api import compile as kj_compile
    found: list[tuple[str, Runner]] = []
    skipped: dict[str, str] = {}
    cm = kj_compile(model, weights, metadata=metadata, cache_dir=cache_dir, progress=False)

    def kj_runner(m: Any) -> Runner:
        return lambda xs: _as_list(m.predict(xs if len(xs) > 1 else xs[0]))
    found.append(("kerasjit-cpu", kj_runner(cm)))
    if include is None or "kerasjit-cuda" in include:
        from .runtime.cuda_device import simulated
        if simulated():
            skipped["kerasjit-cuda"] = "NUMBA_ENABLE_CUDASIM=1: numba's CUDA simulator is no GPU to time"
        else:
            try:
                gpu = kj_compile(model, weights, metadata=metadata, cache_dir=cache_dir, target="cuda",
                                 progress=False)
                found.append(("kerasjit-cuda", kj_runner(gpu)))
            except (KerasJitError, ImportError) as e:
                skipped["kerasjit-cuda"] = str(e).splitlines()[0][:120]
    if include is None or any(name.startswith("keras") and not name.startswith("kerasjit") for name in include):
        try:
            keras = import_keras()
            kmodel = load_keras_model(model, weights)
            found.append((f"keras-{keras.backend.backend()}", _keras_runner(keras, kmodel)))
        except KerasUnavailable as e:
            skipped["keras"] = str(e)[:120]
    if include is not None:
        found = [(n, r) for n, r in found if n in include or (n.startswith("keras-") and "keras" in include)]
    return found, skipped, cm


def _keras_runner(keras: Any, kmodel: Any) -> Runner:
    if keras.backend.backend() == "jax":
        import jax
        tv = [v.value for v in kmodel.trainable_variables]
        ntv = [v.value for v in kmodel.non_trainable_variables]
        fn = jax.jit(lambda tv, ntv, x: kmodel.stateless_call(tv, ntv, x, training=False)[0])
        return lambda xs: [np.asarray(y) for y in _flat(fn(tv, ntv, xs if len(xs) > 1 else xs[0]))]
    return lambda xs: [np.asarray(y) for y in _flat(kmodel(xs if len(xs) > 1 else xs[0], training=False))]


def _flat(out: Any) -> list:
    if isinstance(out, dict):
        return list(out.values())
    return list(out) if isinstance(out, (list, tuple)) else [out]


def run_bench(found: list[tuple[str, Runner]], shapes: Sequence[Sequence[int]], dtypes: Sequence[Any],
              batches: Sequence[int] = (1, 32), seconds: float = 1.0, min_repeats: int = 5, warmup: int = 2,
              progress: bool | None = None) -> list[Timing]:
    """Time every engine at every batch size on the same random inputs."""
    rows: list[Timing] = []
    with Bar(len(found) * len(batches), desc="bench", unit="run", show=progress) as bar:
        for batch in batches:
            xs = random_inputs(shapes, dtypes, batch, seed=batch)
            first: list[np.ndarray] | None = None
            for name, run in found:
                bar.describe(f"{name}, batch {batch}")
                ys = run(xs)
                for _ in range(max(warmup - 1, 0)):
                    run(xs)
                times: list[float] = []
                t_end = time.perf_counter() + seconds
                while len(times) < min_repeats or time.perf_counter() < t_end:
                    t = time.perf_counter()
                    run(xs)
                    times.append(time.perf_counter() - t)
                err = None
                if first is None:
                    first = ys
                else:
                    err = max((max_error(a, b)[0] for a, b in zip(ys, first)), default=0.0) \
                        if len(ys) == len(first) else float("inf")
                rows.append(Timing(name, batch, float(np.median(times)), float(np.percentile(times, 90)),
                                   len(times), err))
                bar.update()
    return rows


def format_table(rows: list[Timing], skipped: dict[str, str] | None = None) -> str:
    """The timings as an aligned table, one line per engine and batch size."""
    lines = [f"{'engine':16s} {'batch':>5s} {'median':>10s} {'p90':>10s} {'samples/s':>11s} {'runs':>5s}  max|diff|"]
    for r in rows:
        diff = "-" if r.max_error is None else f"{r.max_error:.2e}"
        lines.append(f"{r.engine:16s} {r.batch:5d} {r.median_s * 1e3:8.3f}ms {r.p90_s * 1e3:8.3f}ms "
                     f"{r.samples_per_s:11,.1f} {r.repeats:5d}  {diff}")
    for name, why in (skipped or {}).items():
        lines.append(f"{name:16s} skipped: {why}")
    return "\n".join(lines)
