"""Winograd F(2x2, 3x3) convolution (Lavin & Gray 2015) for dense 3x3, stride-1, undilated 2D convs.

A 2x2 block of outputs ("tile") comes from a 4x4 block of inputs with 16 multiplications per input
and output channel pair instead of 36: the input tile d is transformed to V = B^T d B, the kernel g
(once, at compile time: `transform_weights`) to U = G g G^T, and the output is Y = A^T (U . V) A,
where the products over input channels of all tiles are 16 GEMMs (one per element of the 4x4
transform) through BLAS. 2.25x fewer multiplications than im2col + GEMM, for about a third more
rounding error (F(2x2, 3x3)'s transforms have only 0, +-1 and 1/2 in them).

Layouts: x is NHWC; U is (16, C, K); a task's scratch holds V (16, tiles, C) then M (16, tiles, K).
The output transform and the node's epilogue are generated per node (codegen/cpu_fused.py), so
that a tile's outputs are written once; `input_tiles` is shared.
"""
import numpy as np
from numba import njit

from .conv import OPTS

#: G of F(2x2, 3x3): U = G g G^T
G = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]])


def transform_weights(w: np.ndarray) -> np.ndarray:
    """(3, 3, C, K) kernel -> (16, C, K) float32, element (a, b) of G g G^T at index a*4 + b;
    computed in float64."""
    u = np.einsum("ai,ijck,bj->abck", G, w.astype(np.float64), G)
    return np.ascontiguousarray(u.reshape(16, w.shape[2], w.shape[3]).astype(np.float32))


#: bytes of V and M (scratch) one task should use, so that they stay in L2 (Inception v3's 71x71
#: conv at batch 16: 77 ms at 512 KiB, 80 at 256 KiB, 79 at 2 MiB)
TASK_BYTES = 1 << 19
#: tiles a task takes at least: every task reads all 16 transformed kernels (16/9 the plain weights),
#: so a task of r tiles does r/2 FLOP per byte of weights; below ~24 the weights' trip from L3, not
#: the multiplications, sets the time (ResNet50's 14x14 convs at batch 1: 8-tile tasks ran at ~105
#: GFLOP/s on 2 Xeon cores)
MIN_TILES = 24


@njit(**OPTS)
def tile_chunk(tiles, c, k, nt):
    """Tiles per task: about TASK_BYTES of V and M but at least MIN_TILES, a multiple of `nt` tasks
    of near-equal size (no thread left with the one short task)."""
    nt = max(1, nt)
    per = max(MIN_TILES, TASK_BYTES // (64 * (c + k)))
    tasks = -(-tiles // per)
    tasks = -(-tasks // nt) * nt
    return max(1, -(-tiles // tasks))


@njit(**OPTS)
def _sub(dst, a, b):
    for c in range(dst.shape[0]):
        dst[c] = a[c] - b[c]


@njit(**OPTS)
def _add(dst, a, b):
    for c in range(dst.shape[0]):
        dst[c] = a[c] + b[c]


@njit(**OPTS)
def _sub2(dst, a, b, e):
    for c in range(dst.shape[0]):
        dst[c] = a[c] - b[c] - e[c]


@njit(**OPTS)
def _add2(dst, a, b, e):
    for c in range(dst.shape[0]):
        dst[c] = a[c] + b[c] + e[c]


@njit(**OPTS)
def input_tiles(x, t0, t1, th, tw, pt, pl, v):
    """v[e, i, c] = (B^T d B)[e] for tiles t0..t1 (tile t: batch t // (th*tw), rows 2*ti - pt ..,
    columns 2*tj - pl ..; zeros outside the input), v viewed as (16, t1 - t0, C).

    Every step is a loop over the channels with one store and two loads (`_add`, `_sub`), which
    LLVM vectorizes; one loop over all sixteen outputs would not be."""
    n, h, wd, cin = x.shape
    d = np.zeros((4, 4, cin), np.float32)
    r = np.empty((4, 4, cin), np.float32)
    for t in range(t0, t1):
        b = t // (th * tw)
        rem = t - b * th * tw
        ti = rem // tw
        tj = rem - ti * tw
        i0 = 2 * ti - pt
        j0 = 2 * tj - pl
        i = t - t0
        if i0 >= 0 and j0 >= 0 and i0 + 4 <= h and j0 + 4 <= wd:
            src = x[b, i0:i0 + 4, j0:j0 + 4]
        else:  # a tile over the border: gather it with zeros
            for p in range(4):
                for q in range(4):
                    ih = i0 + p
                    iw = j0 + q
                    if ih < 0 or ih >= h or iw < 0 or iw >= wd:
                        d[p, q, :] = 0.0
                    else:
                        d[p, q, :] = x[b, ih, iw, :]
            src = d[:, :, :]
        for q in range(4):  # rows of B^T d
            _sub(r[0, q], src[0, q], src[2, q])
            _add(r[1, q], src[1, q], src[2, q])
            _sub(r[2, q], src[2, q], src[1, q])
            _sub(r[3, q], src[1, q], src[3, q])
        for p in range(4):  # times B
            _sub(v[4 * p, i], r[p, 0], r[p, 2])
            _add(v[4 * p + 1, i], r[p, 1], r[p, 2])
            _sub(v[4 * p + 2, i], r[p, 2], r[p, 1])
            _sub(v[4 * p + 3, i], r[p, 1], r[p, 3])


@njit(**OPTS)
def output_tile(mm, i, s, y):
    """y[2*dy + dx, c] = (A^T M A)[dy, dx] of tile i of mm (16, tiles, C); s is (8, C) scratch."""
    for q in range(4):  # rows of A^T M
        _add2(s[q], mm[q, i], mm[4 + q, i], mm[8 + q, i])
        _sub2(s[4 + q], mm[4 + q, i], mm[8 + q, i], mm[12 + q, i])
    for p in range(2):  # times A
        _add2(y[2 * p], s[4 * p], s[4 * p + 1], s[4 * p + 2])
        _sub2(y[2 * p + 1], s[4 * p + 1], s[4 * p + 2], s[4 * p + 3])
