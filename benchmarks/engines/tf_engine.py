"""TensorFlow: the tf.keras (tf_keras) build loaded from model.h5, as a `tf.function`, on the CPU.

Cold setup: `tf_keras.models.load_model` + `tf.function(jit_compile=False)` with a batch-polymorphic
input signature (one trace serves every batch, like kerasjit's symbolic batch) + the first call; warm:
the same again in the same process. Threads: intra-op and inter-op pools both set to --threads.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..files import PreparedModel
from . import Engine, EngineUnavailable, Ready


class TensorFlow(Engine):
    """tf.keras model called with `training=False` inside `tf.function`; numpy in, `.numpy()` out."""

    name = "tensorflow"
    device = "cpu"

    def load(self, threads: int) -> dict[str, str]:
        os.environ["TF_USE_LEGACY_KERAS"] = "1"
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        try:
            import tensorflow as tf
            import tf_keras
        except ImportError as e:
            raise EngineUnavailable(f"tensorflow/tf_keras not importable ({e})") from e
        tf.config.set_visible_devices([], "GPU")
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
        self.tf, self.tf_keras = tf, tf_keras
        return {"tensorflow": tf.__version__, "tf_keras": tf_keras.__version__}

    def setup(self, pm: PreparedModel, cold: bool, workdir: Path) -> Ready:
        if not pm.h5_path.exists():
            raise RuntimeError(f"no tf.keras model: {pm.prep('tf').get('error', 'preparation did not run')}")
        tf = self.tf
        model = self.tf_keras.models.load_model(pm.h5_path, compile=False)
        specs = [tf.TensorSpec((None, *s.shape), s.dtype) for s in pm.info.inputs]
        if len(specs) == 1:
            fn = tf.function(lambda x: model(x, training=False), input_signature=specs, jit_compile=False)
            return Ready(lambda xs: fn(xs[0]).numpy())
        fn = tf.function(lambda *x: model(list(x), training=False), input_signature=specs, jit_compile=False)
        return Ready(lambda xs: fn(*xs).numpy())

    def prepare_inputs(self, xs: list[Any]) -> Any:
        return xs
