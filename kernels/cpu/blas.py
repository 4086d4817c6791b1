"""SGEMM on sub-matrices, callable from jitted code: the BLAS that numba's own `np.dot` calls (scipy's
OpenBLAS, through numba's `numba_xxgemm` helper), with leading dimensions, offsets and beta exposed.

`np.dot` in numba wants whole C-contiguous operands; the fused drivers need more: a block of columns
of the weights and of the output (threads split the columns of a GEMM with few rows, so that each
reads half the weights instead of all of them), and accumulation into the output. Going through
numba's helper (an external symbol resolved at load time, as for `np.dot`) keeps the generated
module cacheable; a ctypes function pointer would not.
"""
import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic
from numba.np.linalg import check_blas_return, ensure_blas

from .conv import FMA_OPTS, OPTS

_char = ir.IntType(8)
_voidp = ir.IntType(8).as_pointer()


@intrinsic
def _sgemm(typingctx, a, a_off, lda, b, b_off, ldb, c, c_off, ldc, m, n, k, beta):
    """C[m x n] = A[m x k] @ B[k x n] + beta * C, all row-major float32 views into the flat data of
    arrays `a`, `b`, `c` at element offsets `*_off` with row strides `ld*` (in elements)."""
    for arr in (a, b, c):
        if not isinstance(arr, types.Array) or arr.dtype != types.float32 or arr.layout != "C":
            return None
    ensure_blas()
    sig = types.int32(a, types.intp, types.intp, b, types.intp, types.intp, c, types.intp, types.intp,
                      types.intp, types.intp, types.intp, types.float32)

    def codegen(context, builder, signature, args):
        (va, a_off_, lda_, vb, b_off_, ldb_, vc, c_off_, ldc_, m_, n_, k_, beta_) = args
        intp = context.get_value_type(types.intp)
        ptrs = []
        for ty, val, off in ((signature.args[0], va, a_off_), (signature.args[3], vb, b_off_),
                             (signature.args[6], vc, c_off_)):
            ary = context.make_array(ty)(context, builder, val)
            ptrs.append(builder.bitcast(builder.gep(ary.data, [off]), _voidp))
        fl = context.get_value_type(types.float32)
        alpha_slot = cgutils.alloca_once_value(builder, ir.Constant(fl, 1.0))
        beta_slot = cgutils.alloca_once_value(builder, beta_)
        notrans = ir.Constant(_char, ord("n"))
        kind = ir.Constant(_char, ord("s"))
        gemm_ty = ir.FunctionType(ir.IntType(32), [_char, _char, _char, intp, intp, intp, _voidp, _voidp, intp,
                                                   _voidp, intp, _voidp, _voidp, intp])
        gemv_ty = ir.FunctionType(ir.IntType(32), [_char, _char, intp, intp, _voidp, _voidp, intp, _voidp,
                                                   _voidp, _voidp])
        gemm = cgutils.get_or_insert_function(builder.module, gemm_ty, "numba_xxgemm")
        gemv = cgutils.get_or_insert_function(builder.module, gemv_ty, "numba_xxgemv")
        alpha, beta = builder.bitcast(alpha_slot, _voidp), builder.bitcast(beta_slot, _voidp)
        one_row = builder.icmp_signed("==", m_, ir.Constant(intp, 1))
        with builder.if_else(one_row) as (vec, mat):
            with vec:
                # one row (a dense layer at batch 1): GEMV, several times faster than OpenBLAS's SGEMM
                # there. y (n) = B^T (n x k, column-major with ld ldb) @ a (k)
                r1 = builder.call(gemv, (kind, notrans, n_, k_, alpha, ptrs[1], ldb_, ptrs[0], beta, ptrs[2]))
                vec_block = builder.block
            with mat:
                # column-major BLAS: C^T (n x m) = B^T (n x k) @ A^T (k x m), each a row-major block read
                # as its transpose with the same leading dimension
                r2 = builder.call(gemm, (kind, notrans, notrans, n_, m_, k_, alpha, ptrs[1], ldb_, ptrs[0], lda_,
                                         beta, ptrs[2], ldc_))
                mat_block = builder.block
        res = builder.phi(ir.IntType(32))
        res.add_incoming(r1, vec_block)
        res.add_incoming(r2, mat_block)
        check_blas_return(context, builder, res)
        return res
    return sig, codegen


