"""Build, randomise and save one model: run as a subprocess, one framework per process.

    python -m benchmarks.prepare keras3 --model mnist --dir OUT/models/mnist
    python -m benchmarks.prepare tf     --model mnist --dir OUT/models/mnist [--onnx]

`keras3` (Keras 3, JAX backend) writes model.keras, weights.npz, verify_inputs.npz, reference.npz.
`tf` (tf_keras, `TF_USE_LEGACY_KERAS=1`) rebuilds the model from the same builder, copies weights.npz in
by layer index, checks its output against the reference, writes model.h5 and, with `--onnx`, converts
the reloaded h5 model with tf2onnx (the conversion time is ONNX Runtime's "cold setup" share).
Each step writes `prep_<step>.json`; the process exits 1 when the step failed.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np

from . import files, models
from .util import hide_tensorflow, short_reason
from .files import PreparedModel

ONNX_OPSET = 17


def prepare_keras3(pm: PreparedModel) -> dict[str, Any]:
    """The Keras 3 step (see the module docstring); returns its JSON record."""
    os.environ["KERAS_BACKEND"] = "jax"
    # the reference must be plain fp32: JAX on a GPU would use TF32 for matrix products by default
    os.environ["JAX_PLATFORMS"] = "cpu"
    hide_tensorflow()
    import keras

    from .weights import export_layers, randomize

    info = pm.info
    t0 = time.perf_counter()
    keras.utils.set_random_seed(files.SEED_WEIGHTS)
    model = info.build(keras)
    calib = models.make_inputs(info, info.calibration_batch, files.SEED_CALIBRATION)
    randomize(keras, model, calib, files.SEED_WEIGHTS)
    model.save(pm.keras_path)
    np.savez(pm.dir / "weights.npz", **export_layers(model))
    xs = models.make_inputs(info, files.VERIFY_BATCH, files.SEED_VERIFY)
    np.savez(pm.dir / "verify_inputs.npz", **{f"x{i}": x for i, x in enumerate(xs)})
    y = np.asarray(model(xs if len(xs) > 1 else xs[0], training=False))
    np.savez(pm.dir / "reference.npz", y=y)
    return {"ok": True, "keras_version": keras.__version__, "backend": keras.backend.backend(),
            "params": int(model.count_params()), "layers": len(model.layers),
            "output_shape": list(y.shape), "output_max_abs": float(np.max(np.abs(y))),
            "build_s": time.perf_counter() - t0}


def prepare_tf(pm: PreparedModel, want_onnx: bool) -> dict[str, Any]:
    """The tf.keras step (see the module docstring); returns its JSON record."""
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    import tensorflow as tf
    import tf_keras

    from .weights import import_layers

    tf.config.set_visible_devices([], "GPU")
    info = pm.info
    model = info.build(tf_keras)
    with np.load(pm.dir / "weights.npz") as f:
        import_layers(model, {k: f[k] for k in f.files})
    xs = pm.verify_inputs()
    y = model(xs if len(xs) > 1 else xs[0], training=False).numpy()
    record: dict[str, Any] = {"ok": True, "tf_version": tf.__version__, "tf_keras_version": tf_keras.__version__,
                              "verify": files.compare(y, pm.reference())}
    model.save(pm.h5_path)
    if not want_onnx:
        return record
    try:
        import tf2onnx

        record["tf2onnx_version"] = tf2onnx.__version__
        t0 = time.perf_counter()
        loaded = tf_keras.models.load_model(pm.h5_path, compile=False)
        t1 = time.perf_counter()
        spec = [tf.TensorSpec((None, *s.shape), s.dtype, name=s.name) for s in info.inputs]
        tf2onnx.convert.from_keras(loaded, input_signature=spec, opset=ONNX_OPSET, output_path=str(pm.onnx_path))
        t2 = time.perf_counter()
        record.update(onnx_ok=True, onnx_opset=ONNX_OPSET, h5_load_s=t1 - t0, onnx_convert_s=t2 - t1)
    except Exception as e:  # noqa: BLE001 - any converter failure is a table entry, not a crash
        pm.onnx_path.unlink(missing_ok=True)
        record.update(onnx_ok=False, onnx_error=short_reason(e), onnx_traceback=traceback.format_exc())
    return record


def main(argv: list[str] | None = None) -> int:
    """Command line entry point of the preparation subprocess."""
    ap = argparse.ArgumentParser(prog="python -m benchmarks.prepare")
    ap.add_argument("step", choices=["keras3", "tf"])
    ap.add_argument("--model", required=True)
    ap.add_argument("--dir", required=True, type=Path)
    ap.add_argument("--onnx", action="store_true")
    args = ap.parse_args(argv)
    pm = PreparedModel(args.model, args.dir)
    pm.dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    try:
        record = prepare_keras3(pm) if args.step == "keras3" else prepare_tf(pm, args.onnx)
    except Exception as e:  # noqa: BLE001
        traceback.print_exc()
        record = {"ok": False, "error": short_reason(e), "traceback": traceback.format_exc()}
    record["wall_s"] = time.perf_counter() - t0
    (pm.dir / f"prep_{args.step}.json").write_text(json.dumps(record, indent=1))
    return 0 if record["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
