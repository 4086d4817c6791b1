"""Keras.js's three files: `model.json`, `model_weights.buf` and `model_metadata.json`.

Keras.js (transcranial/keras-js, before its protobuf `.bin` format) ran a model from the architecture
JSON that Keras 2's `model.to_json()` writes and the weights of the matching `save_weights("model.hdf5")`
file, repacked by its `encoder.py` into two files beside the HDF5 file:

- `<stem>_weights.buf`: the raw bytes of every weight as little-endian float32, concatenated with no
  header or padding, in the HDF5 file's order (layers in `layer_names` order, each layer's weights in
  its `weight_names` order; layers without weights contribute nothing);
- `<stem>_metadata.json`: a JSON list with one object per weight, in the same order:
  `layer_name` (the HDF5 group, so a nested model's name for its inner layers' weights),
  `weight_name` (as `weight_names` records it, e.g. "conv1/kernel:0"), `offset` (in bytes, into the
  buffer), `length` (in float32 elements), `shape` (a list) and `type` ("float32").

`read_kerasjs_weights` reads the pair for a model config (the reader), `encode_weights` writes it from a
legacy HDF5 weights file (what `kerasjit encode` runs), so a Keras.js user keeps their files.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import ModelFormatError, WeightsMismatchError
from . import h5util
from .config import is_model, layers_of, name_of
from .files import PathLike, open_hdf5, parse_json, read_text
from .hdf5 import is_legacy_weights_group
from .match import check_layer_names, resolve_inner
from .weights import Weights

_FIELDS = ("layer_name", "weight_name", "offset", "length", "shape")


def metadata_path_for(weights_path: PathLike) -> Path:
    """Where Keras.js's encoder put the metadata of `X_weights.buf`: `X_metadata.json` beside it."""
    p = Path(weights_path)
    stem = p.name[: -len("_weights.buf")] if p.name.endswith("_weights.buf") else p.stem
    return p.with_name(f"{stem}_metadata.json")


def is_kerasjs_weights(weights_path: PathLike, metadata_path: PathLike | None = None) -> bool:
    """Whether `weights_path` is a Keras.js weights buffer (given metadata, or a `.buf` file)."""
    return metadata_path is not None or Path(weights_path).suffix == ".buf"


def read_metadata(path: PathLike) -> list[dict]:
    """The metadata list, each entry checked for Keras.js's fields."""
    text = read_text(path)
    try:
        entries = json.loads(text)
    except ValueError as e:
        raise ModelFormatError(f"{path}: malformed JSON: {e}") from e
    if not isinstance(entries, list):
        raise ModelFormatError(f"{path}: Keras.js metadata must be a JSON list, found {type(entries).__name__}")
    for i, e in enumerate(entries):
        missing = [f for f in _FIELDS if not isinstance(e, dict) or f not in e]
        if missing:
            raise ModelFormatError(f"{path}: entry {i} lacks {', '.join(missing)} (Keras.js metadata has "
                                   f"{', '.join(_FIELDS)}, type)")
        if e.get("type", "float32") != "float32":
            raise ModelFormatError(f"{path}: entry {i} ({e['layer_name']}/{e['weight_name']}) has type "
                                   f"{e['type']!r}; kerasjit reads float32 Keras.js weights")
    return entries


