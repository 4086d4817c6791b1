"""kerasjit itself, CPU (`target="cpu"`) and CUDA (`target="cuda"`), compiled from the saved .keras file.

Cold setup: `kerasjit.compile` with an emptied cache_dir, then the first predict; warm setup: the same
call again, which must find the cached artifact. After the warm setup the artifact is saved with
`cm.save` for the fresh-process start measurement (coldstart.py).
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from ..files import PreparedModel
from . import Engine, EngineUnavailable, Ready, first_output


class KerasJitCPU(Engine):
    """kerasjit with numba's CPU backend; numba threads come from NUMBA_NUM_THREADS."""

    name = "kerasjit-cpu"
    device = "cpu"
    target = "cpu"

    def load(self, threads: int) -> dict[str, str]:
        os.environ.setdefault("NUMBA_NUM_THREADS", str(threads))
        from ..kerasjit_import import import_kerasjit

        try:
            self.kj = import_kerasjit()
        except ImportError as e:
            raise EngineUnavailable(f"kerasjit not importable ({e})") from e
        import numba

        # kerasjit's threading policy needs its dependency threadpoolctl (BLAS on one thread inside
        # numba's tasks); without it two thread pools fight and the figures say nothing about kerasjit
        # as installed (measured: MNIST convnet 1.36 ms instead of 0.24 ms)
        try:
            import threadpoolctl  # noqa: F401
        except ImportError as e:
            raise EngineUnavailable("kerasjit's dependency threadpoolctl is missing: "
                                    "pip install -r benchmarks/requirements.txt (or pip install .)") from e
        self._check_target()
        return {"kerasjit": str(getattr(self.kj, "__version__", "checkout")), "numba": numba.__version__}

    def _check_target(self) -> None:
        pass

    def setup(self, pm: PreparedModel, cold: bool, workdir: Path) -> Ready:
        cache = workdir / "cache"
        if cold:
            shutil.rmtree(cache, ignore_errors=True)
        cm = self.kj.compile(str(pm.keras_path), target=self.target, cache_dir=str(cache))
        info: dict[str, Any] = {}
        if not cold:
            artifact = workdir / "artifact"
            shutil.rmtree(artifact, ignore_errors=True)
            try:
                cm.save(str(artifact))
                info["artifact"] = str(artifact)
            except Exception as e:  # noqa: BLE001 - no artifact only loses the fresh-process figure
                info["artifact_error"] = f"{type(e).__name__}: {e}"[:160]
        return Ready(lambda xs: first_output(cm.predict(xs)), info)

    def prepare_inputs(self, xs: list[np.ndarray]) -> Any:
        return xs[0] if len(xs) == 1 else list(xs)


class KerasJitCUDA(KerasJitCPU):
    """kerasjit with numba-cuda kernels; `predict` returns host numpy, so each call includes one sync."""

    name = "kerasjit-cuda"
    device = "cuda"
    target = "cuda"

    def _check_target(self) -> None:
        if os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0"):
            raise EngineUnavailable("NUMBA_ENABLE_CUDASIM is set: the CUDA simulator is not a benchmark target")
        try:
            from numba import cuda
        except ImportError as e:
            raise EngineUnavailable(f"numba.cuda not importable ({e})") from e
        if not cuda.is_available():
            raise EngineUnavailable("no CUDA GPU (numba.cuda.is_available() is False)")
