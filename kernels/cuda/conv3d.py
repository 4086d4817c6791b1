"""Direct 3D convolution on NDHWC data (grouped, strided, dilated, padded), one thread per output value,
its epilogue (bias, folded BatchNormalization, activation, residual add) fused.

Used for the 3D convolutions that are not a 2D convolution of every frame (kernel depth 1, stride 1
and no padding along depth go to `gemm.conv_gemm` with the depth folded into the batch, as a
ConvLSTM2D's input projection does). Consecutive threads take consecutive output channels: a warp
reads one input pixel's channels of its group (a broadcast) and consecutive weights. w is the Keras
kernel as it is: (kd, kh, kw, cin / groups, cout); out-of-bounds taps are skipped, never read.
"""
from numba import cuda, float32


@cuda.jit(device=True)
def epilogue(v, r, c, o, ep):
    """Default (identity) epilogue; generated code binds the fused one (see gemm.epilogue)."""
    return v


def conv3d(x, w, out, total, D, H, W, CI, OD, OH, OW, CO, KD, KH, KW, sd, sh, sw, dd, dh, dw,
           pf, pt, pl, CIG, COG, ep):
    """Grid ceil(total / block), total = N * OD * OH * OW * CO; (pf, pt, pl) the low paddings."""
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
    c0 = (f // COG) * CIG
    acc = float32(0.0)
    for p in range(KD):
        iz = oz * sd - pf + p * dd
        if iz < 0 or iz >= D:
            continue
        for q in range(KH):
            iy = oy * sh - pt + q * dh
            if iy < 0 or iy >= H:
                continue
            for s in range(KW):
                ix = ox * sw - pl + s * dw
                if ix < 0 or ix >= W:
                    continue
                xb = (((img * D + iz) * H + iy) * W + ix) * CI + c0
                wb = ((p * KH + q) * KW + s) * CIG * CO + f
                for c in range(CIG):
                    acc += x[xb + c] * w[wb + c * CO]
    out[i] = epilogue(acc, r, f, i, ep)
