"""Data movement: a strided copy that serves transpose, slice, concat and pad, and a fill.

`copy_strided` writes dst[dst_off + sum_d i_d * dst_strides[d]] = src[src_off + sum_d i_d * src_strides[d]]
for every index (i_0, ..., i_5) of `dims` (up to 6 axes, unused leading axes of size 1), one thread per
element, the last axis fastest.
"""
from numba import cuda


def copy_strided(src, dst, total, dims, src_strides, src_off, dst_strides, dst_off):
    """Grid ceil(total / block), total = prod(dims); dims and strides are 6-tuples of ints."""
    i = cuda.grid(1)
    if i >= total:
        return
    s = src_off
    d = dst_off
    t = i
    for j in range(6):  # unroll
        k = t % dims[5 - j]
        t = t // dims[5 - j]
        s += k * src_strides[5 - j]
        d += k * dst_strides[5 - j]
    dst[d] = src[s]


def fill(dst, total, value):
    """dst[:total] = value. Grid ceil(total / block)."""
    i = cuda.grid(1)
    if i < total:
        dst[i] = value
