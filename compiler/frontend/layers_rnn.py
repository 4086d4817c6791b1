"""Recurrent layers: SimpleRNN, LSTM and GRU, `RNN` over their cells and StackedRNNCells, and ConvLSTM2D.

Each cell becomes two nodes: the input projection of every timestep at once (a MATMUL, or a CONV for
ConvLSTM2D, with the input bias) and an RNN node, the loop over time with the gates fused (see
rules_seq.py). Stacked cells are one RNN node per cell, run one after the other over the whole
sequence: the same numbers, since a cell's step t only needs the cell below's step t (and with a
mask, a masked step leaves every cell's state alone, so what a lower cell outputs there is never
read). Dropout options are inference no-ops.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..builder import GraphBuilder
from ..ir import Group, Op
from ..rules import same_pads
from ..rules_seq import GATES, N_STATES, ROW_ACTIVATIONS
from .activations import activation_name, apply_activation
from .context import LayerCall, layer
from .primitives import slice_axis
from .sublayers import check_all_used, inner_call, layer_name, recorded, select

CELL_KINDS = {"SimpleRNN": "simple", "SimpleRNNCell": "simple", "LSTM": "lstm", "LSTMCell": "lstm",
              "GRU": "gru", "GRUCell": "gru", "ConvLSTM2D": "convlstm"}
#: the layer classes that are an RNN over one cell, whose config holds the cell's options
RNN_LAYERS = {"SimpleRNN", "LSTM", "GRU", "ConvLSTM2D", "RNN"}


def activation_program(call: LayerCall, act: Any, kind: str = "lstm", units: int = 0) -> tuple | str:
    """Keras activation `act` as a scalar program (rules_seq.py) for the fused gates of a cell: the
    nodes `apply_activation` makes, recorded on a scratch graph; or, for an activation of a whole
    gate (softmax, ...), its name."""
    name = activation_name(act)
    if name in ROW_ACTIVATIONS:
        if name == "glu" and (units != 2 or kind == "simple"):
            # glu halves the units: Keras's LSTM and GRU cells run only when the half (1 unit)
            # broadcasts over the gate, and a SimpleRNN never (its state would shrink)
            raise call.unsupported(f"activation 'glu' in a {kind} cell of {units} units (Keras runs it only in "
                                   "an LSTM, GRU or ConvLSTM2D cell of 2 units)")
        return name
    scratch = GraphBuilder("activation")
    x = scratch.input("x", (1,))
    y = apply_activation(dataclasses.replace(call, builder=scratch), x, act)
    program: list[tuple] = []
    where: dict[str, Any] = {x: "x"}
    for node in scratch.nodes:
        args = []
        for i in node.inputs:
            if i in where:
                args.append(where[i])
            elif i in scratch.params and scratch.params[i].size == 1:
                args.append(float(scratch.params[i].reshape(())))
            else:
                raise call.unsupported(f"activation {act!r} inside a recurrent cell (it is not elementwise)")
        if node.op.group not in (Group.UNARY, Group.BINARY):
            raise call.unsupported(f"activation {act!r} inside a recurrent cell (it is not elementwise)")
        where[node.out.name] = ("%", len(program))
        program.append((node.op, node.attrs, tuple(args)))
    if where[y] != ("%", len(program) - 1) and where[y] != "x":
        program.append((Op.IDENTITY, (), (where[y],)))
    return tuple(program)


@dataclass
class Cell:
    """One recurrent cell, weights in Keras's layout (gates i, f, c, o for LSTMs; z, r, h for GRUs)."""

    call: LayerCall            # the call its weights and nodes belong to
    kind: str                  # "simple", "gru", "lstm", "convlstm"
    units: int
    activation: tuple | str    # scalar programs, or row activations by name
    recurrent_activation: tuple | str
    kernel: np.ndarray         # (I, G*F); ConvLSTM: (kh, kw, C, G*F)
    recurrent: np.ndarray      # (F, G*F); ConvLSTM: (kh, kw, F, G*F)
    bias: np.ndarray | None    # input bias (G*F,)
    recurrent_bias: np.ndarray | None = None  # GRU reset_after
    reset_after: bool = False

    @property
    def n_states(self) -> int:
        return N_STATES[self.kind]


