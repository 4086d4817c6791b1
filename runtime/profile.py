"""Per-node timing of a compiled model, through the generated module's `run_profiled` twin of `run`.

The twin runs the same body as plain Python, calling the same jitted kernels, so the per-node times
add up to a little more than `predict` (Python glue between nodes), while their proportions show
where the time goes.
"""
from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from .model import CompiledModel
from .threads import threads


def profile(cm: CompiledModel, x: Any, repeats: int = 5) -> list[dict]:
    """Median seconds per node over `repeats` runs on input `x`, with op and layer of each node.

    Runs on a private copy of the artifact: the twin calls the kernels from Python, where numba may
    compile (and cache) other specializations than `run` uses, and the artifact itself must stay as
    its manifest says."""
    with tempfile.TemporaryDirectory(prefix="kerasjit-profile-") as tmp:
        copy = Path(tmp) / cm.path.name
        shutil.copytree(cm.path, copy)
        return _profile(CompiledModel(copy, verify=False), x, repeats)


def _profile(cm: CompiledModel, x: Any, repeats: int) -> list[dict]:
    xs = cm._normalize(x)
    n = int(xs[0].shape[0])
    outs = [np.empty((n,) + tuple(s[1:]), np.float32) for s in cm.output_shapes]
    arena = cm._arena(n)
    nodes = cm.manifest.get("nodes", [])
    samples: list[list[float]] = [[] for _ in nodes]
    for r in range(repeats + 1):
        last = [time.perf_counter()]

        def tick(k: int) -> None:
            now = time.perf_counter()
            if r and k < len(samples):
                samples[k].append(now - last[0])
            last[0] = now
        state = [cm._states(n)] if cm.stateful else []  # stateful RNNs' state buffer comes last
        cm._module.run_profiled(cm._blob, arena, n, threads(), *xs, *outs, *state, tick)
    return [{**node, "seconds": float(np.median(s)) if s else 0.0} for node, s in zip(nodes, samples)]


def format_profile(rows: list[dict], top: int = 25) -> str:
    """A table of the slowest nodes and the time per op kind."""
    total = sum(r["seconds"] for r in rows) or 1.0
    by_op: dict[str, float] = {}
    for r in rows:
        by_op[r["op"]] = by_op.get(r["op"], 0.0) + r["seconds"]
    lines = [f"total {total * 1e3:.2f} ms over {len(rows)} nodes", "by op:"]
    for op, s in sorted(by_op.items(), key=lambda kv: -kv[1]):
        lines.append(f"  {op:12s} {s * 1e3:8.2f} ms  {100 * s / total:5.1f}%")
    lines.append(f"slowest {top} nodes:")
    for r in sorted(rows, key=lambda r: -r["seconds"])[:top]:
        epi = ("  [" + "; ".join(r.get("epilogue", [])) + "]") if r.get("epilogue") else ""
        lines.append(f"  {r['seconds'] * 1e3:8.3f} ms  {r['op']:10s} {r['layer']}{epi}")
    return "\n".join(lines)
