"""The front end: a `ModelSpec` (Keras config + weights) becomes an IR `Graph`."""
from . import layers as _layers  # noqa: F401  (registers the lowering rules)
from . import layers_conv as _layers_conv  # noqa: F401
from . import layers_core as _layers_core  # noqa: F401
from . import layers_pool as _layers_pool  # noqa: F401
from . import layers_merge as _layers_merge  # noqa: F401
from . import layers_norm as _layers_norm  # noqa: F401
from . import layers_image as _layers_image  # noqa: F401
from . import layers_legacy as _layers_legacy  # noqa: F401
# sequence layers last: their Masking and GlobalAveragePooling1D rules implement Keras masks
from . import layers_seq as _layers_seq  # noqa: F401
from . import layers_rnn as _layers_rnn  # noqa: F401
from . import layers_wrappers as _layers_wrappers  # noqa: F401
from . import layers_attention as _layers_attention  # noqa: F401
from .context import LAYERS, LayerCall, layer
from .topology import check_supported, lower

__all__ = ["LAYERS", "LayerCall", "layer", "lower", "check_supported"]
