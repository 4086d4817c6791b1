"""keras.activations functions with no single IR op, lowered to a few primitives each, with Keras 3's
default arguments (the only ones a config can name). The formulas follow the JAX backend's; where a
rewrite is used instead, the comment says why it gives the same numbers."""
from __future__ import annotations

import math
from typing import Callable

from ..ir import Op
from .context import LayerCall
from .primitives import const, reduce, slice_axis


def _clip(call: LayerCall, x: str, lo: float, hi: float) -> str:
    y = call.add(Op.MAXIMUM, [x, const(call, "clip_lo", lo)])
    return call.add(Op.MINIMUM, [y, const(call, "clip_hi", hi)])


def celu(call: LayerCall, x: str, alpha: float = 1.0) -> str:
    # max(x, 0) + alpha * expm1(min(x, 0) / alpha); ELU(y) of y = min(x, 0)/alpha <= 0 is expm1(y)
    neg = call.add(Op.DIV, [call.add(Op.MINIMUM, [x, const(call, "zero", 0.0)]), const(call, "alpha", alpha)])
    neg = call.add(Op.MUL, [call.add(Op.ELU, [neg], {"alpha": 1.0}), const(call, "alpha", alpha)])
    return call.add(Op.ADD, [call.add(Op.RELU, [x]), neg])


def glu(call: LayerCall, x: str, axis: int = -1) -> str:
    shape = call.shape(x)
    a = axis % len(shape)
    if shape[a] % 2:
        raise call.unsupported(f"glu over an axis of odd size {shape[a]}")
    half = shape[a] // 2
    first, second = slice_axis(call, x, a, 0, half), slice_axis(call, x, a, half, shape[a])
    return call.add(Op.MUL, [first, call.add(Op.SIGMOID, [second])])


def hard_shrink(call: LayerCall, x: str, threshold: float = 0.5) -> str:
    # where(|x| > t, x, 0) = relu_t(x) - relu_t(-x), relu_t(v) = v if v > t else 0 (t >= 0)
    if threshold < 0:
        return x
    pos = call.add(Op.RELU, [x], {"threshold": threshold})
    neg = call.add(Op.RELU, [call.add(Op.NEG, [x])], {"threshold": threshold})
    return call.add(Op.SUB, [pos, neg])


def soft_shrink(call: LayerCall, x: str, threshold: float = 0.5) -> str:
    # x - t where x > t, x + t where x < -t, else 0: relu(x - t) - relu(-x - t); exact (negation is)
    t = const(call, "threshold", threshold)
    pos = call.add(Op.RELU, [call.add(Op.SUB, [x, t])])
    neg = call.add(Op.RELU, [call.add(Op.SUB, [call.add(Op.NEG, [x]), t])])
    return call.add(Op.SUB, [pos, neg])


def hard_tanh(call: LayerCall, x: str) -> str:
    return _clip(call, x, -1.0, 1.0)


def sparse_plus(call: LayerCall, x: str) -> str:
    # 0 for x <= -1, x for x >= 1, (x+1)^2/4 between: max(x, (clip(x, -1, 1) + 1)^2 / 4), since
    # (x+1)^2/4 - x = (x-1)^2/4 >= 0 between, the square is 1 <= x above and 0 >= x below
    q = call.add(Op.ADD, [_clip(call, x, -1.0, 1.0), const(call, "one", 1.0)])
    q = call.add(Op.DIV, [call.add(Op.POW, [q], {"exponent": 2.0}), const(call, "four", 4.0)])
    return call.add(Op.MAXIMUM, [x, q])


def squareplus(call: LayerCall, x: str, b: float = 4.0) -> str:
    r = call.add(Op.POW, [call.add(Op.ADD, [call.add(Op.POW, [x], {"exponent": 2.0}), const(call, "b", b)])],
                 {"exponent": 0.5})
    return call.add(Op.DIV, [call.add(Op.ADD, [x, r]), const(call, "two", 2.0)])


def tanh_shrink(call: LayerCall, x: str) -> str:
    return call.add(Op.SUB, [x, call.add(Op.TANH, [x])])


def log_sigmoid(call: LayerCall, x: str) -> str:
    return call.add(Op.NEG, [call.add(Op.SOFTPLUS, [call.add(Op.NEG, [x])])])


def sparse_sigmoid(call: LayerCall, x: str) -> str:
    return call.add(Op.HARD_SIGMOID, [x], {"slope": 0.5, "offset": 0.5})


def mish(call: LayerCall, x: str) -> str:
    return call.add(Op.MUL, [x, call.add(Op.TANH, [call.add(Op.SOFTPLUS, [x])])])


def log_softmax(call: LayerCall, x: str, axis: int = -1) -> str:
    # shifted - log(sum(exp(shifted))), shifted = x - max; the sum is a mean times the count
    a = axis % len(call.shape(x))
    shifted = call.add(Op.SUB, [x, reduce(call, Op.MAX, x, (a,), True)])
    mean = reduce(call, Op.MEAN, call.add(Op.EXP, [shifted]), (a,), True)
    lse = call.add(Op.ADD, [call.add(Op.LOG, [mean]), const(call, "log_count", math.log(call.shape(x)[a]))])
    return call.add(Op.SUB, [shifted, lse])


def sparsemax(call: LayerCall, x: str, axis: int = -1) -> str:
    return call.add(Op.SPARSEMAX, [x], {"axis": axis % len(call.shape(x))})


#: activation name -> lowering rule (call, input value) -> output value
COMPOSITE: dict[str, Callable[[LayerCall, str], str]] = {
    "celu": celu, "glu": glu, "hard_shrink": hard_shrink, "soft_shrink": soft_shrink, "hard_tanh": hard_tanh,
    "sparse_plus": sparse_plus, "squareplus": squareplus, "tanh_shrink": tanh_shrink, "log_sigmoid": log_sigmoid,
    "sparse_sigmoid": sparse_sigmoid, "mish": mish, "log_softmax": log_softmax, "sparsemax": sparsemax,
}
