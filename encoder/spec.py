"""`ModelSpec`: what the encoder reads out of any Keras file format, before any semantics.

Invariants:
- `config` is the model config exactly as the file stores it: a dict with `class_name`
  ("Functional", "Model", "Sequential") and `config`; nothing is renamed or normalised here.
- `weights` maps a layer path to that layer's weights in the layer's own variable order (the order of
  Keras's `layer.get_weights()`). A layer path is the layer's `name`, and for a layer inside a nested
  model, the nested model's name, "/", the inner layer's name ("encoder/dense_3"). A layer without
  weights may be absent.
- `weight_names[path][i]` is the name the file recorded for `weights[path][i]` ("kernel:0", "c1/kernel",
  or "vars/0" for `.keras` files, which record no names); only for messages and for layers whose
  variables live in sub-objects (for example an RNN's `cell/vars/0`).
- Arrays are plain in-memory numpy arrays (not h5py datasets), in the dtype the file stored.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class ModelSpec:
    """One Keras model as read from its files: config, weights and the writer's identity."""

    config: dict
    weights: dict[str, list[np.ndarray]] = field(default_factory=dict)
    weight_names: dict[str, list[str]] = field(default_factory=dict)
    #: the version of Keras that wrote the file ("3.15.1", "2.21.0", "1.2.2"); "" if unknown
    keras_version: str = ""
    #: the backend attribute the writer recorded ("jax", "tensorflow", ...); "" if unknown
    backend: str = ""
    #: the file or files it was read from, for error messages
    source: str = ""
    #: the format read: "keras", "h5", "json+h5", "kerasjs"
    format: str = ""

    @property
    def keras_major(self) -> int:
        """Major version of the Keras that wrote the model; when the files do not record it, read off
        the config's style (Keras 3 configs carry `module` keys and dict-form inbound nodes)."""
        try:
            return int(self.keras_version.split(".")[0])
        except (ValueError, IndexError):
            pass
        if "module" in self.config:
            return 3
        inner = self.config.get("config")
        layers = inner.get("layers", []) if isinstance(inner, dict) else inner or []
        for layer in layers:
            nodes = layer.get("inbound_nodes") if isinstance(layer, dict) else None
            if nodes:
                return 3 if isinstance(nodes[0], dict) else 2
        return 3
