"""SGEMM on sub-matrices, callable from jitted code: the BLAS that numba's own `np.dot` calls (scipy's
OpenBLAS, through numba's `numba_xxgemm` helper), with leading dimensions, offsets and beta exposed.

`np.dot` in numba wants whole C-contiguous operands; the fused drivers need more: a block of columns
of the weights and of the output (threads split the columns of a GEMM with few rows, so that each
reads half the weights instead of all of them), and accumulation into the output. Going through
numba's helper (an external symbol resolved at load time, as for `np.dot`) keeps the generated
module cacheable; a ctypes function pointer would not.
"""
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic
from numba.np.linalg import check_blas_return, ensure_blas

from .conv import OPTS

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


@njit(**OPTS)
def sgemm(a, a_off, lda, b, b_off, ldb, c, c_off, ldc, m, n, k, beta):
    """C = A @ B + beta * C on row-major blocks inside C-contiguous float32 arrays (see `_sgemm`);
    a no-op when C is empty (BLAS computes beta * C when k is 0)."""
    if m <= 0 or n <= 0:
        return
    _sgemm(a, a_off, lda, b, b_off, ldb, c, c_off, ldc, m, n, k, beta)
