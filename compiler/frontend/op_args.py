"""The arguments of an operation node, as Python values with `Tensor`s in place of the keras tensors.

Keras 3 records a call's positional arguments in the node's `args` (keras tensors as
`{"class_name": "__keras_tensor__", ...}`, arrays as `__numpy__`/`__tensor__`, slices as `__slice__`,
`...` as `__ellipsis__`); topology.py gives tf.keras nodes the same form (their first argument in
`args`, tensors of keyword arguments in `tensor_kwargs`). The tensors were flattened in traversal
order (lists in order, dicts by value), and `decode` consumes them in that same order.
"""
from __future__ import annotations

from typing import Any, Iterator

import numpy as np

from ..ir import Op
from .context import LayerCall
from .tensor_ops import Ops, Tensor

def _is_tensor_ref(obj: Any) -> bool:
    return isinstance(obj, dict) and obj.get("class_name") == "__keras_tensor__"


def decode(obj: Any, tensors: Iterator[Tensor], ops: Ops) -> Any:
    """`obj` from a node's recorded arguments as Python values, tensors taken from `tensors`."""
    if _is_tensor_ref(obj):
        return next(tensors)
    if isinstance(obj, list):
        return [decode(o, tensors, ops) for o in obj]
    if isinstance(obj, dict):
        cls = obj.get("class_name")
        cfg = obj.get("config")
        if cls in ("__numpy__", "__tensor__") and isinstance(cfg, dict):
            return ops.const(np.asarray(cfg.get("value")).astype(np.float32))  # the arena is float32
        if cls == "__slice__" and isinstance(cfg, dict):
            return slice(*(decode(cfg.get(k), tensors, ops) for k in ("start", "stop", "step")))
        if cls == "__ellipsis__":
            return Ellipsis
        if set(obj) == {"start", "stop", "step"}:  # tf.keras's slice_spec entries
            return slice(obj["start"], obj["stop"], obj["step"])
        return {k: decode(v, tensors, ops) for k, v in obj.items()}
    return obj


def call_arguments(ops: Ops, xs: list[str]) -> tuple[list, dict]:
    """(positional arguments, keyword arguments) of the node being lowered, tensors as `Tensor`s."""
    call: LayerCall = ops.call
    tensors = iter([ops.wrap(x) for x in xs])
    args = [decode(a, tensors, ops) for a in call.args]
    kwargs = {k: decode(v, iter(()), ops) for k, v in call.kwargs.items()}
    for k, names in call.tensor_kwargs.items():
        ts = [ops.wrap(n) for n in names]
        kwargs[k] = ts[0] if len(ts) == 1 else ts
    return args, kwargs


def describe(value: Any) -> str:
    """A short human form of a recorded argument, for error messages."""
    if _is_tensor_ref(value):
        cfg = value.get("config", {})
        hist = cfg.get("keras_history", ["?"])
        shape = cfg.get("shape")
        dims = "" if shape is None else "[" + ", ".join("N" if d is None else str(d) for d in shape) + "]"
        return f"<tensor {hist[0]}{dims}>"
    if isinstance(value, list):
        inner = ", ".join(describe(v) for v in value[:8])
        return f"[{inner}{', ...' if len(value) > 8 else ''}]"
    if isinstance(value, dict):
        cls = value.get("class_name")
        cfg = value.get("config")
        if cls in ("__numpy__", "__tensor__") and isinstance(cfg, dict):
            arr = np.asarray(cfg.get("value"))
            return f"array{list(arr.shape)}" if arr.size > 4 else repr(arr.tolist())
        if cls == "__slice__" and isinstance(cfg, dict):
            part = lambda k: "" if cfg.get(k) is None else str(cfg.get(k))  # noqa: E731
            return f"{part('start')}:{part('stop')}" + (f":{part('step')}" if cfg.get("step") is not None else "")
        if cls == "__ellipsis__":
            return "..."
        return "{" + ", ".join(f"{k}: {describe(v)}" for k, v in value.items()) + "}"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def output_names(ops: Ops, result: Any, xs: list[str]) -> list[str]:
    """The value names of a lowering's result (a tensor, or a list or tuple of them).

    A result that is one of the call's inputs gets an IDENTITY node: every layer call makes values of
    its own, and a graph output is never a graph input."""
    results = list(result) if isinstance(result, (list, tuple)) else [result]
    names = []
    for r in results:
        if not isinstance(r, Tensor):
            raise ops.unsupported(f"the lowering returned {type(r).__name__} {r!r}, not a tensor")
        if r.is_constant:
            raise ops.unsupported(f"the result is a constant of shape {r.shape}, independent of the inputs "
                                  f"(it would have no batch dimension)")
        name = r.name
        if name in xs or name in ops.call.builder.params:
            name = ops.emit(Op.IDENTITY, [r]).name
        names.append(name)
    return names
