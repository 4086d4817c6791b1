"""3x3 depthwise conv micro-kernels in LLVM vector IR: J adjacent output pixels of one row, all
channels, U blocks of VW channels per step (two independent chains of multiply-adds per output),
each block masked, so channels need not be a multiple of VW.

numba leaves the channel loop of a plain depthwise kernel to LLVM's loop vectorizer, which takes
it 64 channels at a time (8 lanes, interleaved 8x) and runs what is left over scalar, so below 64
channels nothing of it was vectorized. Here every block of channels is one masked vector step, the J
outputs share the input loads of their overlapping taps, and the multiply-adds are fused (one
rounding each, as with fastmath "contract" in the loop kernels). gemm.py uses these below
DW_SIMD_BELOW channels; above, the loop kernels measured level or faster.
"""
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from .conv import OPTS
from .vecir import I64, VW, VecOps


def _make(J: int, sw: int, dw: int, U: int = 2):
    """Intrinsic `k(x, xoff, rs, w, o, ooff, C)`: for outputs j < J and channels c < C,
    o[ooff + j*C + c] = sum over taps (p, q) of x[xoff + p*rs + (j*sw + q*dw)*C + c] * w[(p*3 + q)*C + c]
    (flat element offsets into C-contiguous float32 arrays; rs is the elements between kernel rows)."""

    @intrinsic
    def k(typingctx, x, xoff, rs, w, o, ooff, C):
        for arr in (x, w, o):
            if not isinstance(arr, types.Array) or arr.dtype != types.float32 or arr.layout != "C":
                return None
        sig = types.void(x, types.intp, types.intp, w, o, types.intp, types.intp)

        def codegen(context, builder, signature, args):
            vx, xoff_, rs_, vw, vo, ooff_, c_ = args
            px = builder.gep(context.make_array(signature.args[0])(context, builder, vx).data, [xoff_])
            pw = context.make_array(signature.args[3])(context, builder, vw).data
            po = builder.gep(context.make_array(signature.args[4])(context, builder, vo).data, [ooff_])
            ops = VecOps(builder)
            entry = builder.block
            loop = builder.append_basic_block("dw_loop")
            done = builder.append_basic_block("dw_done")
            builder.cbranch(builder.icmp_signed(">", c_, ir.Constant(I64, 0)), loop, done)
            builder.position_at_end(loop)
            i = builder.phi(I64)
            i.add_incoming(ir.Constant(I64, 0), entry)
            for u in range(U):
                iu = builder.add(i, ir.Constant(I64, u * VW))
                mask = ops.lanes_below(builder.sub(c_, iu))

                def at(base, off):
                    return builder.gep(base, [builder.add(off, iu)])

                wv = [ops.load(at(pw, builder.mul(ir.Constant(I64, t), c_)), mask) for t in range(9)]
                acc = [None] * J
                for p in range(3):
                    rowoff = builder.mul(ir.Constant(I64, p), rs_)
                    cols = {}
                    for j in range(J):
                        for q in range(3):
                            col = j * sw + q * dw
                            if col not in cols:
                                off = builder.add(rowoff, builder.mul(ir.Constant(I64, col), c_))
                                cols[col] = ops.load(at(px, off), mask)
                            v = cols[col]
                            t = wv[p * 3 + q]
                            acc[j] = builder.fmul(v, t) if acc[j] is None else ops.fma(v, t, acc[j])
                for j in range(J):
                    ops.store(acc[j], at(po, builder.mul(ir.Constant(I64, j), c_)), mask)
            i1 = builder.add(i, ir.Constant(I64, VW * U))
            i.add_incoming(i1, loop)
            builder.cbranch(builder.icmp_signed("<", i1, c_), loop, done)
            builder.position_at_end(done)
            return context.get_dummy_value()

        return sig, codegen

    return k


_s1x4 = _make(4, 1, 1)
_s2x2 = _make(2, 2, 1)
_x1 = _make(1, 1, 1)  # one output: the stride does not enter


@njit(**OPTS)
def dw3x3_row(xf, wf, of, a, r, rs, C, sw, jlo, jhi):
    """Columns jlo..jhi of one output row of a 3x3 depthwise conv without dilation, stride sw (1 or
    2) along the width, all taps inside the input: xf, wf, of flat; a is the flat element offset of
    the top-left tap of column 0, r of output column 0, rs the elements between kernel rows."""
    j = jlo
    if sw == 1:
        while j + 4 <= jhi:
            _s1x4(xf, a + j * C, rs, wf, of, r + j * C, C)
            j += 4
        while j < jhi:
            _x1(xf, a + j * C, rs, wf, of, r + j * C, C)
            j += 1
    else:
        while j + 2 <= jhi:
            _s2x2(xf, a + 2 * j * C, rs, wf, of, r + j * C, C)
            j += 2
        while j < jhi:
            _x1(xf, a + 2 * j * C, rs, wf, of, r + j * C, C)
            j += 1
