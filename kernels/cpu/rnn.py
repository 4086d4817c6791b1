"""Building blocks of the generated recurrence loops (see compiler/codegen/cpu_seq.py): the recurrent
product of one timestep, vectorizable float32 tanh and sigmoid for the fused gates, and the activations
that are functions of a whole gate (softmax, log_softmax, sparsemax, glu: Keras applies a cell's
activation to each gate's slice of units separately).

numba has no vector math library here, so `math.tanh`/`math.exp` in a gate loop are scalar calls that
stop LLVM from vectorizing it; these rational approximations are branch-free arithmetic that it does
vectorize. They are the approximation XLA's CPU backend uses for float32 tanh (Eigen's 13/6 rational
fit on [-7.9, 7.9]), accurate to a few float32 ulps, so the match with Keras on JAX is as close as with
libm.
"""
import math

import numpy as np
from numba import njit

from .conv import OPTS

_T_CLAMP = np.float32(7.90531110763549805)
_T_TINY = np.float32(0.0004)
_A1 = np.float32(4.89352455891786e-03)
_A3 = np.float32(6.37261928875436e-04)
_A5 = np.float32(1.48572235717979e-05)
_A7 = np.float32(5.12229709037114e-08)
_A9 = np.float32(-8.60467152213735e-11)
_A11 = np.float32(2.00018790482477e-13)
_A13 = np.float32(-2.76076847742355e-16)
_B0 = np.float32(4.89352518554385e-03)
_B2 = np.float32(2.26843463243900e-03)
_B4 = np.float32(1.18534705686654e-04)
_B6 = np.float32(1.19825839466702e-06)
_HALF = np.float32(0.5)


@njit(inline="always", **OPTS)
def tanh32(x):
    """float32 tanh (XLA's/Eigen's rational approximation)."""
    y = min(max(x, -_T_CLAMP), _T_CLAMP)
    y2 = y * y
    p = y * (_A1 + y2 * (_A3 + y2 * (_A5 + y2 * (_A7 + y2 * (_A9 + y2 * (_A11 + y2 * _A13))))))
    q = _B0 + y2 * (_B2 + y2 * (_B4 + y2 * _B6))
    r = p / q
    return x if abs(x) < _T_TINY else r


@njit(inline="always", **OPTS)
def sigmoid32(x):
    """float32 logistic as 0.5 + 0.5 * tanh(x / 2)."""
    return _HALF + _HALF * tanh32(_HALF * x)


@njit(**OPTS)
def recur_matmul(h, u, z):
    """z (n, m) = h (n, k) @ u (k, m): one timestep's recurrent product.

    One row (batch 1 serving) goes through a loop over four rows of u at a time, which vectorizes
    along m and beats BLAS's call overhead (measured: 0.74 against 0.95 us at 64 LSTM units); more
    rows go to BLAS."""
    n, k = h.shape
    m = u.shape[1]
    if n != 1:
        np.dot(h, u, z)
        return
    for j in range(m):
        z[0, j] = 0.0
    q = 0
    while q + 4 <= k:
        h0, h1, h2, h3 = h[0, q], h[0, q + 1], h[0, q + 2], h[0, q + 3]
        for j in range(m):
            z[0, j] += h0 * u[q, j] + h1 * u[q + 1, j] + h2 * u[q + 2, j] + h3 * u[q + 3, j]
        q += 4
    while q < k:
        hq = h[0, q]
        for j in range(m):
            z[0, j] += hq * u[q, j]
        q += 1


# ---------------------------------------------------------------------- activations of a whole gate
# Each updates a[b, s:s + F] in place: one gate's F units of one row (and one position of a ConvLSTM).
@njit(inline="always", **OPTS)
def softmax_row(a, b, s, F):
    """exp(x - max) / sum(exp(x - max)), as jax.nn.softmax."""
    m = a[b, s]
    for j in range(1, F):
        m = max(m, a[b, s + j])
    tot = np.float32(0.0)
    for j in range(F):
        e = math.exp(a[b, s + j] - m)
        a[b, s + j] = e
        tot += e
    for j in range(F):
        a[b, s + j] = a[b, s + j] / tot


@njit(inline="always", **OPTS)
def log_softmax_row(a, b, s, F):
    """(x - max) - log(sum(exp(x - max))), as jax.nn.log_softmax."""
    m = a[b, s]
    for j in range(1, F):
        m = max(m, a[b, s + j])
    tot = np.float32(0.0)
    for j in range(F):
        tot += math.exp(a[b, s + j] - m)
    lse = math.log(tot)
    for j in range(F):
        a[b, s + j] = (a[b, s + j] - m) - lse


@njit(**OPTS)
def sparsemax_row(a, b, s, F):
    """Keras 3's sparsemax (see kernels/cpu/sparsemax.py for its tau)."""
    z = np.empty(F, np.float64)
    for k in range(F):
        z[k] = a[b, s + k]
    z.sort()
    cs = 0.0
    acc = 0.0
    count = 0
    for k in range(F):
        v = z[F - 1 - k]
        cs += v
        if v - (cs - 1.0) / (k + 1) > 0.0:
            acc += cs
            count += 1
    tau = (acc - 1.0) / count
    for k in range(F):
        v = a[b, s + k] - tau
        a[b, s + k] = v if v > 0.0 else 0.0


@njit(inline="always", **OPTS)
def glu_row(a, b, s, F):
    """x[:F/2] * sigmoid(x[F/2:]) of a gate of F = 2 units: one value, which Keras's cell broadcasts
    over the 2 units (the only size at which a recurrent cell with glu runs in Keras)."""
    v = a[b, s] * (np.float32(1.0) / (np.float32(1.0) + math.exp(-a[b, s + 1])))
    a[b, s] = v
    a[b, s + 1] = v
