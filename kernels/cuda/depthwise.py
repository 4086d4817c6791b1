"""Depthwise 2D convolution (one input channel per group, `mult` output channels per input channel),
one thread per output value, with the fused epilogue of the convolution applied on the way out.

x: (N, H, W, C); w: (KH, KW, CO) with CO = C * mult; out: (N, OH, OW, CO), all flat. Consecutive
threads take consecutive output channels, so loads of x and w and the store coalesce. The kernel
size is a template constant, so the tap loops unroll.
"""
from numba import cuda, float32

KH = 3
KW = 3


@cuda.jit(device=True)
def epilogue(v, r, c, o, ep):
    """Default (identity) epilogue: see `gemm.epilogue` for the arguments."""
    return v


def depthwise(x, w, out, total, H, W, C, OH, OW, CO, mult, sh, sw, dh, dw, pt, pl, ep):
    """Grid ceil(total / block), total = N * OH * OW * CO."""
    i = cuda.grid(1)
    if i >= total:
        return
    co = i % CO
    r = i // CO                      # output pixel (b, oh, ow) as one row index
    ow = r % OW
    t = r // OW
    oh = t % OH
    b = t // OH
    c = co // mult
    ih0 = oh * sh - pt
    iw0 = ow * sw - pl
    xb = b * H * W * C + c
    acc = float32(0.0)
    for p in range(KH):
        ih = ih0 + p * dh
        if ih >= 0 and ih < H:
            for q in range(KW):
                iw = iw0 + q * dw
                if iw >= 0 and iw < W:
                    acc += x[xb + (ih * W + iw) * C] * w[(p * KW + q) * CO + co]
    out[i] = epilogue(acc, r, co, i, ep)
