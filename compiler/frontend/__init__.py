"""The front end: a `ModelSpec` (Keras config + weights) becomes an IR `Graph`."""
from . import layers as _layers  # noqa: F401  (registers the lowering rules)
from .context import LAYERS, LayerCall, layer
from .topology import check_supported, lower

__all__ = ["LAYERS", "LayerCall", "layer", "lower", "check_supported"]
