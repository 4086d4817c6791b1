"""Building blocks of the fused, parallel CPU drivers that the codegen generates for conv and dense.

The generated driver splits the output rows into tasks run with `prange`; each task builds its im2col
rows (`im2col_rows`), multiplies them with BLAS (`np.dot`, pinned to one thread: parallelism is
numba's), and applies the epilogue while the rows are still in cache. Depthwise convolutions go row
by row (`depthwise_row`), also with the epilogue fused after each row.
"""
import numpy as np
from numba import njit

from .conv import OPTS

#: bytes of A and C rows one task should touch: well inside a Zen 4 core's 1 MB L2
TASK_BYTES = 1 << 18


#: tasks a GEMM is split into at least, when it has the rows: enough to balance up to 8 threads
MIN_TASKS = 8


@njit(**OPTS)
def row_chunk(rows, k, m):
    """Rows per task: about TASK_BYTES of input and output rows, a multiple of 8, and at least
    MIN_TASKS tasks when there are rows for them. (Not `numba.get_num_threads()`: calling it makes
    every caller uncacheable, and the whole model is one cached caller.)"""
    per = max(8, TASK_BYTES // (4 * (k + m)))
    per = min(per, max(8, -(-rows // MIN_TASKS)))
    return max(8, (per + 7) // 8 * 8)


@njit(**OPTS)
def im2col_rows(x, r0, r1, kh, kw, sh, sw, dh, dw, pt, pl, oh, ow, col):
    """col[r - r0, (p*kw + q)*cin + c] = x[b, i*sh - pt + p*dh, j*sw - pl + q*dw, c] for rows r0..r1,
    where r = (b*oh + i)*ow + j; zero outside the input (padding)."""
    n, h, wd, cin = x.shape
    for r in range(r0, r1):
        b = r // (oh * ow)
        rem = r - b * oh * ow
        i = rem // ow
        j = rem - i * ow
        dst = col[r - r0]
        for p in range(kh):
            ih = i * sh - pt + p * dh
            for q in range(kw):
                iw = j * sw - pl + q * dw
                base = (p * kw + q) * cin
                if ih < 0 or ih >= h or iw < 0 or iw >= wd:
                    for c in range(cin):
                        dst[base + c] = 0.0
                else:
                    src = x[b, ih, iw]
                    for c in range(cin):
                        dst[base + c] = src[c]


@njit(**OPTS)
def depthwise_row(x, w, out, b, i, sh, sw, dh, dw, pt, pl):
    """One output row out[b, i, :, :] of a depthwise conv; w is (kh, kw, cin * multiplier)."""
    n, h, wd, cin = x.shape
    kh, kw, cout = w.shape
    ow = out.shape[2]
    mult = cout // cin
    for j in range(ow):
        acc = out[b, i, j]
        for o in range(cout):
            acc[o] = 0.0
        for p in range(kh):
            ih = i * sh - pt + p * dh
            if ih < 0 or ih >= h:
                continue
            for q in range(kw):
                iw = j * sw - pl + q * dw
                if iw < 0 or iw >= wd:
                    continue
                xr = x[b, ih, iw]
                wr = w[p, q]
                if mult == 1:
                    for c in range(cout):
                        acc[c] += xr[c] * wr[c]
                else:
                    for c in range(cin):
                        xv = xr[c]
                        for k in range(mult):
                            acc[c * mult + k] += xv * wr[c * mult + k]
