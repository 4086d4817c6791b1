"""The compile pipeline in one place: ModelSpec -> Graph -> passes -> codegen -> artifact files."""
from __future__ import annotations

import json
import logging
import time
from typing import Any

from ..encoder.spec import ModelSpec
from ..errors import TargetError
from .codegen.cpu import generate_cpu
from .cost import graph_costs
from .frontend import lower
from .ir import Graph
from .passes import run_passes

log = logging.getLogger("kerasjit")


def build(spec: ModelSpec, target: str = "cpu") -> tuple[dict[str, bytes], dict[str, Any], Graph]:
    """Compile `spec` for `target`; return the artifact's files, its manifest fields and the final graph."""
    if target not in ("cpu", "cuda"):
        raise TargetError(f"target {target!r} is not available in this kerasjit build (targets: 'cpu', 'cuda')")
    t0 = time.perf_counter()
    graph = run_passes(lower(spec))
    if target == "cuda":
        from .codegen.cuda import generate_cuda  # the same graph and passes; only the emitters differ
        gen = generate_cuda(graph)
    else:
        gen = generate_cpu(graph)
    log.info("lowered and generated %s: %d nodes, arena %d floats/sample, weights %.1f MB in %.2fs",
             graph.name, len(graph.nodes), gen.plan.arena_per_sample, gen.blob.size * 4 / 1e6,
             time.perf_counter() - t0)
    manifest = {
        "model_name": graph.name,
        "target": target,
        "inputs": [{"name": n, "shape": list(v.shape), "dtype": v.dtype} for n, v in zip(graph.input_names, graph.inputs)],
        "outputs": [{"name": n, "shape": list(graph.values()[o].shape), "dtype": "float32"}
                    for n, o in zip(graph.output_names, graph.outputs)],
        "arena_per_sample": gen.plan.arena_per_sample,
        # the runtime's batch chunking tells compute-bound from memory-bound models by it
        "flops_per_sample": sum(c.flops for c in graph_costs(graph)),
        "state_per_sample": gen.state_per_sample,
        "nodes": [{"op": n.op.label, "layer": n.layer, "out": n.out.name,
                   "epilogue": [str(s) for s in n.epilogue]} for n in graph.nodes],
        "blob_size": gen.blob.size,
        "keras_version": spec.keras_version,
        "source_format": spec.format,
    }
    files = {"model_gen.py": gen.source.encode(), "weights.bin": gen.blob.tobytes(),
             "graph.txt": str(graph).encode()}
    return files, manifest, graph


def manifest_json(manifest: dict[str, Any]) -> str:
    return json.dumps(manifest, indent=1, sort_keys=True)
