"""SGEMM against weights packed once at compile time: C = A @ B + beta * C with B in panels of NR
columns, for the conv and dense drivers and the Winograd GEMMs.

OpenBLAS packs B (our weights) again on every call; with the few rows of a late convnet layer at
batch 1 that packing is a large part of the call (ResNet50's 49 x 4608 x 256 blocks: 59 GFLOP/s per
core against 110 here, measured on Zen 4). Packed layout, made by `pack` at compile time: panel p
holds columns p*NR .. p*NR + NR - 1 of B as a (K, NR) row-major block (zero-padded past the last
column), panels one after another: `bp[(p * K + k) * NR + j] = B[k, p * NR + j]`.

The micro-kernel keeps an MR x NR block of C in vector registers over a run of k: each step loads
one row of the panel (NR floats) and broadcasts MR elements of A, MR * NR / VW fused multiply-adds.
It is emitted as LLVM vector IR (`_micro`) rather than left to numba's loop vectorizer, which
vectorizes inner loops only: an accumulator block held in registers across the k loop is beyond it
(numba also keeps LLVM's SLP vectorizer off). The blocking around it follows BLIS: KC-deep slices
of K (a slice of a panel stays in L1/L2 while MC rows of A pass it), MC rows of A at a time.

The whole GEMM is one C-callable function (`_gemm_c`, a numba cfunc, cached) registered with LLVM
under SYMBOL; `sgemm_pk` calls it through that name, as numba's `np.dot` calls BLAS. The generated
drivers therefore link no copy of it: linking a kernel into a driver makes LLVM optimize it again
inside every driver's module, which is what made an unrolled skinny GEMM of an earlier version cost
seconds of compile per model.
"""
import llvmlite.binding as llb
import numpy as np
from llvmlite import ir
from numba import cfunc, njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from .conv import OPTS
from .vecir import AVX512, F32, I32, I64, MASK, VEC, VW, VecOps

#: columns per panel (two AVX-512 vectors)
NR = 32
#: rows per micro-kernel (VW, floats per vector register, comes from vecir.py): 12 x 2 zmm
#: accumulators with AVX-512 (24 of 32 registers: 14 loads per 24 FMAs; against 6 x 2, 10-20% more
#: GFLOP/s on a 2-FMA-port Xeon, 186-204 GFLOP/s per core on conv-shaped GEMMs); without it 3 x 4
#: ymm (12 of 16)
MR = 12 if AVX512 else 3
#: depth of a slice of K (K is cut into equal slices of at most KC), rows of A per block: a 256-deep
#: slice of a panel is 32 KiB, in L1 beside the rows of A (deep GEMMs, 196 x 2304 x 256: 183
#: GFLOP/s per core against 170 with 512-deep slices)
KC = 256
MC = 96
#: rows of the panel prefetched ahead of the micro-kernel's loads (2 KiB): the weights of a whole
#: network do not stay in cache between calls, and a prefetch hides what the hardware streamers
#: miss (ResNet50 on 2 Xeon cores: batch 1 34.4 -> 30.8 ms, batch 16 454 -> 431 ms; 8 to 32 rows
#: ahead all help, 64 less)
PF_AHEAD = 16
#: the name the GEMM is registered under; change it when `_gemm_c`'s arguments change, so that
#: cached drivers built against another version fail to link instead of calling it wrongly
SYMBOL = f"kerasjit_sgemm_pk_v2_{NR}_{MR}_{VW}"
#: epilogue bits of the GEMM (`sgemm_pk_ep`), applied to C's registers before they are stored, so
#: that a fused driver need not pass over its output again: + a bias per column, + a residual
#: element, a clamp below, a clamp above (ReLU, ReLU6). On 2 Xeon cores MobileNetV2's 1x1 convs
#: of 16-24 input channels spent 20-30% of their time in that second pass (112x112x16 -> 96: 280 us
#: with bias and ReLU6 against 227 without).
EP_BIAS = 1
EP_RES = 2
EP_LO = 4
EP_HI = 8

_NV = NR // VW


