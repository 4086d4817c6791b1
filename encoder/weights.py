"""`Weights`: what one weights file yields, before it becomes part of a `ModelSpec`."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Weights:
    """Weights read from one file, keyed by layer path, with the writer's identity if it recorded one."""

    arrays: dict[str, list[np.ndarray]] = field(default_factory=dict)
    names: dict[str, list[str]] = field(default_factory=dict)
    keras_version: str = ""
    backend: str = ""

    def add(self, path: str, name: str, value: np.ndarray) -> None:
        """Append one weight to layer `path` (invariant: `arrays` and `names` stay the same length)."""
        self.arrays.setdefault(path, []).append(value)
        self.names.setdefault(path, []).append(name)
