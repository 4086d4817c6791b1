"""Spatial pooling on NHWC data. Average pooling divides by the number of in-bounds elements of each
window (padding excluded), as Keras does for padding='same'."""
import numpy as np
from numba import njit, prange

from .conv import OPTS


@njit(parallel=True, cache=True, nogil=True, error_model="numpy", boundscheck=False)
def maxpool2d(x, out, kh, kw, sh, sw, pt, pl):
    """Output rows in parallel; a window element's channels are one vectorized select (NaN wins, as
    in Keras: `v > o or v != v`), through views indexed by the loop variable alone."""
    n, h, wd, c = x.shape
    _, oh, ow, _ = out.shape
    for t in prange(n * oh):
        b = t // oh
        i = t - b * oh
        for j in range(ow):
            o = out[b, i, j]
            for ch in range(c):
                o[ch] = -np.inf
            for p in range(kh):
                ih = i * sh - pt + p
                if ih < 0 or ih >= h:
                    continue
                for q in range(kw):
                    iw = j * sw - pl + q
                    if iw < 0 or iw >= wd:
                        continue
                    xr = x[b, ih, iw]
                    for ch in range(c):
                        v = xr[ch]
                        u = o[ch]
                        o[ch] = v if (v > u or v != v) else u


@njit(parallel=True, cache=True, nogil=True, error_model="numpy", boundscheck=False)
def avgpool2d(x, out, kh, kw, sh, sw, pt, pl):
    n, h, wd, c = x.shape
    _, oh, ow, _ = out.shape
    for t in prange(n * oh):
        b = t // oh
        i = t - b * oh
        for j in range(ow):
            o = out[b, i, j]
            for ch in range(c):
                o[ch] = 0.0
            count = 0
            for p in range(kh):
                ih = i * sh - pt + p
                if ih < 0 or ih >= h:
                    continue
                for q in range(kw):
                    iw = j * sw - pl + q
                    if iw < 0 or iw >= wd:
                        continue
                    count += 1
                    xr = x[b, ih, iw]
                    for ch in range(c):
                        o[ch] += xr[ch]
            inv = np.float32(1.0) / np.float32(max(count, 1))
            for ch in range(c):
                o[ch] *= inv
