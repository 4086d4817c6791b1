"""tf.keras 2 operation layers: `TFOpLambda` (`x * 0.5`, `tf.reduce_mean(x, 1)`, ... in a functional
model) and `SlicingOpLambda` (`x[:, -1]`).

The layer's config names the TensorFlow function (`"function": "math.multiply"`); its inbound node
holds the function's first argument (tensors as refs, constants as `_CONSTANT_VALUE` entries) and
every other argument by keyword (tensors as `[layer, node, tensor]` lists); topology.py reads both.
Function names are looked up without their namespace (`math.`, `nn.`, `linalg.`, `compat.v1.`,
`__operators__.`), which in TensorFlow name the same functions.

`TF_OPS[short name] = (name of the first parameter, rule)`: the rule gets the `Ops` builder and every
argument by TensorFlow's parameter names.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from .context import LayerCall
from .op_args import call_arguments, output_names
from .tensor_ops import Ops

Rule = Callable[[Ops, dict], Any]
TF_OPS: dict[str, tuple[str, Rule]] = {}
TF_OP_LAYERS = ("TFOpLambda", "SlicingOpLambda")
_NAMESPACES = ("compat.v1.", "compat.v2.", "math.", "nn.", "linalg.", "__operators__.")


def short_name(function: Any) -> str:
    """`"compat.v1.math.reduce_sum"` -> `"reduce_sum"`."""
    name = str(function)
    changed = True
    while changed:
        changed = False
        for ns in _NAMESPACES:
            if name.startswith(ns):
                name, changed = name[len(ns):], True
    return name


def tf_rule(layer_cfg: dict) -> Rule | None:
    """The rule of a TFOpLambda/SlicingOpLambda layer config, or None for an unknown function."""
    entry = TF_OPS.get(short_name(layer_cfg.get("config", {}).get("function")))
    return None if entry is None else entry[1]


def lower_tf_op(call: LayerCall, xs: list[str]) -> list[str]:
    """The lowering rule of TFOpLambda and SlicingOpLambda layers."""
    ops = Ops(call)
    first, rule = TF_OPS[short_name(call.config.get("function"))]
    args, kwargs = call_arguments(ops, xs)
    p = {k: v for k, v in kwargs.items() if k != "name"}
    if args:
        p[first] = args[0]
    return output_names(ops, rule(ops, p), xs)


def tf_op(*names: str, first: str = "x"):
    def deco(fn: Rule) -> Rule:
        for n in names:
            TF_OPS[n] = (first, fn)
        return fn
    return deco


def _axis(p: dict, default: Any = None) -> Any:
    for k in ("axis", "squeeze_dims", "reduction_indices", "dim"):
        if p.get(k) is not None:
            return p[k]
    return default


# ---------------------------------------------------------------------- elementwise
for _name, _fn in {
    "add": "add", "subtract": "subtract", "multiply": "multiply", "truediv": "divide", "divide": "divide",
    "maximum": "maximum", "minimum": "minimum", "pow": "power", "floordiv": "floor_divide",
    "floormod": "mod", "mod": "mod", "greater": "greater", "greater_equal": "greater_equal", "less": "less",
    "less_equal": "less_equal", "equal": "equal", "not_equal": "not_equal", "logical_and": "logical_and",
    "logical_or": "logical_or", "logical_xor": "logical_xor",
}.items():
    tf_op(_name)(lambda ops, p, _fn=_fn: getattr(ops, _fn)(p["x"], p["y"]))
for _name, _fn in {
    "abs": "abs", "negative": "negative", "sqrt": "sqrt", "rsqrt": "rsqrt", "square": "square", "exp": "exp",
    "log": "log", "log1p": "log1p", "expm1": "expm1", "sign": "sign", "floor": "floor", "ceil": "ceil",
    "reciprocal": "reciprocal", "logical_not": "logical_not",
}.items():
    tf_op(_name)(lambda ops, p, _fn=_fn: getattr(ops, _fn)(p["x"]))
for _name in ("sigmoid", "tanh", "softplus", "softsign"):
    tf_op(_name)(lambda ops, p, _name=_name: ops.activation(_name, p["x"]))


@tf_op("identity", first="input")
def _identity(ops: Ops, p: dict):
    return p["input"]


@tf_op("zeros_like", "ones_like", first="input")
def _zeros_like(ops: Ops, p: dict):
    return ops.full_like(p["input"], 0.0 if ops.call.config.get("function") == "zeros_like" else 1.0)


@tf_op("squared_difference")
def _squared_difference(ops: Ops, p: dict):
    return ops.square(ops.subtract(p["x"], p["y"]))


@tf_op("scalar_mul", first="scalar")
def _scalar_mul(ops: Ops, p: dict):
    return ops.multiply(p["scalar"], p["x"])


@tf_op("add_n", first="inputs")
def _add_n(ops: Ops, p: dict):
    total = p["inputs"][0]
    for t in p["inputs"][1:]:
        total = ops.add(total, t)
    return total


@tf_op("bias_add", first="value")
def _bias_add(ops: Ops, p: dict):
    if p.get("data_format") not in (None, "NHWC", "N...C"):
        raise ops.unsupported(f"bias_add with data_format {p['data_format']!r}")
    return ops.add(p["value"], p["bias"])


@tf_op("where", first="condition")
def _where(ops: Ops, p: dict):
    if p.get("x") is None or p.get("y") is None:
        raise ops.unsupported("tf.where(condition) without x and y (the indices of true elements)")
    return ops.where(p["condition"], p["x"], p["y"])


@tf_op("clip_by_value", first="t")
def _clip(ops: Ops, p: dict):
    return ops.clip(p["t"], p.get("clip_value_min"), p.get("clip_value_max"))


@tf_op("cast")
def _cast(ops: Ops, p: dict):
    return ops.cast(p["x"], p.get("dtype", "float32"))


# ---------------------------------------------------------------------- activations
for _name, _act in {"relu": "relu", "relu6": "relu6", "elu": "elu", "selu": "selu"}.items():
    tf_op(_name, first="features")(lambda ops, p, _act=_act: ops.activation(_act, p["features"]))


@tf_op("leaky_relu", first="features")
def _leaky_relu(ops: Ops, p: dict):
    return ops.leaky_relu(p["features"], float(p.get("alpha", 0.2)))


@tf_op("gelu", first="features")
def _gelu(ops: Ops, p: dict):
    return ops.gelu(p["features"], bool(p.get("approximate", False)))


@tf_op("silu", "swish", first="features")
def _silu(ops: Ops, p: dict):
    from ..ir import Op
    beta = float(p.get("beta", 1.0))
    return ops.silu(p["features"]) if beta == 1.0 else ops.emit(Op.SILU, [p["features"]], {"beta": beta})


@tf_op("softmax", first="logits")
def _softmax(ops: Ops, p: dict):
    return ops.softmax(p["logits"], _axis(p, -1))


@tf_op("log_softmax", first="logits")
def _log_softmax(ops: Ops, p: dict):
    return ops.log_softmax(p["logits"], _axis(p, -1))


@tf_op("l2_normalize")
def _l2_normalize(ops: Ops, p: dict):
    # TensorFlow's formula: x * rsqrt(max(sum(x**2), epsilon)) (Keras 3 clips the rsqrt instead)
    x = ops.tensor(p["x"])
    eps = float(p.get("epsilon", 1e-12))
    return ops.multiply(x, ops.rsqrt(ops.maximum(ops.sum(ops.square(x), _axis(p), keepdims=True), eps)))


@tf_op("one_hot", first="indices")
def _one_hot(ops: Ops, p: dict):
    hot = ops.one_hot(p["indices"], int(p["depth"]), -1 if p.get("axis") is None else p["axis"])
    on = 1.0 if p.get("on_value") is None else p["on_value"]
    off = 0.0 if p.get("off_value") is None else p["off_value"]
    if (on, off) == (1.0, 0.0):
        return hot
    return ops.add(ops.multiply(hot, ops.subtract(on, off)), off)


# ---------------------------------------------------------------------- reductions
for _name, _fn in {"reduce_mean": "mean", "reduce_sum": "sum", "reduce_max": "max", "reduce_min": "min",
                   "reduce_logsumexp": "logsumexp", "reduce_any": "any", "reduce_all": "all",
                   "reduce_variance": "var", "reduce_std": "std"}.items():
    tf_op(_name, first="input_tensor")(lambda ops, p, _fn=_fn: getattr(ops, _fn)(
        p["input_tensor"], _axis(p), bool(p.get("keepdims", p.get("keep_dims")) or False)))


# ---------------------------------------------------------------------- layout
@tf_op("reshape", first="tensor")
def _reshape(ops: Ops, p: dict):
    return ops.reshape(p["tensor"], p["shape"])


@tf_op("transpose", first="a")
def _transpose(ops: Ops, p: dict):
    return ops.transpose(p["a"], p.get("perm"))


@tf_op("expand_dims", first="input")
def _expand_dims(ops: Ops, p: dict):
    return ops.expand_dims(p["input"], _axis(p))


@tf_op("squeeze", first="input")
def _squeeze(ops: Ops, p: dict):
    return ops.squeeze(p["input"], _axis(p))


@tf_op("concat", first="values")
def _concat(ops: Ops, p: dict):
    values = p["values"]
    return ops.concatenate(values if isinstance(values, list) else [values], p["axis"])


@tf_op("stack", first="values")
def _stack(ops: Ops, p: dict):
    values = p["values"]
    return ops.stack(values if isinstance(values, list) else [values], p.get("axis", 0))


@tf_op("unstack", first="value")
def _unstack(ops: Ops, p: dict):
    return ops.unstack(p["value"], p.get("axis", 0))


@tf_op("split", first="value")
def _split(ops: Ops, p: dict):
    x = ops.tensor(p["value"])
    axis = p.get("axis", 0)
    sizes = p["num_or_size_splits"]
    if isinstance(sizes, (int, np.integer)):
        return ops.split(x, int(sizes), axis)
    sizes = [int(s) for s in sizes]
    d = x.shape[int(axis) % x.ndim]
    if -1 in sizes:
        sizes[sizes.index(-1)] = d - (sum(sizes) + 1)
    return ops.split(x, list(np.cumsum(sizes)[:-1]), axis)


@tf_op("gather", first="params")
def _gather(ops: Ops, p: dict):
    if p.get("batch_dims"):
        raise ops.unsupported(f"gather with batch_dims={p['batch_dims']}")
    return ops.take(p["params"], p["indices"], _axis(p, 0))


@tf_op("getitem", first="tensor")
def _getitem(ops: Ops, p: dict):
    spec = p["slice_spec"]
    return ops.getitem(p["tensor"], tuple(spec) if isinstance(spec, list) else spec)


# ---------------------------------------------------------------------- contractions
@tf_op("matmul", first="a")
def _matmul(ops: Ops, p: dict):
    a, b = ops.tensor(p["a"]), ops.tensor(p["b"])
    if p.get("transpose_a") or p.get("adjoint_a"):
        a = ops.swapaxes(a, -1, -2)
    if p.get("transpose_b") or p.get("adjoint_b"):
        b = ops.swapaxes(b, -1, -2)
    return ops.matmul(a, b)


@tf_op("einsum", first="equation")
def _einsum(ops: Ops, p: dict):
    inputs = p.get("inputs") or [v for k, v in sorted(p.items()) if k.startswith("input")]
    if not inputs:
        raise ops.unsupported("tf.einsum: tf.keras records only the equation, not its tensors (the file "
                              "cannot be reloaded by tf.keras either); use an EinsumDense or keras.ops.einsum")
    return ops.einsum(p["equation"], *inputs)
