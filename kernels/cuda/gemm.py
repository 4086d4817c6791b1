"""Implicit-GEMM convolution and matrix product: one template, tiled in shared memory and registers.

The product is out[r, g*ng + c] = epilogue(sum_k A[r, k] * B[g, k, c]) for output rows r < M (pixels,
or rows of a dense layer), columns c < ng of group g (blockIdx.z), reduction k < K. B is the packed
weight (groups, K, ng), K ordered (kh, kw, cin_g) as on the CPU. A is never materialised: with
GATHER, A[r, k] is the input pixel under kernel tap k of output pixel r (zero outside the image);
without it, x is already the row-major (M, K) matrix (dense layers, 1x1 stride-1 unpadded convs).

Tiling: a block computes a BM x BN tile of `out` with NT = (BM/TM) * (BN/TN) threads, each a TM x TN
register tile split into two halves BM/2 (BN/2) apart, so that a warp's shared-memory reads of one k
are short contiguous runs that broadcast. A and B tiles of depth BK are staged in shared memory, two
buffers deep: the next tile's global loads are issued into registers before the current tile is
multiplied and stored to the other buffer after it, so one barrier per BK step suffices.
A thread loads VEC consecutive k of one A row at a time: VEC = 4 needs cin_g % 4 == 0 (the 4 values
are then channels of one pixel: one bounds test); VEC = 1 serves any shape (a first layer's 3 channels).
"""
from numba import cuda, float32, int64, uint64

BM = 128        # rows of out per block
BN = 128        # columns of out per block
BK = 8          # reduction depth staged per step
TM = 8          # rows per thread (two halves of TM/2)
TN = 8          # columns per thread (two halves of TN/2)
NT = 256        # threads per block: (BM // TM) * (BN // TN)
VEC = 4         # consecutive k per A load (4 or 1)
LA = 1          # A loads per thread per step: BM * BK // (NT * VEC)
LB = 1          # B loads (of 4 columns) per thread per step: BK * BN // (NT * 4)
GATHER = True   # A rows are convolution windows
SPLIT = False   # split-K: blockIdx.z is a slice of the reduction; raw partial sums go to `out` (a workspace)
ALIGN = 16      # shared-memory alignment in bytes (None under the simulator, which has none)


@cuda.jit(device=True)
def epilogue(v, r, c, o, ep):
    """Default (identity) epilogue. Generated code binds a fused one: v is the accumulated value of
    row r, column c (of all groups), at flat output offset o; ep is the tuple of operand arrays."""
    return v


