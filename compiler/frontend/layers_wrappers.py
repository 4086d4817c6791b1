"""Wrapper layers: Bidirectional (two recurrences and a merge) and TimeDistributed (a layer applied to
every timestep).

The wrapped layers' weights are recorded under the wrapper's; `sublayers.select` picks each wrapped
layer's by the names the file records, and the wrapped layer is lowered by its own rule through a
`LayerCall` of its own (`sublayers.inner_call`).
"""
from __future__ import annotations

import copy
import dataclasses
from collections import defaultdict

import numpy as np

from ...encoder.config import is_model, layers_of, name_of
from ...encoder.match import resolve_inner
from ...encoder.vars_h5 import _walk_group_names
from ...errors import WeightsMismatchError
from ..ir import Op
from .context import LAYERS, LayerCall, layer
from .layers_rnn import RNN_LAYERS, Loop, layer_cells, lower_rnn_layer, sequence_mask, initial_states
from .primitives import const, slice_axis
from .sublayers import check_all_used, inner_call, is_vars_layout, layer_name, recorded, select


# ---------------------------------------------------------------------- Bidirectional
def _backward_config(forward: dict) -> dict:
    """Keras's default backward layer: the forward layer's config going the other way."""
    cfg = copy.deepcopy(forward)
    inner = cfg.setdefault("config", {})
    inner["go_backwards"] = not inner.get("go_backwards", False)
    inner["name"] = "backward_" + layer_name(forward).removeprefix("forward_")
    return cfg


def _direction(call: LayerCall, cfg: dict, weights: tuple, x: str, mask: str | None, init: list[str],
               time_order: bool) -> list[str]:
    """One direction's [output, *states]: the wrapped RNN layer with Bidirectional's overrides."""
    cls = cfg.get("class_name")
    if cls not in RNN_LAYERS:
        raise call.unsupported(f"a wrapped layer of class {cls!r} (Bidirectional takes recurrent layers)")
    sub = inner_call(call, cfg, "backward_layer" if time_order else "forward_layer", weights)
    loop = Loop.of(sub)
    # Keras forces zero_output_for_mask = return_sequences on both layers
    loop.zero_masked = loop.return_sequences and not loop.unroll
    loop.time_order = time_order
    cells = layer_cells(sub, call.shape(x)[-1])
    return lower_rnn_layer(sub, x, cells, loop, mask, init)


@layer("Bidirectional")
def lower_bidirectional(call: LayerCall, xs: list[str]) -> list[str]:
    x = xs[0]
    fwd = call.get("layer")
    bwd = call.get("backward_layer") or _backward_config(fwd)
    if not bwd.get("config", {}).get("go_backwards", False):
        raise call.unsupported("a backward_layer that does not go backwards")
    # legacy files name the layers forward_<name> and backward_<name> (or a given backward layer's own)
    base = layer_name(fwd).removeprefix("forward_")
    fw = select(call, "forward_layer", {"forward_layer", layer_name(fwd), "forward_" + base})
    bw = select(call, "backward_layer", {"backward_layer", layer_name(bwd), "backward_" + base})
    check_all_used(call, len(fw[0]) + len(bw[0]))
    mask = sequence_mask(call, x)
    init = initial_states(call, xs)
    half = len(init) // 2
    f = _direction(call, fwd, fw, x, mask, init[:half], False)
    # Keras flips the backward layer's sequence back to time order: it is written in time order
    b = _direction(call, bwd, bw, x, mask, init[half:], True)
    y, y_rev = f[0], b[0]
    mode = call.get("merge_mode", "concat")
    if mode == "concat":
        merged = [call.add(Op.CONCAT, [y, y_rev], {"axis": len(call.shape(y)) - 1})]
    elif mode == "sum":
        merged = [call.add(Op.ADD, [y, y_rev])]
    elif mode == "mul":
        merged = [call.add(Op.MUL, [y, y_rev])]
    elif mode == "ave":
        merged = [call.add(Op.MUL, [call.add(Op.ADD, [y, y_rev]), const(call, "half", 0.5)])]
    elif mode is None:
        merged = [y, y_rev]
    else:
        raise call.unsupported(f"merge_mode {mode!r}")
    sequences = bool(fwd.get("config", {}).get("return_sequences", False))
    m = (call.mask[0] if call.mask else call.input_masks[0] if call.input_masks else None) if sequences else None
    call.output_masks = [m] * len(merged) + [None] * (len(f) + len(b) - 2)
    return merged + f[1:] + b[1:]


# ---------------------------------------------------------------------- TimeDistributed
#: layers that act on the last axis alone, so that one call on (N, T, ...) equals one call per timestep
_PER_FEATURE = {"Dense", "Activation", "ReLU", "LeakyReLU", "ELU", "Dropout", "GaussianNoise", "GaussianDropout",
                "AlphaDropout", "Identity", "ActivityRegularization"}
