"""Keras 3 operation nodes: `x * 0.5`, `keras.ops.mean(x, axis=1)`, `x[:, -1]` in a functional model.

Keras 3 records each such call as a node of the operation's class (`"module": "keras.src.ops.numpy"`,
`"class_name": "Multiply"`), its constructor arguments in `config` (`axis`, `keepdims`, ...) and its
call arguments, constants included, in the inbound node's `args`/`kwargs`. Class names collide with
layers (the Multiply operation is not the Multiply layer: it takes a constant), so these rules are
found by module (dispatch.py), not in `LAYERS`.

`OPS3[class_name] = (call parameters, rule)`: the rule gets the `Ops` builder and every argument by
name (config, positional and keyword), and returns a tensor or a list of them.
"""
from __future__ import annotations

from typing import Any, Callable

from .context import LayerCall
from .op_args import call_arguments, output_names
from .tensor_ops import Ops

Rule = Callable[[Ops, dict], Any]
#: operation class name -> (names of its call's positional parameters, rule)
OPS3: dict[str, tuple[tuple[str, ...], Rule]] = {}

#: the module prefixes of Keras 3 operation nodes (functions of keras.ops called on keras tensors)
OP_MODULES = ("keras.src.ops.", "keras.ops.")


def is_op_node(layer_cfg: dict) -> bool:
    """Whether a config entry is an operation, not a layer. Keras 3's legacy `.h5` files drop
    `module`; there an operation is told by its Keras 3 nodes and a config without `trainable`,
    which every layer's config has."""
    module = layer_cfg.get("module")
    if module is not None:
        return str(module).startswith(OP_MODULES)
    cfg = layer_cfg.get("config")
    nodes = layer_cfg.get("inbound_nodes") or []
    return isinstance(cfg, dict) and "trainable" not in cfg and bool(nodes) and isinstance(nodes[0], dict)


def op(*class_names: str, params: tuple[str, ...] = ("x",)):
    def deco(fn: Rule) -> Rule:
        for c in class_names:
            OPS3[c] = (params, fn)
        return fn
    return deco


def bind(params: tuple[str, ...], args: list, kwargs: dict, config: dict) -> dict:
    """Every argument of the node by parameter name (a `*name` parameter takes the rest as a list)."""
    p = {k: v for k, v in config.items() if k not in ("name", "trainable")}
    for i, a in enumerate(args):
        if i < len(params) and params[i].startswith("*"):
            p[params[i][1:]] = list(args[i:])
            break
        if i >= len(params):
            raise TypeError(f"{len(args)} positional arguments, the operation takes {len(params)}")
        p[params[i]] = a
    p.update(kwargs)
    return p


def lower_op_node(call: LayerCall, xs: list[str]) -> list[str]:
    """The lowering rule of every Keras 3 operation node in `OPS3`."""
    ops = Ops(call)
    params, rule = OPS3[call.class_name]
    args, kwargs = call_arguments(ops, xs)
    outs = output_names(ops, rule(ops, bind(params, args, kwargs, call.config)), xs)
    # Keras 3 operations drop masks (`(x + 1)._keras_mask` is None), whatever layer shares their name
    call.output_masks = [None] * len(outs)
    return outs


# ---------------------------------------------------------------------- elementwise
_UNARY = {
    "Absolute": "abs", "Abs": "abs", "Fabs": "abs", "Negative": "negative", "Exp": "exp", "Log": "log",
    "Log1p": "log1p", "Expm1": "expm1", "Log2": "log2", "Log10": "log10", "Exp2": "exp2", "Sqrt": "sqrt",
    "Rsqrt": "rsqrt", "Square": "square", "Sign": "sign", "Floor": "floor", "Ceil": "ceil", "Trunc": "trunc",
    "Reciprocal": "reciprocal", "LogicalNot": "logical_not",
}
_BINARY = {
    "Add": "add", "Subtract": "subtract", "Multiply": "multiply", "Divide": "divide", "TrueDivide": "divide",
    "Maximum": "maximum", "Minimum": "minimum", "Power": "power", "FloorDivide": "floor_divide", "Mod": "mod",
    "Greater": "greater", "GreaterEqual": "greater_equal", "Less": "less", "LessEqual": "less_equal",
    "Equal": "equal", "NotEqual": "not_equal", "LogicalAnd": "logical_and", "LogicalOr": "logical_or",
    "LogicalXor": "logical_xor",
}
for _cls, _fn in _UNARY.items():
    op(_cls)(lambda ops, p, _fn=_fn: getattr(ops, _fn)(p["x"]))
for _cls, _fn in _BINARY.items():
    op(_cls, params=("x1", "x2"))(lambda ops, p, _fn=_fn: getattr(ops, _fn)(p["x1"], p["x2"]))


@op("Copy", "StopGradient", params=("x",))
def _identity(ops: Ops, p: dict):
    return p.get("x", p.get("variable"))


@op("ZerosLike", "OnesLike")
def _zeros_like(ops: Ops, p: dict):
    return ops.full_like(p["x"], 0.0 if ops.call.class_name == "ZerosLike" else 1.0)


@op("FullLike", params=("x", "fill_value"))
def _full_like(ops: Ops, p: dict):
    return ops.add(ops.zeros_like(p["x"]), p["fill_value"])


@op("Where", params=("condition", "x1", "x2"))
def _where(ops: Ops, p: dict):
    if p.get("x1") is None or p.get("x2") is None:
        raise ops.unsupported("where(condition) without x1 and x2 (the indices of nonzero elements)")
    return ops.where(p["condition"], p["x1"], p["x2"])


