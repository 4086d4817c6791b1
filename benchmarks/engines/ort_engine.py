"""ONNX Runtime, CPU execution provider, on the tf2onnx conversion of the tf.keras model.

Conversion runs once at preparation (prepare.py, in the TensorFlow process): its time (h5 load +
convert) is added to the cold setup; the session creation and first run are timed here. Warm setup:
a second session from the same .onnx file. Threads: intra-op = --threads, sequential execution.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..files import PreparedModel
from . import Engine, EngineUnavailable, Ready


class OnnxRuntime(Engine):
    """`InferenceSession(model.onnx, providers=["CPUExecutionProvider"])`, all graph optimisations on."""

    name = "onnxruntime"
    device = "cpu"

    def load(self, threads: int) -> dict[str, str]:
        try:
            import onnxruntime as ort
        except ImportError as e:
            raise EngineUnavailable(f"onnxruntime not importable ({e})") from e
        self.ort, self.threads = ort, threads
        return {"onnxruntime": ort.__version__}

    def cold_extra_s(self, pm: PreparedModel) -> float:
        prep = pm.prep("tf")
        return float(prep.get("h5_load_s", 0.0)) + float(prep.get("onnx_convert_s", 0.0))

    def setup(self, pm: PreparedModel, cold: bool, workdir: Path) -> Ready:
        if not pm.onnx_path.exists():
            prep = pm.prep("tf")
            raise RuntimeError(prep.get("onnx_error") or prep.get("error") or "no ONNX model (tf2onnx did not run)")
        ort = self.ort
        so = ort.SessionOptions()
        so.intra_op_num_threads = self.threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            sess = ort.InferenceSession(str(pm.onnx_path), so, providers=["CPUExecutionProvider"])
        except Exception as e:  # noqa: BLE001 - ORT puts the reason at the end of a long line
            reason = str(e).rsplit("Error ", 1)[-1] if "Error No" in str(e) else str(e)
            raise RuntimeError(f"ONNX Runtime rejects the tf2onnx model: {reason}") from e
        names = [i.name for i in sess.get_inputs()]
        by_keras_name = {n.split(":")[0]: n for n in names}
        order = [by_keras_name.get(s.name, names[k]) for k, s in enumerate(pm.info.inputs)]
        return Ready(lambda xs: sess.run(None, dict(zip(order, xs)))[0])

    def prepare_inputs(self, xs: list[Any]) -> Any:
        return xs
