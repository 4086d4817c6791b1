"""Checks on what a model's files say, beyond their layout: the writer's Keras version and weights
that hold NaN or Inf. No layer semantics."""
from __future__ import annotations

import re

import numpy as np

from ..errors import ModelFormatError
from .spec import ModelSpec

#: the Keras major versions whose configs kerasjit reads (design.md: a config means what its writer meant)
KNOWN_MAJORS = (1, 2, 3)
_VERSION = re.compile(r"^\s*v?(\d+)(\.\d+)*")


def check_keras_version(version: str, source: str) -> None:
    """Raise `ModelFormatError` when a file records a Keras version this kerasjit cannot interpret.

    "" (the file records none) passes: the front end then reads the version off the config's style.
    A later major version may mean something else by the same config, so it is refused, not guessed.
    """
    if not version:
        return
    m = _VERSION.match(version)
    if m is None:
        raise ModelFormatError(f"{source}: records keras_version {version!r}, expected a version such as "
                               f"'2.15.0' or '3.6.0'")
    major = int(m.group(1))
    if major not in KNOWN_MAJORS:
        raise ModelFormatError(f"{source}: written by Keras {version}; kerasjit reads models written by Keras "
                               f"{', '.join(map(str, KNOWN_MAJORS))}")


def nonfinite_weights(spec: ModelSpec) -> list[str]:
    """One line per weight that holds NaN or Inf: "<layer path> weight <name>: 3 NaN, 1 Inf of 120"."""
    found = []
    for path, arrays in spec.weights.items():
        names = spec.weight_names.get(path, [])
        for i, a in enumerate(arrays):
            a = np.asarray(a)
            if a.dtype.kind not in "fc" or np.isfinite(a).all():
                continue
            nan, inf = int(np.isnan(a).sum()), int(np.isinf(a).sum())
            name = names[i] if i < len(names) else str(i)
            found.append(f"layer {path!r} weight {name!r}: {nan} NaN, {inf} Inf of {a.size} values")
    return found
