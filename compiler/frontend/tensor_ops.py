"""`Ops` and `Tensor`: a NumPy-like way to emit IR, for the lowering of keras.ops operation nodes and
tf.keras TFOpLambda layers, and for user lowerings registered with `kerasjit.register_layer`.

A `Tensor` is either a runtime value of the graph being built (dimension 0 the batch, shape `None`
there) or a constant (a NumPy float32 array, no batch dimension). Operations on constants alone are
computed by NumPy at once; a constant meeting a runtime value becomes a parameter of the layer. Axes
count as in NumPy and Keras, so axis 0 of a runtime tensor is the batch, which no operation may
reduce, move or index. Booleans are float 0/1 values (the arena is float32).

This module has the elementwise functions, activations and reductions; layout moves (reshape,
slicing, concatenation, ...) are in `tensor_layout.py` and contractions (matmul, einsum) in
`tensor_contract.py`, mixed into `Ops`.
"""
from __future__ import annotations

import hashlib
import math
from typing import Any, Iterable, Sequence

import numpy as np

from ...errors import UnsupportedLayerError
from ..ir import Op
from ..rules import evaluate
from . import activations_composite as composite
from .context import LayerCall
from .primitives import l2_normalize, reduce
from .tensor_contract import ContractionOps
from .tensor_layout import LayoutOps

KERAS_EPSILON = 1e-7  # keras.config.epsilon()

#: activation name -> (op, attrs) for the ones that are one IR op (Keras 3 formulas)
_UNARY_ACTIVATIONS: dict[str, tuple[Op, dict]] = {
    "relu": (Op.RELU, {}), "relu6": (Op.RELU, {"max_value": 6.0}), "sigmoid": (Op.SIGMOID, {}),
    "tanh": (Op.TANH, {}), "selu": (Op.SELU, {}), "silu": (Op.SILU, {}), "swish": (Op.SILU, {}),
    "softplus": (Op.SOFTPLUS, {}), "softsign": (Op.SOFTSIGN, {}), "exponential": (Op.EXP, {}),
    "hard_silu": (Op.HARD_SWISH, {}), "hard_swish": (Op.HARD_SWISH, {}),
    "hard_sigmoid": (Op.HARD_SIGMOID, {"slope": 1.0 / 6.0, "offset": 0.5}),
}
#: activations with parameters: name -> (composite rule or None, {parameter: default})
_PARAM_ACTIVATIONS: dict[str, tuple[Any, dict]] = {
    "elu": (None, {"alpha": 1.0}), "leaky_relu": (None, {"negative_slope": 0.2}),
    "gelu": (None, {"approximate": False}), "celu": (composite.celu, {"alpha": 1.0}),
    "glu": (composite.glu, {"axis": -1}), "hard_shrink": (composite.hard_shrink, {"threshold": 0.5}),
    "soft_shrink": (composite.soft_shrink, {"threshold": 0.5}), "hard_tanh": (composite.hard_tanh, {}),
    "sparse_plus": (composite.sparse_plus, {}), "squareplus": (composite.squareplus, {"b": 4.0}),
    "tanh_shrink": (composite.tanh_shrink, {}), "log_sigmoid": (composite.log_sigmoid, {}),
    "sparse_sigmoid": (composite.sparse_sigmoid, {}), "mish": (composite.mish, {}),
    "sparsemax": (composite.sparsemax, {"axis": -1}), "threshold": (None, {"threshold": 0.0, "default_value": 0.0}),
    "softmax": (None, {"axis": -1}), "log_softmax": (None, {"axis": -1}),
}
ACTIVATIONS = frozenset(_UNARY_ACTIVATIONS) | frozenset(_PARAM_ACTIVATIONS) | {"linear"}


