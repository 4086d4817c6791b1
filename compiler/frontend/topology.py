"""Walks a Keras model config (Sequential or functional, Keras 1/2/3 node formats, nested models,
shared layers) and lowers each layer call once, in dependency order.

A tensor in a functional config is `(layer name, node index, tensor index)`: output `tensor index` of
the `node index`-th call of that layer, counting the calls listed in the layer's `inbound_nodes`.
"""
from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np

from ...encoder.spec import ModelSpec
from ...errors import KerasJitError, ModelFormatError, UnsupportedLayerError, WeightsMismatchError
from ..builder import GraphBuilder
from ..ir import Graph, Op
from . import masking
from .context import INTEGER_INPUT_LAYERS, LayerCall
from .dispatch import REGISTRY_HINT, describe_unsupported, rule_for
from .ops_keras3 import is_op_node

MODEL_CLASSES = {"Functional", "Model", "Sequential"}
#: Keras merge layers: `call(inputs)` with one list of tensors
_ONE_LIST_LAYERS = {"Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate", "Dot"}
Ref = tuple  # (layer name, node index, tensor index)


def _is_model(layer_cfg: dict) -> bool:
    return layer_cfg.get("class_name") in MODEL_CLASSES


def iter_layers(model_cfg: dict, prefix: str = "") -> Iterator[tuple[str, dict]]:
    """Every (path, layer config) of a model config, nested models included (depth first)."""
    for lc in model_cfg.get("config", {}).get("layers", []) if isinstance(model_cfg.get("config"), dict) \
            else model_cfg.get("config", []):
        name = lc.get("config", {}).get("name") or lc.get("name", "?")
        path = f"{prefix}{name}"
        yield path, lc
        if _is_model(lc):
            yield from iter_layers(lc, path + "/")


def check_supported(spec: ModelSpec) -> None:
    """Raise one `UnsupportedLayerError` listing every layer (or operation node) of the model that has
    no lowering rule, with what each one is (dispatch.py) and how to register a lowering for it."""
    bad = [(path, lc) for path, lc in iter_layers(spec.config)
           if not _is_model(lc) and lc.get("class_name") != "InputLayer" and rule_for(lc) is None]
    if bad:
        described = [describe_unsupported(p, lc) for p, lc in bad]
        listing = "\n".join(f"  - {line}" for line, _ in described)
        raise UnsupportedLayerError(
            f"{spec.source}: {len(bad)} layer(s) are not supported by kerasjit:\n{listing}\n{REGISTRY_HINT}",
            [(p, lc.get("class_name", "?"), why) for (p, lc), (_, why) in zip(bad, described)])


@dataclass
class _NodeArgs:
    """What one inbound node passes to its layer, as tensor refs."""

    refs: list[Ref]                      # the positional tensors, flattened in order
    kwargs: dict                         # keyword arguments without tensors
    kw_refs: dict[str, list[Ref]] = field(default_factory=dict)  # keyword arguments holding tensors
    mask_refs: list | None = None        # a `mask` the node records (Keras 3), one entry per tensor
    first_arg: int = 0                   # how many of `refs` the first positional argument holds
    tensor_args: int = 1                 # arguments (positional or keyword) holding tensors
    args: list = field(default_factory=list)  # the positional arguments as recorded


def _keras3_refs(obj: Any, keep_none: bool = False) -> list:
    """The keras tensors in a Keras 3 argument, flattened; with `keep_none`, None entries too."""
    if isinstance(obj, dict) and obj.get("class_name") == "__keras_tensor__":
        h = obj["config"]["keras_history"]
        return [(h[0], int(h[1]), int(h[2]))]
    if obj is None and keep_none:
        return [None]
    if isinstance(obj, (list, tuple)):
        return [r for o in obj for r in _keras3_refs(o, keep_none)]
    if isinstance(obj, dict):
        return [r for o in obj.values() for r in _keras3_refs(o, keep_none)]
    return []