@njit(**FMA_OPTS)
def _skinny_4x8(a, r, ka, b, k, j0, c, i0, n):
    """c[r..r+3, i0:i0+n] += a[r..r+3, ka..ka+7] @ b[k..k+7, j0:j0+n] (C-contiguous 2D views; i0, j0
    and n unsigned: numba's negative-index check on signed column indices keeps
    LLVM from vectorizing, and so does indexing flat arrays at computed offsets, measured 7x)."""
    x00, x01, x02, x03, x04, x05, x06, x07 = (a[r, ka], a[r, ka + 1], a[r, ka + 2], a[r, ka + 3], a[r, ka + 4],
                                              a[r, ka + 5], a[r, ka + 6], a[r, ka + 7])
    x10, x11, x12, x13, x14, x15, x16, x17 = (a[r + 1, ka], a[r + 1, ka + 1], a[r + 1, ka + 2], a[r + 1, ka + 3],
                                              a[r + 1, ka + 4], a[r + 1, ka + 5], a[r + 1, ka + 6], a[r + 1, ka + 7])
    x20, x21, x22, x23, x24, x25, x26, x27 = (a[r + 2, ka], a[r + 2, ka + 1], a[r + 2, ka + 2], a[r + 2, ka + 3],
                                              a[r + 2, ka + 4], a[r + 2, ka + 5], a[r + 2, ka + 6], a[r + 2, ka + 7])
    x30, x31, x32, x33, x34, x35, x36, x37 = (a[r + 3, ka], a[r + 3, ka + 1], a[r + 3, ka + 2], a[r + 3, ka + 3],
                                              a[r + 3, ka + 4], a[r + 3, ka + 5], a[r + 3, ka + 6], a[r + 3, ka + 7])
    for jj in range(n):
        j = j0 + jj
        w0, w1, w2, w3 = b[k, j], b[k + 1, j], b[k + 2, j], b[k + 3, j]
        w4, w5, w6, w7 = b[k + 4, j], b[k + 5, j], b[k + 6, j], b[k + 7, j]
        c[r, i0 + jj] += x00 * w0 + x01 * w1 + x02 * w2 + x03 * w3 + x04 * w4 + x05 * w5 + x06 * w6 + x07 * w7
        c[r + 1, i0 + jj] += x10 * w0 + x11 * w1 + x12 * w2 + x13 * w3 + x14 * w4 + x15 * w5 + x16 * w6 + x17 * w7
        c[r + 2, i0 + jj] += x20 * w0 + x21 * w1 + x22 * w2 + x23 * w3 + x24 * w4 + x25 * w5 + x26 * w6 + x27 * w7
        c[r + 3, i0 + jj] += x30 * w0 + x31 * w1 + x32 * w2 + x33 * w3 + x34 * w4 + x35 * w5 + x36 * w6 + x37 * w7


@njit(**FMA_OPTS)
def _skinny_1x8(a, r, ka, b, k, j0, c, i0, n):
    """One row of `_skinny_4x8`."""
    x0, x1, x2, x3, x4, x5, x6, x7 = (a[r, ka], a[r, ka + 1], a[r, ka + 2], a[r, ka + 3], a[r, ka + 4], a[r, ka + 5],
                                      a[r, ka + 6], a[r, ka + 7])
    for jj in range(n):
        j = j0 + jj
        c[r, i0 + jj] += (x0 * b[k, j] + x1 * b[k + 1, j] + x2 * b[k + 2, j] + x3 * b[k + 3, j]
                          + x4 * b[k + 4, j] + x5 * b[k + 5, j] + x6 * b[k + 6, j] + x7 * b[k + 7, j])


