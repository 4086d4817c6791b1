"""Batch inference over a dataset on Dask: a compiled artifact applied to every block or partition.

The artifact travels as files, never as pickled numba functions: either a path every worker can read
(shared storage, or one machine's disk for a LocalCluster), or, with `ship=True`, its bytes sent once
per worker and unpacked there into a local cache directory. Each worker process loads the artifact
once (no compiling: numba's cache is inside it; a worker on another CPU model gets an ArtifactError
from the hash/environment check and recompiles nothing silently — see `_load`) and pins its numba
thread count, so several workers on one machine do not oversubscribe its cores.

Results keep the input order: `map_blocks`/`map_partitions` are order-preserving. A worker that dies
mid-task has its task re-run by Dask's scheduler on another worker; blocks are pure functions of their
input, so a retry neither loses nor duplicates a record.

    import dask.array as da, kerasjit.distributed as kd
    x = da.from_array(big_numpy_or_zarr, chunks=(4096, 28, 28, 1))
    y = kd.predict_array("model.kjit", x, threads_per_worker=1).compute()
"""
from __future__ import annotations

import hashlib
import io
import logging
import os
import tarfile
import tempfile
import threading
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from .errors import InputError, KerasJitError

log = logging.getLogger("kerasjit")

_models: dict[tuple[str, int], Any] = {}
_models_lock = threading.Lock()


def pack_artifact(path: str | os.PathLike) -> bytes:
    """The artifact directory as one tar archive (its bytes are shipped once per worker)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(str(path), arcname="artifact")
    return buf.getvalue()


def _unpack(data: bytes) -> Path:
    digest = hashlib.sha256(data).hexdigest()[:24]
    dest = Path(tempfile.gettempdir()) / "kerasjit-shipped" / digest
    if not (dest / "artifact" / "manifest.json").exists():
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=dest.parent))
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            tar.extractall(tmp, filter="data")
        try:
            os.replace(tmp, dest)
        except OSError:
            pass  # another process of this worker machine unpacked it first
    return dest / "artifact"


def _other_cpu(path: Path) -> bool:
    """Whether the artifact differs from this host only by CPU model (so its code can be rebuilt here)."""
    from .runtime.artifact import environment_key, read_manifest
    env = read_manifest(path).get("env", {})
    here = environment_key(read_manifest(path).get("target", "cpu"))
    differ = {k for k in ("kerasjit", "source", "numba", "llvmlite", "cpu", "cpu_features") if env.get(k) != here.get(k)}
    return bool(differ) and differ <= {"cpu", "cpu_features"}


def rebuild_for_host(src: str | os.PathLike, dest: str | os.PathLike) -> Path:
    """A copy of an artifact made on another CPU model, compiled for this one: the generated module and
    weights (hash-checked) without numba's cache, the manifest's CPU fields set to this host, and
    numba's cache made here by one warm-up run."""
    import numpy as np

    from .runtime.artifact import (NUMBA_CACHE, file_hash, machine_id, publish_artifact, read_manifest,
                                   stage_artifact)
    from .runtime.model import CompiledModel
    src, dest = Path(src), Path(dest)
    manifest = read_manifest(src)
    files = {}
    for name, want in manifest["files"].items():
        if name.startswith(NUMBA_CACHE):
            continue
        if file_hash(src / name) != want:
            raise KerasJitError(f"{src / name}: content does not match the manifest: corrupted or edited")
        files[name] = (src / name).read_bytes()
    keep = {k: v for k, v in manifest.items() if k not in ("files", "checksum", "module_mtime_ns", "format")}
    keep["env"] = {**manifest["env"], **{k: machine_id()[k] for k in ("cpu", "cpu_features")}}
    staged = stage_artifact(dest, files, keep)
    cm = CompiledModel(staged.path)
    cm.predict([np.zeros((1,) + tuple(s[1:]), d) for s, d in zip(cm.input_shapes, cm.input_dtypes)]
               if len(cm.input_shapes) > 1 else np.zeros((1,) + tuple(cm.input_shapes[0][1:]), cm.input_dtypes[0]))
    return publish_artifact(staged)


