"""kerasjit `target="cuda"` against PyTorch (torchvision twins, fp32, TF32 off, eager and CUDA graph),
measured in one process and one run, plus each model's error against Keras.

    python -m benchmarks.cuda_models [--models resnet50,mobilenetv2,mnist] [--batches 1,32,256]

Keras (JAX on the CPU) builds each model with random weights and perturbed BatchNormalization
statistics; kerasjit compiles its .keras file; the max error against Keras is taken at batch 2.
Timings are medians of wall-clock `predict` calls with the input already on the GPU (a torch tensor,
through `__cuda_array_interface__`), each call ending in a synchronisation; the numpy column adds the
copies in and out. PyTorch's models have torchvision's own random weights (same architecture).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("JAX_PLATFORMS", "cpu")   # Keras is the oracle, on the CPU: the GPU is ours

import numpy as np  # noqa: E402


def _median_ms(fn, reps: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts) * 1e3


def _reps(batch: int) -> int:
    return 200 if batch == 1 else 50 if batch <= 32 else 15


def build_keras(name: str):
    import keras
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
    from oracle import randomize_batchnorm
    if name == "resnet50":
        m = keras.applications.ResNet50(weights=None, input_shape=(224, 224, 3), classifier_activation=None)
    elif name == "mobilenetv2":
        m = keras.applications.MobileNetV2(weights=None, input_shape=(224, 224, 3), classifier_activation=None)
    else:
        from benchmarks import models as zoo
        m = zoo.mnist_convnet(keras)
    randomize_batchnorm(m)
    return m


def ours(name: str, batches: list[int], tmp: str) -> dict:
    import torch
    import kerasjit
    m = build_keras(name)
    path = os.path.join(tmp, f"{name}.keras")
    m.save(path)
    t = time.perf_counter()
    cm = kerasjit.compile(path, target="cuda", cache_dir=os.path.join(tmp, "cache"))
    res = {"compile_s": time.perf_counter() - t}
    t = time.perf_counter()
    kerasjit.compile(path, target="cuda", cache_dir=os.path.join(tmp, "cache"))
    res["cached_load_s"] = time.perf_counter() - t
    shape = tuple(m.inputs[0].shape[1:])
    x = np.random.default_rng(1).standard_normal((2,) + shape).astype(np.float32)
    ref = np.asarray(m(x, training=False))
    got = cm.predict(x)
    res["max_err"] = float(np.abs(got - ref).max())
    res["bound"] = 1e-4 * max(1.0, float(np.abs(ref).max()))
    dgot = cm.predict(torch.from_numpy(x).cuda())
    res["device_path_err"] = float(np.abs(np.asarray(torch.as_tensor(dgot, device="cuda").cpu()) - ref).max())
    for b in batches:
        xt = torch.randn((b,) + shape, device="cuda")
        res[f"b{b}_ms"] = _median_ms(lambda: cm.predict(xt), _reps(b))
        xh = xt.cpu().numpy()
        res[f"b{b}_numpy_ms"] = _median_ms(lambda: cm.predict(xh), _reps(b))
    # host overhead: a predict's wall time minus its GPU time (graph replay timed with events)
    b = cm._batch(1)
    ev0, ev1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    gpu = []
    stream = torch.cuda.ExternalStream(int(cm._stream.handle))
    for _ in range(50):
        ev0.record(stream)
        cm._execute(b)
        ev1.record(stream)
        ev1.synchronize()
        gpu.append(ev0.elapsed_time(ev1))
    res["b1_gpu_ms"] = statistics.median(gpu)
    res["kernels"] = len(b.launches)
    res["graphs"] = b.graph is not None
    return res


def torch_twin(name: str, batches: list[int]) -> dict:
    import torch
    import torchvision
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = True
    tv = {"resnet50": "resnet50", "mobilenetv2": "mobilenet_v2"}.get(name)
    if tv is None:
        return {}
    model = getattr(torchvision.models, tv)(weights=None).eval().cuda()
    res = {}
    with torch.inference_mode():
        for b in batches:
            x = torch.randn(b, 3, 224, 224, device="cuda")

            def eager():
                model(x)
                torch.cuda.synchronize()
            res[f"b{b}_eager_ms"] = _median_ms(eager, _reps(b), warmup=5)
            s = torch.cuda.Stream()
            s.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(s):
                for _ in range(3):
                    model(x)
            torch.cuda.current_stream().wait_stream(s)
            g = torch.cuda.CUDAGraph()
            with torch.cuda.graph(g):
                model(x)

            def replay():
                g.replay()
                torch.cuda.synchronize()
            res[f"b{b}_graph_ms"] = _median_ms(replay, _reps(b), warmup=5)
            del g
    return res


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="mnist,resnet50,mobilenetv2")
    p.add_argument("--batches", default="1,32,256")
    args = p.parse_args()
    batches = [int(b) for b in args.batches.split(",")]
    tmp = tempfile.mkdtemp(prefix="kj_cuda_bench_")
    results = {}
    for name in args.models.split(","):
        r = ours(name, batches if name != "mnist" else [1, 32], tmp)
        r.update(torch_twin(name, batches))
        results[name] = r
        print(name, {k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()}, flush=True)
    print()
    print("| model | batch | kerasjit (device in) | kerasjit (numpy in) | PyTorch eager | PyTorch CUDA graph |")
    print("|---|---|---|---|---|---|")
    for name, r in results.items():
        for b in batches:
            if f"b{b}_ms" not in r:
                continue

            def cell(key):
                v = r.get(key)
                return "" if v is None else f"{v:.2f} ms ({b / v * 1e3:.0f} img/s)"
            print(f"| {name} | {b} | {cell(f'b{b}_ms')} | {cell(f'b{b}_numpy_ms')} | {cell(f'b{b}_eager_ms')} | "
                  f"{cell(f'b{b}_graph_ms')} |")
    print()
    for name, r in results.items():
        print(f"{name}: max err vs Keras {r['max_err']:.3g} (bound {r['bound']:.3g}), device path {r['device_path_err']:.3g}; "
              f"compile {r['compile_s']:.1f}s, cached load {r['cached_load_s']:.2f}s; {r['kernels']} kernels, "
              f"graphs {r['graphs']}; batch-1 GPU time {r['b1_gpu_ms']:.3f} ms vs predict {r['b1_ms']:.3f} ms")


if __name__ == "__main__":
    main()