def make_cell(call: LayerCall, cls: str, in_features: int) -> Cell:
    """The cell of `call`'s layer (an RNN layer or a cell config, `cls` its class), reading its weights."""
    kind = CELL_KINDS.get(cls)
    if kind is None:
        raise call.unsupported(f"recurrent cell class {cls!r}")
    units = int(call.get("filters" if kind == "convlstm" else "units", None, "output_dim"))
    g = GATES[kind]
    act = call.get("activation", "tanh")
    ract = call.get("recurrent_activation", "sigmoid", "inner_activation")
    use_bias = call.get("use_bias", True)
    # a GRU config without reset_after comes from Keras 2.0/2.1, where it was False
    reset_after = kind == "gru" and bool(call.get("reset_after", False))
    if kind == "convlstm":
        ks = tuple(int(k) for k in call.get("kernel_size"))
        shapes = [("kernel", ks + (in_features, g * units)), ("recurrent_kernel", ks + (units, g * units))]
    else:
        shapes = [("kernel", (in_features, g * units)), ("recurrent_kernel", (units, g * units))]
    if use_bias:
        if reset_after:
            shapes.append(("bias", (2, g * units)))
        else:
            shapes.append(("bias", (g * units,)))
    ws = call.weights(shapes)
    bias = rbias = None
    if use_bias:
        b = ws[2].reshape(-1)
        if reset_after:
            bias, rbias = b[:g * units], b[g * units:]
        else:
            bias = b
    return Cell(call, kind, units, activation_program(call, act, kind, units),
                activation_program(call, ract, kind, units), ws[0], ws[1], bias, rbias, reset_after)


@dataclass
class Loop:
    """How one RNN layer runs its cell(s) over time (Keras RNN options)."""

    go_backwards: bool = False
    return_sequences: bool = False
    return_state: bool = False
    stateful: bool = False
    unroll: bool = False
    zero_masked: bool = False   # zero_output_for_mask (Keras ignores it when unrolling)
    time_order: bool = False    # sequence outputs by time index rather than processing order

    @staticmethod
    def of(call: LayerCall) -> "Loop":
        if call.get("time_major", False):
            raise call.unsupported("time_major=True")
        unroll = bool(call.get("unroll", False))
        return Loop(bool(call.get("go_backwards", False)), bool(call.get("return_sequences", False)),
                    bool(call.get("return_state", False)), bool(call.get("stateful", False)), unroll,
                    bool(call.get("zero_output_for_mask", False)) and not unroll)


def _projection(cell: Cell, x: str) -> str:
    """x_t @ W + b for every timestep: one MATMUL (BLAS), or for ConvLSTM2D a 3D convolution whose kernel
    has depth 1 along time (the same 2D convolution of every frame)."""
    c = cell.call
    if cell.kind == "convlstm":
        shape = c.shape(x)
        kh, kw = cell.kernel.shape[:2]
        strides = tuple(int(s) for s in c.get("strides", (1, 1)))
        dilation = tuple(int(d) for d in c.get("dilation_rate", (1, 1)))
        padding = str(c.get("padding", "valid")).lower()
        if padding == "same":
            pads = tuple(same_pads(shape[2 + i], (kh, kw)[i], strides[i], dilation[i]) for i in range(2))
        elif padding == "valid":
            pads = ((0, 0), (0, 0))
        else:
            raise c.unsupported(f"padding {padding!r}")
        y = c.add(Op.CONV, [x, c.param("kernel", cell.kernel[None])],
                  {"strides": (1,) + strides, "dilation": (1,) + dilation, "pads": ((0, 0),) + pads, "groups": 1})
    else:
        y = c.add(Op.MATMUL, [x, c.param("kernel", cell.kernel)])
    if cell.bias is not None:
        y = c.add(Op.ADD, [y, c.param("bias", cell.bias)])
    return y


