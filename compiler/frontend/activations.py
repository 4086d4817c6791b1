"""Keras activation functions as IR ops, honouring the Keras version that wrote the model."""
from __future__ import annotations

from typing import Any

from ..ir import Op
from .activations_composite import COMPOSITE
from .context import LayerCall

# name -> (op, attrs); version-dependent ones are resolved in `_resolve`
_SIMPLE: dict[str, tuple[Op, dict]] = {
    "relu": (Op.RELU, {}),
    "relu6": (Op.RELU, {"max_value": 6.0}),
    "leaky_relu": (Op.RELU, {"negative_slope": 0.2}),
    "sigmoid": (Op.SIGMOID, {}),
    "tanh": (Op.TANH, {}),
    "elu": (Op.ELU, {"alpha": 1.0}),
    "selu": (Op.SELU, {}),
    "swish": (Op.SILU, {}),
    "silu": (Op.SILU, {}),
    "gelu": (Op.GELU, {"approximate": False}),
    "softplus": (Op.SOFTPLUS, {}),
    "softsign": (Op.SOFTSIGN, {}),
    "exponential": (Op.EXP, {}),
    "hard_silu": (Op.HARD_SWISH, {}),
    "hard_swish": (Op.HARD_SWISH, {}),
}


def activation_name(act: Any) -> str | None:
    """The function name from an `activation` config entry (a string, or a serialized function)."""
    if act is None:
        return "linear"
    if isinstance(act, str):
        return act
    if isinstance(act, dict):
        inner = act.get("config")
        if isinstance(inner, str):
            return inner
        if isinstance(inner, dict) and isinstance(inner.get("name"), str):
            return inner["name"]
        return act.get("class_name")
    return None


def apply_activation(call: LayerCall, x: str, act: Any) -> str:
    """Append the activation named by `act` after value `x`; 'linear' adds nothing."""
    name = activation_name(act)
    if name in (None, "linear"):
        if name is None:
            raise call.unsupported(f"activation {act!r} cannot be read")
        return x
    if name == "softmax":
        return call.add(Op.SOFTMAX, [x], {"axis": len(call.shape(x)) - 1})
    if name == "hard_sigmoid":
        # Keras 1/2 and tf.keras: clip(0.2x + 0.5, 0, 1); Keras 3: relu6(x + 3) / 6.
        slope = 0.2 if call.keras_major < 3 else 1.0 / 6.0
        return call.add(Op.HARD_SIGMOID, [x], {"slope": slope, "offset": 0.5})
    if name in _SIMPLE:
        op, attrs = _SIMPLE[name]
        return call.add(op, [x], attrs)
    if name in COMPOSITE:
        return COMPOSITE[name](call, x)
    raise call.unsupported(f"activation {name!r} is not supported")
