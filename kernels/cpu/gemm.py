"""Building blocks of the fused, parallel CPU drivers that the codegen generates for conv and dense.

The generated driver splits the output into tasks run with `prange`; each task builds its im2col rows
(`im2col_rows`), multiplies them with the GEMM on packed weights (packed.py; single-threaded: the
parallelism is numba's), and applies the epilogue while the rows are still in cache. Depthwise
convolutions go row by row (`depthwise_row`), also with the epilogue fused after each row.
"""
import numpy as np
from numba import njit, prange

from .conv import FMA_OPTS, OPTS
from . import dwsimd as _dws
from .packed import MR

#: bytes of A and C rows per task beyond which a GEMM gets more tasks than threads: a task's im2col
#: rows then stay in L2 between being built and multiplied. (With OpenBLAS, which packs the weights
#: again on every call, it had to be 8 MiB; against weights packed once, 256 KiB took Inception v3
#: at batch 16 from 923 to 894 ms on 2 Zen 4 cores, its 147x147 convs from 132-164 to 165-188 GFLOP/s.)
TASK_BYTES = 1 << 18


@njit(**OPTS)
def row_chunk(rows, k, m, nt):
    """Rows per task for `nt` threads: one task per thread, or a multiple of `nt` tasks of at most
    about TASK_BYTES of input and output rows each. A multiple of the GEMM's MR rows (packed.py) where
    that keeps the number of tasks; else not: rounding up to MR had cut Inception v3's 289-row GEMMs
    at batch 1 into 5 tasks of 60 rows for 2 threads (3 against 2: 80% of the machine), where 6
    tasks of 49 rows run in near-equal micro-kernel runs anyway."""
    nt = max(1, nt)
    per_thread = -(-rows // nt)
    rounds = max(1, -(-(4 * per_thread * (k + m)) // TASK_BYTES))
    tasks = rounds * nt
    per = max(1, -(-rows // tasks))
    per_mr = -(-per // MR) * MR
    if -(-rows // per_mr) == -(-rows // per):
        return per_mr
    return per


@njit(**OPTS)
def tiles(rows, k, m, nt):
    """(rows, columns) of the output tiles that a GEMM of `rows` x `k` by `k` x `m` is cut into for
    `nt` threads. Many rows: blocks of rows (`row_chunk`), all columns. Few rows (late layers of a
    convnet at batch 1, dense layers): all rows, one block of columns per thread (a multiple of the
    packed panel width, kernels/cpu/packed.py), so that each thread streams only its share of the
    weights. Measured with OpenBLAS on 2 Zen 4 cores, columns win below ~64 rows per thread, and up
    to ~128 when the GEMM is deep and wide (196 x 2304 x 256: 1.19 ms against 1.34), and lose on
    narrow or shallow ones (784 x 32 x 192: 0.21 ms against 0.065)."""
    per_thread = -(-rows // max(1, nt))
    if nt > 1 and m >= 64 * nt and (per_thread < 64 or (per_thread < 128 and k >= 256 and m >= 128 * nt)):
        per = -(-m // nt)
        return rows, (per + 31) // 32 * 32
    return row_chunk(rows, k, m, nt), m


@njit(**OPTS)
def im2col_rows(x, r0, r1, kh, kw, sh, sw, dh, dw, pt, pl, oh, ow, col):
    """col[r - r0, (p*kw + q)*cin + c] = x[b, i*sh - pt + p*dh, j*sw - pl + q*dw, c] for rows r0..r1,
    where r = (b*oh + i)*ow + j; zero outside the input (padding).

    Works on flat views with unsigned offsets: numba wraps negative indices, and that check on a
    computed signed index keeps LLVM from vectorizing the copy (2-3x slower, most for few channels).
    With dilation 1 and the row inside the input, the kw pixels of a kernel row are one run."""
    n, h, wd, cin = x.shape
    if not (x.flags.c_contiguous and col.flags.c_contiguous):
        _im2col_rows_strided(x, r0, r1, kh, kw, sh, sw, dh, dw, pt, pl, oh, ow, col)
        return
    K = kh * kw * cin
    xf = x.reshape(-1)
    cf = col.reshape(-1)
    ucin = np.uint64(cin)
    run = np.uint64(kw * cin)
    b = r0 // (oh * ow)  # (b, i, j) of row r, stepped along instead of divided out per row
    i = (r0 - b * oh * ow) // ow
    j = r0 - (b * oh + i) * ow - 1
    for r in range(r0, r1):
        j += 1
        if j == ow:
            j = 0
            i += 1
            if i == oh:
                i = 0
                b += 1
        drow = np.uint64((r - r0) * K)
        iw0 = j * sw - pl
        inside = dw == 1 and iw0 >= 0 and iw0 + kw <= wd
        for p in range(kh):
            ih = i * sh - pt + p * dh
            d0 = drow + np.uint64(p) * run
            if ih < 0 or ih >= h:
                for c in range(run):
                    cf[d0 + c] = 0.0
            elif inside:
                s0 = np.uint64(((b * h + ih) * wd + iw0) * cin)
                for c in range(run):
                    cf[d0 + c] = xf[s0 + c]
            else:
                for q in range(kw):
                    iw = iw0 + q * dw
                    dq = d0 + np.uint64(q) * ucin
                    if iw < 0 or iw >= wd:
                        for c in range(ucin):
                            cf[dq + c] = 0.0
                    else:
                        s0 = np.uint64(((b * h + ih) * wd + iw) * cin)
                        for c in range(ucin):
                            cf[dq + c] = xf[s0 + c]


@njit(**OPTS)
def _im2col_rows_strided(x, r0, r1, kh, kw, sh, sw, dh, dw, pt, pl, oh, ow, col):
    """`im2col_rows` for arrays that are not C-contiguous."""
    n, h, wd, cin = x.shape
    for r in range(r0, r1):
        b = r // (oh * ow)
        rem = r - b * oh * ow
        i = rem // ow
        j = rem - i * ow
        dst = col[r - r0]
        for p in range(kh):
            ih = i * sh - pt + p * dh
            for q in range(kw):
                iw = j * sw - pl + q * dw
                base = (p * kw + q) * cin
                if ih < 0 or ih >= h or iw < 0 or iw >= wd:
                    for c in range(cin):
                        dst[base + c] = 0.0
                else:
                    src = x[b, ih, iw]
                    for c in range(cin):
                        dst[base + c] = src[c]


@njit(parallel=True, cache=True, nogil=True, error_model="numpy", boundscheck=False)
def im2col_par(x, rows, kh, kw, sh, sw, dh, dw, pt, pl, oh, ow, a, nt):
    """All `rows` im2col rows into the flat `a` (rows x kh*kw*cin), split over `nt` tasks."""
    k = kh * kw * x.shape[3]
    tasks = max(1, min(nt, rows))
    per = -(-rows // tasks)
    for t in prange(tasks):
        r0 = t * per
        r1 = min(rows, r0 + per)
        if r1 > r0:
            im2col_rows(x, r0, r1, kh, kw, sh, sw, dh, dw, pt, pl, oh, ow, a[r0 * k:r1 * k].reshape((r1 - r0, k)))


@njit(**OPTS)
def line_tiles(lines, ow, k, m, nt):
    """(output lines, columns) per task of a conv run line by line (`pad_width_par`'s users): the
    tiles of `tiles` for its lines * ow rows, in whole lines."""
    rc, cc = tiles(lines * ow, k, m, nt)
    if cc < m:
        return lines, cc
    nt = max(1, nt)
    tasks = -(-(-(-(lines * ow) // rc)) // nt) * nt  # as many, rounded up to a multiple of the threads
    return max(1, -(-lines // tasks)), m


@njit(parallel=True, cache=True, nogil=True, error_model="numpy", boundscheck=False)
def pad_width_par(x, pl, xp, nt):
    """xp[b, i, pl + j, c] = x[b, i, j, c] for the columns that fit in xp, zero in xp's other columns
    (its width padding)."""
    n, h, wd, cin = x.shape
    wp = xp.shape[2]
    lines = n * h
    tasks = max(1, min(nt, lines))
    per = -(-lines // tasks)
    xf = x.reshape(-1)
    pf = xp.reshape(-1)
    cols = max(0, min(wd, wp - pl))
    row = np.uint64(cols * cin)
    left = np.uint64(min(pl, wp) * cin)
    right = np.uint64((wp - min(pl, wp) - cols) * cin)
    for t in prange(tasks):
        for ln in range(t * per, min(lines, t * per + per)):
            s0 = np.uint64(ln * wd * cin)
            d0 = np.uint64(ln * wp * cin)
            for c in range(left):
                pf[d0 + c] = 0.0
            d0 += left
            for c in range(row):
                pf[d0 + c] = xf[s0 + c]
            d0 += row
            for c in range(right):
                pf[d0 + c] = 0.0


@njit(**FMA_OPTS)
def _dw3x3_s1_x4(x2, w2, o2, a, r, rs, C):
    """Four adjacent outputs o2[r..r+3] of a 3x3 stride-1 depthwise conv whose top-left input pixel
    is x2[a] (rows of x2 are pixels, rs pixels per input row): the 18 input pixels are loaded once
    for all four (a quarter of the loads of one at a time), one vector loop over channels."""
    for c in range(C):
        w0 = w2[0, c]
        w1 = w2[1, c]
        w2_ = w2[2, c]
        w3 = w2[3, c]
        w4 = w2[4, c]
        w5 = w2[5, c]
        w6 = w2[6, c]
        w7 = w2[7, c]
        w8 = w2[8, c]
        p0, p1, p2, p3, p4, p5 = x2[a, c], x2[a + 1, c], x2[a + 2, c], x2[a + 3, c], x2[a + 4, c], x2[a + 5, c]
        b = a + rs
        q0, q1, q2, q3, q4, q5 = x2[b, c], x2[b + 1, c], x2[b + 2, c], x2[b + 3, c], x2[b + 4, c], x2[b + 5, c]
        b += rs
        s0, s1, s2, s3, s4, s5 = x2[b, c], x2[b + 1, c], x2[b + 2, c], x2[b + 3, c], x2[b + 4, c], x2[b + 5, c]
        o2[r, c] = p0 * w0 + p1 * w1 + p2 * w2_ + q0 * w3 + q1 * w4 + q2 * w5 + s0 * w6 + s1 * w7 + s2 * w8
        o2[r + 1, c] = p1 * w0 + p2 * w1 + p3 * w2_ + q1 * w3 + q2 * w4 + q3 * w5 + s1 * w6 + s2 * w7 + s3 * w8
        o2[r + 2, c] = p2 * w0 + p3 * w1 + p4 * w2_ + q2 * w3 + q3 * w4 + q4 * w5 + s2 * w6 + s3 * w7 + s4 * w8
        o2[r + 3, c] = p3 * w0 + p4 * w1 + p5 * w2_ + q3 * w3 + q4 * w4 + q5 * w5 + s3 * w6 + s4 * w7 + s5 * w8


#: channels below which 3x3 rows without dilation take the vector-IR kernels of dwsimd.py (a masked
#: vector step per 16 channels). Above, `_dw3x3_s1_x4` and `_dw3x3_s2_x2` run level with them or
#: faster (LLVM vectorizes their channel loops 64 channels at a time, 8 lanes interleaved 8x). On 2
#: Xeon cores, whole 3x3 convs: 112x112x32 stride 1 112 -> 65 us, stride 2 110 -> 26; 56x56x16 24
#: -> 16; 56x56x48 40 -> 29; 56x56x8 22 -> 16. (Its 14x14x576 ran 27 us against 20.)
DW_SIMD_BELOW = 64


@njit(**FMA_OPTS)
def _dw3x3_s2_x2(x2, w2, o2, a, r, rs, C):
    """Two adjacent outputs of a 3x3 stride-2 depthwise conv (5 input columns shared)."""
    for c in range(C):
        w0 = w2[0, c]
        w1 = w2[1, c]
        w2_ = w2[2, c]
        w3 = w2[3, c]
        w4 = w2[4, c]
        w5 = w2[5, c]
        w6 = w2[6, c]
        w7 = w2[7, c]
        w8 = w2[8, c]
        p0, p1, p2, p3, p4 = x2[a, c], x2[a + 1, c], x2[a + 2, c], x2[a + 3, c], x2[a + 4, c]
        b = a + rs
        q0, q1, q2, q3, q4 = x2[b, c], x2[b + 1, c], x2[b + 2, c], x2[b + 3, c], x2[b + 4, c]
        b += rs
        s0, s1, s2, s3, s4 = x2[b, c], x2[b + 1, c], x2[b + 2, c], x2[b + 3, c], x2[b + 4, c]
        o2[r, c] = p0 * w0 + p1 * w1 + p2 * w2_ + q0 * w3 + q1 * w4 + q2 * w5 + s0 * w6 + s1 * w7 + s2 * w8
        o2[r + 1, c] = p2 * w0 + p3 * w1 + p4 * w2_ + q2 * w3 + q3 * w4 + q4 * w5 + s2 * w6 + s3 * w7 + s4 * w8


@njit(**FMA_OPTS)
def _dw3x3_x1(x2, w2, o2, a, r, rs, dw, C):
    """One output of a 3x3 depthwise conv, all nine taps inside the input."""
    for c in range(C):
        b = a + rs
        d = b + rs
        o2[r, c] = (x2[a, c] * w2[0, c] + x2[a + dw, c] * w2[1, c] + x2[a + 2 * dw, c] * w2[2, c]
                    + x2[b, c] * w2[3, c] + x2[b + dw, c] * w2[4, c] + x2[b + 2 * dw, c] * w2[5, c]
                    + x2[d, c] * w2[6, c] + x2[d + dw, c] * w2[7, c] + x2[d + 2 * dw, c] * w2[8, c])


@njit(**OPTS)
def depthwise_row(x, w, out, b, i, sh, sw, dh, dw, pt, pl):
    """One output row out[b, i, :, :] of a depthwise conv; w is (kh, kw, cin * multiplier).

    3x3 kernels without channel multiplier take a fast path on the columns whose taps all lie inside
    the input (blocks of outputs sharing input loads, channels vectorized, FMA); the border columns
    and other kernels go pixel by pixel."""
    n, h, wd, cin = x.shape
    kh, kw, cout = w.shape
    oh, ow = out.shape[1], out.shape[2]
    mult = cout // cin
    ih0 = i * sh - pt
    jlo = 0 if pl <= 0 else (pl + sw - 1) // sw
    last = (kw - 1) * dw - pl
    jhi = min(ow, (wd - 1 - last) // sw + 1) if wd - 1 - last >= 0 else 0
    fast = mult == 1 and kh == 3 and kw == 3 and ih0 >= 0 and ih0 + 2 * dh < h and jhi > jlo
    if not fast:
        jlo = jhi = 0
    _depthwise_pixels(x, w, out, b, i, sh, sw, dh, dw, pt, pl, jlo, jhi)
    if fast:
        x2 = x.reshape((n * h * wd, cin))
        w2 = w.reshape((9, cout))
        o2 = out.reshape((n * oh * ow, cout))
        r0 = (b * oh + i) * ow
        a0 = (b * h + ih0) * wd - pl
        rs = dh * wd
        j = jlo
        if dw == 1 and sw <= 2 and cout < DW_SIMD_BELOW:
            _dws.dw3x3_row(x.reshape(-1), w.reshape(-1), out.reshape(-1), a0 * cin, r0 * cout, rs * cin, cout, sw,
                           jlo, jhi)
            j = jhi
        elif dw == 1 and sw == 1:
            while j + 4 <= jhi:
                _dw3x3_s1_x4(x2, w2, o2, a0 + j, r0 + j, rs, cout)
                j += 4
        elif dw == 1 and sw == 2:
            while j + 2 <= jhi:
                _dw3x3_s2_x2(x2, w2, o2, a0 + 2 * j, r0 + j, rs, cout)
                j += 2
        while j < jhi:
            _dw3x3_x1(x2, w2, o2, a0 + j * sw, r0 + j, rs, dw, cout)
            j += 1


@njit(**FMA_OPTS)
def _depthwise_pixels(x, w, out, b, i, sh, sw, dh, dw, pt, pl, jlo, jhi):
    """The pixels of output row (b, i) outside columns jlo..jhi (borders, other kernels), tap by tap
    through flat unsigned offsets: no array view per tap."""
    n, h, wd, cin = x.shape
    kh, kw, cout = w.shape
    oh, ow = out.shape[1], out.shape[2]
    mult = cout // cin
    ih0 = i * sh - pt
    xf = x.reshape(-1)
    wf = w.reshape(-1)
    of = out.reshape(-1)
    ucout = np.uint64(cout)
    for j in range(ow):
        if j >= jlo and j < jhi:
            continue
        o0 = np.uint64(((b * oh + i) * ow + j) * cout)
        for c in range(ucout):
            of[o0 + c] = 0.0
        for p in range(kh):
            ih = ih0 + p * dh
            if ih < 0 or ih >= h:
                continue
            for q in range(kw):
                iw = j * sw - pl + q * dw
                if iw < 0 or iw >= wd:
                    continue
                x0 = np.uint64(((b * h + ih) * wd + iw) * cin)
                w0 = np.uint64((p * kw + q) * cout)
                if mult == 1:
                    for c in range(ucout):
                        of[o0 + c] += xf[x0 + c] * wf[w0 + c]
                else:
                    for c in range(cin):
                        xv = xf[x0 + c]
                        for k in range(mult):
                            of[o0 + np.uint64(c * mult + k)] += xv * wf[w0 + np.uint64(c * mult + k)]