def _node_refs(node: Any) -> _NodeArgs:
    """The tensors and call arguments of one inbound node, in any Keras format."""
    if isinstance(node, dict):  # Keras 3: {"args": [...], "kwargs": {...}}
        out = _NodeArgs([], {}, args=list(node.get("args", [])), tensor_args=0)
        for i, arg in enumerate(out.args):
            refs = _keras3_refs(arg)
            out.refs += refs
            out.first_arg = len(refs) if i == 0 else out.first_arg
            out.tensor_args += bool(refs)
        for k, v in node.get("kwargs", {}).items():
            if k == "mask":
                if any(r is not None for r in _keras3_refs(v, keep_none=True)):
                    out.mask_refs = _keras3_refs(v, keep_none=True)
                continue
            refs = _keras3_refs(v)
            if refs:
                out.kw_refs[k] = refs
                out.tensor_args += 1
            else:
                out.kwargs[k] = v
        return out
    # Keras 1/2: the first call argument as entries [name, node_index, tensor_index, kwargs?], usually a
    # list of them (one bare entry for tf.keras's TFOpLambda, a constant as ["_CONSTANT_VALUE", -1,
    # value, kwargs]); every other argument is in the kwargs, tensors there as [name, node, tensor]
    out = _NodeArgs([], {})
    first = _keras2_first_arg(node, out)
    out.args = [first[0] if isinstance(first, list) and len(first) == 1 else first]
    out.first_arg = len(out.refs)
    for k, v in list(out.kwargs.items()):
        refs = _keras2_kwarg_refs(v)
        if refs:
            del out.kwargs[k]
            if k == "mask":
                out.mask_refs = refs
            else:
                out.kw_refs[k] = refs
                out.tensor_args += 1
    return out


def _is_keras2_entry(obj: Any) -> bool:
    return isinstance(obj, list) and len(obj) in (3, 4) and isinstance(obj[0], str)


def _keras2_first_arg(obj: Any, out: _NodeArgs) -> Any:
    """The first argument of a Keras 1/2 node in Keras 3's form (tensors as `__keras_tensor__`
    entries, constants as themselves), its refs appended to `out.refs` and its kwargs merged."""
    if _is_keras2_entry(obj):
        if len(obj) > 3 and isinstance(obj[3], dict):
            out.kwargs.update(obj[3])
        if obj[0] == "_CONSTANT_VALUE":
            return obj[2]
        ref = (obj[0], int(obj[1]), int(obj[2]))
        out.refs.append(ref)
        return {"class_name": "__keras_tensor__", "config": {"keras_history": list(ref)}}
    if isinstance(obj, list):
        return [_keras2_first_arg(o, out) for o in obj]
    if isinstance(obj, dict):
        return {k: _keras2_first_arg(v, out) for k, v in obj.items()}
    return obj


def _keras2_kwarg_refs(obj: Any) -> list[Ref]:
    """The tensor refs ([name, node_index, tensor_index]) in a Keras 1/2 keyword argument, in order."""
    if _is_keras2_entry(obj) and isinstance(obj[1], int) and isinstance(obj[2], int) and obj[0] != "_CONSTANT_VALUE":
        return [(obj[0], int(obj[1]), int(obj[2]))]
    if isinstance(obj, list):
        return [r for o in obj for r in _keras2_kwarg_refs(o)]
    if isinstance(obj, dict):
        return [r for o in obj.values() for r in _keras2_kwarg_refs(o)]
    return []


