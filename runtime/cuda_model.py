"""`CudaModel`: a loaded CUDA artifact. Weights go to the device once; every intermediate stays there.

Per batch size it keeps a `_Batch`: a device arena, flat device buffers for the inputs and outputs,
pinned host buffers, and the launch list of the generated `launches(...)`, computed once. The first
predict at a batch size launches the list (numba compiles or loads the kernels then) and captures it
into a CUDA graph; later ones replay the graph: one launch for the whole model. A predict copies the
inputs in, runs, copies the outputs out and synchronizes once.

Inputs with `__cuda_array_interface__` (CuPy, PyTorch, numba) are copied device to device and the
outputs are returned as `CudaArray`s (device memory with the interface: zero-copy into CuPy, PyTorch
or numba); numpy inputs give numpy. On a GPU the copies, the graph launch and the synchronisation go
straight to the driver (cuda.bindings): numba's array API costs tens of microseconds a call, more
than a small model's whole run. Set KERASJIT_CUDA_GRAPHS=0 to launch kernel by kernel instead.
"""
from __future__ import annotations

import os
import threading
import warnings
import weakref
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DeviceMemoryError, InputError
from .cuda_device import cuda_environment, simulated
from .model import CompiledModel

#: batch sizes whose buffers and graphs are kept (least recently used dropped first)
KEEP_BATCHES = 4


@dataclass
class _Batch:
    """Everything one batch size needs; pointers and byte counts are cached for the driver path."""

    n: int
    arena: Any
    ins: list          # flat device buffers, one per input
    outs: list         # flat device buffers, one per output
    host_ins: list     # pinned staging buffers for numpy inputs
    host_outs: list
    launches: list     # (configured kernel, args)
    state: Any = None  # stateful RNNs' states (device, zeros at first), which the launches read and advance
    graph: Any = None  # (CUgraph, CUgraphExec) once captured
    finalizer: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.in_ptrs = [_device_ptr(a) for a in self.ins] if not simulated() else []
        self.out_ptrs = [_device_ptr(a) for a in self.outs] if not simulated() else []
        self.in_bytes = [a.size * a.dtype.itemsize for a in self.ins]
        self.out_bytes = [a.size * 4 for a in self.outs]


class CudaArray:
    """A float32 array in device memory, as `predict` returns for device inputs. Pass it to CuPy
    (`cupy.asarray`), PyTorch (`torch.as_tensor(a, device="cuda")`) or numba (`cuda.as_cuda_array`)
    without a copy, or call `copy_to_host()`. Its memory is freed when it is garbage collected."""

    def __init__(self, ptr: int, shape: tuple, stream: Any):
        self.ptr = ptr
        self.shape = tuple(shape)
        self.dtype = np.dtype(np.float32)
        self._stream = stream

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def __cuda_array_interface__(self) -> dict:
        # no pending work: predict synchronized before returning it
        return {"shape": self.shape, "typestr": "<f4", "data": (self.ptr, False), "version": 3,
                "strides": None, "stream": None}

    def copy_to_host(self) -> np.ndarray:
        from cuda.bindings import driver as drv
        out = np.empty(self.shape, np.float32)
        if out.size:
            _check(drv.cuMemcpyDtoH(out.ctypes.data, self.ptr, out.nbytes))
        return out

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        a = self.copy_to_host()
        return a if dtype is None else a.astype(dtype)

    def __repr__(self) -> str:
        return f"<kerasjit.CudaArray float32{list(self.shape)} at 0x{self.ptr:x}>"

    def __del__(self) -> None:
        try:
            from cuda.bindings import driver as drv
            if self.ptr:
                drv.cuMemFreeAsync(self.ptr, self._stream)
        except Exception:  # noqa: BLE001 - at interpreter exit the driver may already be gone
            pass


def _configure(kernel: Any, grid: Any, block: Any, stream: Any) -> Any:
    return kernel[grid, block, stream]


def _configure_late(kernel: Any, grid: Any, block: Any, stream: Any) -> Any:
    """The simulator's `kernel[grid, block]` sets the grid on the kernel itself and returns it: a kernel
    launched at two sites with different grids would run both with the last one. Configure at the call."""
    return lambda *args: kernel[grid, block, stream](*args)


def _device_ptr(a: Any) -> int:
    return int(a.__cuda_array_interface__["data"][0])


def _is_device_array(a: Any) -> bool:
    # the simulator's device arrays have no __cuda_array_interface__
    return hasattr(a, "__cuda_array_interface__") or type(a).__name__ == "FakeCUDAArray"


def _check(result: tuple) -> tuple:
    """cuda.bindings calls return (error, *values); raise on an error."""
    err, *rest = result
    if int(err) != 0:
        raise RuntimeError(f"CUDA driver error {err}")
    return tuple(rest)


