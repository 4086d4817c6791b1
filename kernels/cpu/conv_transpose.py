"""Transposed convolution on NDHWC data (1D and 2D ones are views with unit leading spatial dims).

One GEMM multiplies every input pixel by every kernel tap, `cols = x (pixels, cin) @ w (cin,
taps*cout)`; then each output pixel gathers the rows of the taps that land on it:
input pixel i, tap p -> output i*stride + p*dilation - crop. Weight layout (codegen's packer):
the (cin, kd*kh*kw*cout) matrix, columns ordered (kd, kh, kw, cout), packed for `packed.sgemm_pk`.
"""
import numpy as np
from numba import njit, prange

from .conv import OPTS
from .gemm import tiles
from .packed import sgemm_pk


@njit(**OPTS)
def tap_table(o_size, i_size, k, s, dil, crop):
    """Per output coordinate o of one spatial dim, the taps that land on it: `count[o]` of them,
    tap index `tap[o, j]` read from input coordinate `src[o, j]` (o + crop = src * s + tap * dil).

    Built once per call so that the gather's inner loops divide by nothing: with the stride as a
    run-time integer, `%` and `//` per tap and pixel cost ~30% of a small transposed conv."""
    count = np.zeros(o_size, np.int64)
    tap = np.zeros((o_size, max(k, 1)), np.int64)
    src = np.zeros((o_size, max(k, 1)), np.int64)
    for o in range(o_size):
        for p in range(k):
            v = o + crop - p * dil
            if v >= 0 and v % s == 0 and v // s < i_size:
                tap[o, count[o]] = p
                src[o, count[o]] = v // s
                count[o] += 1
    return count, tap, src


@njit(parallel=True, cache=True, nogil=True, error_model="numpy", boundscheck=False)
def conv_transpose3d_par(x, w, out, kd, kh, kw, sd, sh, sw, dd, dh, dw, cf, ct, cl, scratch, nt):
    """out (n, od, oh, ow, cout) = transposed conv of x (n, d, h, wd, cin); (cf, ct, cl) is the crop
    of the full output at the start of each spatial dim; `scratch` holds the (pixels, taps*cout)
    matrix. The GEMM is cut into tiles as the fused drivers cut theirs (`gemm.tiles`: columns per
    thread when there are few input pixels), then each output row is gathered from the taps that
    land on it (no two tasks write the same output)."""
    n, d, h, wd, cin = x.shape
    _, od, oh, ow, cout = out.shape
    taps = kd * kh * kw
    tc = taps * cout
    rows = n * d * h * wd
    cols = scratch[: rows * tc]
    ucout = np.uint64(cout)
    x2 = x.reshape((rows, cin))
    rchunk, cchunk = tiles(rows, cin, tc, nt)
    rt = (rows + rchunk - 1) // rchunk
    ct_ = (tc + cchunk - 1) // cchunk
    for t in prange(rt * ct_):
        ri = t // ct_
        r0 = ri * rchunk
        r1 = min(rows, r0 + rchunk)
        c0 = (t - ri * ct_) * cchunk
        c1 = min(tc, c0 + cchunk)
        sgemm_pk(x2, r0 * cin, cin, w, 0, cin, cols, r0 * tc + c0, tc, r1 - r0, c0, c1 - c0, np.float32(0.0))
    zc, zt, zs = tap_table(od, d, kd, sd, dd, cf)
    yc, yt, ys = tap_table(oh, h, kh, sh, dh, ct)
    xc, xt, xs = tap_table(ow, wd, kw, sw, dw, cl)
    for t in prange(n * od * oh):
        b = t // (od * oh)
        rem = t - b * od * oh
        oz = rem // oh
        oy = rem - oz * oh
        for ox in range(ow):
            acc = out[b, oz, oy, ox]
            for f in range(cout):
                acc[f] = 0.0
            for jz in range(zc[oz]):
                p = zt[oz, jz]
                zrow = b * d + zs[oz, jz]
                for jy in range(yc[oy]):
                    q = yt[oy, jy]
                    yrow = zrow * h + ys[oy, jy]
                    for jx in range(xc[ox]):
                        r = xt[ox, jx]
                        row = yrow * wd + xs[ox, jx]
                        # unsigned offset: a signed computed index gets numba's negative-index
                        # wrap check, which keeps this loop from vectorizing
                        base = np.uint64(row * tc + ((p * kh + q) * kw + r) * cout)
                        for f in range(ucout):
                            acc[f] += cols[base + f]
