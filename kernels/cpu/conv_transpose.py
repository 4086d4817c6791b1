"""Transposed convolution on NDHWC data (1D and 2D ones are views with unit leading spatial dims).

One BLAS GEMM multiplies every input pixel by every kernel tap, `cols = x (pixels, cin) @ w (cin,
taps*cout)`; a scatter (col2im) then adds each tap's row into the output pixel it lands on:
input pixel i, tap p -> output i*stride + p*dilation - crop. Weight layout (codegen's packer):
`w` is (cin, kd*kh*kw*cout), columns ordered (kd, kh, kw, cout).
"""
import numpy as np
from numba import njit, prange

from .blas import sgemm_skinny
from .conv import OPTS
from .gemm import tiles


@njit(**OPTS)
def conv_transpose3d(x, w, out, kd, kh, kw, sd, sh, sw, dd, dh, dw, cf, ct, cl, scratch):
    """out (n, od, oh, ow, cout) = transposed conv of x (n, d, h, wd, cin); (cf, ct, cl) is the crop
    of the full output at the start of each spatial dim; `scratch` holds the (pixels, taps*cout) matrix."""
    n, d, h, wd, cin = x.shape
    _, od, oh, ow, cout = out.shape
    taps = kd * kh * kw
    rows = n * d * h * wd
    cols = scratch[: rows * taps * cout].reshape((rows, taps * cout))
    np.dot(x.reshape((rows, cin)), w, cols)
    out[...] = 0.0
    for b in range(n):
        for i in range(d):
            for j in range(h):
                for l in range(wd):
                    row = ((b * d + i) * h + j) * wd + l
                    for p in range(kd):
                        oz = i * sd + p * dd - cf
                        if oz < 0 or oz >= od:
                            continue
                        for q in range(kh):
                            oy = j * sh + q * dh - ct
                            if oy < 0 or oy >= oh:
                                continue
                            for r in range(kw):
                                ox = l * sw + r * dw - cl
                                if ox < 0 or ox >= ow:
                                    continue
                                base = ((p * kh + q) * kw + r) * cout
                                for f in range(cout):
                                    out[b, oz, oy, ox, f] += cols[row, base + f]


@njit(parallel=True, cache=True, nogil=True, error_model="numpy", boundscheck=False)
def conv_transpose3d_par(x, w, out, kd, kh, kw, sd, sh, sw, dd, dh, dw, cf, ct, cl, scratch, nt):
    """`conv_transpose3d` for `nt` threads: the GEMM cut into tiles as the fused drivers cut theirs
    (`gemm.tiles`: columns per thread when there are few input pixels), then each output row
    gathered from the taps that land on it (no two tasks write the same output)."""
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
        sgemm_skinny(x2, r0 * cin, cin, w, c0, tc, cols, r0 * tc + c0, tc, r1 - r0, c1 - c0, cin, np.float32(0.0))
    for t in prange(n * od * oh):
        b = t // (od * oh)
        rem = t - b * od * oh
        oz = rem // oh
        oy = rem - oz * oh
        for ox in range(ow):
            acc = out[b, oz, oy, ox]
            for f in range(cout):
                acc[f] = 0.0
            for p in range(kd):
                zz = oz + cf - p * dd
                if zz < 0 or zz % sd != 0 or zz // sd >= d:
                    continue
                for q in range(kh):
                    yy = oy + ct - q * dh
                    if yy < 0 or yy % sh != 0 or yy // sh >= h:
                        continue
                    for r in range(kw):
                        xx = ox + cl - r * dw
                        if xx < 0 or xx % sw != 0 or xx // sw >= wd:
                            continue
                        row = ((b * d + zz // sd) * h + yy // sh) * wd + xx // sw
                        # unsigned offset: a signed computed index gets numba's negative-index
                        # wrap check, which keeps this loop from vectorizing
                        base = np.uint64(row * tc + ((p * kh + q) * kw + r) * cout)
                        for f in range(ucout):
                            acc[f] += cols[base + f]
