"""One threading policy for the CPU backend: numba's thread pool does the parallel work, and the BLAS
that numba calls (scipy's OpenBLAS) runs on one thread inside each numba task.

Two pools on the same cores fight: measured on the 2-core machine, OpenBLAS's own threads made a
small model's median latency swing from 0.3 ms to 16 ms whenever another process held a core.
The numba threading layer must also be thread-safe, because `predict` may be called from several
threads at once: we ask for OpenMP or TBB when the user has not chosen a layer, and serialize calls
(`needs_lock()`) in the rare case where only the unsafe workqueue layer exists.
"""
from __future__ import annotations

import logging
import os
import threading

log = logging.getLogger("kerasjit")
_done = False
_lock = threading.Lock()
_safe_layer = True


def _layer_available(name: str) -> bool:
    try:
        if name == "omp":
            import numba.np.ufunc.omppool  # noqa: F401
        else:
            import numba.np.ufunc.tbbpool  # noqa: F401
        return True
    except Exception:
        return False


def configure() -> None:
    """Apply the policy once per process (idempotent, cheap after the first call)."""
    global _done, _safe_layer
    if _done:
        return
    with _lock:
        if _done:
            return
        # OpenMP threads that spin after a parallel region steal the core that a descheduled peer
        # needs: measured under load, MobileNetV2's median went from 12 ms to 105 ms with the default
        # spin. A short spin keeps back-to-back regions cheap on a quiet machine.
        if "OMP_WAIT_POLICY" not in os.environ:
            os.environ.setdefault("GOMP_SPINCOUNT", "10000")
        import numba

        if not os.environ.get("NUMBA_THREADING_LAYER"):
            for layer in ("omp", "tbb"):
                if _layer_available(layer):
                    numba.config.THREADING_LAYER = layer
                    break
            else:
                _safe_layer = False
                log.warning("no thread-safe numba threading layer (OpenMP or TBB) is available; "
                            "concurrent predict calls will be serialized")
        else:
            _safe_layer = os.environ["NUMBA_THREADING_LAYER"].lower() in ("omp", "tbb", "safe", "threadsafe")
        try:
            from threadpoolctl import threadpool_limits
            import scipy.linalg.cython_blas  # noqa: F401  (loads the BLAS numba's np.dot calls)

            threadpool_limits(limits=1, user_api="blas")
        except Exception as e:  # threadpoolctl missing or an unknown BLAS: keep going, say so
            log.warning("could not pin BLAS to one thread (%s); latency may vary under load", e)
        _done = True


def threads() -> int:
    """Threads the generated code splits its parallel work for: numba's count for the calling thread
    (`numba.set_num_threads`, `NUMBA_NUM_THREADS`). Passed into `run`: calling numba's
    `get_num_threads()` inside jitted code would make the cached module uncacheable."""
    global _count
    if _count is None:
        import numba
        from numba.np.ufunc import parallel

        numba.get_num_threads()  # launches the pool (once), under numba's locks
        # afterwards the count is one C call: numba's own getter takes two locks per call, and in
        # `predict` at batch 1 every microsecond of Python counts (MNIST's whole call is ~130 us)
        _count = getattr(parallel, "_get_num_threads", None) or numba.get_num_threads
    return int(_count())


_count = None


def needs_lock() -> bool:
    """Whether predict calls must be serialized (only with numba's workqueue layer)."""
    return not _safe_layer
