"""Prediction over a stream of batches: more data than fits in memory, one batch at a time.

A stream is an iterator or generator (`collections.abc.Iterator`): arrays, lists, tuples and dicts are
never streams (they are one batch of one or several inputs), so `predict` can tell the two apart
without guessing. As Keras's `predict` does with a generator, a batch that is a tuple `(x, ...)` is
read as `x` followed by targets or sample weights, which are ignored; wrap several inputs in a list or
a dict.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Iterable

import numpy as np


def is_batch_stream(x: Any) -> bool:
    """Whether `x` is a stream of batches (an iterator or generator), not one batch."""
    return isinstance(x, Iterator) and not isinstance(x, (np.ndarray, list, tuple, dict, str, bytes))


def batch_inputs(batch: Any) -> Any:
    """The model inputs of one streamed batch: `x` of a Keras-style `(x, y[, w])` tuple, else the batch."""
    if isinstance(batch, tuple):
        return batch[0] if batch else batch
    return batch


def predict_batches(cm: Any, batches: Iterable[Any], progress: bool | None = None,
                    total: int | None = None) -> Iterator[Any]:
    """Yield `cm.predict(x)` for every batch of `batches`, lazily, with a progress bar (by batch) on a
    terminal; `total` (or `len(batches)`) gives the bar its end."""
    from ..progress import track
    for batch in track(batches, total=total, desc=f"predict {cm.name}", unit="batch", show=progress):
        yield cm.predict(batch_inputs(batch))
