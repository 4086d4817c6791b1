"""`.keras` files (Keras 3, and tf.keras 2.13+): a zip of `config.json`, `metadata.json` and
`model.weights.h5` (or the directory such a zip was extracted to)."""
from __future__ import annotations

from pathlib import Path

from ..errors import ModelFormatError
from .config import unwrap
from .files import Archive, open_hdf5, parse_json
from .vars_h5 import read_vars_weights
from .weights import Weights

CONFIG = "config.json"
METADATA = "metadata.json"
WEIGHTS = "model.weights.h5"


def read_config(archive: Archive) -> tuple[dict, str]:
    """(model config as stored, keras_version from metadata.json or "")."""
    where = f"{archive.path}:{CONFIG}"
    model, _, _ = unwrap(parse_json(archive.read(CONFIG), where), where)
    version = ""
    if METADATA in archive.names():
        metadata = parse_json(archive.read(METADATA), f"{archive.path}:{METADATA}")
        version = str(metadata.get("keras_version", "") or "")
    return model, version


def read_weights(archive: Archive, model: dict) -> Weights:
    """The weights of `model.weights.h5` inside the archive."""
    if WEIGHTS not in archive.names():
        sharded = [n for n in archive.names() if n.endswith(".weights.json")]
        hint = " (sharded weights are not supported)" if sharded else ""
        raise ModelFormatError(f"{archive.path}: has no {WEIGHTS}{hint}")
    where = f"{archive.path}:{WEIGHTS}"
    with open_hdf5(archive.open_bytes(WEIGHTS), where) as f:
        return read_vars_weights(f, model, where)


def read_keras(path: Path) -> tuple[dict, Weights]:
    """Read a `.keras` model: (config, weights with keras_version from metadata.json). A `.keras`
    file records no backend."""
    with Archive(path) as archive:
        if CONFIG not in archive.names():
            raise ModelFormatError(f"{path}: has no {CONFIG}: not a .keras model")
        model, version = read_config(archive)
        weights = read_weights(archive, model)
    weights.keras_version = version
    return model, weights
