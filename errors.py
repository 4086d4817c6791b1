"""The one exception family of kerasjit.

Every error a user can cause (a bad file, an unsupported layer, a wrong input, a stale artifact) is a
`KerasJitError`; its message names the file, the layer and what was expected against what was found.
"""
from __future__ import annotations


class KerasJitError(Exception):
    """Base class of every error kerasjit raises on purpose."""


class ModelFormatError(KerasJitError):
    """A model file or config cannot be read: not a Keras file, truncated, malformed JSON, bad graph."""


class UnsupportedLayerError(KerasJitError):
    """The model uses layers (or options) kerasjit cannot compile; the message lists all of them."""

    def __init__(self, message: str, layers: list[tuple[str, str, str]] | None = None):
        super().__init__(message)
        #: (layer name, class name, reason) for every unsupported layer found
        self.layers = list(layers or [])


class WeightsMismatchError(KerasJitError):
    """Weights are missing, extra, mis-shaped or of the wrong dtype for the layer that uses them."""


class InputError(KerasJitError):
    """`predict` was given inputs that do not fit the model."""


class ArtifactError(KerasJitError):
    """A compiled artifact is corrupt, hand-edited, or was made for another kerasjit, numba or machine."""


class SelfTestError(ArtifactError):
    """A compiled model's outputs on the test input stored with it differ from the reference outputs
    (Keras's, or the user's) beyond the tolerance: the artifact must not be trusted."""


class CompileError(KerasJitError):
    """Code generation or numba compilation failed for a reason that is kerasjit's, not the model's."""


class TargetError(KerasJitError):
    """The requested target (for example `cuda`) is not available on this machine."""


class DeviceMemoryError(KerasJitError):
    """The GPU has too little free memory for this model at this batch size."""


class KerasJitWarning(UserWarning):
    """Base class of every warning kerasjit issues: the model runs, but something deserves a look."""


class NonFiniteWeightsWarning(KerasJitWarning):
    """The model's weights hold NaN or Inf values; the message names each layer and weight."""


class CacheWarning(KerasJitWarning):
    """The artifact cache cannot be used (for example a read-only directory); kerasjit compiled the
    model into a temporary directory instead, so the next process compiles it again."""
