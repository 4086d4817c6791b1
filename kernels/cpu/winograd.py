"""Winograd convolution (Lavin & Gray 2015) for dense 3x3, stride-1, undilated 2D convs: F(2x2, 3x3)
and F(4x4, 3x3).

An m x m block of outputs ("tile") comes from an a x a block of inputs (a = m + 2) with a*a
multiplications per input and output channel pair instead of 9 m*m: the input tile d is transformed
to V = B^T d B, the kernel g (once, at compile time: `transform_weights`) to U = G g G^T, and the
output is Y = A^T (U . V) A, where the products over input channels of all tiles are a*a GEMMs (one
per element of the a x a transform) against the transformed kernels. F(2x2, 3x3) does 2.25x fewer
multiplications than the direct conv, F(4x4, 3x3) 4x fewer, for more rounding error: F(2x2)'s
transforms have only 0, +-1 and 1/2 in them, F(4x4)'s interpolate at 0, +-1, +-2 (a 71x71x80 -> 192
conv: largest error 9e-6 of the output's largest magnitude against 9e-7 with F(2x2); ResNet50 end to
end 1.6e-4 against 7.6e-5, outputs up to 5.1; the self-test's bound is 1e-4 of that).

Layouts: x is NHWC; U is (a*a, C, K); a task's scratch holds V (a*a, tiles, C) then M (a*a, tiles,
K). The transforms are linear maps applied to vectors of channels (`_lincomb`: LLVM vector IR, all
outputs of a map from one pass over its inputs). The output transform leaves a tile's outputs in a
small buffer; the node's epilogue is applied as the generated driver (codegen/cpu_fused.py) copies
them out, so that the output is written once.
"""
import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from .conv import OPTS
from .vecir import I64, VEC, VW, VecOps