@njit(**FMA_OPTS)
def _skinny_1x1(a, r, ka, b, k, j0, c, i0, n):
    x = a[r, ka]
    for jj in range(n):
        j = j0 + jj
        c[r, i0 + jj] += x * b[k, j]


@njit(**OPTS)
def _rows_view(arr, off, ld, rows):
    """(2D view of `rows` rows of length ld starting at the row holding flat offset `off`, column of
    `off` in it), or an empty view when those rows do not lie inside the array."""
    flat = arr.reshape(-1)
    r0 = off // ld
    if (r0 + rows) * ld > flat.shape[0]:
        return flat[:0].reshape((0, ld)), -1
    return flat[r0 * ld:(r0 + rows) * ld].reshape((rows, ld)), off - r0 * ld


@njit(**OPTS)
def skinny_gemm(a, a_off, lda, b, b_off, ldb, c, c_off, ldc, m, n, k, beta):
    """`sgemm` for a few rows and many columns, without BLAS: each row of B is streamed from cache
    once per 4 rows of A and used for all of them, and B is not packed. OpenBLAS packs B on every
    call, which on 2 Zen 4 cores makes a 9 x 384 x 2400 block 2.1x slower (0.46 ms against 0.22) and
    8 x 1280 x 500 2.1x slower; it stays ahead when columns are few (16 x 9216 x 64).
    False (nothing done) when an operand's rows do not lie inside its array (then BLAS it is)."""
    a2, ca = _rows_view(a, a_off, lda, m)
    b2, cb = _rows_view(b, b_off, ldb, k)
    c2, cc = _rows_view(c, c_off, ldc, m)
    if ca < 0 or cb < 0 or cc < 0:
        return False
    ucb = np.uint64(cb)
    ucc = np.uint64(cc)
    un = np.uint64(n)
    for r in range(m):
        crow = c2[r, cc:cc + n]
        if beta == 0:
            for j in range(n):
                crow[j] = 0.0
        elif beta != 1:
            for j in range(n):
                crow[j] *= beta
    k8 = k - k % 8
    r = 0
    while r < m:
        four = r + 4 <= m
        for kk in range(0, k8, 8):
            if four:
                _skinny_4x8(a2, r, ca + kk, b2, kk, ucb, c2, ucc, un)
            else:
                _skinny_1x8(a2, r, ca + kk, b2, kk, ucb, c2, ucc, un)
        rows = 4 if four else 1
        for rr in range(r, r + rows):
            for kk in range(k8, k):
                _skinny_1x1(a2, rr, ca + kk, b2, kk, ucb, c2, ucc, un)
        r += rows
    return True


@njit(**OPTS)
def sgemm(a, a_off, lda, b, b_off, ldb, c, c_off, ldc, m, n, k, beta):
    """C = A @ B + beta * C on row-major blocks inside C-contiguous float32 arrays (see `_sgemm`);
    a no-op when C is empty (BLAS computes beta * C when k is 0). One row is a BLAS GEMV."""
    if m <= 0 or n <= 0:
        return
    _sgemm(a, a_off, lda, b, b_off, ldb, c, c_off, ldc, m, n, k, beta)


@njit(**OPTS)
def sgemm_skinny(a, a_off, lda, b, b_off, ldb, c, c_off, ldc, m, n, k, beta):
    """`sgemm`, with a few rows by many columns through `skinny_gemm`: for transposed convs, whose
    batch-1 GEMMs are such blocks (AC-GAN's 9 x 384 x 4800). Not called from the generated conv and
    dense drivers: each driver linking it re-optimizes its unrolled loops, measured +2-3 s of compile
    per small model with dense layers and +20 s for ResNet50."""
    if 2 <= m <= 16 and n >= 256 and skinny_gemm(a, a_off, lda, b, b_off, ldb, c, c_off, ldc, m, n, k, beta):
        return
    sgemm(a, a_off, lda, b, b_off, ldb, c, c_off, ldc, m, n, k, beta)
