"""Keras masks in the front end: which mask a layer receives, and which masks its outputs carry.

A Keras mask marks the timesteps of a sequence that count (Embedding(mask_zero=True), Masking); Keras
attaches it to the tensor (`_keras_mask`) and it follows the tensor through layers that support
masking, to the layers that consume it (RNNs, attention, GlobalAveragePooling1D). Here a mask is a
runtime value of float 0/1 (the arena is float32), (N, T) for a (N, T, ...) sequence, and the
lowering keeps one per value name (topology.py). Keras 3 behaviour, followed here:
- a layer's `mask` call argument is the mask its node records (Keras 3 files record the masks that
  were known when the model was built: the tensors of NotEqual/Any/... operations, lowered like any
  layer), else the masks of its inputs, but only when the call has exactly one tensor argument (an
  RNN given `initial_state` gets none); Keras 2 passes the inputs' masks to every layer that takes one;
- after the call, a layer's rule may set its outputs' masks (`call.output_masks`, Keras's
  `compute_mask`); otherwise layers that support masking pass the mask on unchanged (below), merges
  combine their inputs' masks, and every other layer drops it.
"""
from __future__ import annotations

from .context import LayerCall
from ..ir import Op

#: layers whose compute_mask is Keras's default: the output carries the input's mask
PASS_THROUGH = frozenset({
    "Activation", "ELU", "LeakyReLU", "PReLU", "ReLU", "Softmax", "ThresholdedReLU", "Dense", "Identity",
    "BatchNormalization", "GroupNormalization", "LayerNormalization", "UnitNormalization", "Normalization",
    "RMSNormalization", "Rescaling", "ActivityRegularization", "AlphaDropout", "Dropout", "GaussianDropout",
    "GaussianNoise", "TimeDistributed", "Lambda",
})
#: Keras 2 also passed masks through its spatial dropouts
PASS_THROUGH_KERAS2 = PASS_THROUGH | {"SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "Masking"}
MERGES = frozenset({"Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum"})


def mask_argument(keras_major: int, recorded: list | None, input_masks: list, first_arg: int,
                  tensor_args: int) -> list | None:
    """The `mask` a layer's call receives: the recorded one, else its first argument's masks (Keras 3:
    only when the call has one tensor argument); None when there is no mask at all."""
    if recorded is not None and any(m is not None for m in recorded):
        return list(recorded)
    if keras_major >= 3 and tensor_args != 1:
        return None
    masks = list(input_masks[:max(first_arg, 1)])
    return masks if any(m is not None for m in masks) else None


def output_masks(call: LayerCall, outs: list[str]) -> list:
    """The masks of a call's outputs (None for an output without one)."""
    if call.output_masks is not None:
        return list(call.output_masks) + [None] * (len(outs) - len(call.output_masks))
    previous = call.mask if call.mask is not None else call.input_masks[:max(call.first_arg, 1)]
    none = [None] * len(outs)
    if not previous or all(m is None for m in previous):
        return none
    cls = call.class_name
    if cls in MERGES:
        return [_merge_mask(call, previous)] + none[1:]
    if cls == "Concatenate":
        return [_concat_mask(call, previous)] + none[1:]
    if cls in (PASS_THROUGH if call.keras_major >= 3 else PASS_THROUGH_KERAS2):
        return [previous[0]] + none[1:]
    return none


def _combine(call: LayerCall, masks: list, op: Op) -> str:
    out = masks[0]
    for m in masks[1:]:
        out = call.add(op, [out, m])
    return out


def _merge_mask(call: LayerCall, masks: list) -> str | None:
    # Keras 3: the OR of the masks, none if an input has none; Keras 2: the AND of those there are
    if call.keras_major >= 3:
        return None if any(m is None for m in masks) else _combine(call, masks, Op.MAXIMUM)
    present = [m for m in masks if m is not None]
    return _combine(call, present, Op.MINIMUM) if present else None


def _concat_mask(call: LayerCall, masks: list) -> str | None:
    """Keras concatenates the masks broadcast to the inputs' shapes (an unmasked input counting as all
    true) along the layer's axis and reduces the last axis: any (Keras 3) or all (Keras 2) of it."""
    present = [m for m in masks if m is not None]
    x_rank = len(call.builder.shape(present[0])) + 1
    axis = int(call.get("axis", -1)) % x_rank
    if axis == x_rank - 1:  # along the features: each timestep's masks combine
        if call.keras_major >= 3:
            return None if len(present) < len(masks) else _combine(call, masks, Op.MAXIMUM)
        return _combine(call, present, Op.MINIMUM)
    if len(present) == len(masks) and axis < x_rank - 1:  # along time: the masks concatenate
        return call.add(Op.CONCAT, masks, {"axis": axis})
    raise call.unsupported(f"the mask of a concatenation along axis {axis} of masked and unmasked inputs")
