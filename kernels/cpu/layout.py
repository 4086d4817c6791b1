"""Layout moves (transpose, slice, pad, concat) as one strided copy, compiled once for all of them.

Generated code could write these as NumPy slice assignments, but numba compiles every such statement
separately (about 0.3 s each); a model with many concatenations or transposes would spend most of its
compile time there. The codegen collapses each move to at most 6 axes of (size, source stride,
destination stride) and calls `copy6` on flat views.
"""
from numba import njit

from .conv import OPTS


@njit(**OPTS)
def copy6(src, s_off, s_str, dst, d_off, d_str, shape):
    """dst[d_off + sum_k i_k * d_str[k]] = src[s_off + sum_k i_k * s_str[k]] over the 6-d index
    space `shape`; `src` and `dst` are flat arrays."""
    n0, n1, n2, n3, n4, n5 = shape
    a0, a1, a2, a3, a4, a5 = s_str
    b0, b1, b2, b3, b4, b5 = d_str
    for i0 in range(n0):
        for i1 in range(n1):
            for i2 in range(n2):
                for i3 in range(n3):
                    s = s_off + i0 * a0 + i1 * a1 + i2 * a2 + i3 * a3
                    d = d_off + i0 * b0 + i1 * b1 + i2 * b2 + i3 * b3
                    for i4 in range(n4):
                        s4 = s + i4 * a4
                        d4 = d + i4 * b4
                        if a5 == 1 and b5 == 1:
                            # a contiguous run (concat on channels, most slices): views indexed by the loop
                            # variable alone, so that no negative-index wraparound check stops LLVM vectorizing
                            sv = src[s4:s4 + n5]
                            dv = dst[d4:d4 + n5]
                            for i5 in range(n5):
                                dv[i5] = sv[i5]
                        else:
                            for i5 in range(n5):
                                dst[d4 + i5 * b5] = src[s4 + i5 * a5]


@njit(**OPTS)
def fill(dst, value):
    for i in range(dst.size):
        dst[i] = value