#: (B^T, G, A^T) of F(m x m, 3x3) by m: U = G g G^T, V = B^T d B, Y = A^T (U . V) A
MATRICES = {
    2: (np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], np.float64),
        np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]], np.float64),
        np.array([[1, 1, 1, 0], [0, 1, -1, -1]], np.float64)),
    4: (np.array([[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
                  [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]], np.float64),
        np.array([[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
                  [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]], np.float64),
        np.array([[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]],
                 np.float64)),
}


def transform_weights(w: np.ndarray, m: int = 2) -> np.ndarray:
    """(3, 3, C, K) kernel -> (a*a, C, K) float32, element (p, q) of G g G^T at index p*a + q;
    computed in float64."""
    g = MATRICES[m][1]
    u = np.einsum("ai,ijck,bj->abck", g, w.astype(np.float64), g)
    a = m + 2
    return np.ascontiguousarray(u.reshape(a * a, w.shape[2], w.shape[3]).astype(np.float32))


#: bytes of V and M (scratch) one task should use, so that they stay in L2 (Inception v3's 71x71
#: conv at batch 16: 77 ms at 512 KiB, 80 at 256 KiB, 79 at 2 MiB)
TASK_BYTES = 1 << 19
#: tiles a task takes at least: every task reads all a*a transformed kernels, so a task of r tiles
#: does r/2 FLOP per byte of weights; below ~24 the weights' trip from L3, not the multiplications,
#: sets the time (ResNet50's 14x14 convs at batch 1: 8-tile tasks ran at ~105 GFLOP/s on 2 Xeon cores)
MIN_TILES = 24


@njit(**OPTS)
def tile_chunk(tiles, e, c, k, nt):
    """Tiles per task (e = a*a elements per tile): about TASK_BYTES of V and M but at least
    MIN_TILES, a multiple of `nt` tasks of near-equal size (no thread left with the one short task)."""
    nt = max(1, nt)
    per = max(MIN_TILES, TASK_BYTES // (4 * e * (c + k)))
    tasks = -(-tiles // per)
    tasks = -(-tasks // nt) * nt
    return max(1, -(-tiles // tasks))


def _make_lincomb(t: np.ndarray):
    """An intrinsic `lc(src, soff, sstride, dst, doff, dstride, n)`: for every output row r of the
    constant matrix t, dst[doff + r*dstride + c] = sum_j t[r, j] * src[soff + j*sstride + c] for c
    < n (flat element offsets into C-contiguous float32 arrays). One pass of VW channels at a time
    loads each input once and stores each output once; coefficients +-1 are adds, 0 are skipped."""
    t = np.asarray(t, np.float64)
    rows = [[(j, float(np.float32(t[r, j]))) for j in range(t.shape[1]) if t[r, j] != 0] for r in range(t.shape[0])]
    used = sorted({j for row in rows for j, _ in row})

    @intrinsic
    def lc(typingctx, src, soff, sstride, dst, doff, dstride, n):
        for arr in (src, dst):
            if not isinstance(arr, types.Array) or arr.dtype != types.float32 or arr.layout != "C":
                return None
        sig = types.void(src, types.intp, types.intp, dst, types.intp, types.intp, types.intp)

        def codegen(context, builder, signature, args):
            vs, soff_, sstr_, vd, doff_, dstr_, n_ = args
            ps = builder.gep(context.make_array(signature.args[0])(context, builder, vs).data, [soff_])
            pd = builder.gep(context.make_array(signature.args[3])(context, builder, vd).data, [doff_])
            ops = VecOps(builder)
            entry = builder.block
            loop = builder.append_basic_block("lc_loop")
            done = builder.append_basic_block("lc_done")
            builder.cbranch(builder.icmp_signed(">", n_, ir.Constant(I64, 0)), loop, done)
            builder.position_at_end(loop)
            i = builder.phi(I64)
            i.add_incoming(ir.Constant(I64, 0), entry)
            mask = ops.lanes_below(builder.sub(n_, i))
            vals = {j: ops.load(builder.gep(ps, [builder.add(builder.mul(ir.Constant(I64, j), sstr_), i)]), mask)
                    for j in used}
            for r, row in enumerate(rows):
                acc = None
                for j, c in row:
                    v = vals[j]
                    if acc is None:
                        acc = (v if c == 1.0 else builder.fneg(v) if c == -1.0
                               else builder.fmul(v, ir.Constant(VEC, [c] * VW)))
                    elif c == 1.0:
                        acc = builder.fadd(acc, v)
                    elif c == -1.0:
                        acc = builder.fsub(acc, v)
                    else:
                        acc = ops.fma(v, ir.Constant(VEC, [c] * VW), acc)
                ops.store(ops.zero if acc is None else acc,
                          builder.gep(pd, [builder.add(builder.mul(ir.Constant(I64, r), dstr_), i)]), mask)
            i1 = builder.add(i, ir.Constant(I64, VW))
            i.add_incoming(i1, loop)
            builder.cbranch(builder.icmp_signed("<", i1, n_), loop, done)
            builder.position_at_end(done)
            return context.get_dummy_value()

        return sig, codegen

    return lc


_LC_IN = {m: _make_lincomb(MATRICES[m][0]) for m in MATRICES}
_LC_OUT = {m: _make_lincomb(MATRICES[m][2]) for m in MATRICES}


def _make_tiles(m: int):
    a = m + 2
    lc_in, lc_out = _LC_IN[m], _LC_OUT[m]

    @njit(**OPTS)
    def input_tiles(x, t0, t1, th, tw, pt, pl, v, d, r):
        """v[e, i, c] = (B^T d B)[e] for tiles t0..t1 (tile t: batch t // (th*tw), rows m*ti - pt ..,
        columns m*tj - pl ..; zeros outside the input); v is (a*a, t1 - t0, C), d and r (a, a, C)
        scratch."""
        n, h, wd, cin = x.shape
        cnt = t1 - t0
        for t in range(t0, t1):
            b = t // (th * tw)
            rem = t - b * th * tw
            ti = rem // tw
            tj = rem - ti * tw
            i0 = m * ti - pt
            j0 = m * tj - pl
            if i0 >= 0 and j0 >= 0 and i0 + a <= h and j0 + a <= wd:
                base = ((b * h + i0) * wd + j0) * cin
                for q in range(a):  # columns of B^T d
                    lc_in(x, base + q * cin, wd * cin, r, q * cin, a * cin, cin)
            else:  # a tile over the border: gather it with zeros
                for p in range(a):
                    for q in range(a):
                        ih = i0 + p
                        iw = j0 + q
                        if ih < 0 or ih >= h or iw < 0 or iw >= wd:
                            d[p, q, :] = 0.0
                        else:
                            d[p, q, :] = x[b, ih, iw, :]
                for q in range(a):
                    lc_in(d, q * cin, a * cin, r, q * cin, a * cin, cin)
            i = t - t0
            for p in range(a):  # rows of (B^T d) B
                lc_in(r, p * a * cin, cin, v, (p * a * cnt + i) * cin, cnt * cin, cin)

    @njit(**OPTS)
    def output_tile(mm, i, s, y):
        """y[dy*m + dx, c] = (A^T M A)[dy, dx] of tile i of mm (a*a, tiles, C); s is (m, a, C) scratch."""
        cnt = mm.shape[1]
        c = mm.shape[2]
        for q in range(a):  # columns of A^T M
            lc_out(mm, (q * cnt + i) * c, a * cnt * c, s, q * c, a * c, c)
        for p in range(m):  # rows of (A^T M) A
            lc_out(s, p * a * c, c, y, p * m * c, c, c)
        return True

    return input_tiles, output_tile


input_tiles2, output_tile2 = _make_tiles(2)
input_tiles4, output_tile4 = _make_tiles(4)
