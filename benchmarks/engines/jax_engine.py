"""Keras 3 on JAX: the saved .keras model as a jitted `stateless_call`, on the CPU.

Cold setup: `keras.saving.load_model` + `jax.jit` + the first call (trace and XLA compile); warm: the
same again in the same process (a new jitted function, so it retraces). XLA's CPU thread pool is sized
by the CPUs this process may run on (the worker pins its affinity when --threads is below the count).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ..files import PreparedModel
from ..util import hide_tensorflow
from . import Engine, EngineUnavailable, Ready


class KerasJax(Engine):
    """Keras 3 + JAX, `jax.jit(lambda tv, ntv, x: model.stateless_call(tv, ntv, x, training=False)[0])`."""

    name = "jax"
    device = "cpu"

    def load(self, threads: int) -> dict[str, str]:
        os.environ["KERAS_BACKEND"] = "jax"
        os.environ["JAX_PLATFORMS"] = "cpu"
        hide_tensorflow()
        try:
            import jax
            import keras
        except ImportError as e:
            raise EngineUnavailable(f"keras/jax not importable ({e})") from e
        self.jax, self.keras = jax, keras
        return {"keras": keras.__version__, "jax": jax.__version__}

    def setup(self, pm: PreparedModel, cold: bool, workdir: Path) -> Ready:
        model = self.keras.saving.load_model(pm.keras_path, compile=False)
        tv = [v.value for v in model.trainable_variables]
        ntv = [v.value for v in model.non_trainable_variables]
        fn = self.jax.jit(lambda tv, ntv, x: model.stateless_call(tv, ntv, x, training=False)[0])
        return Ready(lambda x: np.asarray(fn(tv, ntv, x)))

    def prepare_inputs(self, xs: list[np.ndarray]) -> Any:
        return xs[0] if len(xs) == 1 else list(xs)
