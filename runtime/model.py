"""`CompiledModel`: a loaded artifact, ready to `predict`. Imports nothing of the compiler."""
from __future__ import annotations

import contextlib
import hashlib
import shutil
import sys
import threading
import types
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import ArtifactError, InputError
from . import threads
from .artifact import MODULE, WEIGHTS, check_artifact, read_manifest
from .inputs import arena_limit_bytes, batch_chunks, cache_limit_bytes


def _load_module(path: Path, name: str, sha256: str | None = None):
    """Import the generated module from the very bytes that were verified (`sha256`, when given).

    It is compiled from source, never imported through the import system: that would run a `.pyc`
    from `__pycache__` (which no manifest lists) whenever its header matches, and would read the file
    again after it was checked. numba finds its cache through the code's file name, as before.
    """
    if name in sys.modules and getattr(sys.modules[name], "__file__", None) == str(path):
        return sys.modules[name]
    try:
        source = path.read_bytes()
    except OSError as e:
        raise ArtifactError(f"{path}: cannot read the generated module: {e}") from e
    if sha256 is not None and hashlib.sha256(source).hexdigest() != sha256:
        raise ArtifactError(f"{path}: changed after the artifact was verified")
    module = types.ModuleType(name)
    module.__file__ = str(path)
    sys.modules[name] = module  # numba's cache finds the module's globals by name when it loads
    try:
        exec(compile(source, str(path), "exec"), module.__dict__)
    except Exception as e:
        del sys.modules[name]
        raise ArtifactError(f"{path}: the generated module does not import: {type(e).__name__}: {e}") from e
    return module


_serial = threading.Lock()


