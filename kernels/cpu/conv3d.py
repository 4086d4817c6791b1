"""3D convolution on NDHWC data: im2col + BLAS GEMM (1D and 2D convolutions use `conv.conv2d`).

Kernel layout (prepared by the codegen's weight packer): `w` is (groups, kd*kh*kw*cin_g, cout_g), rows
ordered (kd, kh, kw, cin_g), as in `conv.conv2d` with one more spatial dimension.
"""
import numpy as np
from numba import njit

from .conv import OPTS


@njit(**OPTS)
def im2col3d(x, g, cin_g, kd, kh, kw, sd, sh, sw, dd, dh, dw, pf, pt, pl, od, oh, ow, col):
    """col[((b*od + i)*oh + j)*ow + l, ((p*kh + q)*kw + r)*cin_g + c] = x[b, i*sd - pf + p*dd,
    j*sh - pt + q*dh, l*sw - pl + r*dw, g*cin_g + c], zero outside the input."""
    n, d, h, wd, _ = x.shape
    c0 = g * cin_g
    for b in range(n):
        for i in range(od):
            for j in range(oh):
                for l in range(ow):
                    row = ((b * od + i) * oh + j) * ow + l
                    for p in range(kd):
                        iz = i * sd - pf + p * dd
                        for q in range(kh):
                            iy = j * sh - pt + q * dh
                            for r in range(kw):
                                ix = l * sw - pl + r * dw
                                base = ((p * kh + q) * kw + r) * cin_g
                                if iz < 0 or iz >= d or iy < 0 or iy >= h or ix < 0 or ix >= wd:
                                    for c in range(cin_g):
                                        col[row, base + c] = 0.0
                                else:
                                    for c in range(cin_g):
                                        col[row, base + c] = x[b, iz, iy, ix, c0 + c]


@njit(**OPTS)
def conv3d(x, w, out, kd, kh, kw, sd, sh, sw, dd, dh, dw, pf, pt, pl, scratch):
    """General (grouped, strided, dilated, padded) 3D conv; `scratch` holds the column matrix (and one
    group's output when groups > 1)."""
    n, _, _, _, cin = x.shape
    groups, kk, cout_g = w.shape
    _, od, oh, ow, cout = out.shape
    cin_g = cin // groups
    rows = n * od * oh * ow
    out2 = out.reshape((rows, cout))
    col = scratch[: rows * kk].reshape((rows, kk))
    if groups == 1:
        im2col3d(x, 0, cin_g, kd, kh, kw, sd, sh, sw, dd, dh, dw, pf, pt, pl, od, oh, ow, col)
        np.dot(col, w[0], out2)
        return
    tmp = scratch[rows * kk: rows * kk + rows * cout_g].reshape((rows, cout_g))
    for g in range(groups):
        im2col3d(x, g, cin_g, kd, kh, kw, sd, sh, sw, dd, dh, dw, pf, pt, pl, od, oh, ow, col)
        np.dot(col, w[g], tmp)
        out2[:, g * cout_g:(g + 1) * cout_g] = tmp