def _destroy_graph(graph: tuple) -> None:
    try:
        from cuda.bindings import driver as drv
        drv.cuGraphExecDestroy(graph[1])
        drv.cuGraphDestroy(graph[0])
    except Exception:  # noqa: BLE001 - at interpreter exit the driver may already be gone
        pass


def _is_oom(e: Exception) -> bool:
    return "OUT_OF_MEMORY" in str(e) or "out of memory" in str(e).lower()


class CudaModel(CompiledModel):
    """A compiled Keras model on the GPU. `predict` takes numpy arrays or CUDA arrays."""

    def __init__(self, path: str | Path, verify: bool = True):
        cuda_environment()  # TargetError without numba-cuda or a GPU, before anything imports numba.cuda
        super().__init__(path, verify=verify)
        from numba import cuda
        self._cuda = cuda
        self._launches = self._module.launches
        self._stream = cuda.stream()
        self._dblob = cuda.to_device(self._blob, stream=self._stream)
        self._ws = cuda.device_array(max(int(getattr(self._module, "WORKSPACE", 16)), 16), np.float32)
        self._sms = 1 if simulated() else cuda.get_current_device().MULTIPROCESSOR_COUNT
        self._batches: OrderedDict[int, _Batch] = OrderedDict()
        self._state_batch: int | None = None  # the batch size whose states the device holds (stateful)
        self._lock = threading.Lock()
        self.use_graphs = not simulated() and os.environ.get("KERASJIT_CUDA_GRAPHS", "1") != "0"
        self._stream.synchronize()
        self._driver = None
        if not simulated():
            from cuda.bindings import driver as drv
            self._driver = drv
            self._h = drv.CUstream(int(self._stream.handle))
            (self._event,) = _check(drv.cuEventCreate(drv.CUevent_flags.CU_EVENT_DISABLE_TIMING))

    # ------------------------------------------------------------------ buffers and launch lists
    def _batch(self, n: int) -> _Batch:
        b = self._batches.get(n)
        if b is not None:
            self._batches.move_to_end(n)
            return b
        while len(self._batches) >= KEEP_BATCHES:
            self._drop(next(iter(self._batches)))
        try:
            b = self._new_batch(n)
        except Exception as e:  # noqa: BLE001
            if not _is_oom(e):
                raise
            for k in list(self._batches):  # free what other batch sizes hold, then try once more
                self._drop(k)
            self._cuda.current_context().deallocations.clear()
            try:
                b = self._new_batch(n)
            except Exception as e2:  # noqa: BLE001
                if _is_oom(e2):
                    raise self._oom(n) from e2
                raise
        self._batches[n] = b
        return b

    def _oom(self, n: int) -> DeviceMemoryError:
        need = (n * self._arena_per_sample + self._dblob.size) * 4
        return DeviceMemoryError(f"model {self.name!r}: out of GPU memory at batch size {n} (it needs about "
                                 f"{need / 2**30:.2f} GiB for weights and intermediates); use a smaller batch")

    def _new_batch(self, n: int) -> _Batch:
        cuda = self._cuda
        ins = [cuda.device_array(n * int(np.prod(s[1:], dtype=np.int64)), d)
               for s, d in zip(self.input_shapes, self.input_dtypes)]
        outs = [cuda.device_array(n * int(np.prod(s[1:], dtype=np.int64)), np.float32) for s in self.output_shapes]
        arena = cuda.device_array(max(n * self._arena_per_sample, 16), np.float32)
        host_ins = [cuda.pinned_array(a.shape, a.dtype) for a in ins]
        host_outs = [cuda.pinned_array(a.shape, np.float32) for a in outs]
        state = []
        if self._state_per_sample:
            state = [cuda.to_device(np.zeros(n * self._state_per_sample, np.float32), stream=self._stream)]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # numba warns of grids under 128 blocks: small layers have them
            configure = _configure_late if simulated() else _configure
            launches = [(configure(kernel, grid, block, self._stream), args) for kernel, grid, block, args in
                        self._launches(self._dblob, arena, self._ws, n, self._sms, *ins, *outs, *state)]
        return _Batch(n, arena, ins, outs, host_ins, host_outs, launches, state[0] if state else None)

    def _check_state_batch(self, n: int) -> None:
        """A stateful model's states belong to one batch size until `reset_states` (as on the CPU)."""
        if not self._state_per_sample:
            return
        if self._state_batch is None:
            self._state_batch = n
        elif n != self._state_batch:
            raise InputError(f"model {self.name!r} is stateful and holds the states of a batch of "
                             f"{self._state_batch}; got a batch of {n} (call reset_states() first)")

    def _drop(self, n: int) -> None:
        b = self._batches.pop(n)
        if b.finalizer is not None:
            b.finalizer()

    # ------------------------------------------------------------------ running
    def _execute(self, b: _Batch) -> None:
        if b.graph is not None:
            _check(self._driver.cuGraphLaunch(b.graph[1], self._h))
            return
        for launch, args in b.launches:
            launch(*args)
        if self.use_graphs:
            try:
                b.graph = self._capture(b)
                b.finalizer = weakref.finalize(self, _destroy_graph, b.graph)
            except Exception as e:  # noqa: BLE001 - kernel-by-kernel launches still work
                warnings.warn(f"kerasjit: CUDA graph capture failed ({type(e).__name__}: {e}); "
                              f"launching kernel by kernel", RuntimeWarning, stacklevel=3)
                self.use_graphs = False

    def _capture(self, b: _Batch) -> tuple:
        """The launch list as an instantiated CUDA graph (captured from our stream, not run)."""
        from cuda.bindings import driver as drv
        h = self._stream.handle
        _check(drv.cuStreamBeginCapture(h, drv.CUstreamCaptureMode.CU_STREAM_CAPTURE_MODE_THREAD_LOCAL))
        try:
            for launch, args in b.launches:
                launch(*args)
        finally:
            (graph,) = _check(drv.cuStreamEndCapture(h))
        (gexec,) = _check(drv.cuGraphInstantiate(graph, 0))
        return graph, gexec

    def _device_inputs(self, x: Any) -> list:
        """CUDA-array inputs as numba device views, checked like numpy inputs (no host copy)."""
        out = []
        batch = None
        for name, shape, dtype, a in zip(self.input_names, self.input_shapes, self.input_dtypes,
                                         self._input_list(x)):
            if not _is_device_array(a):
                raise InputError(f"input {name!r}: mix of device and host arrays; pass all inputs one way")
            d = self._cuda.as_cuda_array(a) if hasattr(self._cuda, "as_cuda_array") else a
            want = "(batch, " + ", ".join(str(s) for s in shape[1:]) + ")"
            if d.ndim != len(shape) or tuple(d.shape[1:]) != tuple(shape[1:]):
                raise InputError(f"input {name!r}: expected shape {want}, got {tuple(d.shape)}")
            if d.dtype != dtype:
                raise InputError(f"input {name!r}: device arrays must already be {dtype}, got {d.dtype}")
            if not getattr(d, "is_c_contiguous", lambda: True)():
                raise InputError(f"input {name!r}: device arrays must be C-contiguous")
            if batch is None:
                batch = d.shape[0]
            elif d.shape[0] != batch:
                raise InputError(f"input {name!r}: batch {d.shape[0]} differs from the first input's {batch}")
            out.append(d)
        return out

    def _cai_inputs(self, x: Any) -> list[tuple[int, tuple, Any]]:
        """(pointer, shape, producer stream) of each CUDA-array input, checked like numpy inputs."""
        out = []
        for name, shape, dtype, a in zip(self.input_names, self.input_shapes, self.input_dtypes,
                                         self._input_list(x)):
            cai = getattr(a, "__cuda_array_interface__", None)
            if cai is None:
                raise InputError(f"input {name!r}: mix of device and host arrays; pass all inputs one way")
            shp = tuple(int(d) for d in cai["shape"])
            want = "(batch, " + ", ".join(str(s) for s in shape[1:]) + ")"
            if len(shp) != len(shape) or shp[1:] != tuple(shape[1:]):
                raise InputError(f"input {name!r}: expected shape {want}, got {shp}")
            if np.dtype(cai["typestr"]) != dtype:
                raise InputError(f"input {name!r}: device arrays must already be {dtype}, got {np.dtype(cai['typestr'])}")
            strides = cai.get("strides")
            if strides is not None and shp and min(shp) > 0:
                expect = tuple(int(np.prod(shp[i + 1:], dtype=np.int64)) * dtype.itemsize for i in range(len(shp)))
                if tuple(strides) != expect:
                    raise InputError(f"input {name!r}: device arrays must be C-contiguous")
            if out and shp[0] != out[0][1][0]:
                raise InputError(f"input {name!r}: batch {shp[0]} differs from the first input's {out[0][1][0]}")
            out.append((int(cai["data"][0]), shp, cai.get("stream")))
        return out

    def _predict_driver(self, x: Any, on_device: bool) -> Any:
        """predict through the driver: cached pointers, async copies, one graph launch, one sync."""
        drv, h = self._driver, self._h
        xs = self._cai_inputs(x) if on_device else self._normalize(x)
        n = int(xs[0][1][0] if on_device else xs[0].shape[0])
        shapes = [(n,) + tuple(s[1:]) for s in self.output_shapes]
        with self._lock:
            if n == 0:
                outs = [CudaArray(0, s, h) if on_device else np.empty(s, np.float32) for s in shapes]
                return outs[0] if len(outs) == 1 else outs
            self._check_state_batch(n)
            b = self._batch(n)
            for k, a in enumerate(xs):
                if on_device:
                    ptr, _, producer = a
                    if producer is not None and int(producer) != int(self._stream.handle):
                        # the producer's pending work first (CUDA array interface v3), without a host wait
                        _check(drv.cuEventRecord(self._event, drv.CUstream(int(producer))))
                        _check(drv.cuStreamWaitEvent(h, self._event, 0))
                    _check(drv.cuMemcpyDtoDAsync(b.in_ptrs[k], ptr, b.in_bytes[k], h))
                else:
                    np.copyto(b.host_ins[k], a.reshape(-1))
                    _check(drv.cuMemcpyHtoDAsync(b.in_ptrs[k], b.host_ins[k].ctypes.data, b.in_bytes[k], h))
            try:
                self._execute(b)
            except Exception as e:  # noqa: BLE001
                if _is_oom(e):
                    raise self._oom(n) from e
                raise
            outs = []
            for k, shape in enumerate(shapes):
                if on_device:
                    (ptr,) = _check(drv.cuMemAllocAsync(b.out_bytes[k], h))
                    _check(drv.cuMemcpyDtoDAsync(ptr, b.out_ptrs[k], b.out_bytes[k], h))
                    outs.append(CudaArray(int(ptr), shape, h))
                else:
                    _check(drv.cuMemcpyDtoHAsync(b.host_outs[k].ctypes.data, b.out_ptrs[k], b.out_bytes[k], h))
            _check(drv.cuStreamSynchronize(h))
            if not on_device:
                outs = [np.array(host).reshape(shape) for host, shape in zip(b.host_outs, shapes)]
        return outs[0] if len(outs) == 1 else outs

    def predict(self, x: Any) -> Any:
        """Run the model on a batch: numpy arrays (numpy out) or CUDA arrays (`CudaArray`s out), as one
        array, a list of arrays, or a dict keyed by input layer name. Synchronizes once."""
        first = next(iter(x.values())) if isinstance(x, dict) and x else \
            (x[0] if isinstance(x, (list, tuple)) and x and len(self.input_names) > 1 else x)
        on_device = _is_device_array(first)
        if self._driver is not None:
            return self._predict_driver(x, on_device)
        # the simulator: numba's array API (its device arrays have no real pointers)
        xs = self._device_inputs(x) if on_device else self._normalize(x)
        n = int(xs[0].shape[0])
        with self._lock:
            if n == 0:
                outs = [np.empty((0,) + tuple(s[1:]), np.float32) for s in self.output_shapes]
                if on_device:
                    outs = [self._cuda.device_array(o.shape, np.float32) for o in outs]
                return outs[0] if len(outs) == 1 else outs
            self._check_state_batch(n)
            b = self._batch(n)
            stream = self._stream
            for buf, host, a in zip(b.ins, b.host_ins, xs):
                if on_device:
                    buf.copy_to_device(a.reshape(a.size), stream=stream)
                else:
                    np.copyto(host, a.reshape(-1))
                    buf.copy_to_device(host, stream=stream)
            try:
                self._execute(b)
            except Exception as e:  # noqa: BLE001
                if _is_oom(e):
                    raise self._oom(n) from e
                raise
            shapes = [(n,) + tuple(s[1:]) for s in self.output_shapes]
            if on_device:
                outs = []
                for buf, shape in zip(b.outs, shapes):
                    o = self._cuda.device_array(buf.size, np.float32, stream=stream)
                    o.copy_to_device(buf, stream=stream)
                    outs.append(o.reshape(shape))
                stream.synchronize()
            else:
                for buf, host in zip(b.outs, b.host_outs):
                    buf.copy_to_host(host, stream=stream)
                stream.synchronize()
                outs = [np.array(host).reshape(shape) for host, shape in zip(b.host_outs, shapes)]
        return outs[0] if len(outs) == 1 else outs

    __call__ = predict

    def reset_states(self) -> None:
        """Clear the states that stateful recurrent layers keep on the device across `predict` calls, as
        Keras's `model.reset_states()`; the next call may then use any batch size."""
        with self._lock:  # never under a running call
            for b in self._batches.values():
                if b.state is not None:
                    # in place: the launch lists and captured graphs hold this buffer's address
                    b.state.copy_to_device(np.zeros(b.state.size, np.float32), stream=self._stream)
            self._stream.synchronize()
            self._state_batch = None
