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
