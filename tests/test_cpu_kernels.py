"""CPU kernels with a fast path next to a general one, against float64 references computed with numpy:
the GEMM on packed weights (every micro-kernel row count, partial panels, K slices), the 3x3
depthwise path, im2col on flat offsets, and the parallel softmax and mean. Each sweep crosses the
boundary between the paths."""
import itertools

import numba
import numpy as np
import pytest

from kerasjit.kernels.cpu import packed as P
from kerasjit.kernels.cpu import reduce as R
from kerasjit.kernels.cpu.conv import im2col
from kerasjit.kernels.cpu.gemm import depthwise_row, im2col_rows

pytestmark = pytest.mark.xdist_group("cpu_kernels")


def _assert_block(c, c_before, a_block, b_block, beta):
    """c equals c_before except in its block at rows 2.., columns 4.., which is
    a_block @ b_block + beta * (that block of c_before), computed in float64."""
    m, n = a_block.shape[0], b_block.shape[1]
    ref = c_before.astype(np.float64)
    ref[2:2 + m, 4:4 + n] = a_block.astype(np.float64) @ b_block + beta * c_before[2:2 + m, 4:4 + n]
    np.testing.assert_allclose(c, ref, rtol=1e-5, atol=1e-4)
    outside = np.ones(c.shape, bool)
    outside[2:2 + m, 4:4 + n] = False
    assert (c[outside] == c_before[outside]).all()


@numba.njit(cache=False)
def _gemm_pk(a, a_off, lda, bp, b_off, k, c, c_off, ldc, m, c0, n, beta):
    P.sgemm_pk(a, a_off, lda, bp, b_off, k, c, c_off, ldc, m, c0, n, beta)


@pytest.mark.parametrize("m,k,n,c0", [(1, 1, 1, 0), (P.MR, 3, P.NR, 0), (P.MR + 1, 17, P.NR + 1, 0),
                                      (2 * P.MR - 1, P.KC + 3, 2 * P.NR - 5, 0), (49, 2 * P.KC, 70, P.NR),
                                      (P.MC + 7, 40, 3 * P.NR, 2 * P.NR), (13, 100, 33, 0), (4, 0, 40, 0)]
                         + [(m, P.KC + 44, P.NR + 13, 0) for m in range(2, P.MR)])
@pytest.mark.parametrize("beta", [0.0, 1.0, 0.5])
def test_packed_gemm_blocks(m, k, n, c0, beta):
    """A block of C = A @ B[:, c0:c0+n] + beta * C with B packed at an offset inside a larger array,
    A and C blocks at offsets inside theirs: every row count of the micro-kernel (m mod MR), partial
    last panels (masked stores), several K slices and row blocks, k = 0; nothing outside the block
    of C is touched, not even by the full-width panel loads."""
    rng = np.random.default_rng(m * 1000 + n + k)
    cols = c0 + n + 7
    a = rng.standard_normal((m + 3, k + 5)).astype(np.float32)
    w = rng.standard_normal((k, cols)).astype(np.float32)
    pad = 11
    bp = np.concatenate([np.full(pad, np.nan, np.float32), P.pack(w), np.full(pad, np.nan, np.float32)])
    c = rng.standard_normal((m + 4, n + 11)).astype(np.float32)
    c_before = c.copy()
    _gemm_pk(a, (k + 5) + 2, k + 5, bp, pad, k, c, 2 * (n + 11) + 4, n + 11, m, c0, n, np.float32(beta))
    _assert_block(c, c_before, a[1:1 + m, 2:2 + k], w[:, c0:c0 + n], beta)


def test_packed_layout():
    """Panel p holds columns p*NR.. as (K, NR) rows, zero past the last column."""
    w = np.arange(5 * 40, dtype=np.float32).reshape(5, 40)
    bp = P.pack(w)
    assert bp.shape == (P.packed_size(5, 40),) == (2 * 5 * P.NR,)
    panels = bp.reshape(2, 5, P.NR)
    np.testing.assert_array_equal(panels[0], w[:, :P.NR])
    np.testing.assert_array_equal(panels[1, :, :40 - P.NR], w[:, P.NR:])
    assert (panels[1, :, 40 - P.NR:] == 0).all()