def _check_merge_call(node: _NodeArgs, keras3_node: bool, where: str) -> None:
    """A merge layer's `call` takes one list of tensors: a Keras 3 node must pass exactly that; a Keras
    1/2 node (whose refs Keras passes as one tensor when there is one) at least two. Keras refuses
    anything else, so kerasjit does too. (keras.ops functions recorded under the same class names take
    several arguments; they carry another `module`.)"""
    if keras3_node:
        first = node.args[0] if node.args else None
        ok = len(node.args) == 1 and isinstance(first, list) and first and \
            all(isinstance(a, dict) and a.get("class_name") == "__keras_tensor__" for a in first)
        if not ok or node.tensor_args != 1 or node.kw_refs:
            raise ModelFormatError(f"{where}: takes one list of tensors, the config passes {node.tensor_args} "
                                   f"tensor argument(s): {str(node.args)[:200]}")
    elif len(node.refs) < 2:
        raise ModelFormatError(f"{where}: takes a list of at least two tensors, the config passes "
                               f"{len(node.refs)}")


def _ref_list(obj: Any) -> list[Ref]:
    """`input_layers` / `output_layers`: a list of refs, or one bare ref (Keras 3 single tensor); nested
    lists (outputs such as a stacked RNN's per-cell states) are flattened in order, as Keras does."""
    if isinstance(obj, list) and len(obj) == 3 and isinstance(obj[0], str):
        return [(obj[0], int(obj[1]), int(obj[2]))]
    if not isinstance(obj, list) or any(isinstance(item, str) for item in obj):
        # (a string would otherwise recurse into its characters forever)
        raise TypeError(f"expected [layer name, node index, tensor index] references, found {obj!r:.200}")
    return [r for item in obj for r in _ref_list(item)]


def _input_shape(lc: dict, source: str) -> tuple[tuple, str]:
    cfg = lc.get("config", {})
    shape = cfg.get("batch_shape") or cfg.get("batch_input_shape")
    if shape is None and cfg.get("input_shape") is not None:
        shape = [None] + list(cfg["input_shape"])
    if shape is None:
        raise ModelFormatError(f"{source}: input layer {cfg.get('name')!r} records no shape")
    if any(d is None for d in shape[1:]):
        raise UnsupportedLayerError(
            f"{source}: input {cfg.get('name')!r} has dynamic dimensions {list(shape)}; kerasjit needs every "
            f"dimension but the batch fixed", [(cfg.get("name", "?"), "InputLayer", "dynamic shape")])
    dtype = cfg.get("dtype", "float32")
    if isinstance(dtype, dict):
        dtype = dtype.get("config", {}).get("name", "float32")
    try:
        numeric = np.dtype(str(dtype)).kind in "biuf"
    except TypeError:
        numeric = False
    if not numeric:
        raise UnsupportedLayerError(
            f"{source}: input {cfg.get('name')!r} has dtype {dtype!r}; kerasjit takes numeric inputs (float32, "
            f"int32, ...)", [(cfg.get("name", "?"), "InputLayer", f"dtype {dtype!r}")])
    return tuple(int(d) for d in shape[1:]), str(dtype)


