"""Opening model files: what kind of file a path is, and HDF5/zip/JSON access with every library
exception turned into a `ModelFormatError` that names the file.

Nothing here knows about Keras layouts; `keras_zip`, `hdf5` and `jsonfile` do.
"""
from __future__ import annotations

import io
import json
import mmap
import zipfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator, Literal, Union

import h5py

from ..errors import ModelFormatError

PathLike = Union[str, Path]
FileKind = Literal["zip", "hdf5", "json", "dir"]

_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_ZIP_SIGNATURES = (b"PK\x03\x04", b"PK\x05\x06")


def sniff(path: PathLike) -> FileKind:
    """Tell a `.keras` zip (or unzipped `.keras` directory), an HDF5 file and a JSON file apart by
    their content, not their extension. Raises `ModelFormatError` for a missing, empty or unknown file."""
    p = Path(path)
    if p.is_dir():
        if (p / "config.json").is_file():
            return "dir"
        raise ModelFormatError(f"{p}: is a directory without config.json, not an unzipped .keras model")
    if not p.exists():
        raise ModelFormatError(f"{p}: no such file")
    try:
        with open(p, "rb") as fh:
            head = fh.read(4096)
    except OSError as e:
        raise ModelFormatError(f"{p}: cannot be read: {e}") from e
    if not head:
        raise ModelFormatError(f"{p}: is empty (0 bytes)")
    if head.startswith(_ZIP_SIGNATURES):
        return "zip"
    if head.startswith(_HDF5_SIGNATURE) or h5py.is_hdf5(str(p)):  # is_hdf5 also finds a userblock
        return "hdf5"
    if head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{"):
        return "json"
    raise ModelFormatError(
        f"{p}: is not a Keras model file: neither a .keras zip, an HDF5 file nor JSON "
        f"(starts with {head[:8]!r})"
    )


@contextmanager
def open_hdf5(source: Union[PathLike, IO[bytes]], name: str) -> Iterator[h5py.File]:
    """Open an HDF5 file (a path or a binary file object) read-only; `name` is used in messages."""
    try:
        f = h5py.File(source, "r")
    except (OSError, ValueError) as e:
        raise ModelFormatError(f"{name}: is not a readable HDF5 file (truncated or corrupt?): {e}") from e
    try:
        check_global_heaps(source, f, name)
        yield f
    finally:
        f.close()


_GCOL = b"GCOL\x01\x00\x00\x00"   # a global heap collection: signature, version 1, 3 reserved bytes


def check_global_heaps(source: Union[PathLike, IO[bytes]], f: h5py.File, name: str) -> None:
    """Refuse a file whose global heap collections HDF5 cannot parse.

    Variable-length strings (the attributes `model_config`, `backend`, `layer_names`, ... as h5py writes
    them) live in global heap collections. HDF5 1.14 parses a collection on the first read of such a value
    and loops forever on a free-space object of size 0 (`H5HG__cache_heap_deserialize`: the walk does not
    advance), so one flipped byte makes `f.attrs[...]` hang. Every collection in the file is walked here
    first, object by object as HDF5 does; a walk that would not advance or that does not end exactly at
    the collection's end is a `ModelFormatError` naming the byte offset."""
    _, size_len = f.id.get_create_plist().get_sizes()   # bytes in a "length" field (8 unless customised)
    if isinstance(source, (str, Path)):
        with open(source, "rb") as fh:
            try:
                buf = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
            except (OSError, ValueError):   # not mappable (a pipe, say): read it whole
                buf = fh.read()
        try:
            _walk_heaps(buf, size_len, name)
        finally:
            if isinstance(buf, mmap.mmap):
                buf.close()
        return
    if isinstance(source, io.BytesIO):
        buf = source.getbuffer()
        try:
            _walk_heaps(bytes(buf), size_len, name)
        finally:
            buf.release()


def _walk_heaps(buf, size_len: int, name: str) -> None:
    header = 8 + size_len          # signature, version, reserved, collection size
    obj_header = 8 + size_len      # index (2), reference count (2), reserved (4), object size
    at = buf.find(_GCOL)
    while at >= 0:
        end_of_header = at + header
        if end_of_header > len(buf):
            break
        size = int.from_bytes(buf[at + 8:end_of_header], "little")
        end = at + size
        if size < header or end > len(buf):
            raise ModelFormatError(f"{name}: corrupt global heap collection at byte {at}: size {size} "
                                   f"(the file has {len(buf)} bytes)")
        p = end_of_header
        while p < end:
            if p + obj_header > end:        # a tail too small for an object header: free space
                break
            idx = int.from_bytes(buf[p:p + 2], "little")
            obj_size = int.from_bytes(buf[p + 8:p + obj_header], "little")
            need = obj_header + (obj_size + 7) // 8 * 8 if idx > 0 else obj_size
            if need <= 0 or p + need > end:
                raise ModelFormatError(
                    f"{name}: corrupt global heap collection at byte {at}: object {idx} at byte {p} has size "
                    f"{obj_size}, which {'does not fit in' if need > 0 else 'cannot end'} the collection "
                    f"({size} bytes); the variable-length strings stored there cannot be read")
            p += need
        at = buf.find(_GCOL, max(end, at + 1))


def parse_json(text: Union[str, bytes], name: str) -> dict:
    """Parse a JSON object; `name` is used in messages."""
    try:
        obj = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ModelFormatError(f"{name}: malformed JSON: {e}") from e
    if not isinstance(obj, dict):
        raise ModelFormatError(f"{name}: expected a JSON object, found {type(obj).__name__}")
    return obj


def read_text(path: PathLike) -> str:
    """Read a whole text file (UTF-8, an optional BOM dropped)."""
    try:
        return Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise ModelFormatError(f"{path}: cannot be read as UTF-8 text: {e}") from e


class Archive:
    """Read access to the members of a `.keras` model: a zip file or the directory it was unzipped to."""

    def __init__(self, path: PathLike):
        self.path = Path(path)
        self._zip: zipfile.ZipFile | None = None
        if self.path.is_dir():
            self._names = sorted(q.relative_to(self.path).as_posix() for q in self.path.rglob("*") if q.is_file())
            return
        try:
            self._zip = zipfile.ZipFile(self.path)
        except (zipfile.BadZipFile, OSError, ValueError) as e:
            raise ModelFormatError(f"{self.path}: is not a readable zip file (truncated?): {e}") from e
        self._names = self._zip.namelist()

    def names(self) -> list[str]:
        """Names of the members."""
        return list(self._names)

    def read(self, member: str) -> bytes:
        """The bytes of one member; `ModelFormatError` if it is absent or cannot be extracted."""
        if member not in self.names():
            raise ModelFormatError(f"{self.path}: has no {member} (members: {', '.join(self.names())})")
        try:
            if self._zip is not None:
                return self._zip.read(member)
            return (self.path / member).read_bytes()
        except (zipfile.BadZipFile, OSError, EOFError, ValueError, RuntimeError) as e:
            raise ModelFormatError(f"{self.path}: cannot extract {member} (truncated?): {e}") from e

    def open_bytes(self, member: str) -> IO[bytes]:
        """One member as an in-memory binary file (h5py reads it without a temporary file)."""
        return io.BytesIO(self.read(member))

    def close(self) -> None:
        """Close the zip file, if any."""
        if self._zip is not None:
            self._zip.close()

    def __enter__(self) -> "Archive":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
