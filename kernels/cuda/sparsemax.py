"""Sparsemax along the middle axis of an (A, R, B) view, with Keras 3's formula (see
`compiler.rules._sparsemax`): tau = (sum of the cumulative sums over the support - 1) / k.

One thread per (a, b) pair and no sort (a thread has no array of run-time length): the value at index
k sits at rank r_k = 1 + #{q: x_q > x_k, or x_q == x_k and q < k} of the descending order (ties in index
order, as a stable sort), so its cumulative sum is x_k plus those x_q. That is O(R^2) per row, in
float64 as on the CPU; sparsemax rows are class scores, short.
"""
from numba import cuda, float32, float64


def sparsemax3(x, out, A, R, B):
    """Grid ceil(A * B / block)."""
    i = cuda.grid(1)
    if i >= A * B:
        return
    a = i // B
    j = i - a * B
    base = a * R * B + j
    acc = float64(0.0)
    count = 0
    for k in range(R):
        v = float64(x[base + k * B])
        cs = v
        rank = 1
        for q in range(R):
            w = float64(x[base + q * B])
            if w > v or (w == v and q < k):
                cs += w
                rank += 1
        if v - (cs - 1.0) / rank > 0.0:
            acc += cs
            count += 1
    tau = (acc - 1.0) / max(count, 1)
    for k in range(R):
        v = float64(x[base + k * B]) - tau
        out[base + k * B] = float32(v) if v > 0.0 else float32(0.0)
