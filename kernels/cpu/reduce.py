"""Reductions over the middle axis of a (outer, reduced, inner) view, and softmax along it.

Any reduction over a contiguous run of axes is this shape after a reshape, which the codegen does.
"""
import numpy as np
from numba import njit, prange

from .conv import FMA_OPTS, OPTS


@njit(**OPTS)
def mean3(x, out):
    """out (a, b) = mean of x (a, r, b) over r, accumulated in float64."""
    a, r, b = x.shape
    acc = np.empty(b, np.float64)
    for i in range(a):
        acc[:] = 0.0
        for k in range(r):
            for j in range(b):
                acc[j] += x[i, k, j]
        for j in range(b):
            out[i, j] = acc[j] / r


@njit(**OPTS)
def max3(x, out):
    a, r, b = x.shape
    for i in range(a):
        for j in range(b):
            out[i, j] = x[i, 0, j]
        for k in range(1, r):
            for j in range(b):
                v = x[i, k, j]
                if v > out[i, j] or v != v:
                    out[i, j] = v


@njit(**OPTS)
def softmax3(x, out):
    """Softmax of x (a, r, b) along r, max-subtracted, summed in float64."""
    a, r, b = x.shape
    for i in range(a):
        for j in range(b):
            m = x[i, 0, j]
            for k in range(1, r):
                if x[i, k, j] > m:
                    m = x[i, k, j]
            s = 0.0
            for k in range(r):
                e = np.exp(x[i, k, j] - m)
                out[i, k, j] = e
                s += e
            inv = 1.0 / s
            for k in range(r):
                out[i, k, j] = out[i, k, j] * inv


# --- parallel versions, with a contiguous fast path when the reduced axis is the last one ---------

_LOG2E = np.float32(1.4426950408889634)
_LN2_HI = np.float32(0.693359375)
_LN2_LO = np.float32(-2.12194440e-4)
_E0 = np.float32(1.9875691500e-4)
_E1 = np.float32(1.3981999507e-3)
_E2 = np.float32(8.3334519073e-3)
_E3 = np.float32(4.1665795894e-2)
_E4 = np.float32(1.6666665459e-1)
_E5 = np.float32(5.0000001201e-1)
_LOW = np.float32(-87.0)


@njit(**FMA_OPTS)
def exp_shifted(x, m, out, bits):
    """out[k] = exp(x[k] - m) for x[k] <= m, in float32 within 1 ulp (the Cephes expf polynomial);
    below exp(-87) it gives ~1e-38 instead of 0. Written as two loops that LLVM vectorizes (the
    exponent's bits go through the int32 array `bits`): libm's expf, called per element, takes about
    6x as long. NaN stays NaN."""
    n = out.shape[0]
    for k in range(n):
        v = x[k] - m
        v = _LOW if v < _LOW else v
        fx = np.float32(np.floor(v * _LOG2E + np.float32(0.5)))
        r = v - fx * _LN2_HI - fx * _LN2_LO
        y = ((((_E0 * r + _E1) * r + _E2) * r + _E3) * r + _E4) * r + _E5
        out[k] = y * (r * r) + r + np.float32(1.0)
        bits[k] = (np.int32(fx) + np.int32(127)) << np.int32(23)
    scale = bits[:n].view(np.float32)
    for k in range(n):
        out[k] = out[k] * scale[k]


_SIGN_OFF = np.int32(0x7FFFFFFF)


@njit(**OPTS)
def _row_max(xr, tmp):
    """Max of a contiguous float32 row, through its bits: x -> b ^ ((b >> 31) & 0x7FFFFFFF) maps
    floats to int32 in the same order (negative floats have their magnitude bits flipped), and an int
    max reduction vectorizes, where numba's float compare-and-select does not (its `select` carries no
    fast-math flags: 0.57 ns per element against 0.12). `tmp` is an int32 scratch of one element or
    more. A NaN with the sign bit clear is the max (the row's softmax is NaN, as it must be); one with
    it set is skipped (its own exp makes the row NaN)."""
    xi = xr.view(np.int32)
    m = np.int32(-2147483648)
    for k in range(xi.shape[0]):
        b = xi[k]
        key = b ^ ((b >> np.int32(31)) & _SIGN_OFF)
        m = key if key > m else m
    tmp[0] = m ^ ((m >> np.int32(31)) & _SIGN_OFF)
    return tmp[:1].view(np.float32)[0]


@njit(**dict(OPTS, fastmath={"reassoc"}))
def _row_sum(xr):
    """float32 sum of a row, vectorized (reassociated, as XLA's reductions are)."""
    s = np.float32(0.0)
    for k in range(xr.shape[0]):
        s += xr[k]
    return s


@njit(parallel=True, cache=True, nogil=True, error_model="numpy", boundscheck=False)
def softmax3_par(x, out, nt):
    """`softmax3` split over `nt` tasks of rows; along the last axis (inner size 1) each row is
    contiguous and its exponentials are vectorized (`exp_shifted`)."""
    a, r, b = x.shape
    tasks = max(1, min(nt, a))
    per = -(-a // tasks)
    if b != 1:
        for t in prange(tasks):
            lo = t * per
            hi = min(a, lo + per)
            if hi > lo:
                softmax3(x[lo:hi], out[lo:hi])
        return
    x2 = x.reshape((a, r))
    o2 = out.reshape((a, r))
    for t in prange(tasks):
        bits = np.empty(r, np.int32)
        for i in range(t * per, min(a, (t + 1) * per)):
            xr = x2[i]
            orow = o2[i]
            exp_shifted(xr, _row_max(xr, bits), orow, bits)
            inv = np.float32(1.0) / _row_sum(orow)
            for k in range(r):
                orow[k] = orow[k] * inv


@njit(parallel=True, cache=True, nogil=True, error_model="numpy", boundscheck=False)
def mean3_par(x, out, nt):
    """`mean3` split over `nt` tasks of rows (the outer axis); along the last axis (inner size 1) a
    plain float64 sum per row."""
    a, r, b = x.shape
    tasks = max(1, min(nt, a))
    per = -(-a // tasks)
    if b != 1:
        for t in prange(tasks):
            lo = t * per
            hi = min(a, lo + per)
            if hi > lo:
                mean3(x[lo:hi], out[lo:hi])
        return
    x2 = x.reshape((a, r))
    for t in prange(tasks):
        for i in range(t * per, min(a, (t + 1) * per)):
            xr = x2[i]
            s = 0.0
            for k in range(r):
                s += xr[k]
            out[i, 0] = s / r
