"""Kernels of the sequence ops: embedding gathers, one-hot encodings and batched matmuls between two
runtime values (attention). Index arrays may be of any integer or float dtype (graph inputs keep the
dtype the model declares); a float index is truncated toward zero, as Keras's cast to int32 does."""
import numpy as np
from numba import njit, prange

from .conv import OPTS


@njit(**OPTS)
def gather_rows(idx, table, out):
    """out[i] = table[int(idx[i])]; negative indices count from the end; out of range gives NaN (jnp.take)."""
    v = table.shape[0]
    d = table.shape[1]
    for i in range(idx.shape[0]):
        r = int(idx[i])
        if r < 0:
            r += v
        if r >= 0 and r < v:
            for j in range(d):
                out[i, j] = table[r, j]
        else:
            for j in range(d):
                out[i, j] = np.nan


@njit(**OPTS)
def one_hot(idx, out, truncate):
    """out[i, j] = 1 where idx[i] == j (int(idx[i]) == j when truncate), else 0."""
    depth = out.shape[1]
    for i in range(idx.shape[0]):
        for j in range(depth):
            out[i, j] = 0.0
        r = int(idx[i])
        if (truncate or r == idx[i]) and r >= 0 and r < depth:
            out[i, r] = 1.0


@njit(**OPTS)
def bmm(a, b, out, transpose_b):
    """out[i] = a[i] @ b[i] (b[i].T when transpose_b) for every i of the leading axis, through BLAS."""
    for i in range(a.shape[0]):
        if transpose_b:
            np.dot(a[i], b[i].T, out[i])
        else:
            np.dot(a[i], b[i], out[i])


@njit(parallel=True, cache=True, nogil=True, error_model="numpy", boundscheck=False)
def bmm_par(a, b, out, transpose_b, nt):
    """`bmm` with the leading axis split over `nt` tasks (BLAS is pinned to one thread per task)."""
    g = a.shape[0]
    tasks = max(1, min(nt, g))
    per = -(-g // tasks)
    for t in prange(tasks):
        lo = t * per
        hi = min(g, lo + per)
        if hi > lo:
            bmm(a[lo:hi], b[lo:hi], out[lo:hi], transpose_b)
