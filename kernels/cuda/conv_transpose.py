"""Transposed convolution on NDHWC data (1D and 2D ones have unit leading spatial dims), one thread per
output value, its epilogue (bias, activation, ...) fused.

The gather form of the scatter that defines it: input pixel i, kernel tap p land on output pixel
i*stride + p*dilation - crop, so output pixel o reads, for each tap p, the input pixel
(o + crop - p*dilation) / stride when that divides and lies inside the input. Consecutive threads
take consecutive output channels: one warp reads one input pixel's channels (a broadcast) and
consecutive weights. Output pixels no tap reaches (Keras's output_padding past the kernel) are the
epilogue of zero, as on the CPU. w is the Keras kernel as it is: (kd, kh, kw, cin, cout).
"""
from numba import cuda, float32


@cuda.jit(device=True)
def epilogue(v, r, c, o, ep):
    """Default (identity) epilogue; generated code binds the fused one (see gemm.epilogue)."""
    return v


def conv_transpose3d(x, w, out, total, D, H, W, CI, OD, OH, OW, CO, KD, KH, KW, sd, sh, sw, dd, dh, dw,
                     cf, ct, cl, ep):
    """Grid ceil(total / block), total = N * OD * OH * OW * CO; (cf, ct, cl) crop the full output."""
    i = cuda.grid(1)
    if i >= total:
        return
    f = i % CO
    r = i // CO
    ox = r % OW
    t = r // OW
    oy = t % OH
    t = t // OH
    oz = t % OD
    img = t // OD
    acc = float32(0.0)
    for p in range(KD):
        zz = oz + cf - p * dd
        if zz < 0 or zz % sd != 0 or zz // sd >= D:
            continue
        iz = zz // sd
        for q in range(KH):
            yy = oy + ct - q * dh
            if yy < 0 or yy % sh != 0 or yy // sh >= H:
                continue
            iy = yy // sh
            for s in range(KW):
                xx = ox + cl - s * dw
                if xx < 0 or xx % sw != 0 or xx // sw >= W:
                    continue
                ix = xx // sw
                xb = (((img * D + iz) * H + iy) * W + ix) * CI
                wb = ((p * KH + q) * KW + s) * CI * CO + f
                for c in range(CI):
                    acc += x[xb + c] * w[wb + c * CO]
    out[i] = epilogue(acc, r, f, i, ep)
