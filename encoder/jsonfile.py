"""Architecture JSON (`model.to_json()`, Keras 1, 2 or 3) and the weights file that goes with it, of
any layout: a Keras 1/2 `save_weights("w.h5")` file (layer_names at the root or under model_weights),
a Keras 3 `save_weights("x.weights.h5")` file, a full-model `.h5` or a `.keras` file."""
from __future__ import annotations

from pathlib import Path

from ..errors import ModelFormatError
from . import h5util
from .config import unwrap
from .files import Archive, open_hdf5, parse_json, read_text, sniff
from .hdf5 import is_legacy_weights_group, read_weights_group
from .keras_zip import read_weights as read_zip_weights
from .vars_h5 import is_vars_layout, read_vars_weights
from .weights import Weights


def read_json_config(path: Path) -> tuple[dict, str, str]:
    """(model config as stored, keras_version, backend) of an architecture JSON file."""
    return unwrap(parse_json(read_text(path), str(path)), str(path))


def read_weights_file(path: Path, model: dict) -> Weights:
    """Read the weights for `model`'s config from `path`, whatever its layout; the writer's
    keras_version and backend come along where the file records them."""
    kind = sniff(path)
    if kind in ("zip", "dir"):
        with Archive(path) as archive:
            return read_zip_weights(archive, model)
    if kind != "hdf5":
        raise ModelFormatError(f"{path}: a weights file must be HDF5 (or a .keras file), found {kind}")
    where = str(path)
    with open_hdf5(path, where) as f:
        if is_legacy_weights_group(f):
            return read_weights_group(f, model, where)
        if "model_weights" in f and is_legacy_weights_group(f["model_weights"]):
            weights = read_weights_group(f["model_weights"], model, where)
            weights.keras_version = h5util.str_attr(f, "keras_version") or weights.keras_version
            weights.backend = h5util.str_attr(f, "backend") or weights.backend
            return weights
        if is_vars_layout(f):
            return read_vars_weights(f, model, where)
        raise ModelFormatError(
            f"{where}: not a Keras weights file: no layer_names attribute, model_weights or layers group "
            f"(top-level keys: {', '.join(list(f.keys())[:8]) or 'none'})"
        )
