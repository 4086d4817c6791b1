"""Whether `target="cuda"` can run here, and what its compiled kernels depend on.

Every CUDA entry point (compile, load) asks `cuda_environment()` first, so a machine without numba-cuda
or without a GPU gets one clear `TargetError` rather than an ImportError from the generated module.
"""
from __future__ import annotations

import importlib.metadata
import importlib.util
from functools import lru_cache

from ..errors import TargetError


def simulated() -> bool:
    """True under NUMBA_ENABLE_CUDASIM=1: numba's CUDA simulator runs kernels on the CPU (tests)."""
    from numba import config
    return bool(getattr(config, "ENABLE_CUDASIM", 0))


@lru_cache(maxsize=1)
def cuda_environment() -> dict[str, str]:
    """{"gpu": device name and compute capability (or "simulator"), "numba_cuda": version}.

    Raises TargetError when numba-cuda is not installed or no CUDA GPU is usable. numba-cuda's own
    kernel cache keys on the compute capability; ours keys on the whole entry.
    """
    if importlib.util.find_spec("numba_cuda") is None:
        raise TargetError("target='cuda' needs the numba-cuda package, which is not installed: "
                          "pip install 'kerasjit[cuda]' (numba-cuda>=0.30)")
    version = importlib.metadata.version("numba-cuda")
    if simulated():
        return {"gpu": "simulator", "numba_cuda": version}
    from numba import cuda
    try:
        available = cuda.is_available()
    except Exception as e:  # noqa: BLE001 - a broken driver install says so in its own words
        raise TargetError(f"target='cuda': the CUDA driver could not be initialised ({type(e).__name__}: {e})") from e
    if not available:
        reason = ""
        try:
            cuda.get_current_device()
        except Exception as e:  # noqa: BLE001
            reason = f": {str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__}"
        raise TargetError(f"target='cuda': no usable CUDA GPU on this machine (numba.cuda.is_available() is "
                          f"False{reason}); use target='cpu'")
    dev = cuda.get_current_device()
    name = dev.name.decode() if isinstance(dev.name, bytes) else str(dev.name)
    major, minor = dev.compute_capability
    return {"gpu": f"{name} sm_{major}{minor}", "numba_cuda": version}