class _Lowering:
    def __init__(self, spec: ModelSpec, builder: GraphBuilder | None = None):
        self.spec = spec
        self.b = builder or GraphBuilder(spec.config.get("config", {}).get("name", "model")
                                         if isinstance(spec.config.get("config"), dict) else "model")
        #: value name -> the Keras mask it carries (Keras keeps it on the tensor: `_keras_mask`)
        self.masks: dict[str, str] = {}

    # -- one layer call --
    def call_layer(self, lc: dict, path: str, xs: list[str], node: _NodeArgs | None = None,
                   kw_values: dict[str, list[str]] | None = None, mask: list | None = None) -> list[str]:
        cls = lc.get("class_name")
        if _is_model(lc):
            return self.model(lc, path + "/", xs)
        node = node or _NodeArgs(list(xs), {}, first_arg=len(xs))
        if cls in _ONE_LIST_LAYERS and not is_op_node(lc):  # (operations such as x * 0.5 share these names)
            recorded = lc.get("inbound_nodes") or [None]
            _check_merge_call(node, isinstance(recorded[0], dict), f"{self.spec.source}: layer {path!r} ({cls})")
        if cls not in INTEGER_INPUT_LAYERS:
            # Keras autocasts integer inputs of float layers to float32
            xs = [self._as_float(x, path) for x in xs]
            kw_values = {k: [self._as_float(v, path) for v in vs] for k, vs in (kw_values or {}).items()}
            mask = None if mask is None else [None if m is None else self._as_float(m, path) for m in mask]
        rule = rule_for(lc)
        input_masks = [self.masks.get(x) for x in xs]
        call = LayerCall(self.b, self.spec, cls, lc.get("config", {}), path, node.kwargs,
                         tensor_kwargs=kw_values or {}, input_masks=input_masks,
                         mask=masking.mask_argument(self.spec.keras_major, mask, input_masks, node.first_arg,
                                                    node.tensor_args),
                         first_arg=node.first_arg, tensor_args=node.tensor_args, args=node.args,
                         lower_model=self.lower_model, mask_of=self.masks.get)
        first_node = len(self.b.nodes)
        try:
            outs = rule(call, xs)
            out_masks = masking.output_masks(call, outs)
        except KerasJitError:
            raise
        except (KeyError, TypeError, ValueError, IndexError, ArithmeticError, AttributeError) as e:
            raise ModelFormatError(f"{self.spec.source}: layer {path!r} ({cls}): cannot lower its config: "
                                   f"{type(e).__name__}: {e}") from e
        if len(set(xs)) > 1 and str(lc.get("module", "keras.layers")).startswith("keras.layers"):
            # a layer that takes one tensor, given several (a config edited by hand), must not quietly
            # use the first: Keras would stack them, or refuse
            used = {i for n in self.b.nodes[first_node:] for i in n.inputs} | set(outs)
            unused = [x for x in dict.fromkeys(xs) if x not in used]
            if unused and len(unused) < len(set(xs)):
                raise ModelFormatError(f"{self.spec.source}: layer {path!r} ({cls}) uses {len(set(xs)) - len(unused)} "
                                       f"of the {len(set(xs))} tensors the config passes it")
        if call.clears_input_masks:
            for x in xs:
                self.masks.pop(x, None)
        for o, m in zip(outs, out_masks):
            if m is not None:
                self.masks[o] = m
        return outs

    def _as_float(self, x: str, path: str) -> str:
        v = self.b.values.get(x)
        if v is None or v.dtype.startswith("float"):
            return x
        y = self.b.add(Op.CAST, [x], layer=path)
        if x in self.masks:
            self.masks[y] = self.masks[x]
        return y

    def lower_model(self, mc: dict, prefix: str, xs: list[str], spec: ModelSpec | None = None) -> list[str]:
        """Lower nested model config `mc` on inputs `xs` into this builder, its layers' weights read
        from `spec` (a wrapper's own view of them) under paths starting with `prefix`."""
        inner = _Lowering(spec or self.spec, self.b)
        inner.masks = dict(self.masks)
        return inner.model(mc, prefix, xs)

    def _node_offset(self, lc: dict, in_call_args: bool) -> int:
        """A nested functional model's node 0 is its own construction, which configs do not list.
        Keras 2 counts it in every reference to the model's calls (for any model whose first layer is
        an InputLayer, Sequential included); Keras 3 counts it in `output_layers` of Functional models
        but not in the `keras_history` of call arguments, which it renumbers over the listed calls."""
        if not _is_model(lc) or in_call_args:
            return 0
        if self.spec.keras_major >= 3:
            return 1 if lc.get("class_name") in ("Functional", "Model") else 0
        inner = lc.get("config", {})
        layers = inner.get("layers", []) if isinstance(inner, dict) else inner
        return 1 if layers and layers[0].get("class_name") == "InputLayer" else 0

    # -- models --
    def model(self, mc: dict, prefix: str, xs: list[str] | None) -> list[str]:
        if mc.get("class_name") == "Sequential":
            return self.sequential(mc, prefix, xs)
        return self.functional(mc, prefix, xs)

    def sequential(self, mc: dict, prefix: str, xs: list[str] | None) -> list[str]:
        cfg = mc["config"]
        layers = cfg["layers"] if isinstance(cfg, dict) else cfg
        if not layers:
            raise ModelFormatError(f"{self.spec.source}: Sequential model {prefix!r} has no layers")
        _check_unique_names(layers, prefix, self.spec.source)
        if xs is None:
            first = layers[0]
            shape_holder = first if first.get("class_name") == "InputLayer" else first
            if first.get("class_name") != "InputLayer" and not (
                    first.get("config", {}).get("batch_input_shape") or first.get("config", {}).get("batch_shape")):
                bis = cfg.get("build_input_shape") if isinstance(cfg, dict) else None
                if bis is None:
                    raise ModelFormatError(f"{self.spec.source}: Sequential model records no input shape")
                shape_holder = {"config": {"batch_shape": bis, "name": f"{prefix}input"}}
            shape, dtype = _input_shape(shape_holder, self.spec.source)
            name = shape_holder.get("config", {}).get("name", "input") if first.get("class_name") == "InputLayer" \
                else f"{cfg.get('name', 'sequential')}_input" if isinstance(cfg, dict) else "input"
            xs = [self.b.input(name, shape, dtype)]
        for lc in layers:
            if lc.get("class_name") == "InputLayer":
                continue
            name = lc.get("config", {}).get("name") or lc.get("name")
            xs = self.call_layer(lc, prefix + name, xs)
        return xs

    def functional(self, mc: dict, prefix: str, xs: list[str] | None) -> list[str]:
        cfg = mc["config"]
        by_name = _check_unique_names(cfg["layers"], prefix, self.spec.source)
        in_refs = _ref_list(cfg["input_layers"])
        out_refs = _ref_list(cfg["output_layers"])
        done: dict[tuple[str, int], list[str]] = {}
        if xs is not None and len(xs) != len(in_refs):
            raise ModelFormatError(f"{self.spec.source}: nested model {prefix[:-1]!r} takes {len(in_refs)} "
                                   f"inputs, called with {len(xs)}")
        for i, (name, ni, _) in enumerate(in_refs):
            if name not in by_name:
                raise ModelFormatError(f"{self.spec.source}: input layer {name!r} is not in the model config")
            if xs is None:
                shape, dtype = _input_shape(by_name[name], self.spec.source)
                done[(name, ni)] = [self.b.input(name, shape, dtype)]
            else:
                done[(name, ni)] = [xs[i]]
        visiting: set[tuple[str, int]] = set()

        def tensor(ref: Ref, in_call_args: bool = False, consumer: str = "") -> str:
            name, ni, ti = ref
            lc = by_name.get(name)
            who = f"layer {prefix + consumer!r}" if consumer else f"the output_layers of model {cfg.get('name', '')!r}"
            if lc is None:
                known = ", ".join(map(str, list(by_name)[:20])) + (", ..." if len(by_name) > 20 else "")
                raise ModelFormatError(f"{self.spec.source}: {who} refers to layer {name!r}, which is not in "
                                       f"the model config (its layers: {known})")
            ni -= self._node_offset(lc, in_call_args)
            key = (name, ni)
            if key not in done:
                if key in visiting:
                    raise ModelFormatError(f"{self.spec.source}: the model graph has a cycle through layer {name!r}")
                nodes = lc.get("inbound_nodes", [])
                if not 0 <= ni < len(nodes):
                    raise ModelFormatError(f"{self.spec.source}: {who} refers to call {ni} of layer {name!r}, "
                                           f"which has {len(nodes)} call(s)")
                visiting.add(key)
                node = _node_refs(nodes[ni])
                in_args = isinstance(nodes[ni], dict)
                ins = [tensor(r, in_args, name) for r in node.refs]
                kw_values = {k: [tensor(r, in_args, name) for r in refs] for k, refs in node.kw_refs.items()}
                mask = None if node.mask_refs is None else \
                    [None if r is None else tensor(r, in_args, name) for r in node.mask_refs]
                done[key] = self.call_layer(lc, prefix + name, ins, node, kw_values, mask)
                visiting.discard(key)
            outs = done[key]
            if ti >= len(outs):
                raise ModelFormatError(f"{self.spec.source}: {who} refers to output {ti} of layer {name!r}, "
                                       f"which has {len(outs)}")
            return outs[ti]

        return [tensor(r) for r in out_refs]