def run_cell(cell: Cell, x: str, loop: Loop, mask: str | None, init: list[str], return_sequences: bool,
             out_states: bool, last: bool) -> str:
    """The RNN node of one cell over sequence `x`; `last` says whether it is the layer's top cell
    (whose outputs Keras returns: masked-step outputs and ordering matter only there)."""
    c = cell.call
    inputs = [_projection(cell, x), c.param("recurrent_kernel", cell.recurrent)]
    if cell.recurrent_bias is not None:
        inputs.append(c.param("recurrent_bias", cell.recurrent_bias))
    if mask is not None:
        inputs.append(mask)
    inputs += init
    attrs = {"cell": cell.kind, "units": cell.units, "activation": cell.activation,
             "recurrent_activation": cell.recurrent_activation, "reset_after": cell.reset_after,
             "go_backwards": loop.go_backwards, "return_sequences": return_sequences,
             "time_order": loop.time_order or not last, "out_states": cell.n_states if out_states else 0,
             "zero_masked": loop.zero_masked and last, "unroll": loop.unroll and last, "stateful": loop.stateful,
             "has_rbias": cell.recurrent_bias is not None, "has_mask": mask is not None, "n_init": len(init)}
    if cell.kind == "convlstm":
        attrs["kernel_hw"] = tuple(cell.recurrent.shape[:2])
    return c.add(Op.RNN, inputs, attrs)


def _unpack(call: LayerCall, y: str, rows: int, states: int, return_sequences: bool) -> list[str]:
    """The layer's outputs from an RNN node's packed output: the output, then `states` states."""
    shape = call.shape(y)
    inner = tuple(shape[2:])
    if states == 0:
        return [y if return_sequences else call.add(Op.RESHAPE, [y], {"shape": inner})]
    out = slice_axis(call, y, 1, 0, rows)
    out = [out if return_sequences else call.add(Op.RESHAPE, [out], {"shape": inner})]
    for k in range(states):
        out.append(call.add(Op.RESHAPE, [slice_axis(call, y, 1, rows + k, rows + k + 1)], {"shape": inner}))
    return out


def sequence_mask(call: LayerCall, x: str) -> str | None:
    """The mask an RNN layer's call receives, as an (N, T) value, or None."""
    if not call.mask or call.mask[0] is None:
        return None
    m = call.mask[0]
    n_t = call.shape(x)[1]
    if call.shape(m)[1:] != (n_t,):
        if int(np.prod(call.shape(m)[1:])) != n_t:
            raise call.unsupported(f"a mask of shape {call.shape(m)} for a sequence of {n_t} steps")
        m = call.add(Op.RESHAPE, [m], {"shape": (n_t,)})
    return m


def initial_states(call: LayerCall, xs: list[str]) -> list[str]:
    """Initial states passed to the call: positional (Keras 2 records them as further inputs) or as
    the `initial_state` keyword (Keras 3)."""
    first = call.first_arg if call.keras_major >= 3 else 1
    return list(xs[first:]) + list(call.tensor_kwargs.get("initial_state", []))


def lower_rnn_layer(call: LayerCall, x: str, cells: list[Cell], loop: Loop, mask: str | None,
                    init: list[str]) -> list[str]:
    """An RNN layer over `cells` (stacked bottom to top): [output, *states of every cell]."""
    need = sum(c.n_states for c in cells)
    if init and len(init) != need:
        raise call.unsupported(f"{len(init)} initial states given, the cells have {need}")
    outs, states = x, []
    for k, cell in enumerate(cells):
        top = k == len(cells) - 1
        own, init = init[:cell.n_states], init[cell.n_states:]
        seq = loop.return_sequences or not top
        y = run_cell(cell, outs, loop, mask, own, seq, loop.return_state, top)
        rows = call.shape(outs)[1] if seq else 1
        unpacked = _unpack(call, y, rows, cell.n_states if loop.return_state else 0, seq)
        outs = unpacked[0]
        states += unpacked[1:]
    return [outs] + states


