"""Shape rules and NumPy meaning of the sequence ops: BMM, GATHER, ONE_HOT and RNN (`rules.py` dispatches
here). Like every rule, these are the meaning that backends must match.

RNN, one recurrent layer (one cell) over time. Inputs, in this order:
    xp      (N, T, *S, G*F)  the input projection x_t @ W + b of every timestep (S: spatial dims of a
                             ConvLSTM, empty for dense cells; G gates of F units)
    U       parameter        recurrent kernel: (F, G*F) for dense cells, (kh, kw, F, G*F) for "convlstm"
    rbias   parameter (G*F,) GRU reset_after's recurrent bias           (when attr has_rbias)
    mask    (N, T)           nonzero where a timestep counts             (when attr has_mask)
    states  (N, *S, F) each  initial states: h (and c for LSTMs)        (attr n_init: 0 or all of them)
Attrs: cell ("simple", "gru", "lstm", "convlstm"), units F, activation and recurrent_activation
(scalar programs, below), reset_after (GRU), go_backwards, return_sequences, time_order, out_states,
zero_masked, unroll, stateful.
Output: (N, R + out_states, *S, F): R = T step outputs (processing order, or time order when
`time_order`) when return_sequences, else R = 1, the output of the last processed step; then the
final states (h, c) when out_states. Keras's masking: a masked step keeps every state and outputs the
previous output (zeros when zero_masked; with unroll, zeros until the first unmasked step, Keras's
unrolled loop starting from a zero "previous output" rather than the initial state).
A stateful RNN starts from, and leaves its final states in, a buffer the runtime keeps between calls;
the reference interpreter starts from zeros.

A scalar program is how a cell's activation travels inside the RNN node (Keras allows any activation,
some of which are several primitives: celu, mish, ...): a tuple of instructions `(op, attrs, args)`,
each an elementwise op of the IR applied to its args, where an arg is "x" (the activation's input),
("%", k) (the result of instruction k) or a float constant. The program's value is its last
instruction's result ("x" itself for the empty program, linear).
The activations that are not elementwise (softmax, log_softmax, sparsemax, and glu, which Keras's
cells run only on gates of 2 units, broadcasting its one value over both) are carried by name instead
of a program: a function of one gate's F units (of one row, and one position of a ConvLSTM), applied
to each gate separately as Keras's cells do.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from .ir import Op, Shape

GATES = {"simple": 1, "gru": 3, "lstm": 4, "convlstm": 4}
N_STATES = {"simple": 1, "gru": 1, "lstm": 2, "convlstm": 2}


def rnn_input_names(attrs: dict[str, Any]) -> list[str]:
    """What each input of an RNN node is, in order ("xp", "U", "rbias", "mask", "state0", ...)."""
    names = ["xp", "U"]
    if attrs.get("has_rbias"):
        names.append("rbias")
    if attrs.get("has_mask"):
        names.append("mask")
    names += [f"state{k}" for k in range(attrs.get("n_init", 0))]
    return names


def _rnn_shape(ins: Sequence[Shape], attrs: dict[str, Any]) -> Shape:
    cell, f = attrs["cell"], attrs["units"]
    names = rnn_input_names(attrs)
    if len(ins) != len(names):
        raise ValueError(f"rnn: {len(ins)} inputs, attrs call for {names}")
    xp, u = ins[0], ins[1]
    spatial = tuple(xp[2:-1])
    if xp[-1] != GATES[cell] * f or u[-2:] != (f, GATES[cell] * f):
        raise ValueError(f"rnn {cell}: projection {tuple(xp)} and recurrent kernel {tuple(u)} do not fit {f} units")
    if (cell == "convlstm") != (len(u) == 4 and len(spatial) == 2):
        raise ValueError(f"rnn {cell}: recurrent kernel {tuple(u)} does not fit a projection {tuple(xp)}")
    for name, s in zip(names, ins):
        if name == "mask" and tuple(s) != (xp[0], xp[1]):
            raise ValueError(f"rnn: mask {tuple(s)} does not fit a projection {tuple(xp)}")
        if name.startswith("state") and tuple(s) != (xp[0],) + spatial + (f,):
            raise ValueError(f"rnn: initial state {tuple(s)} does not fit {spatial + (f,)}")
    if attrs.get("n_init") not in (0, N_STATES[cell]):
        raise ValueError(f"rnn {cell}: {attrs.get('n_init')} initial states, the cell has {N_STATES[cell]}")
    rows = (xp[1] if attrs.get("return_sequences") else 1) + attrs.get("out_states", 0)
    return (xp[0], rows) + spatial + (f,)


def _bmm_shape(ins: Sequence[Shape], attrs: dict[str, Any]) -> Shape:
    a, b = ins[0], ins[1]  # then the operands of a fused epilogue
    if len(a) != len(b) or len(a) < 3 or tuple(a[1:-2]) != tuple(b[1:-2]):
        raise ValueError(f"bmm: operands {tuple(a)} and {tuple(b)} differ in their batch dimensions")
    k, p = (b[-1], b[-2]) if attrs.get("transpose_b") else (b[-2], b[-1])
    if a[-1] != k:
        raise ValueError(f"bmm: {tuple(a)} @ {tuple(b)}{'^T' if attrs.get('transpose_b') else ''}: {a[-1]} != {k}")
    return tuple(a[:-1]) + (p,)


SHAPES: dict[Op, Callable[[Sequence[Shape], dict], Shape]] = {
    Op.BMM: _bmm_shape,
    Op.GATHER: lambda ins, attrs: tuple(ins[0]) + tuple(ins[1][1:]),
    Op.ONE_HOT: lambda ins, attrs: tuple(ins[0]) + (int(attrs["depth"]),),
    Op.RNN: _rnn_shape,
}


# ----------------------------------------------------------------------------- evaluation
def _as_index(x: np.ndarray) -> np.ndarray:
    return np.trunc(x).astype(np.int64) if x.dtype.kind == "f" else x.astype(np.int64)


def _gather(idx: np.ndarray, table: np.ndarray) -> np.ndarray:
    i = _as_index(idx)
    v = table.shape[0]
    i = np.where(i < 0, i + v, i)
    ok = (i >= 0) & (i < v)
    out = table[np.where(ok, i, 0)].astype(np.float32)
    out[~ok] = np.nan
    return out


def _one_hot(idx: np.ndarray, depth: int, truncate: bool) -> np.ndarray:
    i = _as_index(idx) if truncate else idx
    return (i[..., None] == np.arange(depth)).astype(np.float32)


def _log_softmax(x: np.ndarray) -> np.ndarray:
    shifted = x - x.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def _glu(x: np.ndarray) -> np.ndarray:
    half = x.shape[-1] // 2
    y = x[..., :half] / (1 + np.exp(-x[..., half:]))
    return np.broadcast_to(y, x.shape)  # half is 1: Keras's cell broadcasts it over both units


def _row_activations() -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    from .rules import _softmax, _sparsemax  # rules imports this module
    return {"softmax": lambda x: _softmax(x, -1), "log_softmax": _log_softmax,
            "sparsemax": lambda x: _sparsemax(x, -1), "glu": _glu}


#: the activations that are a function of a whole gate (its last axis), carried by name
ROW_ACTIVATIONS = ("softmax", "log_softmax", "sparsemax", "glu")


def run_program(program: tuple | str, x: np.ndarray) -> np.ndarray:
    """The value of a scalar program (see the module docstring) applied elementwise to `x`, or of a
    row activation (a name in ROW_ACTIVATIONS) applied along the last axis of `x`, a gate's units."""
    from .rules import evaluate  # rules imports this module
    if isinstance(program, str):
        return _row_activations()[program](x.astype(np.float32)).astype(np.float32)
    vals: list[np.ndarray] = []
    for op, attrs, args in program:
        arrays = [x if a == "x" else vals[a[1]] if isinstance(a, tuple) else np.full((1,), a, np.float32)
                  for a in args]
        vals.append(evaluate(op, arrays, dict(attrs)).astype(np.float32))
    return vals[-1] if vals else x