def test_gemm_epilogue_in_registers_matches_numpy():
    """sgemm_pk_ep: every combination of the epilogue bits (bias, residual, clamp below, clamp above)
    over row counts of every micro-kernel, partial panels, K = 0 and sliced K, a first column past
    the first panel; columns beyond the block untouched; NaN stays NaN through the clamps."""
    rng = np.random.default_rng(5)
    for m, k, n, c0, ep in itertools.product([1, 5, 13, 30], [0, 3, 300], [1, 20, 45], [0, 32], range(16)):
        wide = c0 + n + 3
        a = rng.standard_normal((m, k)).astype(np.float32)
        w = rng.standard_normal((k, wide)).astype(np.float32)
        bias = rng.standard_normal(wide + 5).astype(np.float32)
        res = rng.standard_normal((m, n + 7)).astype(np.float32)
        c = np.full((m, n + 4), np.nan, np.float32)
        P.sgemm_pk_ep(a, 0, k, P.pack(w), 0, k, c, 0, n + 4, m, c0, n, np.float32(0), bias, c0 + 2, res, 1, n + 7,
                      -0.5, 0.7, ep)
        ref = a.astype(np.float64) @ w[:, c0:c0 + n]
        ref = ref + bias[c0 + 2:c0 + 2 + n] if ep & P.EP_BIAS else ref
        ref = ref + res[:, 1:1 + n] if ep & P.EP_RES else ref
        ref = np.maximum(ref, -0.5) if ep & P.EP_LO else ref
        ref = np.minimum(ref, 0.7) if ep & P.EP_HI else ref
        np.testing.assert_allclose(c[:, :n], ref, atol=1e-4, err_msg=f"{m}x{k}x{n} at {c0}, bits {ep}")
        assert np.isnan(c[:, n:]).all()
    a = np.full((3, 4), np.nan, np.float32)
    c = np.zeros((3, 40), np.float32)
    P.sgemm_pk_ep(a, 0, 4, P.pack(np.ones((4, 40), np.float32)), 0, 4, c, 0, 40, 3, 0, 40, np.float32(0),
                  np.zeros(40, np.float32), 0, c, 0, 0, 0.0, 6.0, P.EP_BIAS | P.EP_LO | P.EP_HI)
    assert np.isnan(c).all()


@numba.njit(cache=False)
def _depthwise(x, w, out, sh, sw, dh, dw, pt, pl):
    for b in range(out.shape[0]):
        for i in range(out.shape[1]):
            depthwise_row(x, w, out, b, i, sh, sw, dh, dw, pt, pl)


def _depthwise_ref(x, w, s, d, pt, pl, oh, ow, mult):
    k = w.shape[0]
    xp = np.pad(x.astype(np.float64), ((0, 0), (pt, s * oh + k * d), (pl, s * ow + k * d), (0, 0)))
    ref = np.zeros((x.shape[0], oh, ow, w.shape[2]))
    for p in range(k):
        for q in range(k):
            sl = xp[:, p * d:p * d + s * (oh - 1) + 1:s, q * d:q * d + s * (ow - 1) + 1:s, :]
            ref += np.repeat(sl, mult, axis=3) * w[p, q]
    return ref


@pytest.mark.parametrize("k,s,d,mult", [(3, 1, 1, 1), (3, 2, 1, 1), (3, 1, 2, 1), (3, 3, 1, 1), (3, 1, 1, 2),
                                        (5, 1, 1, 1), (1, 2, 1, 1)])
def test_depthwise_rows_match_a_reference(k, s, d, mult):
    """Every output of a depthwise conv, interior (3x3 fast path: blocks of 4 or 2 outputs, then
    single ones; vector-IR kernels below 64 channels, masked where channels are not a multiple of 16)
    and border (pixel by pixel), over sizes and paddings that make each path run."""
    rng = np.random.default_rng(k * 100 + s * 10 + d + mult)
    for h, wd, c, pad in itertools.product([5, 9, 14], [6, 11, 17], [3, 17, 32, 40, 64, 96], [0, 1, 2]):
        x = rng.standard_normal((2, h, wd, c)).astype(np.float32)
        w = rng.standard_normal((k, k, c * mult)).astype(np.float32)
        oh = (h + 2 * pad - d * (k - 1) - 1) // s + 1
        ow = (wd + 2 * pad - d * (k - 1) - 1) // s + 1
        if oh <= 0 or ow <= 0:
            continue
        out = np.full((2, oh, ow, c * mult), np.nan, np.float32)
        _depthwise(x, w, out, s, s, d, d, pad, pad)
        ref = _depthwise_ref(x, w, s, d, pad, pad, oh, ow, mult)
        np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5, err_msg=f"{h}x{wd}x{c} pad {pad}")


