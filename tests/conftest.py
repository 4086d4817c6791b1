"""Shared test setup: Keras 3 on the JAX backend (CPU) is the oracle."""
import os

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# Without an NVIDIA driver (CI), the CUDA tests run in numba's simulator; numba reads this once, at import
if not os.path.exists("/dev/nvidiactl"):
    os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")

# compile() stores a self-test by running Keras on the model, which every test here does itself anyway:
# off by default in the tests (it doubles their Keras time); tests of the self-test ask for `auto_self_test`
os.environ.setdefault("KERASJIT_SELF_TEST", "0")

import pytest  # noqa: E402


@pytest.fixture
def auto_self_test(monkeypatch, tmp_path):
    """compile() stores Keras's outputs as the artifact's self-test, as it does for users. Returns a
    cache directory of its own: the session's cache may hold the same model compiled without one."""
    monkeypatch.delenv("KERASJIT_SELF_TEST", raising=False)
    return tmp_path / "self-test-cache"


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory):
    """One kerasjit cache for the session, shared by pytest-xdist's workers: equal models compile once,
    and a model saved in another format (same generated code) reuses numba's compilation."""
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # the run's directory, above each worker's own
    path = base / "kjcache"
    path.mkdir(exist_ok=True)
    return path


#: parameters that name a file format: the formats of one model are one xdist group (one worker, in
#: order), so the first compiles and the others reuse its numba cache instead of compiling in parallel
_FORMAT_PARAMS = ("fmt", "form", "format")


def pytest_collection_modifyitems(config, items):
    for item in items:
        spec = getattr(item, "callspec", None)
        if spec is None or not any(p in spec.params for p in _FORMAT_PARAMS):
            continue
        rest = ",".join(f"{k}={v}" for k, v in sorted(spec.params.items()) if k not in _FORMAT_PARAMS)
        item.add_marker(pytest.mark.xdist_group(f"{item.module.__name__}::{item.originalname}[{rest}]"))
