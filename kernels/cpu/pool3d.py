"""3D pooling on NDHWC data (1D pooling is 2D pooling on a view with a unit height). Average pooling
divides by the number of in-bounds elements of each window, as Keras does for padding='same'."""
import numpy as np
from numba import njit

from .conv import OPTS


@njit(**OPTS)
def pool3d(x, out, kd, kh, kw, sd, sh, sw, pf, pt, pl, is_max):
    n, d, h, wd, c = x.shape
    _, od, oh, ow, _ = out.shape
    for b in range(n):
        for i in range(od):
            for j in range(oh):
                for l in range(ow):
                    for ch in range(c):
                        out[b, i, j, l, ch] = -np.inf if is_max else 0.0
                    count = 0
                    for p in range(kd):
                        iz = i * sd - pf + p
                        if iz < 0 or iz >= d:
                            continue
                        for q in range(kh):
                            iy = j * sh - pt + q
                            if iy < 0 or iy >= h:
                                continue
                            for r in range(kw):
                                ix = l * sw - pl + r
                                if ix < 0 or ix >= wd:
                                    continue
                                count += 1
                                if is_max:
                                    for ch in range(c):
                                        v = x[b, iz, iy, ix, ch]
                                        if v > out[b, i, j, l, ch] or v != v:
                                            out[b, i, j, l, ch] = v
                                else:
                                    for ch in range(c):
                                        out[b, i, j, l, ch] += x[b, iz, iy, ix, ch]
                    if not is_max:
                        inv = np.float32(1.0) / np.float32(max(count, 1))
                        for ch in range(c):
                            out[b, i, j, l, ch] *= inv