def read_kerasjs_weights(weights_path: PathLike, metadata_path: PathLike | None, model: dict) -> Weights:
    """The weights of `model` (its config) from a Keras.js weights buffer and its metadata."""
    weights_path = Path(weights_path)
    metadata_path = Path(metadata_path) if metadata_path is not None else metadata_path_for(weights_path)
    if not metadata_path.is_file():
        raise ModelFormatError(f"{weights_path}: Keras.js weights need their metadata file; {metadata_path} "
                               f"does not exist (pass it as the third file)")
    entries = read_metadata(metadata_path)
    try:
        blob = np.fromfile(weights_path, dtype="<f4")
    except (OSError, ValueError) as e:
        raise ModelFormatError(f"{weights_path}: cannot be read: {e}") from e
    where = f"{weights_path} + {metadata_path.name}"
    if weights_path.stat().st_size % 4:
        raise ModelFormatError(f"{weights_path}: {weights_path.stat().st_size} bytes, not a whole number of float32")
    layer_names = list(dict.fromkeys(e["layer_name"] for e in entries))
    check_layer_names(model, layer_names, where, weightless_may_be_absent=True)
    by_name = {name_of(layer): layer for layer in layers_of(model)}
    out = Weights()
    for e in entries:
        offset, length, shape = int(e["offset"]), int(e["length"]), tuple(int(d) for d in e["shape"])
        what = f"{where}: weight {e['layer_name']}/{e['weight_name']}"
        if offset % 4 or offset < 0 or offset // 4 + length > blob.size:
            raise ModelFormatError(f"{what}: bytes {offset}..{offset + 4 * length} lie outside the "
                                   f"{blob.size * 4}-byte buffer (truncated?)")
        if int(np.prod(shape, dtype=np.int64)) != length:
            raise ModelFormatError(f"{what}: shape {list(shape)} does not hold length {length}")
        value = blob[offset // 4: offset // 4 + length].reshape(shape).astype(np.float32)
        out.add(_layer_path(by_name[e["layer_name"]], e["layer_name"], e["weight_name"], where),
                e["weight_name"], value)
    return out


def _layer_path(layer: dict, layer_name: str, weight_name: str, where: str) -> str:
    """A weight's layer path: the layer's name, or for a nested model's group, the inner layer's path."""
    if not is_model(layer):
        return layer_name
    inner = resolve_inner(layer, weight_name)
    if inner is None:
        raise WeightsMismatchError(f"{where}: nested model {layer_name!r} records weight {weight_name!r}, "
                                   f"which names none of its layers")
    return f"{layer_name}/{inner}"


def encode_weights(h5_path: PathLike, out_dir: PathLike | None = None, stem: str | None = None) -> list[Path]:
    """Write Keras.js's `<stem>_weights.buf` and `<stem>_metadata.json` from a legacy HDF5 weights file
    (Keras 1/2 `save_weights`, or a full-model `.h5`, whose `model_weights` group is used; then the
    architecture is written as `<stem>.json` too). `stem` defaults to the file name without its
    extension, `out_dir` to the file's folder, as Keras.js's encoder did. Returns the files written."""
    h5_path = Path(h5_path)
    out_dir = Path(out_dir) if out_dir is not None else h5_path.parent
    stem = stem or h5_path.stem
    where = str(h5_path)
    chunks: list[bytes] = []
    metadata: list[dict] = []
    offset = 0
    model_config = ""
    with open_hdf5(h5_path, where) as f:
        group = f
        if not is_legacy_weights_group(f) and "model_weights" in f:
            group = f["model_weights"]
            model_config = h5util.str_attr(f, "model_config")
        if not is_legacy_weights_group(group):
            raise ModelFormatError(
                f"{where}: not a Keras 1/2-style HDF5 weights file (no layer_names attribute); Keras.js "
                f"files come from `model.save_weights('model.h5')` in Keras 2 / tf.keras, or from a "
                f"full-model `model.save('model.h5')`")
        for layer_name in h5util.list_attr(group, "layer_names"):
            if layer_name not in group:
                raise ModelFormatError(f"{where}: layer {layer_name!r} is in layer_names but has no group")
            layer_group = group[layer_name]
            for weight_name in h5util.list_attr(layer_group, "weight_names"):
                value = h5util.array(layer_group, weight_name, f"{where}: layer {layer_name!r}")
                data = np.ascontiguousarray(value, dtype="<f4").tobytes()
                chunks.append(data)
                metadata.append({"layer_name": layer_name, "weight_name": weight_name, "offset": offset,
                                 "length": len(data) // 4, "shape": list(value.shape), "type": "float32"})
                offset += len(data)
    out_dir.mkdir(parents=True, exist_ok=True)
    buf, meta = out_dir / f"{stem}_weights.buf", out_dir / f"{stem}_metadata.json"
    buf.write_bytes(b"".join(chunks))
    meta.write_text(json.dumps(metadata))
    written = [buf, meta]
    if model_config:
        parse_json(model_config, where)  # a full model's architecture is the third Keras.js file
        arch = out_dir / f"{stem}.json"
        arch.write_text(model_config)
        written.append(arch)
    return written