@op("Clip")
def _clip(ops: Ops, p: dict):
    return ops.clip(p["x"], p.get("x_min"), p.get("x_max"))


@op("Cast", "ConvertToTensor", "SaturateCast")
def _cast(ops: Ops, p: dict):
    return ops.cast(p["x"], p.get("dtype") or "float32")


# ---------------------------------------------------------------------- activations (keras.ops.nn)
_ACTIVATIONS = {
    "Relu": "relu", "Relu6": "relu6", "Sigmoid": "sigmoid", "SparseSigmoid": "sparse_sigmoid",
    "Softplus": "softplus", "Softsign": "softsign", "SoftShrink": "soft_shrink", "SparsePlus": "sparse_plus",
    "Silu": "silu", "Squareplus": "squareplus", "LogSigmoid": "log_sigmoid", "LeakyRelu": "leaky_relu",
    "HardSigmoid": "hard_sigmoid", "HardSilu": "hard_silu", "Elu": "elu", "Selu": "selu", "Gelu": "gelu",
    "Celu": "celu", "Glu": "glu", "TanhShrink": "tanh_shrink", "HardTanh": "hard_tanh",
    "HardShrink": "hard_shrink", "Threshold": "threshold", "Softmax": "softmax", "LogSoftmax": "log_softmax",
    "Sparsemax": "sparsemax", "Tanh": "tanh", "Mish": "mish",
}
for _cls, _name in _ACTIVATIONS.items():
    op(_cls)(lambda ops, p, _name=_name: ops.activation(
        _name, p["x"], **{k: v for k, v in p.items() if k not in ("x", "dtype")}))


@op("Normalize")
def _normalize(ops: Ops, p: dict):
    return ops.normalize(p["x"], p.get("axis", -1), p.get("order", 2), p.get("epsilon"))


@op("OneHot")
def _one_hot(ops: Ops, p: dict):
    if p.get("sparse"):
        raise ops.unsupported("a sparse one_hot")
    return ops.one_hot(p["x"], p["num_classes"], p.get("axis", -1))


# ---------------------------------------------------------------------- reductions
def _reduction(name: str) -> Rule:
    def rule(ops: Ops, p: dict):
        if p.get("initial") is not None:
            raise ops.unsupported(f"{name} with an initial value")
        return getattr(ops, name)(p["x"], p.get("axis"), bool(p.get("keepdims", False)))
    return rule


for _cls, _name in {"Mean": "mean", "Sum": "sum", "Max": "max", "Amax": "max", "Min": "min", "Amin": "min",
                    "Var": "var", "Std": "std", "Logsumexp": "logsumexp", "Any": "any", "All": "all"}.items():
    op(_cls)(_reduction(_name))


# ---------------------------------------------------------------------- layout
@op("Reshape")
def _reshape(ops: Ops, p: dict):
    return ops.reshape(p["x"], p["newshape"])


@op("Transpose")
def _transpose(ops: Ops, p: dict):
    return ops.transpose(p["x"], p.get("axes"))


@op("ExpandDims")
def _expand_dims(ops: Ops, p: dict):
    return ops.expand_dims(p["x"], p["axis"])


@op("Squeeze")
def _squeeze(ops: Ops, p: dict):
    return ops.squeeze(p["x"], p.get("axis"))


@op("Swapaxes")
def _swapaxes(ops: Ops, p: dict):
    return ops.swapaxes(p["x"], p["axis1"], p["axis2"])


@op("Moveaxis")
def _moveaxis(ops: Ops, p: dict):
    return ops.moveaxis(p["x"], p["source"], p["destination"])


@op("Flip")
def _flip(ops: Ops, p: dict):
    return ops.flip(p["x"], p.get("axis"))


@op("Concatenate", params=("xs",))
def _concatenate(ops: Ops, p: dict):
    return ops.concatenate(p["xs"], p.get("axis", 0))


@op("Stack")
def _stack(ops: Ops, p: dict):
    return ops.stack(p["x"], p.get("axis", 0))


@op("Split", "ArraySplit")
def _split(ops: Ops, p: dict):
    x = p["x"]
    sections = p["indices_or_sections"]
    axis = p.get("axis", 0)
    if ops.call.class_name == "ArraySplit" and isinstance(sections, int):
        d = x.shape[int(axis) % x.ndim]
        q, r = divmod(d, sections)
        bounds = [k * q + min(k, r) for k in range(1, sections)]
        return ops.split(x, bounds, axis)
    return ops.split(x, sections, axis)


@op("Unstack")
def _unstack(ops: Ops, p: dict):
    return ops.unstack(p["x"], p.get("axis", 0))


@op("GetItem", params=("x", "key"))
def _get_item(ops: Ops, p: dict):
    key = p["key"]
    return ops.getitem(p["x"], tuple(key) if isinstance(key, list) else key)


@op("Take", params=("x", "indices"))
def _take(ops: Ops, p: dict):
    return ops.take(p["x"], p["indices"], p.get("axis"))


# ---------------------------------------------------------------------- contractions
@op("Matmul", params=("x1", "x2"))
def _matmul(ops: Ops, p: dict):
    return ops.matmul(p["x1"], p["x2"])


@op("Einsum", params=("*operands",))
def _einsum(ops: Ops, p: dict):
    operands = list(p["operands"])
    subscripts = p.get("subscripts")
    if subscripts is None and operands and isinstance(operands[0], str):  # an older Keras 3 records it first
        subscripts = operands.pop(0)
    return ops.einsum(subscripts, *operands)