def _recurrent(h: np.ndarray, u: np.ndarray, cell: str) -> np.ndarray:
    if cell != "convlstm":
        return h @ u
    from .rules import _conv, same_pads  # rules imports this module
    pads = tuple(same_pads(h.shape[1 + i], u.shape[i], 1) for i in range(2))
    return _conv(h, u, (1, 1), (1, 1), pads, 1)


def _rnn(xs: Sequence[np.ndarray], attrs: dict[str, Any]) -> np.ndarray:
    named = dict(zip(rnn_input_names(attrs), xs))
    xp, u = named["xp"], named["U"]
    cell, f = attrs["cell"], attrs["units"]
    n, steps = xp.shape[:2]
    act = lambda v: run_program(attrs["activation"], v.astype(np.float32))  # noqa: E731
    ract = lambda v: run_program(attrs["recurrent_activation"], v.astype(np.float32))  # noqa: E731
    state_shape = (n,) + xp.shape[2:-1] + (f,)
    states = [named[f"state{k}"].astype(np.float32).copy() if attrs.get("n_init") else np.zeros(state_shape, np.float32)
              for k in range(N_STATES[cell])]
    mask = named.get("mask")
    seen = np.zeros(n, bool)
    outs = []
    for s in range(steps):
        t = steps - 1 - s if attrs.get("go_backwards") else s
        x = xp[:, t]
        h = states[0]
        if cell == "simple":
            new = [act(x + _recurrent(h, u, cell))]
        elif cell == "gru" and attrs.get("reset_after"):
            r_all = _recurrent(h, u, cell) + named.get("rbias", 0.0)
            z = ract(x[..., :f] + r_all[..., :f])
            r = ract(x[..., f:2 * f] + r_all[..., f:2 * f])
            hh = act(x[..., 2 * f:] + r * r_all[..., 2 * f:])
            new = [z * h + (1 - z) * hh]
        elif cell == "gru":
            r_zr = _recurrent(h, u[:, :2 * f], cell)
            z = ract(x[..., :f] + r_zr[..., :f])
            r = ract(x[..., f:2 * f] + r_zr[..., f:])
            hh = act(x[..., 2 * f:] + _recurrent(r * h, u[:, 2 * f:], cell))
            new = [z * h + (1 - z) * hh]
        else:
            zz = x + _recurrent(h, u, cell)
            i, fg, o = ract(zz[..., :f]), ract(zz[..., f:2 * f]), ract(zz[..., 3 * f:])
            c = fg * states[1] + i * act(zz[..., 2 * f:3 * f])
            new = [o * act(c), c]
        new = [v.astype(np.float32) for v in new]
        out = new[0]
        if mask is not None:
            keep = (mask[:, t] != 0).reshape((n,) + (1,) * (out.ndim - 1))
            if attrs.get("zero_masked"):
                prev = np.zeros_like(h)
            elif attrs.get("unroll"):
                prev = np.where(seen.reshape(keep.shape), h, 0.0)
            else:
                prev = h
            out = np.where(keep, out, prev).astype(np.float32)
            new = [np.where(keep, v, old).astype(np.float32) for v, old in zip(new, states)]
            seen |= mask[:, t] != 0
        states = new
        outs.append(out)
    if attrs.get("return_sequences"):
        seq = np.stack(outs, axis=1)
        if attrs.get("go_backwards") and attrs.get("time_order"):
            seq = seq[:, ::-1]
        rows = [seq]
    else:
        rows = [outs[-1][:, None]]
    rows += [st[:, None] for st in states[:attrs.get("out_states", 0)]]
    return np.ascontiguousarray(np.concatenate(rows, axis=1), dtype=np.float32)


def _bmm(a: np.ndarray, b: np.ndarray, attrs: dict[str, Any]) -> np.ndarray:
    if attrs.get("transpose_b"):
        b = np.swapaxes(b, -1, -2)
    return (a.astype(np.float64) @ b.astype(np.float64)).astype(np.float32)


EVAL: dict[Op, Callable[[Sequence[np.ndarray], dict], np.ndarray]] = {
    Op.BMM: lambda xs, attrs: _bmm(xs[0], xs[1], attrs),
    Op.GATHER: lambda xs, attrs: _gather(xs[0], xs[1]),
    Op.ONE_HOT: lambda xs, attrs: _one_hot(xs[0], int(attrs["depth"]), bool(attrs.get("truncate"))),
    Op.RNN: _rnn,
}