def rnn_output_masks(call: LayerCall, loop: Loop, n_outputs: int) -> list:
    """Keras RNN.compute_mask: the input's mask on the sequence output, none on states or last outputs."""
    previous = call.mask if call.mask is not None else call.input_masks[:max(call.first_arg, 1)]
    m = previous[0] if previous and loop.return_sequences else None
    return [m] + [None] * (n_outputs - 1)


def layer_cells(call: LayerCall, in_features: int) -> list[Cell]:
    """The cells of an RNN-family layer: its own (LSTM, GRU, ...) or those of `RNN(cell=...)`."""
    if call.class_name != "RNN":
        return [make_cell(call, call.class_name, in_features)]
    cell_cfg = call.get("cell")
    if isinstance(cell_cfg, list):  # Keras 2 may list the cells directly
        cell_cfg = {"class_name": "StackedRNNCells", "config": {"cells": cell_cfg}}
    if cell_cfg.get("class_name") != "StackedRNNCells":
        # the layer's weights are all its cell's
        return [make_cell(inner_call(call, cell_cfg, "cell", recorded(call)), cell_cfg["class_name"], in_features)]
    cfgs = cell_cfg.get("config", {}).get("cells", [])
    cells, used, features = [], 0, in_features
    for k, cfg in enumerate(cfgs):
        weights = select(call, f"cell/cells/{_walk_name(cfgs, k)}", {layer_name(cfg)})
        used += len(weights[0])
        cell = make_cell(inner_call(call, cfg, f"cell/{k}", weights), cfg.get("class_name"), features)
        cells.append(cell)
        features = cell.units
    check_all_used(call, used)
    return cells


def _walk_name(cfgs: list[dict], k: int) -> str:
    """The group Keras 3's saver gives the k-th cell of a list: its snake-cased class, numbered among
    the cells of the same class ("lstm_cell", "lstm_cell_1")."""
    from ...encoder.vars_h5 import _snake_case
    base = _snake_case(str(cfgs[k].get("class_name", "")))
    n = sum(1 for c in cfgs[:k] if _snake_case(str(c.get("class_name", ""))) == base)
    return base if n == 0 else f"{base}_{n}"


@layer("SimpleRNN", "LSTM", "GRU", "RNN")
def lower_rnn(call: LayerCall, xs: list[str]) -> list[str]:
    x = xs[0]
    if len(call.shape(x)) != 3:
        raise call.unsupported(f"an input of shape {call.shape(x)} (a recurrent layer takes (batch, time, features))")
    loop = Loop.of(call)
    cells = layer_cells(call, call.shape(x)[-1])
    outs = lower_rnn_layer(call, x, cells, loop, sequence_mask(call, x), initial_states(call, xs))
    call.output_masks = rnn_output_masks(call, loop, len(outs))
    return outs


@layer("ConvLSTM2D")
def lower_conv_lstm2d(call: LayerCall, xs: list[str]) -> list[str]:
    x = xs[0]
    first = call.get("data_format", "channels_last") == "channels_first"
    if first:  # (N, T, C, H, W) -> (N, T, H, W, C)
        x = call.add(Op.TRANSPOSE, [x], {"perm": (0, 1, 3, 4, 2)})
    loop = Loop.of(call)
    cell = make_cell(call, "ConvLSTM2D", call.shape(x)[-1])
    init = initial_states(call, xs)
    if first:
        init = [call.add(Op.TRANSPOSE, [s], {"perm": (0, 2, 3, 1)}) for s in init]
    outs = lower_rnn_layer(call, x, [cell], loop, sequence_mask(call, x), init)
    if first:
        outs = [call.add(Op.TRANSPOSE, [o], {"perm": (0, 1, 4, 2, 3) if len(call.shape(o)) == 5 else (0, 3, 1, 2)})
                for o in outs]
    call.output_masks = rnn_output_masks(call, loop, len(outs))
    return outs
