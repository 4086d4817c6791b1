"""kerasjit's CUDA GEMM template against cuBLAS and cuDNN (through PyTorch, fp32, TF32 off), on a GPU.

    python -m benchmarks.cuda_kernels [--quick]

SGEMM: `conv_gemm` without gather (the dense/1x1 path) at 4096^3 against `torch.matmul`. Convolutions:
ResNet50 shapes at batch 32 (implicit GEMM with gather) against `torch.nn.functional.conv2d` on
channels-last tensors. Times are medians of CUDA-event-timed repeats after a warm-up; each result is
checked against PyTorch's before it is timed. Prints one table.
"""
from __future__ import annotations

import argparse
import statistics

import numpy as np


def _time(fn, reps: int = 20) -> float:
    """Median milliseconds of `fn()` timed with CUDA events (after 3 warm-up calls)."""
    import torch
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b))
    return statistics.median(times)


def _ours(tile: tuple, gather: bool, vec: int = 4):
    from kerasjit.kernels.cuda import gemm, template
    consts = gemm.config(*tile, vec=vec, gather=gather)
    return template.jit(gemm.conv_gemm, **consts), consts


def sgemm(size: int, tiles: list[tuple]) -> list[tuple[str, float, float]]:
    import torch
    from numba import cuda
    torch.backends.cuda.matmul.allow_tf32 = False
    m = n = k = size
    a = torch.randn(m, k, device="cuda")
    b = torch.randn(k, n, device="cuda")
    c = torch.empty(m, n, device="cuda")
    ref = a @ b
    t_ref = _time(lambda: torch.matmul(a, b, out=c))
    flops = 2.0 * m * n * k
    rows = [("cuBLAS sgemm", t_ref, flops / t_ref / 1e9)]
    da, db, dc = (cuda.as_cuda_array(t.reshape(-1)) for t in (a, b, c))
    for tile in tiles:
        kern, cf = _ours(tile, gather=False)
        grid = (-(-m // cf["BM"]), -(-n // cf["BN"]), 1)
        launch = kern[grid, cf["NT"]]

        def run():
            launch(da, db, dc, m, k, k, 1, 1, k, 1, 1, 1, k, 1, 1, 1, 1, 0, 0, n, n, ())
        run()
        torch.cuda.synchronize()
        err = float((c - ref).abs().max() / ref.abs().max())
        t = _time(run)
        rows.append((f"ours {tile} (rel err {err:.1e})", t, flops / t / 1e9))
    return rows


def conv(batch: int, h: int, cin: int, cout: int, k: int, stride: int, tiles: list[tuple]) -> list[tuple]:
    import torch
    import torch.nn.functional as F
    from numba import cuda
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = True
    pad = k // 2
    x = torch.randn(batch, cin, h, h, device="cuda").to(memory_format=torch.channels_last)
    w = torch.randn(cout, cin, k, k, device="cuda").to(memory_format=torch.channels_last) / (cin * k * k) ** 0.5
    ref = F.conv2d(x, w, stride=stride, padding=pad)
    t_ref = _time(lambda: F.conv2d(x, w, stride=stride, padding=pad))
    oh = ref.shape[2]
    flops = 2.0 * batch * oh * oh * cout * cin * k * k
    name = f"conv {k}x{k}/{stride} {h}x{h}x{cin}->{cout} b{batch}"
    rows = [(f"{name} cuDNN", t_ref, flops / t_ref / 1e9)]
    xn = x.permute(0, 2, 3, 1).contiguous()                     # NHWC
    wp = w.permute(2, 3, 1, 0).reshape(1, k * k * cin, cout).contiguous()  # (groups, K, ng)
    out = torch.empty(batch * oh * oh * cout, device="cuda")
    dx, dw, do = (cuda.as_cuda_array(t.reshape(-1)) for t in (xn, wp, out))
    refn = ref.permute(0, 2, 3, 1).reshape(-1)
    m = batch * oh * oh
    for tile in tiles:
        kern, cf = _ours(tile, gather=True, vec=4 if cin % 4 == 0 else 1)
        launch = kern[(-(-m // cf["BM"]), -(-cout // cf["BN"]), 1), cf["NT"]]

        def run():
            launch(dx, dw, do, m, k * k * cin, k * k * cin, h, h, cin, oh * oh, oh, k, cin, stride, stride, 1, 1, pad, pad,
                   cout, cout, ())
        run()
        torch.cuda.synchronize()
        err = float((out - refn).abs().max() / refn.abs().max())
        t = _time(run)
        rows.append((f"{name} ours {tile[:2]} (rel err {err:.1e})", t, flops / t / 1e9))
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    args = p.parse_args()
    from kerasjit.kernels.cuda.gemm import TILES
    tiles = [t[0] for t in TILES]
    rows = sgemm(2048 if args.quick else 4096, tiles)
    for shape in [(32, 56, 64, 64, 3, 1), (32, 56, 256, 64, 1, 1), (32, 28, 128, 128, 3, 1),
                  (32, 14, 256, 256, 3, 1), (32, 7, 512, 512, 3, 1), (32, 224, 3, 64, 7, 2)]:
        rows += conv(*shape, tiles=tiles)
    print(f"{'kernel':<62} {'ms':>9} {'TFLOP/s':>9}")
    for name, t, gf in rows:
        print(f"{name:<62} {t:9.3f} {gf:9.1f}")


if __name__ == "__main__":
    main()
