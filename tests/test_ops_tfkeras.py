"""tf.keras 2 operation layers (TFOpLambda, SlicingOpLambda) in files written by real tf_keras 2.21
(tests/fixtures/make_keras2_ops_fixtures.py), against tf.keras's own outputs stored beside them."""
from pathlib import Path

import numpy as np
import pytest

import kerasjit
from kerasjit.compiler.frontend import lower
from kerasjit.compiler.interpret import interpret
from kerasjit.encoder import read_model
from kerasjit.errors import UnsupportedLayerError
from layer_check import graph_of
from oracle import assert_matches

FIXTURES = Path(__file__).parent / "fixtures" / "keras2"


def _fixture(name: str) -> tuple[list[np.ndarray], list[np.ndarray]]:
    with np.load(FIXTURES / f"{name}.npz") as z:
        xs = [z[f"x{i}"] for i in range(len(z.files)) if f"x{i}" in z.files]
        ys = [z[f"y{i}"] for i in range(len(z.files)) if f"y{i}" in z.files]
    return xs, ys


@pytest.mark.parametrize("name", ["ops_math", "ops_layout"])
def test_tfkeras_operation_layers(name, cache_dir):
    """Compiled from the full .h5; JSON + weights lower to the same graph."""
    xs, ys = _fixture(name)
    h5 = (FIXTURES / f"{name}.h5",)
    assert str(graph_of((FIXTURES / f"{name}.json", FIXTURES / f"{name}_weights.h5"))) == str(graph_of(h5))
    cm = kerasjit.compile(*h5, cache_dir=cache_dir)
    assert_matches(cm.predict(xs if len(xs) > 1 else xs[0]), ys, f"{name} [compiled]")
    assert_matches(cm.predict([x[:1] for x in xs] if len(xs) > 1 else xs[0][:1]), [y[:1] for y in ys],
                   f"{name} [compiled, batch 1]")


def test_tfkeras_config_forms(tmp_path):
    """The node forms tf.keras writes: a constant first argument, tensors among the keyword arguments,
    a bare entry for a single tensor, and slice specs with steps, newaxis and ellipsis."""
    spec = read_model(FIXTURES / "ops_layout.h5")
    layers = {lc["config"]["name"]: lc for lc in spec.config["config"]["layers"]}
    functions = {lc["config"].get("function") for lc in layers.values() if lc["class_name"] == "TFOpLambda"}
    assert {"__operators__.add", "compat.v1.transpose", "reshape", "split", "compat.v1.gather", "linalg.matmul",
            "one_hot", "stack", "concat"} <= functions
    specs = [lc["inbound_nodes"][0][3]["slice_spec"] for lc in layers.values() if lc["class_name"] == "SlicingOpLambda"]
    assert any({"class_name": "__ellipsis__"} in s for s in specs) and any(None in s for s in specs)
    xs, ys = _fixture("ops_math")
    assert_matches(interpret(graph_of((FIXTURES / "ops_math.h5",)), xs), ys, "ops_math [interpreted]")


def test_tfkeras_unknown_function_is_listed(tmp_path):
    spec = read_model(FIXTURES / "ops_math.h5")
    for lc in spec.config["config"]["layers"]:
        if lc["config"].get("function") == "math.reciprocal":
            lc["config"]["function"] = "math.bessel_i0"
    with pytest.raises(UnsupportedLayerError) as e:
        lower(spec)
    assert "(TFOpLambda): tf.math.bessel_i0(<tensor tf.__operators__.add" in str(e.value)
    assert "kerasjit.register_layer" in str(e.value)
