"""Reductions over the middle axis of an (A, R, B) view, and softmax along it, one thread per (a, b)
pair: consecutive threads take consecutive b, so each step over R reads one coalesced run. Sums are
accumulated in float64, as on the CPU. Any reduction over one run of axes is this view (codegen)."""
import math

from numba import cuda, float32, float64


def mean3(x, out, A, R, B):
    """out (A, B) = mean of x (A, R, B) over R. Grid ceil(A * B / block)."""
    i = cuda.grid(1)
    if i >= A * B:
        return
    a = i // B
    j = i - a * B
    base = a * R * B + j
    acc = float64(0.0)
    for k in range(R):
        acc += x[base + k * B]
    out[i] = acc / R


def max3(x, out, A, R, B):
    """out (A, B) = max of x (A, R, B) over R, NaN propagating. Grid ceil(A * B / block)."""
    i = cuda.grid(1)
    if i >= A * B:
        return
    a = i // B
    j = i - a * B
    base = a * R * B + j
    best = x[base]
    for k in range(1, R):
        v = x[base + k * B]
        if v > best or v != v:
            best = v
    out[i] = best


def softmax3(x, out, A, R, B):
    """Softmax of x (A, R, B) along R, max-subtracted. Grid ceil(A * B / block)."""
    i = cuda.grid(1)
    if i >= A * B:
        return
    a = i // B
    j = i - a * B
    base = a * R * B + j
    m = x[base]
    for k in range(1, R):
        v = x[base + k * B]
        if v > m:
            m = v
    s = float64(0.0)
    for k in range(R):
        e = float32(math.exp(x[base + k * B] - m))
        out[base + k * B] = e
        s += e
    inv = float64(1.0) / s
    for k in range(R):
        out[base + k * B] = out[base + k * B] * inv
