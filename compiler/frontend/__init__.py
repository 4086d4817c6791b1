"""The front end: a `ModelSpec` (Keras config + weights) becomes an IR `Graph`."""
from . import layers as _layers  # noqa: F401  (registers the lowering rules)
from . import layers_conv as _layers_conv  # noqa: F401
from . import layers_core as _layers_core  # noqa: F401
from . import layers_pool as _layers_pool  # noqa: F401
from .context import LAYERS, LayerCall, layer
from .topology import check_supported, lower

__all__ = ["LAYERS", "LayerCall", "layer", "lower", "check_supported"]
