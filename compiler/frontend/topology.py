"""Walks a Keras model config (Sequential or functional, Keras 1/2/3 node formats, nested models,
shared layers) and lowers each layer call once, in dependency order.

A tensor in a functional config is `(layer name, node index, tensor index)`: output `tensor index` of
the `node index`-th call of that layer, counting the calls listed in the layer's `inbound_nodes`.
"""
from __future__ import annotations

import sys
from typing import Any, Iterator

from ...encoder.spec import ModelSpec
from ...errors import KerasJitError, ModelFormatError, UnsupportedLayerError
from ..builder import GraphBuilder
from ..ir import Graph
from .context import LAYERS, LayerCall

MODEL_CLASSES = {"Functional", "Model", "Sequential"}
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
    """Raise one `UnsupportedLayerError` listing every layer of the model that has no lowering rule."""
    bad = [(path, lc.get("class_name", "?")) for path, lc in iter_layers(spec.config)
           if not _is_model(lc) and lc.get("class_name") not in LAYERS and lc.get("class_name") != "InputLayer"]
    if bad:
        listing = "\n".join(f"  - {p} ({c})" for p, c in bad)
        raise UnsupportedLayerError(
            f"{spec.source}: {len(bad)} layer(s) are not supported by kerasjit:\n{listing}",
            [(p, c, "no lowering rule") for p, c in bad])


def _node_refs(node: Any) -> tuple[list[Ref], dict]:
    """The input tensor refs and call kwargs of one inbound node, in any Keras format."""
    if isinstance(node, dict):  # Keras 3: {"args": [...], "kwargs": {...}}
        refs: list[Ref] = []

        def collect(obj: Any) -> None:
            if isinstance(obj, dict) and obj.get("class_name") == "__keras_tensor__":
                h = obj["config"]["keras_history"]
                refs.append((h[0], int(h[1]), int(h[2])))
            elif isinstance(obj, (list, tuple)):
                for o in obj:
                    collect(o)
            elif isinstance(obj, dict):
                for o in obj.values():
                    collect(o)
        collect(node.get("args", []))
        kwargs = {k: v for k, v in node.get("kwargs", {}).items()}
        collect(kwargs.get("mask", None))  # masks are keras tensors too; they are handled by issue-4 layers
        return refs, kwargs
    # Keras 1/2: [[name, node_index, tensor_index, kwargs?], ...]
    refs, kwargs = [], {}
    for entry in node:
        refs.append((entry[0], int(entry[1]), int(entry[2])))
        if len(entry) > 3 and isinstance(entry[3], dict):
            kwargs.update(entry[3])
    return refs, kwargs


def _ref_list(obj: Any) -> list[Ref]:
    """`input_layers` / `output_layers`: a list of refs, or one bare ref (Keras 3 single tensor)."""
    if isinstance(obj, list) and len(obj) == 3 and isinstance(obj[0], str):
        return [(obj[0], int(obj[1]), int(obj[2]))]
    return [(r[0], int(r[1]), int(r[2])) for r in obj]


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
    return tuple(int(d) for d in shape[1:]), str(dtype)


class _Lowering:
    def __init__(self, spec: ModelSpec):
        self.spec = spec
        self.b = GraphBuilder(spec.config.get("config", {}).get("name", "model")
                              if isinstance(spec.config.get("config"), dict) else "model")

    # -- one layer call --
    def call_layer(self, lc: dict, path: str, xs: list[str], kwargs: dict) -> list[str]:
        cls = lc.get("class_name")
        if _is_model(lc):
            return self.model(lc, path + "/", xs)
        rule = LAYERS[cls]
        call = LayerCall(self.b, self.spec, cls, lc.get("config", {}), path, kwargs)
        try:
            outs = rule(call, xs)
        except KerasJitError:
            raise
        except (KeyError, TypeError, ValueError, IndexError) as e:
            raise ModelFormatError(f"{self.spec.source}: layer {path!r} ({cls}): cannot lower its config: "
                                   f"{type(e).__name__}: {e}") from e
        return outs

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
            xs = self.call_layer(lc, prefix + name, xs, {})
        return xs

    def functional(self, mc: dict, prefix: str, xs: list[str] | None) -> list[str]:
        cfg = mc["config"]
        by_name = {}
        for lc in cfg["layers"]:
            nm = lc.get("name") or lc.get("config", {}).get("name")
            by_name[nm] = lc
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

        def tensor(ref: Ref, in_call_args: bool = False) -> str:
            name, ni, ti = ref
            lc = by_name.get(name)
            if lc is None:
                raise ModelFormatError(f"{self.spec.source}: a node refers to layer {name!r}, "
                                       f"which is not in the model config")
            ni -= self._node_offset(lc, in_call_args)
            key = (name, ni)
            if key not in done:
                if key in visiting:
                    raise ModelFormatError(f"{self.spec.source}: the model graph has a cycle through layer {name!r}")
                nodes = lc.get("inbound_nodes", [])
                if not 0 <= ni < len(nodes):
                    raise ModelFormatError(f"{self.spec.source}: a node refers to call {ni} of layer {name!r}, "
                                           f"which has {len(nodes)} call(s)")
                visiting.add(key)
                refs, kwargs = _node_refs(nodes[ni])
                ins = [tensor(r, isinstance(nodes[ni], dict)) for r in refs]
                done[key] = self.call_layer(lc, prefix + name, ins, kwargs)
                visiting.discard(key)
            outs = done[key]
            if ti >= len(outs):
                raise ModelFormatError(f"{self.spec.source}: a node refers to output {ti} of layer {name!r}, "
                                       f"which has {len(outs)}")
            return outs[ti]

        return [tensor(r) for r in out_refs]


def lower(spec: ModelSpec) -> Graph:
    """The IR graph of a whole model, before passes."""
    check_supported(spec)
    if spec.config.get("class_name") not in MODEL_CLASSES:
        raise ModelFormatError(f"{spec.source}: top-level config is a {spec.config.get('class_name')!r}, "
                               f"not a Keras model")
    low = _Lowering(spec)
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old, 20000))
    try:
        outs = low.model(spec.config, "", None)
    finally:
        sys.setrecursionlimit(old)
    names = _output_names(spec.config, len(outs))
    return low.b.finish(outs, names)


def _output_names(cfg: dict, n: int) -> list[str]:
    inner = cfg.get("config")
    if cfg.get("class_name") != "Sequential" and isinstance(inner, dict) and "output_layers" in inner:
        return [r[0] for r in _ref_list(inner["output_layers"])]
    layers = inner["layers"] if isinstance(inner, dict) else inner
    return [(layers[-1].get("config", {}).get("name") or "output")] * n if n == 1 else \
        [f"output_{i}" for i in range(n)]
