"""Spatial pooling on NHWC data. Average pooling divides by the number of in-bounds elements of each
window (padding excluded), as Keras does for padding='same'."""
import numpy as np
from numba import njit

from .conv import OPTS


@njit(**OPTS)
def maxpool2d(x, out, kh, kw, sh, sw, pt, pl):
    n, h, wd, c = x.shape
    _, oh, ow, _ = out.shape
    for b in range(n):
        for i in range(oh):
            for j in range(ow):
                for ch in range(c):
                    out[b, i, j, ch] = -np.inf
                for p in range(kh):
                    ih = i * sh - pt + p
                    if ih < 0 or ih >= h:
                        continue
                    for q in range(kw):
                        iw = j * sw - pl + q
                        if iw < 0 or iw >= wd:
                            continue
                        for ch in range(c):
                            v = x[b, ih, iw, ch]
                            if v > out[b, i, j, ch] or v != v:
                                out[b, i, j, ch] = v


@njit(**OPTS)
def avgpool2d(x, out, kh, kw, sh, sw, pt, pl):
    n, h, wd, c = x.shape
    _, oh, ow, _ = out.shape
    for b in range(n):
        for i in range(oh):
            for j in range(ow):
                for ch in range(c):
                    out[b, i, j, ch] = 0.0
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
                        for ch in range(c):
                            out[b, i, j, ch] += x[b, ih, iw, ch]
                inv = np.float32(1.0) / np.float32(max(count, 1))
                for ch in range(c):
                    out[b, i, j, ch] *= inv
