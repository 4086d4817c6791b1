"""The engines the suite times, one small module each, imported only inside that engine's worker process.

An engine turns a prepared model (files.PreparedModel) into a `predict` callable, numpy in, numpy out:

    engine = create("onnxruntime")     # imports nothing yet
    versions = engine.load(threads)    # imports the framework, pins its thread pools
    ready = engine.setup(pm, cold=True, workdir=...)   # load / convert / compile from files
    y = ready.predict(engine.prepare_inputs(xs))        # host numpy result, device work finished

`load` raises `EngineUnavailable` when the engine cannot run on this machine at all (not installed, no
GPU); the suite notes that once and skips the engine. Any other exception fails one model only.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..files import PreparedModel
from ..models import ModelInfo

__all__ = ["Engine", "EngineUnavailable", "Ready", "ENGINES", "create", "engine_device"]


class EngineUnavailable(Exception):
    """The engine cannot run here (framework not importable, no GPU, no twin of the model)."""


@dataclass
class Ready:
    """A set-up engine: its predict function and facts worth reporting (e.g. the artifact path)."""

    predict: Callable[[Any], np.ndarray]
    info: dict[str, Any] = field(default_factory=dict)


class Engine:
    """Base class; subclasses override `load` and `setup`, and the rest where they differ."""

    #: name used on the command line and in the tables
    name: str = ""
    #: "cpu" or "cuda": which batch sizes it runs and which kerasjit it is compared with
    device: str = "cpu"
    #: whether its output is checked against the Keras 3 reference (False: it has its own weights)
    verifies: bool = True

    def load(self, threads: int) -> dict[str, str]:
        """Import the framework and pin its threads; return {package: version}."""
        raise NotImplementedError

    def supports(self, info: ModelInfo) -> str | None:
        """Why this engine cannot run `info` (a note, not a failure), or None."""
        return None

    def setup(self, pm: PreparedModel, cold: bool, workdir: Path) -> Ready:
        """Everything from the model files to a ready predict; `cold` means caches must be empty."""
        raise NotImplementedError

    def cold_extra_s(self, pm: PreparedModel) -> float:
        """Cold-setup seconds spent outside this process (ONNX conversion, done at preparation)."""
        return 0.0

    def prepare_inputs(self, xs: list[np.ndarray]) -> Any:
        """Inputs in the form `predict` takes, made outside the timed region; default: the list."""
        return xs


def first_output(y: Any) -> np.ndarray:
    """The single output of a prediction that may come as an array, a list or a dict."""
    if isinstance(y, dict):
        y = next(iter(y.values()))
    elif isinstance(y, (list, tuple)):
        y = y[0]
    return np.asarray(y)


#: name -> (module, class, device); every module is imported lazily by `create`
ENGINES: dict[str, tuple[str, str, str]] = {
    "kerasjit-cpu": ("kerasjit_engine", "KerasJitCPU", "cpu"),
    "kerasjit-cuda": ("kerasjit_engine", "KerasJitCUDA", "cuda"),
    "onnxruntime": ("ort_engine", "OnnxRuntime", "cpu"),
    "tensorflow": ("tf_engine", "TensorFlow", "cpu"),
    "jax": ("jax_engine", "KerasJax", "cpu"),
    "torch": ("torch_engine", "TorchVision", "cuda"),
    "torch-graph": ("torch_engine", "TorchVisionGraph", "cuda"),
}


def engine_device(name: str) -> str:
    """"cpu" or "cuda" for a registered engine name, without importing it."""
    return ENGINES[name][2]


def create(name: str) -> Engine:
    """Import the module of engine `name` and instantiate it (the framework itself loads in `load`)."""
    module, cls, _ = ENGINES[name]
    return getattr(importlib.import_module(f"{__name__}.{module}"), cls)()
