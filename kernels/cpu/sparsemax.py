"""Sparsemax along the middle axis of an (outer, reduced, inner) view, with Keras 3's formula
(see `compiler.rules._sparsemax`): tau = (sum of the cumulative sums over the support - 1) / k."""
import numpy as np
from numba import njit

from .conv import OPTS


@njit(**OPTS)
def sparsemax3(x, out):
    a, r, b = x.shape
    z = np.empty(r, np.float64)
    for i in range(a):
        for j in range(b):
            for k in range(r):
                z[k] = x[i, k, j]
            z.sort()  # ascending; walk it from the end for the descending order
            cs = 0.0
            acc = 0.0
            count = 0
            for k in range(r):
                v = z[r - 1 - k]
                cs += v
                if v - (cs - 1.0) / (k + 1) > 0.0:
                    acc += cs
                    count += 1
            tau = (acc - 1.0) / count
            for k in range(r):
                v = x[i, k, j] - tau
                out[i, k, j] = v if v > 0.0 else 0.0
