"""Summaries of timing samples: medians, quartiles, throughput, ratios to kerasjit."""
from __future__ import annotations

import statistics
from typing import Any

__all__ = ["summarize", "ratio"]


def summarize(samples: list[float], batch: int) -> dict[str, Any]:
    """Median, quartiles and count of per-call seconds, and samples per second at the median."""
    if not samples:
        return {"n": 0}
    med = statistics.median(samples)
    q = statistics.quantiles(samples, n=4) if len(samples) > 1 else [med, med, med]
    return {"n": len(samples), "median_s": med, "p25_s": q[0], "p75_s": q[2], "min_s": min(samples),
            "throughput_per_s": batch / med if med > 0 else None}


def ratio(time_s: float | None, reference_s: float | None) -> float | None:
    """`time_s / reference_s` (above 1: the reference is faster), None when either is missing."""
    if not time_s or not reference_s:
        return None
    return time_s / reference_s
