"""How `predict` splits a large batch so that its working memory stays bounded.

The generated `run` needs an arena of `arena_per_sample` floats per sample for its intermediates
(often many times the input's size: a convnet's first activations). A batch whose arena would pass
the bound runs in chunks of rows, each chunk writing its rows of the (already allocated) outputs, so
a very large batch costs its inputs, its outputs and one bounded arena, never an out-of-memory kill.
Rows are independent in every stateless model, so chunked and whole-batch results are the same
computation row by row.
"""
from __future__ import annotations

import os

#: the default bound on one predict call's arena (per thread): 1 GiB
DEFAULT_ARENA_BYTES = 1 << 30
ARENA_ENV = "KERASJIT_MAX_ARENA_MB"
_FLOAT_BYTES = 4
#: a model doing fewer FLOPs per byte of its arena than this is bound by the traffic of its
#: intermediates once they outgrow the caches, and runs a large batch in chunks of about
#: CACHE_CHUNK_BYTES of arena instead. Measured on 2 Xeon cores at batch 16: MobileNetV2 (44 FLOP
#: per byte) 59.6 -> 51.0 ms in chunks of 4; ResNet50 (480) level in chunks of 4 and slower in
#: smaller ones, Inception v3 (158) slower in chunks of 3: their weights, read once per chunk, cost
#: more than the intermediates save.
MEMORY_BOUND_FLOPS_PER_BYTE = 100
CACHE_CHUNK_BYTES = 32 << 20


def cache_limit_bytes(floats_per_sample: int, flops_per_sample: int | None) -> int | None:
    """The arena bound that keeps a memory-bound model's chunks near the caches, or None (the model
    does enough work per byte to run its batch whole)."""
    per_sample = max(int(floats_per_sample), 1) * _FLOAT_BYTES
    if not flops_per_sample or flops_per_sample / per_sample >= MEMORY_BOUND_FLOPS_PER_BYTE:
        return None
    return CACHE_CHUNK_BYTES


def arena_limit_bytes(override: int | None = None) -> int:
    """The arena bound: `override` when given, else $KERASJIT_MAX_ARENA_MB (in MiB), else 1 GiB."""
    if override is not None:
        return max(int(override), 1)
    env = os.environ.get(ARENA_ENV)
    if env:
        try:
            return max(int(float(env) * (1 << 20)), 1)
        except ValueError:
            pass  # a malformed setting must not break predict; the default applies
    return DEFAULT_ARENA_BYTES


def batch_chunks(n: int, floats_per_sample: int, limit_bytes: int) -> list[tuple[int, int]]:
    """[(start, stop), ...] covering rows 0..n, each chunk's arena within `limit_bytes` (at least one
    row per chunk: a single sample that needs more runs alone)."""
    per_sample = max(int(floats_per_sample), 1) * _FLOAT_BYTES
    rows = max(1, int(limit_bytes) // per_sample)
    return [(lo, min(lo + rows, n)) for lo in range(0, n, rows)]
