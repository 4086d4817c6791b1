"""PyTorch torchvision twins of ResNet50 and MobileNetV2 on the GPU: eval, fp32, TF32 off.

`torch-graph` is the same model replayed from a CUDA graph captured once per batch size (static
input and output tensors; the batch is copied into the input, the graph replayed, the logits copied
out): PyTorch's fastest fp32 path at small batches, without per-kernel launch cost.

These have torchvision's own random weights, so their outputs are not checked against Keras. Each
call copies the NCHW numpy batch to the GPU and the logits back (numpy in/out, like every engine);
the NHWC -> NCHW transpose is done outside the timed region.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..files import PreparedModel
from ..models import ModelInfo
from . import Engine, EngineUnavailable, Ready


class TorchVision(Engine):
    """`torchvision.models.<name>(weights=None).eval().cuda()` under `torch.inference_mode()`."""

    name = "torch"
    device = "cuda"
    verifies = False

    def load(self, threads: int) -> dict[str, str]:
        try:
            import torch
            import torchvision
        except ImportError as e:
            raise EngineUnavailable(f"torch/torchvision not importable ({e})") from e
        if not torch.cuda.is_available():
            raise EngineUnavailable("no CUDA GPU (torch.cuda.is_available() is False)")
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        torch.set_num_threads(threads)
        self.torch, self.torchvision = torch, torchvision
        return {"torch": torch.__version__, "torchvision": torchvision.__version__}

    def supports(self, info: ModelInfo) -> str | None:
        return None if info.torchvision else "no torchvision twin"

    def setup(self, pm: PreparedModel, cold: bool, workdir: Path) -> Ready:
        torch = self.torch
        model = getattr(self.torchvision.models, pm.info.torchvision)(weights=None).eval().cuda()

        def predict(x: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                return model(torch.from_numpy(x).cuda()).cpu().numpy()

        return Ready(predict, {"weights": "torchvision random init (not Keras')"})

    def prepare_inputs(self, xs: list[np.ndarray]) -> Any:
        return np.ascontiguousarray(xs[0].transpose(0, 3, 1, 2))


class TorchVisionGraph(TorchVision):
    """The torchvision model captured in a `torch.cuda.CUDAGraph` per batch size, replayed per call."""

    name = "torch-graph"

    def setup(self, pm: PreparedModel, cold: bool, workdir: Path) -> Ready:
        torch = self.torch
        model = getattr(self.torchvision.models, pm.info.torchvision)(weights=None).eval().cuda()
        graphs: dict[tuple, tuple] = {}

        def capture(shape: tuple) -> tuple:
            static_in = torch.zeros(shape, device="cuda")
            stream = torch.cuda.Stream()
            stream.wait_stream(torch.cuda.current_stream())
            with torch.inference_mode(), torch.cuda.stream(stream):
                for _ in range(3):  # warm-up on a side stream, as torch's docs require before capture
                    model(static_in)
            torch.cuda.current_stream().wait_stream(stream)
            graph = torch.cuda.CUDAGraph()
            with torch.inference_mode(), torch.cuda.graph(graph):
                static_out = model(static_in)
            return graph, static_in, static_out

        def predict(x: np.ndarray) -> np.ndarray:
            key = tuple(x.shape)
            if key not in graphs:
                graphs[key] = capture(key)
            graph, static_in, static_out = graphs[key]
            with torch.inference_mode():
                static_in.copy_(torch.from_numpy(x))
                graph.replay()
                return static_out.cpu().numpy()

        return Ready(predict, {"weights": "torchvision random init (not Keras')", "mode": "CUDA graph"})