def _check_unique_names(layers: list, prefix: str, source: str) -> dict[str, dict]:
    """name -> layer config of one model level; `ModelFormatError` when two layers share a name (Keras
    refuses such a model: references and weights are by name, so one of the two would be lost)."""
    by_name: dict[str, dict] = {}
    for lc in layers:
        nm = lc.get("name") or lc.get("config", {}).get("name")
        if nm in by_name:
            raise ModelFormatError(f"{source}: model {prefix[:-1] or 'config'!r} has two layers named {nm!r} "
                                   f"(classes {by_name[nm].get('class_name')} and {lc.get('class_name')}); "
                                   f"layer names must be unique")
        by_name[nm] = lc
    return by_name


def lower(spec: ModelSpec) -> Graph:
    """The IR graph of a whole model, before passes.

    Raises `ModelFormatError` for a config that is not a well-formed model (whatever part of it is
    malformed) and `WeightsMismatchError` when the weights hold a layer that the model does not use.
    """
    weights = _ReadTracking(spec.weights)
    spec = dataclasses.replace(spec, weights=weights)
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old, 20000))
    try:
        check_supported(spec)
        if spec.config.get("class_name") not in MODEL_CLASSES:
            raise ModelFormatError(f"{spec.source}: top-level config is a {spec.config.get('class_name')!r}, "
                                   f"not a Keras model")
        low = _Lowering(spec)
        outs = low.model(spec.config, "", None)
        names = _output_names(spec.config, len(outs))
    except KerasJitError:
        raise
    except (KeyError, TypeError, ValueError, IndexError, ArithmeticError, AttributeError) as e:
        # Backstop: a config of the wrong shape (a list where a dict belongs, a missing key) fails
        # somewhere in the walk; it is the file's fault, said with the file's name.
        raise ModelFormatError(f"{spec.source}: malformed model config: {type(e).__name__}: {e}") from e
    finally:
        sys.setrecursionlimit(old)
    _check_all_weights_used(spec, weights.read)
    return low.b.finish(outs, names)


