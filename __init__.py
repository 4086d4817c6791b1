"""kerasjit: compile a trained Keras model to fused Numba kernels; run it without Keras."""
from __future__ import annotations

__version__ = "0.1.0"

from .errors import (ArtifactError, CompileError, DeviceMemoryError, InputError, KerasJitError, ModelFormatError,
                     SelfTestError, TargetError, UnsupportedLayerError, WeightsMismatchError)
from .errors import CacheWarning, KerasJitWarning, NonFiniteWeightsWarning

__all__ = ["compile", "load", "CompiledModel", "KerasJitError", "ModelFormatError", "UnsupportedLayerError",
           "WeightsMismatchError", "InputError", "ArtifactError", "SelfTestError", "CompileError", "TargetError", "DeviceMemoryError",
           "KerasJitWarning", "NonFiniteWeightsWarning", "CacheWarning", "register_layer", "unregister_layer",
           "__version__"]


def __getattr__(name: str):
    # Lazy: `import kerasjit` stays cheap, and loading a cached artifact never imports the compiler.
    if name in ("compile", "load"):
        from . import api
        return getattr(api, name)
    if name in ("register_layer", "unregister_layer"):
        from . import registry
        return getattr(registry, name)
    if name == "CompiledModel":
        from .runtime.model import CompiledModel
        return CompiledModel
    raise AttributeError(f"module 'kerasjit' has no attribute {name!r}")
