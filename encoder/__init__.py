"""The encoder: every Keras file format in, one `ModelSpec` out.

    read_model("model.keras")                   Keras 3 (or tf.keras 2.13+) zip
    read_model("model.h5")                      full model, legacy HDF5 (Keras 1, 2 or 3)
    read_model("model.json", "weights.h5")      architecture JSON + any weights file

It knows bytes and file formats, nothing about layer semantics: weights keep the order the file
records, filed under layer paths ("dense", "outer/inner") taken from the config's layer names.
Every failure is a `ModelFormatError` or `WeightsMismatchError` naming the file (and the layer).
"""
from __future__ import annotations

import zipfile
from pathlib import Path

from ..errors import ModelFormatError
from .config import infer_keras_version
from .files import Archive, PathLike, sniff
from .hdf5 import read_full_model
from .jsonfile import read_json_config, read_weights_file
from .keras_zip import read_config as read_keras_config
from .keras_zip import read_keras
from .spec import ModelSpec
from .weights import Weights

__all__ = ["ModelSpec", "read_model"]


def read_model(model_path: PathLike, weights_path: PathLike | None = None) -> ModelSpec:
    """Read a Keras model's config and weights from its files into a `ModelSpec`.

    `model_path` is a `.keras` file (or its unzipped directory), a full-model HDF5 file, or an
    architecture JSON file; the kind is told by content, not extension. `weights_path` is required with
    JSON and, with the other two, replaces the weights stored in the model file; it may be a Keras 1/2
    `save_weights` HDF5 file, a Keras 3 `.weights.h5` file, a full-model `.h5` or a `.keras` file.
    keras_version and backend are those the writer recorded ("" where it recorded none; Keras 1
    configs without a version are recognised by their keys and get "1").
    """
    model_path = Path(model_path)
    source = str(model_path) if weights_path is None else f"{model_path} + {weights_path}"
    try:
        return _read(model_path, None if weights_path is None else Path(weights_path), source)
    except (OSError, KeyError, ValueError, TypeError, EOFError, RuntimeError, zipfile.BadZipFile) as e:
        # Backstop: the readers wrap what they expect; nothing from h5py, zipfile or json escapes.
        raise ModelFormatError(f"{source}: cannot be read as a Keras model: {type(e).__name__}: {e}") from e


def _read(model_path: Path, weights_path: Path | None, source: str) -> ModelSpec:
    kind = sniff(model_path)
    version = backend = ""
    if kind in ("zip", "dir"):
        fmt = "keras"
        if weights_path is None:
            model, weights = read_keras(model_path)
        else:
            with Archive(model_path) as archive:
                model, version = read_keras_config(archive)
            weights = read_weights_file(weights_path, model)
    elif kind == "hdf5":
        fmt = "h5"
        model, weights = read_full_model(model_path, with_weights=weights_path is None)
        version, backend = weights.keras_version, weights.backend
        if weights_path is not None:
            weights = read_weights_file(weights_path, model)
    else:
        fmt = "json+h5"
        model, version, backend = read_json_config(model_path)
        if weights_path is None:
            raise ModelFormatError(
                f"{model_path}: an architecture JSON file holds no weights; pass the weights file as weights_path"
            )
        weights = read_weights_file(weights_path, model)
    return _spec(model, weights, version, backend, source, fmt)


def _spec(model: dict, weights: Weights, version: str, backend: str, source: str, fmt: str) -> ModelSpec:
    """The writer's identity: what the model file records, else what the weights file records, else
    (Keras 1 only) what the config's keys tell."""
    return ModelSpec(
        config=model,
        weights=weights.arrays,
        weight_names=weights.names,
        keras_version=version or weights.keras_version or infer_keras_version(model),
        backend=backend or weights.backend,
        source=source,
        format=fmt,
    )