def pack(w: np.ndarray) -> np.ndarray:
    """(K, N) weights -> flat float32 panels of NR columns (see the module doc)."""
    w = np.asarray(w, np.float32)
    k, n = w.shape
    p = -(-n // NR)
    out = np.zeros((k, p * NR), np.float32)
    out[:, :n] = w
    return np.ascontiguousarray(out.reshape(k, p, NR).transpose(1, 0, 2)).reshape(-1)


def packed_size(k: int, n: int) -> int:
    return -(-n // NR) * NR * k


def _ptr(context, builder, ty, val, off):
    """float* to element `off` of an array or a CPointer(float32)."""
    base = val if isinstance(ty, types.CPointer) else context.make_array(ty)(context, builder, val).data
    return builder.gep(base, [off])


def _make_micro(mr: int):
    """C[mr x NR] (+)= A[mr x kc] @ panel[kc x NR]: A at `a` with row stride lda, the panel slice at
    `b` (kc rows of NR), C at `c` with row stride ldc; only the first `cols` columns of C are read
    and written (masked), `add` nonzero to add to C instead of overwriting it. Then, by the bits of
    `ep` (EP_*), before the store: + bias[bo + j] per column, + res[ro + i*ldr + j] per element,
    clamped below at lo and above at hi (NaN stays NaN, as in the generated epilogues)."""

    @intrinsic
    def micro(typingctx, a, aoff, lda, b, boff, c, coff, ldc, kc, cols, add, ep, bias, bo, res, ro, ldr, lo, hi):
        sig = types.void(a, types.intp, types.intp, b, types.intp, c, types.intp, types.intp, types.intp,
                         types.intp, types.intp, types.intp, bias, types.intp, res, types.intp, types.intp,
                         types.float32, types.float32)

        def codegen(context, builder, signature, args):
            (va, aoff_, lda_, vb, boff_, vc, coff_, ldc_, kc_, cols_, add_, ep_, vbias, bo_, vres, ro_, ldr_, lo_,
             hi_) = args
            pa = _ptr(context, builder, signature.args[0], va, aoff_)
            pb = _ptr(context, builder, signature.args[3], vb, boff_)
            pc = _ptr(context, builder, signature.args[5], vc, coff_)
            pbias = _ptr(context, builder, signature.args[12], vbias, bo_)
            pres = _ptr(context, builder, signature.args[14], vres, ro_)
            mod = builder.module
            vty = VEC.as_pointer()
            ops = VecOps(builder)
            zero = ops.zero
            entry = builder.block
            loop = builder.append_basic_block("pk_loop")
            done = builder.append_basic_block("pk_done")
            builder.cbranch(builder.icmp_signed(">", kc_, ir.Constant(I64, 0)), loop, done)

            builder.position_at_end(loop)
            k = builder.phi(I64)
            k.add_incoming(ir.Constant(I64, 0), entry)
            acc = []
            for _ in range(mr * _NV):
                p = builder.phi(VEC)
                p.add_incoming(zero, entry)
                acc.append(p)
            brow = builder.gep(pb, [builder.mul(k, ir.Constant(I64, NR))])
            i8p = ir.IntType(8).as_pointer()
            pf = cgutils.get_or_insert_function(mod, ir.FunctionType(ir.VoidType(), [i8p, I32, I32, I32]),
                                                "llvm.prefetch.p0")
            for h in range(0, NR, 16):
                ahead = builder.bitcast(builder.gep(brow, [ir.Constant(I64, PF_AHEAD * NR + h)]), i8p)
                builder.call(pf, [ahead, ir.Constant(I32, 0), ir.Constant(I32, 3), ir.Constant(I32, 1)])
            bv = [builder.load(builder.bitcast(builder.gep(brow, [ir.Constant(I64, h * VW)]), vty), align=4)
                  for h in range(_NV)]
            new = []
            for i in range(mr):
                x = builder.load(builder.gep(pa, [builder.add(builder.mul(ir.Constant(I64, i), lda_), k)]), align=4)
                xv = ops.splat(x)
                for h in range(_NV):
                    new.append(ops.fma(xv, bv[h], acc[i * _NV + h]))
            k1 = builder.add(k, ir.Constant(I64, 1))
            k.add_incoming(k1, loop)
            for p, v in zip(acc, new):
                p.add_incoming(v, loop)
            builder.cbranch(builder.icmp_signed("<", k1, kc_), loop, done)

            builder.position_at_end(done)
            fin = []
            for i in range(mr * _NV):
                p = builder.phi(VEC)
                p.add_incoming(zero, entry)
                p.add_incoming(new[i], loop)
                fin.append(p)
            isadd = builder.icmp_signed("!=", add_, ir.Constant(I64, 0))
            full = builder.icmp_signed(">=", cols_, ir.Constant(I64, NR))

            def bit(flag):
                on = builder.icmp_signed("!=", builder.and_(ep_, ir.Constant(I64, flag)), ir.Constant(I64, 0))
                return on, ops.splat_bit(on)
            has_bias, has_bias_v = bit(EP_BIAS)
            has_res, has_res_v = bit(EP_RES)
            _, has_lo_v = bit(EP_LO)
            _, has_hi_v = bit(EP_HI)
            lov, hiv = ops.splat(lo_), ops.splat(hi_)

            def epilogue(v, i, h, mask):
                # masked loads with the flag's lanes off touch no memory: bias and res may be anything
                # when their bit is clear
                bv = ops.load(builder.gep(pbias, [ir.Constant(I64, h * VW)]), builder.and_(mask, has_bias_v))
                v = builder.select(has_bias, builder.fadd(v, bv), v)
                roff = builder.add(builder.mul(ir.Constant(I64, i), ldr_), ir.Constant(I64, h * VW))
                rv = ops.load(builder.gep(pres, [roff]), builder.and_(mask, has_res_v))
                v = builder.select(has_res, builder.fadd(v, rv), v)
                v = builder.select(builder.and_(builder.fcmp_ordered("<", v, lov), has_lo_v), lov, v)
                return builder.select(builder.and_(builder.fcmp_ordered(">", v, hiv), has_hi_v), hiv, v)

            all_on = ir.Constant(MASK, [1] * VW)
            with builder.if_else(full) as (whole, part):
                with whole:
                    for i in range(mr):
                        for h in range(_NV):
                            off = builder.add(builder.mul(ir.Constant(I64, i), ldc_), ir.Constant(I64, h * VW))
                            ptr = builder.bitcast(builder.gep(pc, [off]), vty)
                            v = fin[i * _NV + h]
                            v = builder.select(isadd, builder.fadd(builder.load(ptr, align=4), v), v)
                            v = epilogue(v, i, h, all_on)
                            builder.store(v, ptr, align=4)
                with part:  # the last panel of a block: only `cols` columns exist in C
                    for h in range(_NV):
                        mask = ops.lanes_below(builder.sub(cols_, ir.Constant(I64, h * VW)))
                        for i in range(mr):
                            off = builder.add(builder.mul(ir.Constant(I64, i), ldc_), ir.Constant(I64, h * VW))
                            ptr = builder.gep(pc, [off])
                            v = fin[i * _NV + h]
                            v = builder.select(isadd, builder.fadd(ops.load(ptr, mask), v), v)
                            ops.store(epilogue(v, i, h, mask), ptr, mask)
            return context.get_dummy_value()

        return sig, codegen

    return micro


#: micro-kernels for 1..MR_MAX rows; `_micro` picks one by the rows left in a block
MR_MAX = 12
_MICRO = [_make_micro(r) for r in range(1, MR_MAX + 1)]
(_m1, _m2, _m3, _m4, _m5, _m6, _m7, _m8, _m9, _m10, _m11, _m12) = _MICRO


@njit(**OPTS)
def _micro(rows, a, aoff, lda, b, boff, c, coff, ldc, kc, cols, add, ep, bias, bo, res, ro, ldr, lo, hi):
    if rows >= 12:
        _m12(a, aoff, lda, b, boff, c, coff, ldc, kc, cols, add, ep, bias, bo, res, ro, ldr, lo, hi)
    elif rows == 11:
        _m11(a, aoff, lda, b, boff, c, coff, ldc, kc, cols, add, ep, bias, bo, res, ro, ldr, lo, hi)
    elif rows == 10:
        _m10(a, aoff, lda, b, boff, c, coff, ldc, kc, cols, add, ep, bias, bo, res, ro, ldr, lo, hi)
    elif rows == 9:
        _m9(a, aoff, lda, b, boff, c, coff, ldc, kc, cols, add, ep, bias, bo, res, ro, ldr, lo, hi)
    elif rows == 8:
        _m8(a, aoff, lda, b, boff, c, coff, ldc, kc, cols, add, ep, bias, bo, res, ro, ldr, lo, hi)
    elif rows == 7:
        _m7(a, aoff, lda, b, boff, c, coff, ldc, kc, cols, add, ep, bias, bo, res, ro, ldr, lo, hi)
    elif rows == 6:
        _m6(a, aoff, lda, b, boff, c, coff, ldc, kc, cols, add, ep, bias, bo, res, ro, ldr, lo, hi)
    elif rows == 5:
        _m5(a, aoff, lda, b, boff, c, coff, ldc, kc, cols, add, ep, bias, bo, res, ro, ldr, lo, hi)
    elif rows == 4:
        _m4(a, aoff, lda, b, boff, c, coff, ldc, kc, cols, add, ep, bias, bo, res, ro, ldr, lo, hi)
    elif rows == 3:
        _m3(a, aoff, lda, b, boff, c, coff, ldc, kc, cols, add, ep, bias, bo, res, ro, ldr, lo, hi)
    elif rows == 2:
        _m2(a, aoff, lda, b, boff, c, coff, ldc, kc, cols, add, ep, bias, bo, res, ro, ldr, lo, hi)
    else:
        _m1(a, aoff, lda, b, boff, c, coff, ldc, kc, cols, add, ep, bias, bo, res, ro, ldr, lo, hi)


_fp = types.CPointer(types.float32)


@njit(**OPTS)
def _epilogue_plain(c, ldc, m, n, bias, res, ldr, lo, hi, ep):
    for i in range(m):
        for j in range(n):
            v = c[i * ldc + j]
            if ep & EP_BIAS:
                v += bias[j]
            if ep & EP_RES:
                v += res[i * ldr + j]
            if ep & EP_LO and v < lo:
                v = lo
            if ep & EP_HI and v > hi:
                v = hi
            c[i * ldc + j] = v


@cfunc(types.void(_fp, types.intp, _fp, types.intp, _fp, types.intp, types.intp, types.intp, types.float32,
                  _fp, _fp, types.intp, types.float32, types.float32, types.intp),
       cache=True, nogil=True, error_model="numpy", boundscheck=False)
def _gemm_c(a, lda, bp, k, c, ldc, m, n, beta, bias, res, ldr, lo, hi, ep):
    """C[m x n] = A[m x k] @ B[k x n] + beta * C, then the epilogue of `ep` (see `_make_micro`;
    bias at C's first column, res at C's first element with row stride ldr); `bp` at the panel of
    C's first column."""
    if m <= 0 or n <= 0:
        return
    if beta != 0 and beta != 1:
        for i in range(m):
            for j in range(n):
                c[i * ldc + j] *= beta
    if k <= 0:
        if beta == 0:
            for i in range(m):
                for j in range(n):
                    c[i * ldc + j] = 0.0
        if ep != 0:
            _epilogue_plain(c, ldc, m, n, bias, res, ldr, lo, hi, ep)
        return
    step = -(-k // -(-k // KC))  # equal slices: K = 288 is 2 x 144, not 256 + 32
    for pc in range(0, k, step):
        kb = min(step, k - pc)
        add = 1 if (pc > 0 or beta != 0) else 0
        last = ep if pc + kb >= k else 0
        for ic in range(0, m, MC):
            ie = min(m, ic + MC)
            # the rows of the block in near-equal runs of at most MR (49 = 4 x 10 + 9, not 4 x 12 + 1):
            # a micro-kernel of 1-3 rows has too few accumulators to hide the FMA latency
            runs = -(-(ie - ic) // MR)
            short = (ie - ic) // runs
            longer = (ie - ic) - short * runs  # runs of short + 1 rows come first
            for jr in range(0, n, NR):
                cols = min(NR, n - jr)
                boff = (jr // NR) * k * NR + pc * NR
                ir = ic
                for q in range(runs):
                    rr = short + 1 if q < longer else short
                    _micro(rr, a, ir * lda + pc, lda, bp, boff, c, ir * ldc + jr, ldc, kb, cols, add,
                           last, bias, jr, res, ir * ldr + jr, ldr, lo, hi)
                    ir += rr


llb.add_symbol(SYMBOL, _gemm_c.address)


@intrinsic
def _call(typingctx, a, a_off, lda, bp, b_off, k, c, c_off, ldc, m, n, beta, bias, bias_off, res, res_off, ldr,
          lo, hi, ep):
    for arr in (a, bp, c, bias, res):
        if not isinstance(arr, types.Array) or arr.dtype != types.float32 or arr.layout != "C":
            return None
    sig = types.void(a, types.intp, types.intp, bp, types.intp, types.intp, c, types.intp, types.intp, types.intp,
                     types.intp, types.float32, bias, types.intp, res, types.intp, types.intp, types.float32,
                     types.float32, types.intp)

    def codegen(context, builder, signature, args):
        (va, a_off_, lda_, vb, b_off_, k_, vc, c_off_, ldc_, m_, n_, beta_, vbias, bias_off_, vres, res_off_, ldr_,
         lo_, hi_, ep_) = args
        fp = F32.as_pointer()
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [fp, I64, fp, I64, fp, I64, I64, I64, F32,
                                                            fp, fp, I64, F32, F32, I64]), SYMBOL)
        pa = _ptr(context, builder, signature.args[0], va, a_off_)
        pb = _ptr(context, builder, signature.args[3], vb, b_off_)
        pc = _ptr(context, builder, signature.args[6], vc, c_off_)
        pbias = _ptr(context, builder, signature.args[12], vbias, bias_off_)
        pres = _ptr(context, builder, signature.args[14], vres, res_off_)
        builder.call(fn, [pa, lda_, pb, k_, pc, ldc_, m_, n_, beta_, pbias, pres, ldr_, lo_, hi_, ep_])
        return context.get_dummy_value()

    return sig, codegen


@njit(**OPTS)
def sgemm_pk(a, a_off, lda, bp, b_off, k, c, c_off, ldc, m, c0, n, beta):
    """C[m x n] = A[m x k] @ B[:, c0:c0 + n] + beta * C on row-major blocks of flat-indexed
    C-contiguous float32 arrays (A at element a_off, row stride lda; C at c_off, row stride ldc), B
    packed by `pack` at element b_off of `bp`. c0 must be a multiple of NR."""
    if m <= 0 or n <= 0:
        return
    _call(a, a_off, lda, bp, b_off + (c0 // NR) * k * NR, k, c, c_off, ldc, m, n, beta, c, 0, c, 0, 0,
          np.float32(0.0), np.float32(0.0), 0)


@njit(**OPTS)
def sgemm_pk_ep(a, a_off, lda, bp, b_off, k, c, c_off, ldc, m, c0, n, beta, bias, bias_off, res, res_off, ldr,
                lo, hi, ep):
    """`sgemm_pk`, then the epilogue of the EP_* bits in `ep` on the block's registers: + bias[bias_off
    + j] for column j of the block, + res[res_off + i*ldr + j], clamped to [lo, hi] (NaN stays NaN).
    `bias` and `res` are not read when their bits are clear."""
    if m <= 0 or n <= 0:
        return
    _call(a, a_off, lda, bp, b_off + (c0 // NR) * k * NR, k, c, c_off, ldc, m, n, beta, bias, bias_off, res,
          res_off, ldr, np.float32(lo), np.float32(hi), ep)
