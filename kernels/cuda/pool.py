"""2D (and 3D) max and average pooling on NHWC (NDHWC) data, one thread per output value (consecutive threads take
consecutive channels). Average pooling divides by the in-bounds count (padding excluded), as Keras
does; max pooling propagates NaN like the CPU kernel."""
import math

from numba import cuda, float32


def maxpool2d(x, out, total, H, W, C, OH, OW, KH, KW, sh, sw, pt, pl):
    """Grid ceil(total / block), total = N * OH * OW * C."""
    i = cuda.grid(1)
    if i >= total:
        return
    c = i % C
    t = i // C
    ow = t % OW
    t = t // OW
    oh = t % OH
    b = t // OH
    best = float32(-math.inf)
    for p in range(KH):
        ih = oh * sh - pt + p
        if ih >= 0 and ih < H:
            for q in range(KW):
                iw = ow * sw - pl + q
                if iw >= 0 and iw < W:
                    v = x[((b * H + ih) * W + iw) * C + c]
                    if v > best or v != v:
                        best = v
    out[i] = best


def avgpool2d(x, out, total, H, W, C, OH, OW, KH, KW, sh, sw, pt, pl):
    """Grid ceil(total / block), total = N * OH * OW * C."""
    i = cuda.grid(1)
    if i >= total:
        return
    c = i % C
    t = i // C
    ow = t % OW
    t = t // OW
    oh = t % OH
    b = t // OH
    acc = float32(0.0)
    count = 0
    for p in range(KH):
        ih = oh * sh - pt + p
        if ih >= 0 and ih < H:
            for q in range(KW):
                iw = ow * sw - pl + q
                if iw >= 0 and iw < W:
                    acc += x[((b * H + ih) * W + iw) * C + c]
                    count += 1
    out[i] = acc * (float32(1.0) / float32(max(count, 1)))


def maxpool3d(x, out, total, D, H, W, C, OD, OH, OW, KD, KH, KW, sd, sh, sw, pf, pt, pl):
    """3D max pooling on NDHWC data. Grid ceil(total / block), total = N * OD * OH * OW * C."""
    i = cuda.grid(1)
    if i >= total:
        return
    c = i % C
    t = i // C
    ow = t % OW
    t = t // OW
    oh = t % OH
    t = t // OH
    od = t % OD
    b = t // OD
    best = float32(-math.inf)
    for p in range(KD):
        iz = od * sd - pf + p
        if iz >= 0 and iz < D:
            for q in range(KH):
                ih = oh * sh - pt + q
                if ih >= 0 and ih < H:
                    for s in range(KW):
                        iw = ow * sw - pl + s
                        if iw >= 0 and iw < W:
                            v = x[(((b * D + iz) * H + ih) * W + iw) * C + c]
                            if v > best or v != v:
                                best = v
    out[i] = best


def avgpool3d(x, out, total, D, H, W, C, OD, OH, OW, KD, KH, KW, sd, sh, sw, pf, pt, pl):
    """3D average pooling on NDHWC data, divided by the in-bounds count. Grid ceil(total / block),
    total = N * OD * OH * OW * C."""
    i = cuda.grid(1)
    if i >= total:
        return
    c = i % C
    t = i // C
    ow = t % OW
    t = t // OW
    oh = t % OH
    t = t // OH
    od = t % OD
    b = t // OD
    acc = float32(0.0)
    count = 0
    for p in range(KD):
        iz = od * sd - pf + p
        if iz >= 0 and iz < D:
            for q in range(KH):
                ih = oh * sh - pt + q
                if ih >= 0 and ih < H:
                    for s in range(KW):
                        iw = ow * sw - pl + s
                        if iw >= 0 and iw < W:
                            acc += x[(((b * D + iz) * H + ih) * W + iw) * C + c]
                            count += 1
    out[i] = acc * (float32(1.0) / float32(max(count, 1)))