class CompiledModel:
    """A compiled Keras model. `predict` takes numpy arrays and returns numpy arrays, as Keras does."""

    def __init__(self, path: str | Path, verify: bool = True):
        self.path = Path(path)
        self.manifest = read_manifest(self.path)
        if verify:
            check_artifact(self.path, self.manifest)
        m = self.manifest
        self.name: str = m.get("model_name", "model")
        self.input_names: list[str] = [i["name"] for i in m["inputs"]]
        self.output_names: list[str] = [o["name"] for o in m["outputs"]]
        self.input_shapes: list[tuple] = [tuple(i["shape"]) for i in m["inputs"]]
        self.output_shapes: list[tuple] = [tuple(o["shape"]) for o in m["outputs"]]
        self.input_dtypes: list[np.dtype] = [np.dtype(i["dtype"]) for i in m["inputs"]]
        self._output_inner = [tuple(s[1:]) for s in self.output_shapes]
        #: (shape past the batch, dtype, rank) of a model with one input: `predict`'s check-free path
        self._one_input = (tuple(self.input_shapes[0][1:]), self.input_dtypes[0], len(self.input_shapes[0])) \
            if len(self.input_shapes) == 1 else None
        self._arena_per_sample = int(m["arena_per_sample"])
        self._cache_limit = cache_limit_bytes(self._arena_per_sample, m.get("flops_per_sample"))
        # Stateful RNNs: their states persist across predict calls in this buffer (batch-major like the
        # arena), shared by all threads as Keras's state variables are; `reset_states` zeroes it.
        self._state_per_sample = int(m.get("state_per_sample", 0))
        self._state: np.ndarray | None = None
        blob_size = int(m["blob_size"])
        wpath = self.path / WEIGHTS
        if wpath.stat().st_size != blob_size * 4:
            raise ArtifactError(f"{wpath}: {wpath.stat().st_size} bytes, manifest says {blob_size * 4}")
        # read-only mmap: the OS shares the pages between processes serving the same model
        self._blob = np.memmap(wpath, dtype=np.float32, mode="r", shape=(blob_size,)).view(np.ndarray) \
            if blob_size else np.zeros(16, np.float32)
        self._blob.flags.writeable = False
        threads.configure()
        # named by the code's hash: numba's cache refers to the module by name, so artifacts with the
        # same generated code (same architecture, other weights) can share one compilation
        self._module = _load_module(self.path / MODULE, f"kerasjit_gen_{str(m['files'][MODULE])[:24]}",
                                    m["files"][MODULE] if verify else None)
        self._run = getattr(self._module, "run", None)  # the CUDA module has `launches` instead
        self._local = threading.local()
        #: bound on one call's arena in bytes (None: $KERASJIT_MAX_ARENA_MB, else 1 GiB); a larger
        #: batch runs in chunks of rows (stateless models only: see `predict`)
        self.max_arena_bytes: int | None = None
        # Concurrency rule: a stateless model runs calls from several threads at once (each thread has
        # its own arena; weights are read-only). A stateful model serializes its calls on a per-model
        # lock: its states are one shared buffer that every call reads and advances, as in Keras. With
        # numba's thread-unsafe workqueue layer, every call of every model is serialized.
        self._call_lock = _serial if threads.needs_lock() else \
            threading.Lock() if self._state_per_sample else contextlib.nullcontext()

    # ------------------------------------------------------------------ inputs
    def _input_list(self, x: Any) -> list[Any]:
        """The inputs of `x` (an array, a list of arrays, a dict by input name) in the model's order."""
        n_in = len(self.input_names)
        if isinstance(x, Mapping):
            unknown = [k for k in x if k not in self.input_names]
            missing = [k for k in self.input_names if k not in x]
            if unknown or missing:
                raise InputError(f"model {self.name!r}: inputs are {self.input_names}; "
                                 + (f"unknown {unknown}" if unknown else "") + (" " if unknown and missing else "")
                                 + (f"missing {missing}" if missing else ""))
            xs = [x[k] for k in self.input_names]
        elif isinstance(x, (list, tuple)) and n_in > 1:
            xs = list(x)
        else:
            xs = [x]
        if len(xs) != n_in:
            raise InputError(f"model {self.name!r} takes {n_in} input(s) {self.input_names}, got {len(xs)}")
        return xs

    def _normalize(self, x: Any) -> list[np.ndarray]:
        xs = self._input_list(x)
        out = []
        batch = None
        for name, shape, dtype, a in zip(self.input_names, self.input_shapes, self.input_dtypes, xs):
            try:
                a = np.asarray(a)
            except Exception as e:
                raise InputError(f"input {name!r}: cannot be read as an array: {e}") from e
            if a.dtype.kind not in "biuf":
                raise InputError(f"input {name!r}: dtype {a.dtype} is not numeric")
            if a.ndim != len(shape) or tuple(a.shape[1:]) != tuple(shape[1:]):
                want = "(batch, " + ", ".join(str(d) for d in shape[1:]) + ")"
                raise InputError(f"input {name!r}: expected shape {want}, got {tuple(a.shape)}")
            if batch is None:
                batch = a.shape[0]
            elif a.shape[0] != batch:
                raise InputError(f"input {name!r}: batch {a.shape[0]} differs from the first input's {batch}")
            # a copy whenever the dtype, layout or writeability differs: never touch the caller's array,
            # and keep one numba signature (readonly arrays would be a different type)
            if a.dtype != dtype or not a.flags.c_contiguous or not a.flags.writeable:
                a = np.array(a, dtype=dtype, order="C", copy=True)
            out.append(a)
        return out

    def _arena(self, n: int) -> np.ndarray:
        # One arena per thread: predict may run concurrently from several threads (the run is nogil).
        arena = getattr(self._local, "arena", None)
        need = max(n * self._arena_per_sample, 16)
        if arena is None or arena.size < need:
            arena = np.empty(need, np.float32)
            self._local.arena = arena
        return arena

    # ------------------------------------------------------------------ predict
    def predict(self, x: Any) -> np.ndarray | list[np.ndarray]:
        """Run the model on a batch: an array, a list of arrays, or a dict keyed by input layer name.

        Returns one array for a single-output model, else a list in the model's output order.
        An iterator or generator of batches (more data than fits in memory) gives a generator of
        results instead: see `predict_iter`.
        """
        one = self._one_input
        if (one is not None and type(x) is np.ndarray and x.ndim == one[2] and x.shape[1:] == one[0]
                and x.dtype == one[1] and x.flags.c_contiguous and x.flags.writeable):
            xs = [x]  # the common call, one array as the model takes it: what `_normalize` would give
        else:
            from .batches import is_batch_stream
            if is_batch_stream(x):
                return self.predict_iter(x)
            xs = self._normalize(x)
        n = int(xs[0].shape[0])
        outs = [np.empty((n,) + s, np.float32) for s in self._output_inner]
        if n:
            nt = threads.threads()  # numba's thread count for this calling thread (numba.set_num_threads)
            with self._call_lock:
                if self._state_per_sample:
                    # states are laid out per node, then per row: the batch runs whole (it is the batch
                    # the states belong to)
                    self._run(self._blob, self._arena(n), n, nt, *xs, *outs, self._states(n))
                else:
                    chunks = None
                    if n > 1:  # one sample always runs whole (the fast path of serving one request)
                        limit = arena_limit_bytes(self.max_arena_bytes)
                        if self._cache_limit is not None:
                            limit = min(limit, self._cache_limit)
                        chunks = batch_chunks(n, self._arena_per_sample, limit)
                    if chunks is None or len(chunks) == 1:
                        self._run(self._blob, self._arena(n), n, nt, *xs, *outs)
                    else:
                        # rows slices of C-contiguous arrays stay C-contiguous: one numba signature for all
                        for lo, hi in chunks:
                            self._run(self._blob, self._arena(hi - lo), hi - lo, nt, *[a[lo:hi] for a in xs],
                                      *[o[lo:hi] for o in outs])
        return outs[0] if len(outs) == 1 else outs

    def _states(self, n: int) -> np.ndarray:
        if self._state is None:
            self._state = np.zeros(max(n * self._state_per_sample, 16), np.float32)
            self._state_batch = n
        elif n != self._state_batch:
            raise InputError(f"model {self.name!r} is stateful and holds the states of a batch of "
                             f"{self._state_batch}; got a batch of {n} (call reset_states() first)")
        return self._state

    @property
    def stateful(self) -> bool:
        """Whether the model keeps recurrent states across `predict` calls (Keras `stateful=True`)."""
        return self._state_per_sample > 0

    def reset_states(self) -> None:
        """Clear the states that stateful recurrent layers keep across `predict` calls, as Keras's
        `model.reset_states()`; the next call may then use any batch size."""
        with self._call_lock:  # never under a running call
            self._state = None

    def predict_iter(self, batches: Any, progress: bool | None = None, total: int | None = None) -> Any:
        """Yield the outputs of each batch of `batches` (any iterable of what `predict` takes; a tuple
        `(x, y, ...)` is read as Keras reads it from a generator: `x`), lazily, with a progress bar on a
        terminal (`progress`; `total` batches when `batches` has no len)."""
        from .batches import predict_batches
        return predict_batches(self, batches, progress=progress, total=total)

    __call__ = predict

    # ------------------------------------------------------------------ files
    def save(self, path: str | Path) -> Path:
        """Copy the artifact (generated code, weights and numba's cache) to `path` (a directory)."""
        path = Path(path)
        if path.resolve() == self.path.resolve():
            return path
        if path.exists():
            if not (path / "manifest.json").exists():
                raise ArtifactError(f"{path}: exists and is not a kerasjit artifact; refusing to overwrite")
            shutil.rmtree(path)
        # copy2 keeps modification times, which numba's cache index checks
        shutil.copytree(self.path, path, copy_function=shutil.copy2)
        return path

    def __repr__(self) -> str:
        ins = ", ".join(f"{n}{tuple(s)}" for n, s in zip(self.input_names, self.input_shapes))
        return f"<CompiledModel {self.name!r} ({ins}) target={self.manifest.get('target')} at {self.path}>"


def load(path: str | Path, verify: bool = True, self_test: bool | None = None) -> CompiledModel:
    """Load a compiled artifact written by `kerasjit.compile(...)` or `CompiledModel.save(...)`.

    `verify` (default on) checks every file against the manifest's hashes and the artifact against this
    kerasjit, numba and machine (`ArtifactError`), then re-runs the self-test the artifact stores, if
    any: its test input must give the stored reference outputs (Keras's, or the user's) within
    1e-4 * max(1, max|ref|), else `SelfTestError`. `self_test` overrides the second part alone.
    `verify=False` skips both, for a trusted artifact that must load fastest.
    """
    if read_manifest(Path(path)).get("target") == "cuda":
        from .cuda_model import CudaModel  # imports numba-cuda only for CUDA artifacts
        cm: CompiledModel = CudaModel(path, verify=verify)
    else:
        cm = CompiledModel(path, verify=verify)
    if verify if self_test is None else self_test:
        from .selftest import run_self_test
        run_self_test(cm)
    return cm