def config(bm: int, bn: int, bk: int, tm: int, tn: int, vec: int, gather: bool) -> dict:
    """The constants of one instance; ValueError when the loads do not divide among the threads."""
    nt = (bm // tm) * (bn // tn)
    la, ra = divmod(bm * bk, nt * vec)
    lb, rb = divmod(bk * bn, nt * 4)
    if ra or rb or not la or not lb or bk % vec or tm % 2 or tn % 2:
        raise ValueError(f"tile {bm}x{bn}x{bk}/{tm}x{tn} vec {vec} does not divide among {nt} threads")
    return dict(BM=bm, BN=bn, BK=bk, TM=tm, TN=tn, NT=nt, VEC=vec, LA=la, LB=lb, GATHER=gather)


#: (bm, bn, bk, tm, tn), speed relative to the first when every SM is busy, and resident blocks per SM
#: (measured: 29 and 20 TFLOP/s for the first and last on a 4096^3 SGEMM on an H100; 128 or fewer
#: registers per thread at 256 threads gives two blocks per SM)
TILES = (
    ((128, 128, 8, 8, 8), 1.0, 2),
    ((128, 64, 16, 8, 4), 0.85, 2),
    ((64, 64, 16, 4, 4), 0.69, 3),
)
SPLIT_TILE = 2                   # split-K uses the small tile: it is for products too small to fill the GPU
SPLITS = (2, 4, 8, 16, 32)
FMA_PER_SM = 1.1e11              # per second at speed 1.0 (29 TFLOP/s over 132 SMs)
SPLIT_COST = 4e-6                # seconds: the extra reduction kernel, inside a CUDA graph


def choose(m: int, ng: int, groups: int, K: int, sms: int, workspace: int) -> tuple[int, int, int]:
    """(tile index into TILES, splits, k per split) estimated fastest for an (m x K) @ (K x ng) product
    per group: whole waves of blocks over `sms` multiprocessors at each tile's speed, plus a fixed cost
    for split-K, whose partial sums (splits * m * ng floats) must fit in `workspace`."""
    best = (float("inf"), 0, 1, K)
    for t, ((bm, bn, bk, _, _), speed, _) in enumerate(TILES):
        blocks = -(-m // bm) * -(-ng // bn) * groups
        options = [1] + (list(SPLITS) if t == SPLIT_TILE and groups == 1 else [])
        for s in options:
            kchunk = -(-(-(-K // s)) // bk) * bk if s > 1 else K
            splits = -(-K // kchunk)
            if s > 1 and (splits < 2 or kchunk < 128 or splits * m * ng > workspace):
                continue
            waves = -(-(blocks * splits) // sms)
            est = waves * bm * bn * kchunk / (FMA_PER_SM * speed) + (SPLIT_COST if s > 1 else 0.0)
            if est < best[0]:
                best = (est, t, splits, kchunk)
    return best[1], best[2], best[3]


def conv_gemm(x, w, out, M, K, kchunk, H, W, C, OHW, OW, KW, cin_g, sh, sw, dh, dw, pt, pl, ldo, ng, ep):
    """Grid (ceil(M/BM), ceil(ng/BN), groups or splits), block NT. x: (N, H, W, C) input, or (M, K)
    without GATHER; w: (groups, K, ng); out: (M, ldo), ldo = groups * ng, or with SPLIT (splits, M, ldo)
    partial sums of k in [z * kchunk, (z + 1) * kchunk) (kchunk a multiple of BK; K without SPLIT);
    OHW, OW: output pixels, width."""
    As = cuda.shared.array(2 * BK * BM, float32, alignment=ALIGN)   # [buffer, k, row]
    Bs = cuda.shared.array(2 * BK * BN, float32, alignment=ALIGN)   # [buffer, k, column]
    acc = cuda.local.array(TM * TN, float32)
    a = cuda.local.array(TM, float32)
    b = cuda.local.array(TN, float32)
    ra = cuda.local.array(LA * VEC, float32)   # the next A tile, in flight
    rb = cuda.local.array(LB * 4, float32)     # the next B tile, in flight
    abase = cuda.local.array(LA, int64)        # per A load: offset of the row's image (or row), -1 past M
    aih = cuda.local.array(LA, int64)          # window origin (may be negative: padding)
    aiw = cuda.local.array(LA, int64)
    ach = cuda.local.array(LA, int64)          # per A load: the tap (kh, kw) and channel of its next k,
    akw = cuda.local.array(LA, int64)          # advanced by BK each step: no division in the main loop
    akh = cuda.local.array(LA, int64)

    tid = cuda.threadIdx.x
    # indices known to be non-negative are cast to uint64: numba then skips its negative-index
    # wraparound, which would cost three integer operations per shared-memory load
    tx = tid % (BN // TN)
    ty = tid // (BN // TN)
    m0 = cuda.blockIdx.x * BM
    n0 = cuda.blockIdx.y * BN
    g = 0 if SPLIT else cuda.blockIdx.z
    kbeg = cuda.blockIdx.z * kchunk if SPLIT else 0
    kend = min(K, kbeg + kchunk)
    wbase = g * K * ng
    for i in range(TM * TN):
        acc[i] = float32(0.0)

    # a thread's A rows stay the same for the whole reduction: decode them once
    for l in range(LA):
        r = m0 + (l * NT + tid) // (BK // VEC)
        aih[l] = 0
        aiw[l] = 0
        if r >= M:
            abase[l] = -1
        elif GATHER:
            bimg = r // OHW
            p = r - bimg * OHW
            oh = p // OW
            aih[l] = oh * sh - pt
            aiw[l] = (p - oh * OW) * sw - pl
            abase[l] = bimg * H * W * C + g * cin_g
        else:
            abase[l] = r * K
        k = kbeg + ((l * NT + tid) % (BK // VEC)) * VEC
        tap = k // cin_g
        ach[l] = k - tap * cin_g
        akh[l] = tap // KW
        akw[l] = tap - akh[l] * KW

    ktiles = (kend - kbeg + BK - 1) // BK
    for kt in range(ktiles + 1):
        # ---- issue the global loads of tile kt into registers (the last pass only multiplies)
        if kt < ktiles:
            k0 = kbeg + kt * BK
            for l in range(LA):
                kk = k0 + ((l * NT + tid) % (BK // VEC)) * VEC
                base = abase[l]
                if GATHER:
                    # one bounds test per VEC values: with VEC == 4 they are channels of one pixel
                    ih = aih[l] + akh[l] * dh
                    iw = aiw[l] + akw[l] * dw
                    ok = base >= 0 and kk < kend and ih >= 0 and ih < H and iw >= 0 and iw < W
                    src = base + (ih * W + iw) * C + ach[l]
                    for v in range(VEC):
                        ra[l * VEC + v] = x[uint64(src + v)] if ok else float32(0.0)
                    ch = ach[l] + BK
                    while ch >= cin_g:
                        ch -= cin_g
                        akw[l] += 1
                        if akw[l] == KW:
                            akw[l] = 0
                            akh[l] += 1
                    ach[l] = ch
                else:
                    for v in range(VEC):
                        k = kk + v
                        ra[l * VEC + v] = x[uint64(base + k)] if base >= 0 and k < kend else float32(0.0)
            for l in range(LB):
                q = l * NT + tid
                k = k0 + q // (BN // 4)
                c = n0 + (q % (BN // 4)) * 4
                for v in range(4):
                    rb[l * 4 + v] = w[uint64(wbase + k * ng + c + v)] if k < kend and c + v < ng else float32(0.0)
        # ---- multiply tile kt - 1, staged in shared buffer (kt - 1) & 1
        if kt > 0:
            aoff = ((kt - 1) & 1) * (BK * BM) + ty * (TM // 2)
            boff = ((kt - 1) & 1) * (BK * BN) + tx * (TN // 2)
            for kk in range(BK):  # unroll
                for i in range(TM // 2):
                    a[i] = As[uint64(aoff + kk * BM + i)]
                    a[TM // 2 + i] = As[uint64(aoff + kk * BM + BM // 2 + i)]
                for j in range(TN // 2):
                    b[j] = Bs[uint64(boff + kk * BN + j)]
                    b[TN // 2 + j] = Bs[uint64(boff + kk * BN + BN // 2 + j)]
                for i in range(TM):
                    for j in range(TN):
                        acc[i * TN + j] += a[i] * b[j]
        # ---- stage tile kt into shared buffer kt & 1 (last read one step ago, before the barrier)
        if kt < ktiles:
            aoff = (kt & 1) * (BK * BM)
            boff = (kt & 1) * (BK * BN)
            for l in range(LA):
                q = l * NT + tid
                row = q // (BK // VEC)
                kk = (q % (BK // VEC)) * VEC
                for v in range(VEC):
                    As[aoff + (kk + v) * BM + row] = ra[l * VEC + v]
            for l in range(LB):
                q = l * NT + tid
                kk = q // (BN // 4)
                c = (q % (BN // 4)) * 4
                for v in range(4):
                    Bs[boff + kk * BN + c + v] = rb[l * 4 + v]
        cuda.syncthreads()

    # ---- epilogue: each value goes through the fused elementwise chain on its way out
    for i in range(TM):
        r = m0 + (ty * (TM // 2) + i if i < TM // 2 else BM // 2 + ty * (TM // 2) + i - TM // 2)
        if r < M:
            for j in range(TN):
                c = n0 + (tx * (TN // 2) + j if j < TN // 2 else BN // 2 + tx * (TN // 2) + j - TN // 2)
                if c < ng:
                    col = g * ng + c
                    o = r * ldo + col
                    if SPLIT:
                        out[uint64(cuda.blockIdx.z * M * ldo + o)] = acc[i * TN + j]
                    else:
                        out[o] = epilogue(acc[i * TN + j], r, col, o, ep)


def splitk_reduce(ws, out, total, ldo, splits, ep):
    """out[o] = epilogue(sum over z of ws[z, o]) for the (splits, M, ldo) partial sums of a split-K
    `conv_gemm`. Grid ceil(total / block), total = M * ldo."""
    o = cuda.grid(1)
    if o >= total:
        return
    acc = ws[o]
    for z in range(1, splits):
        acc += ws[uint64(z * total + o)]
    r = o // ldo
    out[o] = epilogue(acc, r, o - r * ldo, o, ep)