def _load(artifact: str | bytes, threads: int | None):
    """This process's CompiledModel for `artifact` (a path or shipped bytes), loaded once. An artifact
    made on another CPU model is rebuilt once per machine into a local directory, with a log line."""
    key = (artifact if isinstance(artifact, str) else hashlib.sha256(artifact).hexdigest(), threads or 0)
    with _models_lock:
        cm = _models.get(key)
        if cm is None:
            from .runtime import load
            path = Path(artifact if isinstance(artifact, str) else _unpack(artifact))
            if _other_cpu(path):
                from .runtime.artifact import read_manifest
                local = Path(tempfile.gettempdir()) / "kerasjit-rebuilt" / read_manifest(path)["key"]
                if not (local / "manifest.json").exists():
                    log.warning("worker %d: %s was compiled for another CPU model; rebuilding it for this "
                                "machine into %s (once per machine)", os.getpid(), path, local)
                    rebuild_for_host(path, local)
                path = local
            cm = load(path)
            if threads:
                import numba
                numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
            log.info("worker %d loaded %s", os.getpid(), path)
            _models[key] = cm
    return cm


def _source(artifact: str | os.PathLike, ship: bool) -> str | bytes:
    path = Path(artifact)
    if not (path / "manifest.json").exists():
        raise InputError(f"{path}: not a kerasjit artifact directory (save one with CompiledModel.save)")
    return pack_artifact(path) if ship else str(path.resolve())


def predict_block(block: np.ndarray, artifact: str | bytes, threads: int | None = None,
                  output: int = 0) -> np.ndarray:
    """Predict one block on the worker (the function Dask maps); returns output `output`."""
    cm = _load(artifact, threads)
    y = cm.predict(block)
    return y[output] if isinstance(y, list) else y


def predict_array(artifact: str | os.PathLike, x: Any, *, threads_per_worker: int | None = 1,
                  ship: bool = False, output: int = 0) -> Any:
    """`dask.array` of predictions for a `dask.array` `x` chunked along the batch axis only."""
    import dask.array as da

    if not isinstance(x, da.Array):
        raise InputError(f"predict_array takes a dask.array, got {type(x).__name__}")
    if any(len(c) != 1 for c in x.chunks[1:]):
        x = x.rechunk({i: -1 for i in range(1, x.ndim)})
    from .runtime import load
    out_shape = load(artifact).output_shapes[output]
    src = _source(artifact, ship)
    return x.map_blocks(predict_block, src, threads_per_worker, output, dtype=np.float32,
                        chunks=(x.chunks[0],) + tuple((d,) for d in out_shape[1:]),
                        drop_axis=list(range(len(out_shape), x.ndim)) if x.ndim > len(out_shape) else None,
                        new_axis=list(range(x.ndim, len(out_shape))) if len(out_shape) > x.ndim else None,
                        meta=np.empty((0,) * len(out_shape), np.float32))


def _partition_fn(src: str | bytes, threads: int | None, columns: Sequence[str] | None,
                  to_input: Callable | None, output: int, names: list[str]):
    def run(df):
        import pandas as pd
        if len(df) == 0:
            return pd.DataFrame({n: np.empty(0, np.float32) for n in names}, index=df.index)
        x = to_input(df) if to_input else df[list(columns) if columns else df.columns].to_numpy(np.float32)
        y = predict_block(x, src, threads, output).reshape(len(df), -1)
        return pd.DataFrame(y, columns=names, index=df.index)
    return run


def predict_dataframe(artifact: str | os.PathLike, df: Any, *, columns: Sequence[str] | None = None,
                      to_input: Callable | None = None, threads_per_worker: int | None = 1,
                      ship: bool = False, output: int = 0, prefix: str = "y") -> Any:
    """Predictions for each row of a `dask.dataframe`, as a dataframe with the same index.

    Each row is one sample: the model input is `df[columns]` as float32 (or `to_input(partition)`
    for anything else); the output, flattened per row, becomes columns `y0, y1, ...`.
    """
    import dask.dataframe as dd
    import pandas as pd

    if not isinstance(df, dd.DataFrame):
        raise InputError(f"predict_dataframe takes a dask.dataframe, got {type(df).__name__}")
    from .runtime import load
    cm = load(artifact)
    width = int(np.prod(cm.output_shapes[output][1:]))
    names = [f"{prefix}{i}" for i in range(width)]
    meta = pd.DataFrame({n: np.empty(0, np.float32) for n in names})
    fn = _partition_fn(_source(artifact, ship), threads_per_worker, columns, to_input, output, names)
    return df.map_partitions(fn, meta=meta)


__all__ = ["predict_array", "predict_dataframe", "predict_block", "pack_artifact", "KerasJitError"]
