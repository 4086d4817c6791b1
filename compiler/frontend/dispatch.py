"""Which lowering rule compiles a layer config, and how to describe one that has none.

In order: a lowering the user registered (`kerasjit.register_layer`, by class, registered name, or a
Lambda's name), a Keras 3 operation node (`ops_keras3.OPS3`, found by module: operation class names
collide with layer class names), a tf.keras TFOpLambda/SlicingOpLambda whose function is known
(`ops_tfkeras.TF_OPS`), then kerasjit's layer rules (`LAYERS`).
"""
from __future__ import annotations

from typing import Callable

from ... import registry
from ...errors import KerasJitError, UnsupportedLayerError
from .context import LAYERS, LayerCall
from .op_args import call_arguments, describe, output_names
from .ops_keras3 import OPS3, is_op_node, lower_op_node
from .ops_tfkeras import TF_OP_LAYERS, lower_tf_op, short_name, tf_rule
from .tensor_ops import Ops

Rule = Callable[[LayerCall, list], list]

REGISTRY_HINT = ("kerasjit can compile them through a lowering you register: "
                 "kerasjit.register_layer(<class, Lambda or function name>, fn), where fn(ops, *inputs) builds "
                 "the output with kerasjit's NumPy-like ops (README: 'Custom layers, Lambda layers and operations')")


def rule_for(layer_cfg: dict) -> Rule | None:
    """The lowering rule of a (non-model) layer config, or None when kerasjit has none."""
    reg = registry.lookup(layer_cfg)
    if reg is not None:
        return lambda call, xs: lower_registered(reg, call, xs)
    cls = layer_cfg.get("class_name")
    # (a legacy .h5 config of a layer whose get_config omits `trainable`, the SpatialDropouts, looks
    # like an operation's: a class with a layer rule and no operation rule is that layer)
    if is_op_node(layer_cfg) and (cls in OPS3 or cls not in LAYERS):
        return lower_op_node if cls in OPS3 else None
    if cls in TF_OP_LAYERS:
        return lower_tf_op if tf_rule(layer_cfg) is not None else None
    return LAYERS.get(cls)


def lower_registered(reg: registry.Registration, call: LayerCall, xs: list[str]) -> list[str]:
    """Run a user's lowering on one layer call: `fn(ops, *positional arguments, **Lambda arguments)`."""
    ops = Ops(call)
    args, _ = call_arguments(ops, xs)
    if not args:
        args = [ops.wrap(x) for x in xs]
    extra = call.config.get("arguments") if call.class_name == "Lambda" else None
    try:
        result = reg.fn(ops, *args, **(extra if isinstance(extra, dict) else {}))
    except KerasJitError:
        raise
    except Exception as e:  # the user's code: say whose it is
        fn = getattr(reg.fn, "__qualname__", repr(reg.fn))
        raise UnsupportedLayerError(
            f"{call.spec.source}: layer {call.name!r} ({call.class_name}): the lowering registered for "
            f"{reg.name!r} ({fn}) failed: {type(e).__name__}: {e}",
            [(call.name, call.class_name, f"registered lowering failed: {e}")]) from e
    return output_names(ops, result, xs)


def describe_unsupported(path: str, layer_cfg: dict) -> tuple[str, str]:
    """(one listing line "path (Class): what", reason) for a layer config without a rule."""
    cls = layer_cfg.get("class_name", "?")
    cfg = layer_cfg.get("config") if isinstance(layer_cfg.get("config"), dict) else {}
    if is_op_node(layer_cfg):
        what = f"operation {layer_cfg.get('module')}.{cls}{_arguments(layer_cfg)}"
        settings = {k: v for k, v in cfg.items() if k not in ("name", "trainable", "dtype")}
        if settings:
            what += " " + describe(settings)
        return f"{path} ({cls}): {what}", f"no rule for operation {cls}"
    if cls in TF_OP_LAYERS:
        fn = cfg.get("function")
        return f"{path} ({cls}): tf.{fn}{_arguments(layer_cfg)}", f"no rule for tf.{fn} ({short_name(fn)})"
    if cls == "Lambda":
        return (f"{path} (Lambda): Python code, which kerasjit does not run; register a lowering for "
                f"{cfg.get('name', path)!r}", "Lambda layer")
    return f"{path} ({cls})", "no lowering rule"


def _arguments(layer_cfg: dict) -> str:
    """The first call's arguments as recorded, e.g. `(<tensor x[N, 4]>, 0.5)`."""
    nodes = layer_cfg.get("inbound_nodes") or []
    if not nodes:
        return "()"
    node = nodes[0]
    if isinstance(node, dict):  # Keras 3
        parts = [describe(a) for a in node.get("args", [])]
        parts += [f"{k}={describe(v)}" for k, v in node.get("kwargs", {}).items()]
        return "(" + ", ".join(parts) + ")"
    entries = node if node and isinstance(node[0], list) else [node]  # tf.keras: [[name, i, j, kwargs], ...]
    firsts, kwargs = [], {}
    for e in entries:
        if not isinstance(e, list) or len(e) < 3:
            continue
        firsts.append(describe(e[2]) if e[0] == "_CONSTANT_VALUE" else f"<tensor {e[0]}>")
        if len(e) > 3 and isinstance(e[3], dict):
            kwargs.update(e[3])
    first = firsts[0] if len(firsts) == 1 else "[" + ", ".join(firsts) + "]"
    rest = [f"{k}={f'<tensor {v[0]}>' if _is_keras2_ref(v) else describe(v)}" for k, v in kwargs.items()
            if k != "name"]
    return "(" + ", ".join([first] + rest) + ")"


def _is_keras2_ref(v) -> bool:
    return isinstance(v, list) and len(v) in (3, 4) and isinstance(v[0], str) and isinstance(v[1], int)
