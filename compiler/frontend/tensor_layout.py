"""Layout moves of `Ops` (see tensor_ops.py): reshape, transpose, new and dropped axes, concatenation,
stacking, splitting, slicing with NumPy keys, take with constant indices, flips.

Everything is RESHAPE, TRANSPOSE, SLICE and CONCAT: a NumPy key becomes one SLICE (ranges with steps,
negative ones included) and a RESHAPE that drops the integer-indexed axes and opens the `None` ones;
`take` with constant indices is a CONCAT of SLICEs, one per run of evenly spaced indices.
Axis 0 of a runtime tensor is the batch: it may only be kept whole.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from ..ir import Op

if TYPE_CHECKING:
    from .tensor_ops import Tensor, TensorLike


def _runs(idx: np.ndarray) -> list[tuple[int, int, int]]:
    """`idx` (1-D, non-negative) as maximal (start, count, step) runs of evenly spaced indices."""
    runs: list[list[int]] = []
    for i in (int(v) for v in idx):
        if runs:
            start, count, step = runs[-1]
            if count == 1 and i != start:
                runs[-1] = [start, 2, i - start]
                continue
            if count > 1 and i == start + count * step:
                runs[-1][1] += 1
                continue
        runs.append([i, 1, 1])
    return [tuple(r) for r in runs]


class LayoutOps:
    """Mixed into `Ops`: the methods that move data without arithmetic."""

    def _layout(self, op: Op, x: "Tensor", attrs: dict) -> "Tensor":
        return self.emit(op, [x], attrs)

    # ------------------------------------------------------------------ shapes
    def reshape(self, x: "TensorLike", shape: Sequence[int | None]) -> "Tensor":
        """NumPy's reshape; for a runtime tensor `shape` starts with the batch (-1 or None)."""
        x = self.tensor(x)
        shape = [shape] if isinstance(shape, (int, np.integer)) or shape is None else list(shape)
        if x.is_constant:
            return self.const(np.reshape(x.value, [-1 if d is None else int(d) for d in shape]))
        if not shape or shape[0] not in (-1, None):
            raise self.unsupported(f"reshape of {x.shape} to {tuple(shape)}: the first dimension must stay the "
                                   f"batch (-1 or None)")
        rest = [int(d) if d is not None else -1 for d in shape[1:]]
        per = int(np.prod(x.shape[1:], dtype=np.int64))
        if rest.count(-1) > 1 or (rest.count(-1) == 1 and shape[0] == -1):
            raise self.unsupported(f"reshape of {x.shape} to {tuple(shape)}: more than one unknown dimension")
        if -1 in rest:
            known = int(np.prod([d for d in rest if d != -1], dtype=np.int64))
            if known == 0 or per % known:
                raise self.unsupported(f"reshape of {x.shape} to {tuple(shape)}")
            rest[rest.index(-1)] = per // known
        if int(np.prod(rest, dtype=np.int64)) != per:
            raise self.unsupported(f"reshape of {x.shape} to {tuple(shape)} would change the batch size")
        if tuple(rest) == tuple(x.shape[1:]):
            return x
        return self._layout(Op.RESHAPE, x, {"shape": tuple(rest)})

    def transpose(self, x: "TensorLike", axes: Sequence[int] | None = None) -> "Tensor":
        x = self.tensor(x)
        rank = x.ndim
        perm = tuple(reversed(range(rank))) if axes is None else tuple(int(a) % rank for a in axes)
        if x.is_constant:
            return self.const(np.transpose(x.value, perm))
        if sorted(perm) != list(range(rank)) or perm[0] != 0:
            raise self.unsupported(f"transpose of {x.shape} by {axes}: the batch axis must stay first")
        if perm == tuple(range(rank)):
            return x
        return self._layout(Op.TRANSPOSE, x, {"perm": perm})

    def moveaxis(self, x: "TensorLike", source: int | Sequence[int], destination: int | Sequence[int]) -> "Tensor":
        x = self.tensor(x)
        rank = x.ndim
        src = [int(source) % rank] if isinstance(source, (int, np.integer)) else [int(a) % rank for a in source]
        dst = [int(destination) % rank] if isinstance(destination, (int, np.integer)) else \
            [int(a) % rank for a in destination]
        order = [a for a in range(rank) if a not in src]
        for d, s in sorted(zip(dst, src)):
            order.insert(d, s)
        return self.transpose(x, order)

    def swapaxes(self, x: "TensorLike", axis1: int, axis2: int) -> "Tensor":
        x = self.tensor(x)
        perm = list(range(x.ndim))
        a, b = int(axis1) % x.ndim, int(axis2) % x.ndim
        perm[a], perm[b] = perm[b], perm[a]
        return self.transpose(x, perm)

    def expand_dims(self, x: "TensorLike", axis: int | Sequence[int]) -> "Tensor":
        x = self.tensor(x)
        axes = [axis] if isinstance(axis, (int, np.integer)) else list(axis)
        rank = x.ndim + len(axes)
        new = sorted({int(a) % rank for a in axes})
        shape = list(x.shape)
        for a in new:
            shape.insert(a, 1)
        if x.is_constant:
            return self.const(x.value.reshape(shape))
        if shape[0] is not None:
            raise self.unsupported(f"a new axis before the batch axis of {x.shape}")
        return self._layout(Op.RESHAPE, x, {"shape": tuple(shape[1:])})

    def squeeze(self, x: "TensorLike", axis: int | Sequence[int] | None = None) -> "Tensor":
        x = self.tensor(x)
        shape = x.shape
        first = 0 if x.is_constant else 1
        if axis is None:
            axes = {a for a in range(first, len(shape)) if shape[a] == 1}
        else:
            axes = {int(a) % len(shape) for a in ([axis] if isinstance(axis, (int, np.integer)) else axis)}
        if any(a < first or shape[a] != 1 for a in axes):
            raise self.unsupported(f"squeezing axes {sorted(axes)} of shape {shape}")
        kept = [d for a, d in enumerate(shape) if a not in axes]
        if x.is_constant:
            return self.const(x.value.reshape(kept))
        return x if not axes else self._layout(Op.RESHAPE, x, {"shape": tuple(kept[1:])})

    # ------------------------------------------------------------------ joining and splitting
    def concatenate(self, xs: Sequence["TensorLike"], axis: int = 0) -> "Tensor":
        ts = [self.tensor(t) for t in xs]
        if not ts:
            raise self.unsupported("a concatenation of nothing")
        if all(t.is_constant for t in ts):
            return self.const(np.concatenate([t.value for t in ts], axis=int(axis)))
        if any(t.is_constant for t in ts):
            raise self.unsupported("a concatenation of constants with tensors (the constants have no batch)")
        a = self.axes(ts[0], axis)[0]
        if len(ts) == 1:
            return ts[0]
        return self.emit(Op.CONCAT, ts, {"axis": a})

    def stack(self, xs: Sequence["TensorLike"], axis: int = 0) -> "Tensor":
        ts = [self.tensor(t) for t in xs]
        if ts and all(t.is_constant for t in ts):
            return self.const(np.stack([t.value for t in ts], axis=int(axis)))
        a = int(axis) % (ts[0].ndim + 1) if ts else 0
        return self.concatenate([self.expand_dims(t, a) for t in ts], a)

    def slice_axis(self, x: "Tensor", axis: int, start: int, stop: int, step: int = 1) -> "Tensor":
        """x[..., start:stop:step, ...] along one axis (Python range semantics, stop -1 walks to 0)."""
        shape = x.shape
        if x.is_constant:
            return self.const(np.take(x.value, np.arange(start, stop, step), axis=axis))
        if (start, stop, step) == (0, shape[axis], 1):
            return x
        ranges = tuple((start, stop, step) if a == axis else (0, shape[a], 1) for a in range(1, len(shape)))
        return self._layout(Op.SLICE, x, {"ranges": ranges})

    def split(self, x: "TensorLike", indices_or_sections: int | Sequence[int], axis: int = 0) -> list["Tensor"]:
        """numpy.split: n equal parts, or the parts between the given indices."""
        x = self.tensor(x)
        a = self.axes(x, axis)[0]
        d = x.shape[a]
        if isinstance(indices_or_sections, (int, np.integer)):
            n = int(indices_or_sections)
            if n <= 0 or d % n:
                raise self.unsupported(f"splitting an axis of size {d} into {n} equal parts")
            bounds = [d // n * k for k in range(n + 1)]
        else:
            bounds = [0] + [min(max(int(i) + d if int(i) < 0 else int(i), 0), d) for i in indices_or_sections] + [d]
        parts = []
        for lo, hi in zip(bounds, bounds[1:]):
            if hi <= lo:
                raise self.unsupported(f"an empty part [{lo}:{hi}] when splitting an axis of size {d}")
            parts.append(self.slice_axis(x, a, lo, hi))
        return parts

    def unstack(self, x: "TensorLike", axis: int = 0) -> list["Tensor"]:
        x = self.tensor(x)
        a = self.axes(x, axis)[0]
        return [self.squeeze(p, a) for p in self.split(x, x.shape[a], a)]

    def flip(self, x: "TensorLike", axis: int | Sequence[int] | None = None) -> "Tensor":
        x = self.tensor(x)
        axes = range(0 if x.is_constant else 1, x.ndim) if axis is None else self.axes(x, axis)
        key = tuple(slice(None, None, -1) if a in axes else slice(None) for a in range(x.ndim))
        return self.getitem(x, key)

    # ------------------------------------------------------------------ indexing
    def getitem(self, x: "TensorLike", key: Any) -> "Tensor":
        """x[key] for a key of slices (any steps), integers, None (new axes) and one Ellipsis."""
        x = self.tensor(x)
        key = key if isinstance(key, tuple) else (key,)
        if x.is_constant:
            return self.const(x.value[key])
        if any(k is not None and k is not Ellipsis and not isinstance(k, (slice, int, np.integer)) for k in key):
            raise self.unsupported(f"indexing {x.shape} with {key!r} (kerasjit takes slices, integers, None "
                                   f"and ...; use take for a list of indices)")
        shape = x.shape
        consuming = sum(1 for k in key if k is not None and k is not Ellipsis)
        if consuming > len(shape) or sum(1 for k in key if k is Ellipsis) > 1:
            raise self.unsupported(f"index {key!r} does not fit a tensor of shape {shape}")
        at = key.index(Ellipsis) if Ellipsis in key else len(key)  # a missing one is implied at the end
        key = key[:at] + (slice(None),) * (len(shape) - consuming) + key[at + 1:]
        ranges, out, axis = [], [], 0
        for k in key:
            if k is None:
                out.append(1)
                continue
            if axis == 0:
                if not (isinstance(k, slice) and k.start is None and k.stop is None and k.step in (None, 1)):
                    raise self.unsupported(f"index {k!r} on the batch axis of {shape} (kerasjit keeps it whole)")
                out.append(None)
            elif isinstance(k, slice):
                r = k.indices(shape[axis])
                if len(range(*r)) == 0:
                    raise self.unsupported(f"an empty slice {k!r} of an axis of size {shape[axis]}")
                ranges.append(r)
                out.append(len(range(*r)))
            else:
                i = int(k) + shape[axis] if int(k) < 0 else int(k)
                if not 0 <= i < shape[axis]:
                    raise self.unsupported(f"index {int(k)} out of an axis of size {shape[axis]}")
                ranges.append((i, i + 1, 1))
            axis += 1
        y = x
        if any(r != (0, d, 1) for r, d in zip(ranges, shape[1:])):
            y = self._layout(Op.SLICE, x, {"ranges": tuple(ranges)})
        if out[0] is not None:
            raise self.unsupported(f"a new axis before the batch axis of {shape}")
        return self.reshape(y, [-1] + out[1:])

    def take(self, x: "TensorLike", indices: "TensorLike", axis: int | None = None) -> "Tensor":
        """numpy.take: constant indices from a runtime tensor (slices), or runtime indices into a
        constant table (a gather over its first axis, as an embedding)."""
        x = self.tensor(x)
        if hasattr(indices, "ops") and not indices.is_constant:
            if not x.is_constant or (axis is not None and int(axis) % x.ndim != 0) or (axis is None and x.ndim != 1):
                raise self.unsupported("take with runtime indices from anything but the first axis of a constant")
            return self.emit(Op.GATHER, [indices, x])
        idx = np.asarray(indices.value if hasattr(indices, "ops") else indices)
        if idx.dtype.kind == "f" and not np.all(idx == np.trunc(idx)):
            raise self.unsupported(f"take with non-integer indices {idx.tolist()}")
        idx = idx.astype(np.int64)
        if x.is_constant:
            return self.const(np.take(x.value, idx, axis=axis))
        if axis is None:
            raise self.unsupported("take without an axis (it flattens the batch axis too)")
        a = self.axes(x, axis)[0]
        d = x.shape[a]
        flat = np.where(idx < 0, idx + d, idx).reshape(-1)
        if flat.size == 0 or flat.min() < 0 or flat.max() >= d:
            raise self.unsupported(f"take of indices {idx.tolist()} from an axis of size {d}")
        parts = [self.slice_axis(x, a, start, start + count * step if start + count * step >= 0 else -1, step)
                 for start, count, step in _runs(flat)]
        y = parts[0] if len(parts) == 1 else self.emit(Op.CONCAT, parts, {"axis": a})
        return self.reshape(y, [-1] + list(x.shape[1:a]) + list(idx.shape) + list(x.shape[a + 1:]))