class _ReadTracking(dict):
    """A layer path -> weights map that records which paths the lowering rules asked for."""

    def __init__(self, weights: dict):
        super().__init__(weights)
        self.read: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:
        self.read.add(key)
        return super().get(key, default)

    def __getitem__(self, key: str) -> Any:
        self.read.add(key)
        return super().__getitem__(key)


def _check_all_weights_used(spec: ModelSpec, read: set[str]) -> None:
    """Raise `WeightsMismatchError` for weights filed under a layer that no rule read: the weights
    file holds variables (for example of another model) that the config's layer does not have."""
    unused = [p for p, arrays in spec.weights.items() if len(arrays) and p not in read]
    if not unused:
        return
    classes = {path: lc.get("class_name", "?") for path, lc in iter_layers(spec.config)}
    listing = "; ".join(f"layer {p!r} ({classes.get(p, 'not in the config')}) takes none, the file has "
                        f"{len(spec.weights[p])} {spec.weight_names.get(p, [])[:6]}" for p in unused)
    raise WeightsMismatchError(f"{spec.source}: the weights file holds weights the model does not use: {listing}")


def _output_names(cfg: dict, n: int) -> list[str]:
    inner = cfg.get("config")
    if cfg.get("class_name") != "Sequential" and isinstance(inner, dict) and "output_layers" in inner:
        return [r[0] for r in _ref_list(inner["output_layers"])]
    layers = inner["layers"] if isinstance(inner, dict) else inner
    return [(layers[-1].get("config", {}).get("name") or "output")] * n if n == 1 else \
        [f"output_{i}" for i in range(n)]
