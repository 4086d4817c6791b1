"""Reductions over the middle axis of a (outer, reduced, inner) view, and softmax along it.

Any reduction over a contiguous run of axes is this shape after a reshape, which the codegen does.
"""
import numpy as np
from numba import njit

from .conv import OPTS


@njit(**OPTS)
def mean3(x, out):
    """out (a, b) = mean of x (a, r, b) over r, accumulated in float64."""
    a, r, b = x.shape
    acc = np.empty(b, np.float64)
    for i in range(a):
        acc[:] = 0.0
        for k in range(r):
            for j in range(b):
                acc[j] += x[i, k, j]
        for j in range(b):
            out[i, j] = acc[j] / r


@njit(**OPTS)
def max3(x, out):
    a, r, b = x.shape
    for i in range(a):
        for j in range(b):
            out[i, j] = x[i, 0, j]
        for k in range(1, r):
            for j in range(b):
                v = x[i, k, j]
                if v > out[i, j] or v != v:
                    out[i, j] = v


@njit(**OPTS)
def softmax3(x, out):
    """Softmax of x (a, r, b) along r, max-subtracted, summed in float64."""
    a, r, b = x.shape
    for i in range(a):
        for j in range(b):
            m = x[i, 0, j]
            for k in range(1, r):
                if x[i, k, j] > m:
                    m = x[i, k, j]
            s = 0.0
            for k in range(r):
                e = np.exp(x[i, k, j] - m)
                out[i, k, j] = e
                s += e
            inv = 1.0 / s
            for k in range(r):
                out[i, k, j] = out[i, k, j] * inv
