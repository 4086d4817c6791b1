"""The encoder: every Keras file format in, one `ModelSpec` out.

    read_model("model.keras")                   Keras 3 (or tf.keras 2.13+) zip
    read_model("model.h5")                      full model, legacy HDF5 (Keras 1, 2 or 3)
    read_model("model.json", "weights.h5")      architecture JSON + any weights file
    read_model("model.json", "model_weights.buf", "model_metadata.json")   Keras.js's three files

It knows bytes and file formats, nothing about layer semantics: weights keep the order the file
records, filed under layer paths ("dense", "outer/inner") taken from the config's layer names.
Every failure is a `ModelFormatError` or `WeightsMismatchError` naming the file (and the layer).
"""
from __future__ import annotations

import zipfile
from pathlib import Path

from ..errors import ModelFormatError, WeightsMismatchError
from .checks import check_keras_version
from .config import infer_keras_version
from .files import Archive, PathLike, sniff
from .hdf5 import read_full_model
from .jsonfile import read_json_config, read_weights_file
from .kerasjs import is_kerasjs_weights, read_kerasjs_weights
from .keras_zip import read_config as read_keras_config
from .keras_zip import read_keras
from .spec import ModelSpec
from .weights import Weights

__all__ = ["ModelSpec", "read_model"]


def read_model(model_path: PathLike, weights_path: PathLike | None = None,
               metadata_path: PathLike | None = None) -> ModelSpec:
    """Read a Keras model's config and weights from its files into a `ModelSpec`.

    `model_path` is a `.keras` file (or its unzipped directory), a full-model HDF5 file, or an
    architecture JSON file; the kind is told by content, not extension. `weights_path` is required with
    JSON and, with the other two, replaces the weights stored in the model file; it may be a Keras 1/2
    `save_weights` HDF5 file, a Keras 3 `.weights.h5` file, a full-model `.h5` or a `.keras` file.
    keras_version and backend are those the writer recorded ("" where it recorded none; Keras 1
    configs without a version are recognised by their keys and get "1").
    With a JSON architecture, `weights_path` may also be a Keras.js `model_weights.buf`; its
    `metadata_path` defaults to the `model_metadata.json` beside it (see `kerasjs.py`).
    """
    model_path = Path(model_path)
    source = str(model_path) if weights_path is None else f"{model_path} + {weights_path}"
    try:
        if weights_path is not None and is_kerasjs_weights(weights_path, metadata_path):
            return _read_kerasjs(model_path, Path(weights_path), metadata_path, source)
        return _read(model_path, None if weights_path is None else Path(weights_path), source)
    except (ModelFormatError, WeightsMismatchError) as e:
        # config helpers that see no file (`layers_of`, `name_of`) raise without its name: add it
        if any(str(p) in str(e) for p in (model_path, weights_path, metadata_path) if p is not None):
            raise
        raise type(e)(f"{source}: {e}") from e
    except (OSError, KeyError, IndexError, ValueError, TypeError, AttributeError, EOFError, RuntimeError,
            zipfile.BadZipFile) as e:
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


def _read_kerasjs(model_path: Path, weights_path: Path, metadata_path: PathLike | None, source: str) -> ModelSpec:
    if sniff(model_path) != "json":
        raise ModelFormatError(f"{model_path}: Keras.js weights go with an architecture JSON file (model.json)")
    model, version, backend = read_json_config(model_path)
    weights = read_kerasjs_weights(weights_path, metadata_path, model)
    return _spec(model, weights, version, backend, source, "kerasjs")


def _spec(model: dict, weights: Weights, version: str, backend: str, source: str, fmt: str) -> ModelSpec:
    """The writer's identity: what the model file records, else what the weights file records, else
    (Keras 1 only) what the config's keys tell. A version this kerasjit cannot interpret is refused."""
    for recorded in (version, weights.keras_version):
        check_keras_version(recorded, source)
    return ModelSpec(
        config=model,
        weights=weights.arrays,
        weight_names=weights.names,
        keras_version=version or weights.keras_version or infer_keras_version(model),
        backend=backend or weights.backend,
        source=source,
        format=fmt,
    )