_LAST_AXIS = {"BatchNormalization", "LayerNormalization", "Softmax"}
#: wrapped layers whose call takes a mask
_READS_MASK = RNN_LAYERS | {"Bidirectional", "TimeDistributed", "GlobalAveragePooling1D", "GlobalAvgPool1D",
                            "Attention", "AdditiveAttention", "MultiHeadAttention", "Softmax"}


def _per_feature(cfg: dict, frame_rank: int) -> bool:
    cls = cfg.get("class_name")
    if cls in _PER_FEATURE:
        return True
    if cls in _LAST_AXIS:
        axis = cfg.get("config", {}).get("axis", -1)
        axis = axis[0] if isinstance(axis, (list, tuple)) and len(axis) == 1 else axis
        return isinstance(axis, int) and axis % frame_rank == frame_rank - 1
    return False


def _nested_weights(model: dict, names: list[str], arrays: list[np.ndarray], prefix: str,
                    out: dict[str, tuple[list, list]]) -> None:
    """File a wrapped model's weights under its layers' paths ("<prefix><layer>"), as the encoder does
    for a nested model: Keras 3 names "layers/<group>/..." by the saver's group names, legacy names
    by the layer names they contain."""
    if is_vars_layout(names):
        groups = _walk_group_names(model)
        by_name = {name_of(lc): lc for lc in layers_of(model)}
        per_group: dict[str, tuple[list, list]] = defaultdict(lambda: ([], []))
        for n, a in zip(names, arrays):
            parts = n.split("/")
            if parts[0] not in ("layers", "_layer_checkpoint_dependencies") or parts[1] not in groups:
                raise WeightsMismatchError(f"weight {n!r} of a wrapped model names none of its layers")
            per_group[groups[parts[1]]][0].append("/".join(parts[2:]))
            per_group[groups[parts[1]]][1].append(a)
        for lname, (ns, arrs) in per_group.items():
            if is_model(by_name[lname]):
                _nested_weights(by_name[lname], ns, arrs, f"{prefix}{lname}/", out)
            else:
                out[prefix + lname] = (ns, arrs)
        return
    for n, a in zip(names, arrays):
        inner = resolve_inner(model, n)
        if inner is None:
            raise WeightsMismatchError(f"weight {n!r} of a wrapped model names none of its layers")
        entry = out.setdefault(prefix + inner, ([], []))
        entry[0].append(n)
        entry[1].append(a)


@layer("TimeDistributed")
def lower_time_distributed(call: LayerCall, xs: list[str]) -> list[str]:
    x = xs[0]
    shape = call.shape(x)
    if len(shape) < 3:
        raise call.unsupported(f"an input of shape {shape} (TimeDistributed needs (batch, time, ...))")
    inner = call.get("layer")
    cls = inner.get("class_name")
    steps, frame = shape[1], tuple(shape[2:])
    if call.mask and cls in _READS_MASK:
        raise call.unsupported(f"a mask passed on to a wrapped {cls} (Keras hands it each timestep's mask)")
    if is_model(inner):
        weights = select(call, "layer", set()) if is_vars_layout(recorded(call)[0]) else recorded(call)
        check_all_used(call, len(weights[0]))
        prefix = f"{call.path}/{layer_name(inner)}/"
        filed: dict[str, tuple[list, list]] = {}
        _nested_weights(inner, weights[0], weights[1], prefix, filed)
        spec = dataclasses.replace(call.spec, weights={**call.spec.weights, **{p: a for p, (_, a) in filed.items()}},
                                   weight_names={**call.spec.weight_names, **{p: n for p, (n, _) in filed.items()}})

        def apply(v: str) -> str:
            outs = call.lower_model(inner, prefix, [v], spec)
            if len(outs) != 1:
                raise call.unsupported(f"a wrapped model with {len(outs)} outputs")
            return outs[0]
    else:
        if cls not in LAYERS:
            raise call.unsupported(f"a wrapped layer of class {cls!r}, which kerasjit does not support")
        weights = select(call, "layer", {layer_name(inner)})
        check_all_used(call, len(weights[0]))

        def apply(v: str) -> str:
            sub = inner_call(call, inner, "layer", weights)
            outs = LAYERS[cls](sub, [v])
            if len(outs) != 1:
                raise call.unsupported(f"a wrapped layer with {len(outs)} outputs")
            return outs[0]
        if _per_feature(inner, len(frame) + 1):
            return [apply(x)]
    # Keras calls the layer on every timestep in turn (a Python loop over a static time axis)
    frames = []
    for t in range(steps):
        y = apply(call.add(Op.RESHAPE, [slice_axis(call, x, 1, t, t + 1)], {"shape": frame}))
        frames.append(call.add(Op.RESHAPE, [y], {"shape": (1,) + tuple(call.shape(y)[1:])}))
    return [frames[0] if steps == 1 else call.add(Op.CONCAT, frames, {"axis": 1})]
