"""Transposed convolution on NDHWC data (1D and 2D ones are views with unit leading spatial dims).

One BLAS GEMM multiplies every input pixel by every kernel tap, `cols = x (pixels, cin) @ w (cin,
taps*cout)`; a scatter (col2im) then adds each tap's row into the output pixel it lands on:
input pixel i, tap p -> output i*stride + p*dilation - crop. Weight layout (codegen's packer):
`w` is (cin, kd*kh*kw*cout), columns ordered (kd, kh, kw, cout).
"""
import numpy as np
from numba import njit

from .conv import OPTS


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
