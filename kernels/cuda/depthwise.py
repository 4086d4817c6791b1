"""Depthwise 2D convolution (one input channel per group, `mult` output channels per input channel),
one thread per output value, with the fused epilogue of the convolution applied on the way out.

x: (N, H, W, C); w: (KH, KW, CO) with CO = C * MULT; out: (N, OH, OW, CO), all flat. Consecutive
threads take consecutive output channels, so loads of x and w and the store coalesce. Every size
but the batch is a template constant: the index decoding then divides by constants (a multiply and
a shift, where a run-time 64-bit division costs about a hundred instructions) and the taps unroll.
"""
from numba import cuda, float32

H = 8        # input height, width, channels
W = 8
C = 4
OH = 8       # output height, width, channels
OW = 8
CO = 4
MULT = 1     # output channels per input channel
KH = 3       # kernel
KW = 3
SH = 1       # strides, dilations, padding before
SW = 1
DH = 1
DW = 1
PT = 1
PL = 1


@cuda.jit(device=True)
def epilogue(v, r, c, o, ep):
    """Default (identity) epilogue: see `gemm.epilogue` for the arguments."""
    return v


def depthwise(x, w, out, total, ep):
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
    c = co // MULT
    ih0 = oh * SH - PT
    iw0 = ow * SW - PL
    xb = b * H * W * C + c
    acc = float32(0.0)
    for p in range(KH):  # unroll
        ih = ih0 + p * DH
        if ih >= 0 and ih < H:
            for q in range(KW):  # unroll
                iw = iw0 + q * DW
                if iw >= 0 and iw < W:
                    acc += x[xb + (ih * W + iw) * C] * w[(p * KW + q) * CO + co]
    out[i] = epilogue(acc, r, co, i, ep)