class Tensor:
    """A runtime value (`name`) or a constant (`value`) of a lowering, with NumPy operators.

    `==` and `!=` keep Python's identity meaning (use `ops.equal`); every other comparison operator
    builds a 0/1 tensor."""

    __slots__ = ("ops", "name", "value")
    __array_ufunc__ = None  # `numpy_array * tensor` calls Tensor.__rmul__

    def __init__(self, ops: "Ops", name: str | None = None, value: np.ndarray | None = None):
        self.ops, self.name, self.value = ops, name, value

    @property
    def is_constant(self) -> bool:
        return self.value is not None

    @property
    def shape(self) -> tuple:
        """The shape, `None` at dimension 0 of a runtime value (the batch)."""
        return tuple(self.value.shape) if self.value is not None else tuple(self.ops.call.shape(self.name))

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __repr__(self) -> str:
        dims = ", ".join("N" if d is None else str(d) for d in self.shape)
        return f"Tensor({self.name or 'constant'}, [{dims}])"

    def __bool__(self) -> bool:
        raise TypeError(f"{self!r} has no truth value while compiling; use ops.where for a choice")

    __hash__ = object.__hash__

    # arithmetic
    def __add__(self, o): return self.ops.add(self, o)
    def __radd__(self, o): return self.ops.add(o, self)
    def __sub__(self, o): return self.ops.subtract(self, o)
    def __rsub__(self, o): return self.ops.subtract(o, self)
    def __mul__(self, o): return self.ops.multiply(self, o)
    def __rmul__(self, o): return self.ops.multiply(o, self)
    def __truediv__(self, o): return self.ops.divide(self, o)
    def __rtruediv__(self, o): return self.ops.divide(o, self)
    def __floordiv__(self, o): return self.ops.floor_divide(self, o)
    def __rfloordiv__(self, o): return self.ops.floor_divide(o, self)
    def __mod__(self, o): return self.ops.mod(self, o)
    def __pow__(self, o): return self.ops.power(self, o)
    def __rpow__(self, o): return self.ops.power(o, self)
    def __matmul__(self, o): return self.ops.matmul(self, o)
    def __rmatmul__(self, o): return self.ops.matmul(o, self)
    def __neg__(self): return self.ops.negative(self)
    def __pos__(self): return self
    def __abs__(self): return self.ops.abs(self)
    def __gt__(self, o): return self.ops.greater(self, o)
    def __ge__(self, o): return self.ops.greater_equal(self, o)
    def __lt__(self, o): return self.ops.less(self, o)
    def __le__(self, o): return self.ops.less_equal(self, o)
    def __getitem__(self, key): return self.ops.getitem(self, key)

    # a few NumPy methods
    def reshape(self, *shape): return self.ops.reshape(self, shape[0] if len(shape) == 1 else shape)
    def transpose(self, *axes): return self.ops.transpose(self, (axes[0] if len(axes) == 1 else axes) or None)
    def mean(self, axis=None, keepdims=False): return self.ops.mean(self, axis, keepdims)
    def sum(self, axis=None, keepdims=False): return self.ops.sum(self, axis, keepdims)
    def max(self, axis=None, keepdims=False): return self.ops.max(self, axis, keepdims)
    def min(self, axis=None, keepdims=False): return self.ops.min(self, axis, keepdims)


TensorLike = Any  # Tensor | float | int | bool | np.ndarray | nested lists of numbers


