"""2D convolution on NHWC data: im2col + BLAS GEMM for dense convs, direct loops for depthwise.

Kernel layouts (prepared at compile time by the codegen's weight packer):
- GEMM convs: `w` is (groups, kh*kw*cin_g, cout_g), rows ordered (kh, kw, cin_g).
- depthwise convs (one input channel per group): `w` is (kh, kw, cout) with cout = cin * multiplier.
"""
import numpy as np
from numba import njit

OPTS = dict(cache=True, nogil=True, fastmath=False, error_model="numpy", boundscheck=False)
#: FMA contraction allowed (one rounding instead of two per multiply-add; LLVM does not fuse otherwise)
FMA_OPTS = dict(OPTS, fastmath={"contract"})


@njit(**OPTS)
def im2col(x, g, cin_g, kh, kw, sh, sw, dh, dw, pt, pl, oh, ow, col):
    """col[(b*oh + i)*ow + j, (p*kw + q)*cin_g + c] = x[b, i*sh - pt + p*dh, j*sw - pl + q*dw, g*cin_g + c]."""
    n, h, wd, _ = x.shape
    c0 = g * cin_g
    for b in range(n):
        for i in range(oh):
            for j in range(ow):
                row = (b * oh + i) * ow + j
                for p in range(kh):
                    ih = i * sh - pt + p * dh
                    for q in range(kw):
                        iw = j * sw - pl + q * dw
                        base = (p * kw + q) * cin_g
                        if ih < 0 or ih >= h or iw < 0 or iw >= wd:
                            for c in range(cin_g):
                                col[row, base + c] = 0.0
                        else:
                            for c in range(cin_g):
                                col[row, base + c] = x[b, ih, iw, c0 + c]


@njit(**OPTS)
def conv2d(x, w, out, kh, kw, sh, sw, dh, dw, pt, pl, scratch):
    """General (grouped, strided, dilated, padded) conv through im2col and np.dot (BLAS)."""
    n, h, wd, cin = x.shape
    groups, kk, cout_g = w.shape
    _, oh, ow, cout = out.shape
    cin_g = cin // groups
    rows = n * oh * ow
    out2 = out.reshape((rows, cout))
    pointwise = kh == 1 and kw == 1 and sh == 1 and sw == 1 and pt == 0 and pl == 0 and oh == h and ow == wd
    if groups == 1:
        if pointwise:
            np.dot(x.reshape((rows, cin)), w[0], out2)
        else:
            col = scratch[: rows * kk].reshape((rows, kk))
            im2col(x, 0, cin_g, kh, kw, sh, sw, dh, dw, pt, pl, oh, ow, col)
            np.dot(col, w[0], out2)
        return
    col = scratch[: rows * kk].reshape((rows, kk))
    tmp = scratch[rows * kk: rows * kk + rows * cout_g].reshape((rows, cout_g))
    for g in range(groups):
        im2col(x, g, cin_g, kh, kw, sh, sw, dh, dw, pt, pl, oh, ow, col)
        np.dot(col, w[g], tmp)
        out2[:, g * cout_g:(g + 1) * cout_g] = tmp


@njit(**OPTS)
def depthwise2d(x, w, out, sh, sw, dh, dw, pt, pl):
    """out[b, i, j, c*m + k] = sum_pq x[b, i*sh-pt+p*dh, j*sw-pl+q*dw, c] * w[p, q, c*m + k]."""
    n, h, wd, cin = x.shape
    kh, kw, cout = w.shape
    _, oh, ow, _ = out.shape
    mult = cout // cin
    for b in range(n):
        for i in range(oh):
            for j in range(ow):
                for o in range(cout):
                    out[b, i, j, o] = 0.0
                for p in range(kh):
                    ih = i * sh - pt + p * dh
                    if ih < 0 or ih >= h:
                        continue
                    for q in range(kw):
                        iw = j * sw - pl + q * dw
                        if iw < 0 or iw >= wd:
                            continue
                        if mult == 1:
                            for c in range(cin):
                                out[b, i, j, c] += x[b, ih, iw, c] * w[p, q, c]
                        else:
                            for c in range(cin):
                                xv = x[b, ih, iw, c]
                                for k in range(mult):
                                    out[b, i, j, c * mult + k] += xv * w[p, q, c * mult + k]


@njit(**OPTS)
def matmul(x2, w, out2):
    """out2 (rows, m) = x2 (rows, k) @ w (k, m) through BLAS."""
    np.dot(x2, w, out2)
