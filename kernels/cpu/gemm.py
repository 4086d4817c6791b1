"""Building blocks of the fused, parallel CPU drivers that the codegen generates for conv and dense.

The generated driver splits the output rows into tasks run with `prange`; each task builds its im2col
rows (`im2col_rows`), multiplies them with BLAS (`np.dot`, pinned to one thread: parallelism is
numba's), and applies the epilogue while the rows are still in cache. Depthwise convolutions go row
by row (`depthwise_row`), also with the epilogue fused after each row.
"""
import numpy as np
from numba import njit, prange

from .conv import OPTS

#: bytes of A and C rows per task beyond which a GEMM gets more tasks than threads. Large: BLAS
#: packs the weights again for every call, so fewer, bigger calls win (measured on 2 Zen 4 cores:
#: 256 KiB tasks made ResNet50 1.5x slower than one task per thread).
TASK_BYTES = 1 << 23


@njit(**OPTS)
def row_chunk(rows, k, m, nt):
    """Rows per task for `nt` threads: one task per thread, or a multiple of `nt` tasks of at most
    about TASK_BYTES of input and output rows each; a multiple of 8 rows."""
    nt = max(1, nt)
    per_thread = -(-rows // nt)
    rounds = max(1, -(-(4 * per_thread * (k + m)) // TASK_BYTES))
    per = -(-per_thread // rounds)
    return max(8, (per + 7) // 8 * 8)


@njit(**OPTS)
def tiles(rows, k, m, nt):
    """(rows, columns) of the output tiles that a GEMM of `rows` x `k` by `k` x `m` is cut into for
    `nt` threads. Many rows: blocks of rows (`row_chunk`), all columns. Few rows (late layers of a
    convnet at batch 1, dense layers): all rows, one block of columns per thread (a multiple of 16),
    so that each thread streams only its share of the weights. Measured with OpenBLAS on 2 Zen 4
    cores, columns win below ~64 rows per thread, and up to ~128 when the GEMM is deep and wide
    (196 x 2304 x 256: 1.19 ms against 1.34), and lose on narrow or shallow ones (784 x 32 x 192:
    0.21 ms against 0.065)."""
    per_thread = -(-rows // max(1, nt))
    if nt > 1 and m >= 64 * nt and (per_thread < 64 or (per_thread < 128 and k >= 256 and m >= 128 * nt)):
        per = -(-m // nt)
        return rows, (per + 15) // 16 * 16
    return row_chunk(rows, k, m, nt), m


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


@njit(parallel=True, cache=True, nogil=True, error_model="numpy", boundscheck=False)
def im2col_par(x, rows, kh, kw, sh, sw, dh, dw, pt, pl, oh, ow, a, nt):
    """All `rows` im2col rows into the flat `a` (rows x kh*kw*cin), split over `nt` tasks."""
    k = kh * kw * x.shape[3]
    tasks = max(1, min(nt, rows))
    per = -(-rows // tasks)
    for t in prange(tasks):
        r0 = t * per
        r1 = min(rows, r0 + per)
        if r1 > r0:
            im2col_rows(x, r0, r1, kh, kw, sh, sw, dh, dw, pt, pl, oh, ow, a[r0 * k:r1 * k].reshape((r1 - r0, k)))


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