class Ops(LayoutOps, ContractionOps):
    """The NumPy-like builder of one layer call's lowering (`ops` in a registered lowering).

    `ops.config` is the layer's config, `ops.weights` its weights (constant tensors, in the order of
    Keras's `layer.get_weights()`), `ops.kwargs` the call's non-tensor keyword arguments. Functions
    take tensors, Python numbers or NumPy arrays and return tensors; `ops.emit` adds any IR op."""

    def __init__(self, call: LayerCall):
        self.call = call

    # ------------------------------------------------------------------ the layer
    @property
    def config(self) -> dict:
        return self.call.config

    @property
    def name(self) -> str:
        return self.call.name

    @property
    def kwargs(self) -> dict:
        return dict(self.call.kwargs)

    @property
    def weights(self) -> list[Tensor]:
        """The layer's weights as constant tensors (float32), in `layer.get_weights()` order."""
        got = self.call.spec.weights.get(self.call.path, [])
        return [self.const(np.asarray(w, np.float32)) for w in got]

    def weight(self, key: int | str) -> Tensor:
        """One weight by position, or by the name the file records (`"kernel"` finds `"x/kernel:0"`)."""
        ws = self.weights
        if isinstance(key, int):
            if not -len(ws) <= key < len(ws):
                raise self.unsupported(f"weight {key} asked for; the file has {len(ws)} weight(s)")
            return ws[key]
        names = self.call.spec.weight_names.get(self.call.path, [])
        for n, w in zip(names, ws):
            if n.split(":")[0].rsplit("/", 1)[-1] == key or n == key:
                return w
        raise self.unsupported(f"no weight named {key!r}; the file has {names or len(ws)}")

    def unsupported(self, what: str) -> UnsupportedLayerError:
        """The error to raise for something this lowering cannot compile (names the layer)."""
        return self.call.unsupported(what)

    # ------------------------------------------------------------------ tensors
    def const(self, value: TensorLike) -> Tensor:
        """A constant tensor (float32)."""
        if isinstance(value, Tensor):
            return value
        return Tensor(self, value=np.asarray(value, dtype=np.float32))

    def tensor(self, value: TensorLike) -> Tensor:
        """`value` as a tensor: tensors pass, numbers and arrays become constants."""
        if isinstance(value, Tensor):
            return value
        if isinstance(value, str):
            raise self.unsupported(f"a string {value!r} where a tensor or number is expected")
        return self.const(value)

    def wrap(self, name: str) -> Tensor:
        """The tensor of an existing value (or parameter) name."""
        return Tensor(self, name=name)

    def value_name(self, t: TensorLike) -> str:
        """The IR name of a tensor; a constant becomes a parameter of the layer."""
        t = self.tensor(t)
        if t.name is not None:
            return t.name
        arr = t.value
        if arr.size == 1 and arr.ndim <= 1:
            # a scalar's name carries its value (parameter names are keys, see primitives.const)
            return self.call.param(f"const={float(arr.reshape(()))!r}", arr.reshape((1,)))
        digest = hashlib.sha1(np.ascontiguousarray(arr).tobytes()).hexdigest()[:12]
        return self.call.param(f"const_{'x'.join(map(str, arr.shape))}_{digest}", arr)

    def emit(self, op: Op, inputs: Sequence[TensorLike], attrs: dict | None = None) -> Tensor:
        """Add one IR node (`kerasjit.compiler.ir.Op`) on runtime or constant inputs."""
        names = [self.value_name(t) for t in inputs]
        try:
            out = self.call.add(op, names, attrs or {})
        except ValueError as e:  # a shape rule's complaint: the operands do not fit
            shapes = [self.call.shape(n) for n in names]
            raise self.unsupported(f"{op.label} of shapes {shapes}: {e}") from e
        if self.call.shape(out)[0] is not None:
            raise self.unsupported(f"{op.label} of shapes {[self.call.shape(n) for n in names]} would "
                                   f"not keep the batch as its first dimension")
        return self.wrap(out)

    def _via(self, fn, x: Tensor, *args, **kwargs) -> Tensor:
        """Apply a primitives/composite helper (call, value name, ...) -> value name."""
        return self.wrap(fn(self.call, self.value_name(x), *args, **kwargs))

    # ------------------------------------------------------------------ elementwise
    def _unary(self, op: Op, x: TensorLike, **attrs) -> Tensor:
        x = self.tensor(x)
        if x.is_constant:
            return self.const(evaluate(op, [x.value], attrs))
        return self.emit(op, [x], attrs)

    def _binary(self, op: Op, a: TensorLike, b: TensorLike) -> Tensor:
        a, b = self.tensor(a), self.tensor(b)
        if a.is_constant and b.is_constant:
            return self.const(evaluate(op, [a.value, b.value], {}))
        if a.is_constant:
            a = self._trim(a, b)
        elif b.is_constant:
            b = self._trim(b, a)
        return self.emit(op, [a, b])

    def _trim(self, c: Tensor, x: Tensor) -> Tensor:
        """Constant `c` without the leading unit axes that only align it with runtime `x`'s batch."""
        arr = c.value
        while arr.ndim >= x.ndim and arr.ndim and arr.shape[0] == 1:
            arr = arr.reshape(arr.shape[1:])
        if arr.ndim >= x.ndim:
            raise self.unsupported(f"a constant of shape {c.shape} combined with a tensor of shape {x.shape}: "
                                   f"it would change the batch dimension")
        return Tensor(self, value=arr)

    def add(self, a, b): return self._binary(Op.ADD, a, b)
    def subtract(self, a, b): return self._binary(Op.SUB, a, b)
    def multiply(self, a, b): return self._binary(Op.MUL, a, b)
    def divide(self, a, b): return self._binary(Op.DIV, a, b)
    def maximum(self, a, b): return self._binary(Op.MAXIMUM, a, b)
    def minimum(self, a, b): return self._binary(Op.MINIMUM, a, b)
    def negative(self, x): return self._unary(Op.NEG, x)
    def exp(self, x): return self._unary(Op.EXP, x)
    def log(self, x): return self._unary(Op.LOG, x)
    def sign(self, x): return self._unary(Op.SIGN, x)
    def floor(self, x): return self._unary(Op.FLOOR, x)
    def sqrt(self, x): return self._unary(Op.POW, x, exponent=0.5)
    def rsqrt(self, x): return self._unary(Op.POW, x, exponent=-0.5)
    def square(self, x): return self._unary(Op.POW, x, exponent=2.0)
    def reciprocal(self, x): return self.divide(1.0, x)
    def log1p(self, x): return self.log(self.add(x, 1.0))
    def expm1(self, x): return self.subtract(self.exp(x), 1.0)
    def log2(self, x): return self.multiply(self.log(x), 1.0 / math.log(2.0))
    def log10(self, x): return self.multiply(self.log(x), 1.0 / math.log(10.0))
    def exp2(self, x): return self.exp(self.multiply(x, math.log(2.0)))
    def ceil(self, x): return self.negative(self.floor(self.negative(x)))

    def abs(self, x: TensorLike) -> Tensor:
        # x * sign(x): exact, and one fused loop
        x = self.tensor(x)
        return self.multiply(x, self.sign(x))

    def trunc(self, x: TensorLike) -> Tensor:
        x = self.tensor(x)
        return self.multiply(self.sign(x), self.floor(self.abs(x)))

    def floor_divide(self, a, b): return self.floor(self.divide(a, b))

    def mod(self, a: TensorLike, b: TensorLike) -> Tensor:
        """a - floor(a / b) * b: the result has the divisor's sign, as jnp.mod / tf.math.floormod."""
        a, b = self.tensor(a), self.tensor(b)
        return self.subtract(a, self.multiply(self.floor_divide(a, b), b))

    def power(self, x: TensorLike, p: TensorLike) -> Tensor:
        x, p = self.tensor(x), self.tensor(p)
        if p.is_constant and p.value.size == 1:
            return self._unary(Op.POW, x, exponent=float(p.value.reshape(())))
        if x.is_constant and x.value.size == 1 and float(x.value.reshape(())) > 0:
            return self.exp(self.multiply(p, math.log(float(x.value.reshape(())))))
        if x.is_constant and p.is_constant:
            return self.const(np.power(x.value, p.value))
        raise self.unsupported(f"power of a tensor {x.shape} to a non-scalar exponent {p.shape} "
                               f"(kerasjit takes a constant scalar exponent, or a positive scalar base)")

    def full_like(self, x: TensorLike, value: float) -> Tensor:
        # SELECT(0, x) is 0 for every x, NaN and inf included (x * 0 is not)
        zeros = self._binary(Op.SELECT, 0.0, x)
        return zeros if float(value) == 0.0 else self.add(zeros, float(value))

    def zeros_like(self, x): return self.full_like(x, 0.0)
    def ones_like(self, x): return self.full_like(x, 1.0)

    def clip(self, x: TensorLike, lo: TensorLike, hi: TensorLike) -> Tensor:
        """minimum(maximum(x, lo), hi), as jnp.clip and tf.clip_by_value."""
        y = x if lo is None else self.maximum(x, lo)
        return y if hi is None else self.minimum(y, hi)

    def cast(self, x: TensorLike, dtype: Any) -> Tensor:
        """A cast as values in the float32 arena: floats unchanged, integers truncated, bool 0/1."""
        dtype = str(dtype.get("config", {}).get("name", "float32") if isinstance(dtype, dict) else dtype)
        if dtype == "bool":
            return self.not_equal(x, 0.0)
        if dtype.startswith(("float", "bfloat")):
            return self.tensor(x)
        if dtype.startswith(("int", "uint")):
            return self.trunc(x)
        raise self.unsupported(f"a cast to {dtype}")

    # ------------------------------------------------------------------ comparisons, logic, where
    # Comparisons as arithmetic on sign(a - b), which is exact for finite floats (a != b implies
    # a - b != 0 with gradual underflow, and overflow keeps the sign); only inf - inf differs.
    def greater(self, a, b): return self._unary(Op.RELU, self.sign(self.subtract(a, b)))
    def less(self, a, b): return self.greater(b, a)
    def greater_equal(self, a, b): return self.subtract(1.0, self.greater(b, a))
    def less_equal(self, a, b): return self.subtract(1.0, self.greater(a, b))
    def not_equal(self, a, b): return self.square(self.sign(self.subtract(a, b)))
    def equal(self, a, b): return self.subtract(1.0, self.not_equal(a, b))

    def truth(self, x: TensorLike) -> Tensor:
        """1 where x != 0, else 0 (bool(x) elementwise)."""
        return self.square(self.sign(x))

    def logical_not(self, x): return self.subtract(1.0, self.truth(x))
    def logical_and(self, a, b): return self.minimum(self.truth(a), self.truth(b))
    def logical_or(self, a, b): return self.maximum(self.truth(a), self.truth(b))
    def logical_xor(self, a, b): return self.not_equal(self.truth(a), self.truth(b))

    def where(self, condition: TensorLike, x: TensorLike, y: TensorLike) -> Tensor:
        """x where condition != 0, else y (broadcast together); exact for infinite x or y."""
        c = self.tensor(condition)
        if c.is_constant and x is not None and y is not None:
            xs, ys = self.tensor(x), self.tensor(y)
            if xs.is_constant and ys.is_constant:
                return self.const(np.where(c.value != 0, xs.value, ys.value))
        return self.add(self._binary(Op.SELECT, x, c), self._binary(Op.SELECT, y, self.logical_not(c)))

    # ------------------------------------------------------------------ activations
    def activation(self, name: str, x: TensorLike, **params: Any) -> Tensor:
        """A Keras activation by name (Keras 3 formulas), with its parameters as keywords."""
        x = self.tensor(x)
        if name == "linear":
            return x
        if name in _UNARY_ACTIVATIONS:
            op, attrs = _UNARY_ACTIVATIONS[name]
            return self._unary(op, x, **attrs)
        if name not in _PARAM_ACTIVATIONS:
            raise self.unsupported(f"activation {name!r}")
        rule, defaults = _PARAM_ACTIVATIONS[name]
        p = {k: params.get(k) if params.get(k) is not None else v for k, v in defaults.items()}
        if x.is_constant:
            raise self.unsupported(f"activation {name!r} of a constant (it would have no batch dimension)")
        if name == "elu":
            return self._unary(Op.ELU, x, alpha=float(p["alpha"]))
        if name == "leaky_relu":
            return self._unary(Op.RELU, x, negative_slope=float(p["negative_slope"]))
        if name == "gelu":
            return self._unary(Op.GELU, x, approximate=bool(p["approximate"]))
        if name == "threshold":
            return self.where(self.greater(x, p["threshold"]), x, p["default_value"])
        if name == "softmax":
            return self.softmax(x, p["axis"])
        if name == "log_softmax":
            return self.log_softmax(x, p["axis"])
        if "axis" in p:
            p["axis"] = self.axes(x, p["axis"])[0]
        return self._via(rule, x, **p)

    def __getattr__(self, name: str):
        # every activation under its keras.ops name: ops.selu(x), ops.celu(x, 0.5), ops.glu(x, axis=1)
        if name in ACTIVATIONS:
            def act(x: TensorLike, *args: Any, **params: Any) -> Tensor:
                keys = list(_PARAM_ACTIVATIONS.get(name, (None, {}))[1])
                return self.activation(name, x, **dict(zip(keys, args)), **params)
            return act
        raise AttributeError(f"kerasjit's ops has no function {name!r}")

    def relu(self, x): return self.activation("relu", x)
    def relu6(self, x): return self.activation("relu6", x)
    def sigmoid(self, x): return self.activation("sigmoid", x)
    def tanh(self, x): return self.activation("tanh", x)
    def silu(self, x): return self.activation("silu", x)
    def gelu(self, x, approximate: bool = False): return self.activation("gelu", x, approximate=approximate)
    def elu(self, x, alpha: float = 1.0): return self.activation("elu", x, alpha=alpha)
    def leaky_relu(self, x, negative_slope: float = 0.2):
        return self.activation("leaky_relu", x, negative_slope=negative_slope)
    def softplus(self, x): return self.activation("softplus", x)

    def softmax(self, x: TensorLike, axis: int | Sequence[int] = -1) -> Tensor:
        x = self.tensor(x)
        axes = self.axes(x, axis)
        if len(axes) == 1:
            return self.emit(Op.SOFTMAX, [x], {"axis": axes[0]})
        e = self.exp(self.subtract(x, self.max(x, axes, keepdims=True)))
        return self.divide(e, self.sum(e, axes, keepdims=True))

    def log_softmax(self, x: TensorLike, axis: int = -1) -> Tensor:
        x = self.tensor(x)
        axes = self.axes(x, axis)
        if len(axes) == 1:
            return self._via(composite.log_softmax, x, axes[0])
        shifted = self.subtract(x, self.max(x, axes, keepdims=True))
        return self.subtract(shifted, self.log(self.sum(self.exp(shifted), axes, keepdims=True)))

    def normalize(self, x: TensorLike, axis: int | Sequence[int] = -1, order: int = 2,
                  epsilon: float | None = None) -> Tensor:
        """keras.ops.normalize: x * min(rsqrt(sum(x**2)), 1/eps) for order 2, x / max(|x|_p, eps) else."""
        x = self.tensor(x)
        eps = KERAS_EPSILON if epsilon is None else float(epsilon)
        axes = self.axes(x, axis)
        if order == 2:
            return self._via(l2_normalize, x, axes, eps)
        if order == 1:
            return self.divide(x, self.maximum(self.sum(self.abs(x), axes, keepdims=True), eps))
        raise self.unsupported(f"normalize of order {order!r} (kerasjit has 1 and 2)")

    def one_hot(self, x: TensorLike, num_classes: int, axis: int = -1, truncate: bool = False) -> Tensor:
        """1.0 at the position of each (integer-valued) x along a new axis of size num_classes."""
        x = self.tensor(x)
        y = self.emit(Op.ONE_HOT, [x], {"depth": int(num_classes), "truncate": bool(truncate)})
        axis = int(axis) % y.ndim
        if axis == y.ndim - 1:
            return y
        return self.moveaxis(y, y.ndim - 1, axis)

    # ------------------------------------------------------------------ reductions
    def axes(self, x: Tensor, axis: int | Iterable[int] | None) -> tuple[int, ...]:
        """`axis` (an int, a list, None for all; negatives from the end) as sorted axes of `x`,
        checked not to include a runtime tensor's batch axis."""
        rank = x.ndim
        if axis is None:
            if not x.is_constant:
                raise self.unsupported("a reduction over every axis, the batch included (axis=None)")
            return tuple(range(rank))
        axes = [axis] if isinstance(axis, (int, np.integer)) else list(axis)
        out = tuple(sorted({int(a) % rank for a in axes}))
        if 0 in out and not x.is_constant:
            raise self.unsupported(f"axis {axis} of a tensor of shape {x.shape} is the batch axis")
        return out

    def _reduce(self, op: Op, np_fn, x: TensorLike, axis, keepdims: bool) -> Tensor:
        x = self.tensor(x)
        axes = self.axes(x, axis)
        if x.is_constant:
            return self.const(np_fn(x.value, axis=axes, keepdims=bool(keepdims)))
        if not axes:
            return x
        return self.wrap(reduce(self.call, op, self.value_name(x), axes, bool(keepdims)))

    def mean(self, x, axis=None, keepdims=False): return self._reduce(Op.MEAN, np.mean, x, axis, keepdims)
    def max(self, x, axis=None, keepdims=False): return self._reduce(Op.MAX, np.max, x, axis, keepdims)

    def sum(self, x: TensorLike, axis=None, keepdims: bool = False) -> Tensor:
        # a mean times the count (backends reduce by MEAN)
        x = self.tensor(x)
        if x.is_constant:
            return self.const(np.sum(x.value, axis=self.axes(x, axis), keepdims=bool(keepdims)))
        count = int(np.prod([x.shape[a] for a in self.axes(x, axis)]))
        return self.multiply(self.mean(x, axis, keepdims), float(count))

    def min(self, x: TensorLike, axis=None, keepdims: bool = False) -> Tensor:
        x = self.tensor(x)
        if x.is_constant:
            return self.const(np.min(x.value, axis=self.axes(x, axis), keepdims=bool(keepdims)))
        return self.negative(self.max(self.negative(x), axis, keepdims))

    def var(self, x: TensorLike, axis=None, keepdims: bool = False) -> Tensor:
        x = self.tensor(x)
        dev = self.subtract(x, self.mean(x, axis, keepdims=True))
        return self.mean(self.square(dev), axis, keepdims)

    def std(self, x, axis=None, keepdims=False): return self.sqrt(self.var(x, axis, keepdims))

    def logsumexp(self, x: TensorLike, axis=None, keepdims: bool = False) -> Tensor:
        x = self.tensor(x)
        m = self.max(x, axis, keepdims=True)
        y = self.add(self.log(self.sum(self.exp(self.subtract(x, m)), axis, keepdims=True)), m)
        return y if keepdims else self.squeeze(y, self.axes(x, axis))

    def any(self, x, axis=None, keepdims=False): return self.max(self.truth(x), axis, keepdims)

    def all(self, x, axis=None, keepdims=False):
        return self.subtract(1.0, self.max(self.logical_not(x), axis, keepdims))
