"""Shared test setup: Keras 3 on the JAX backend (CPU) is the oracle."""
import os

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# Without an NVIDIA driver (CI), the CUDA tests run in numba's simulator; numba reads this once, at import
if not os.path.exists("/dev/nvidiactl"):
    os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory):
    """One kerasjit cache for the session: equal models compile once."""
    return tmp_path_factory.mktemp("kjcache")
