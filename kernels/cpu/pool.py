"""Spatial pooling on NHWC data. Average pooling divides by the number of in-bounds elements of each
window (padding excluded), as Keras does for padding='same'.

Output rows in parallel; each window element's channels are one vectorized loop over flat views
of the C-contiguous arrays (the codegen's views always are), indexed by unsigned offsets: an array
view per window element (`x[b, i, j]`) costs more than its channels, and a signed computed index
keeps numba's negative-index check, which blocks vectorizing."""
import numpy as np
from numba import njit, prange

from .conv import OPTS


@njit(**OPTS)
def _window(x, b, i, j, kh, kw, sh, sw, pt, pl):
    """(first row, end row, first column, end column) of the window of output (i, j), clipped."""
    h, wd = x.shape[1], x.shape[2]
    ih0 = i * sh - pt
    iw0 = j * sw - pl
    return max(ih0, 0), min(ih0 + kh, h), max(iw0, 0), min(iw0 + kw, wd)


@njit(parallel=True, cache=True, nogil=True, error_model="numpy", boundscheck=False)
def maxpool2d(x, out, kh, kw, sh, sw, pt, pl):
    """Max over each window; NaN wins, as in Keras (`v > o or v != v`)."""
    n, h, wd, c = x.shape
    _, oh, ow, _ = out.shape
    xf = x.reshape(-1)
    of = out.reshape(-1)
    uc = np.uint64(c)
    for t in prange(n * oh):
        b = t // oh
        i = t - b * oh
        for j in range(ow):
            o0 = np.uint64(((b * oh + i) * ow + j) * c)
            for ch in range(uc):
                of[o0 + ch] = -np.inf
            p0, p1, q0, q1 = _window(x, b, i, j, kh, kw, sh, sw, pt, pl)
            for ih in range(p0, p1):
                for iw in range(q0, q1):
                    x0 = np.uint64(((b * h + ih) * wd + iw) * c)
                    for ch in range(uc):
                        v = xf[x0 + ch]
                        u = of[o0 + ch]
                        of[o0 + ch] = v if (v > u or v != v) else u


@njit(parallel=True, cache=True, nogil=True, error_model="numpy", boundscheck=False)
def avgpool2d(x, out, kh, kw, sh, sw, pt, pl):
    """Mean over the in-bounds elements of each window."""
    n, h, wd, c = x.shape
    _, oh, ow, _ = out.shape
    xf = x.reshape(-1)
    of = out.reshape(-1)
    uc = np.uint64(c)
    for t in prange(n * oh):
        b = t // oh
        i = t - b * oh
        for j in range(ow):
            o0 = np.uint64(((b * oh + i) * ow + j) * c)
            for ch in range(uc):
                of[o0 + ch] = 0.0
            p0, p1, q0, q1 = _window(x, b, i, j, kh, kw, sh, sw, pt, pl)
            for ih in range(p0, p1):
                for iw in range(q0, q1):
                    x0 = np.uint64(((b * h + ih) * wd + iw) * c)
                    for ch in range(uc):
                        of[o0 + ch] += xf[x0 + ch]
            inv = np.float32(1.0) / np.float32(max((p1 - p0) * (q1 - q0), 1))
            for ch in range(uc):
                of[o0 + ch] *= inv
