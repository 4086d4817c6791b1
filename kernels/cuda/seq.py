"""Kernels of the sequence ops: embedding gathers, one-hot encodings, and batched matrix products
between two runtime values (attention's scores and weighted sums).

Index arrays keep the dtype the model declares (any integer dtype, or float32 when a layer computed
them): numba specializes the kernel per dtype. A float index is truncated toward zero, as Keras's cast
to int32 does; the RNN's input projection of an Embedding is folded into the gathered table, so an
IMDB-style model's first step is one gather.
"""
import math

from numba import cuda, float32, int64

TS = 16          # bmm: output tile edge (TS x TS threads, one output each)
TRANS = False    # bmm: b is (L, P, K) and is read transposed


@cuda.jit(device=True)
def epilogue(v, r, c, o, ep):
    """Default (identity) epilogue; generated code binds the fused one (see gemm.epilogue)."""
    return v


def gather_rows(idx, table, out, total, V, D):
    """out[i, :] = table[int(idx[i]), :] for the (M, D) output; negative indices count from the end,
    out of range gives NaN rows (jnp.take's fill). Grid ceil(total / block), total = M * D."""
    i = cuda.grid(1)
    if i >= total:
        return
    row = i // D
    j = i - row * D
    r = int64(idx[row])
    if r < 0:
        r += V
    if r >= 0 and r < V:
        out[i] = table[r * D + j]
    else:
        out[i] = float32(math.nan)


def one_hot(idx, out, total, depth, truncate):
    """out[i, j] = 1 where idx[i] == j (int(idx[i]) == j when truncate), else 0, for the (M, depth)
    output. Grid ceil(total / block), total = M * depth."""
    i = cuda.grid(1)
    if i >= total:
        return
    row = i // depth
    j = i - row * depth
    v = idx[row]
    r = int64(v)
    out[i] = float32(1.0) if r == j and (truncate or r == v) else float32(0.0)


def bmm(a, b, out, M, K, P, tiles_m, tiles_p, ep):
    """out[l] = epilogue(a[l] @ b[l]) (b[l].T with TRANS) for a (L, M, K), b (L, K, P) or (L, P, K),
    out (L, M, P). Grid L * tiles_m * tiles_p (one block per TS x TS output tile), block TS * TS."""
    As = cuda.shared.array(TS * (TS + 1), float32)   # [row, k], padded against bank conflicts
    Bs = cuda.shared.array(TS * (TS + 1), float32)   # [k, column]
    tid = cuda.threadIdx.x
    tx = tid % TS
    ty = tid // TS
    blk = cuda.blockIdx.x
    per = tiles_m * tiles_p
    l = blk // per
    t = blk - l * per
    tm = t // tiles_p
    m = tm * TS + ty
    p = (t - tm * tiles_p) * TS + tx
    abase = l * M * K
    bbase = l * K * P
    acc = float32(0.0)
    for k0 in range(0, K, TS):
        ka = k0 + tx
        ra = tm * TS + ty
        As[ty * (TS + 1) + tx] = a[abase + ra * K + ka] if ra < M and ka < K else float32(0.0)
        if TRANS:
            # coalesced along k: thread (ty, tx) reads b[l, p0 + ty, k0 + tx] into Bs[tx, ty]
            pb = p - tx + ty
            Bs[tx * (TS + 1) + ty] = b[bbase + pb * K + ka] if pb < P and ka < K else float32(0.0)
        else:
            kb = k0 + ty
            Bs[ty * (TS + 1) + tx] = b[bbase + kb * P + p] if kb < K and p < P else float32(0.0)
        cuda.syncthreads()
        for kk in range(TS):
            acc += As[ty * (TS + 1) + kk] * Bs[kk * (TS + 1) + tx]
        cuda.syncthreads()
    if m < M and p < P:
        r = l * M + m
        o = r * P + p
        out[o] = epilogue(acc, r, p, o, ep)