def test_im2col_rows_match_the_plain_loop():
    """im2col on flat offsets (runs of kw pixels when the row lies inside) gives the plain loop's
    matrix, for any row range, stride, dilation and padding, and for a non-contiguous input."""
    rng = np.random.default_rng(1)
    for h, w, c, k, s, d, pt, pl in itertools.product([4, 9], [5, 8], [1, 3, 16], [1, 2, 3], [1, 2], [1, 2],
                                                      [0, 2], [0, 1]):
        x = rng.standard_normal((2, h, w, c)).astype(np.float32)
        oh = (h + 2 * pt - d * (k - 1) - 1) // s + 1
        ow = (w + 2 * pl - d * (k - 1) - 1) // s + 1
        if oh <= 0 or ow <= 0:
            continue
        rows = 2 * oh * ow
        ref = np.full((rows, k * k * c), np.nan, np.float32)
        im2col(x, 0, c, k, k, s, s, d, d, pt, pl, oh, ow, ref)
        for xx in (x, np.asfortranarray(x)):
            col = np.full_like(ref, np.nan)
            im2col_rows(xx, 0, rows, k, k, s, s, d, d, pt, pl, oh, ow, col)
            np.testing.assert_array_equal(col, ref)
        r0 = rows // 3
        col = np.full((rows - r0, k * k * c), np.nan, np.float32)
        im2col_rows(x, r0, rows, k, k, s, s, d, d, pt, pl, oh, ow, col)
        np.testing.assert_array_equal(col, ref[r0:])


@pytest.mark.parametrize("a,r,b", [(7, 128, 1), (3, 5, 4), (1, 1, 1), (9, 33, 1), (2, 64, 3), (5, 300, 1)])
def test_parallel_softmax_and_mean(a, r, b):
    """Softmax along the middle axis (vectorized exp on the last-axis path) within float32 rounding of a
    float64 reference, including logits 200 below the row's max; the mean likewise."""
    rng = np.random.default_rng(a * r * b)
    x = (rng.standard_normal((a, r, b)) * 10).astype(np.float32)
    if r > 1:
        x[0, 0, 0] = x[0].max() - 200.0
    out = np.empty_like(x)
    R.softmax3_par(x, out, 2)
    x64 = x.astype(np.float64)
    ref = np.exp(x64 - x64.max(1, keepdims=True))
    ref /= ref.sum(1, keepdims=True)
    np.testing.assert_allclose(out, ref, rtol=2e-6, atol=1e-7)
    if r > 1:
        assert out[0, 0, 0] < 1e-30
    mean = np.empty((a, b), np.float32)
    R.mean3_par(x, mean, 2)
    np.testing.assert_allclose(mean, x64.mean(1), rtol=1e-6, atol=1e-6)


def test_parallel_softmax_propagates_nan():
    """A NaN logit makes its softmax row NaN, as in Keras; the other rows are unaffected."""
    x = np.array([[1.0, np.nan, 2.0], [1.0, 2.0, 3.0], [1.0, -np.nan, 5.0], [-np.nan, 1.0, 2.0]],
                 np.float32).reshape(4, 3, 1)
    out = np.empty_like(x)
    R.softmax3_par(x, out, 2)
    assert np.isnan(out[[0, 2, 3]]).all()
    np.testing.assert_allclose(out[1, :, 0], np.exp([1, 2, 3]) / np.exp([1, 2, 3]).sum(), rtol=1e-6)


def test_row_max_through_the_bits():
    """The int-ordered row max equals np.max on rows of negative, positive, signed-zero and infinite
    values, of every length around the vector width."""
    rng = np.random.default_rng(3)
    tmp = np.empty(1, np.int32)
    for n in list(range(1, 40)) + [200, 1001]:
        for shift in (-50.0, 0.0, 50.0):
            x = (rng.standard_normal(n) * 10 + shift).astype(np.float32)
            assert R._row_max(x, tmp) == x.max()
    for v in ([-0.0, -1.0], [0.0, -0.0], [-np.inf, -np.inf], [np.inf, 3.0], [-np.inf, -3e38], [-1e-45, -2e-45]):
        x = np.array(v, np.float32)
        assert R._row_max(x, tmp) == x.max()
