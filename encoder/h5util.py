"""Reading HDF5 attributes and datasets the way every Keras version wrote them.

Attributes may be `bytes` or `str`, scalars or arrays of either; Keras 2 and 3 split an attribute
larger than the 64 KiB object-header limit into `name0`, `name1`, ... (see `save_attributes_to_hdf5_group`).
"""
from __future__ import annotations

from typing import Any

import h5py
import numpy as np

from ..errors import ModelFormatError


def text(value: Any) -> str:
    """An attribute value as `str` (bytes decoded as UTF-8)."""
    if isinstance(value, np.ndarray) and value.shape == ():
        value = value[()]
    if isinstance(value, (bytes, np.bytes_)):
        return bytes(value).decode("utf-8")
    return str(value)


def has_list_attr(obj: h5py.HLObject, name: str) -> bool:
    """Whether `obj` has the list attribute `name`, whole or chunked."""
    return name in obj.attrs or f"{name}0" in obj.attrs


def list_attr(obj: h5py.HLObject, name: str) -> list[str]:
    """The list attribute `name` of `obj` as strings, in the recorded order, chunks joined.
    Absent: an empty list."""
    if name in obj.attrs:
        chunks = [obj.attrs[name]]
    else:
        chunks = []
        while f"{name}{len(chunks)}" in obj.attrs:
            chunks.append(obj.attrs[f"{name}{len(chunks)}"])
    out: list[str] = []
    for chunk in chunks:
        out.extend(text(v) for v in np.asarray(chunk).reshape(-1))
    return out


def str_attr(obj: h5py.HLObject, name: str) -> str:
    """A scalar string attribute, or "" when absent."""
    return text(obj.attrs[name]) if name in obj.attrs else ""


def array(group: h5py.Group, name: str, where: str) -> np.ndarray:
    """Dataset `name` of `group` as an in-memory array in its stored dtype; `where` is for messages."""
    try:
        ds = group[name]
        if not isinstance(ds, h5py.Dataset):
            raise ModelFormatError(f"{where}: {group.name}/{name} is a group, expected a weight array")
        return np.asarray(ds[()])
    except KeyError as e:
        raise ModelFormatError(f"{where}: weight {name!r} is recorded but missing from {group.name}") from e
    except (OSError, ValueError, TypeError) as e:
        raise ModelFormatError(f"{where}: cannot read weight {group.name}/{name} (truncated?): {e}") from e
