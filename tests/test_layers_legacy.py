"""Layers only older Keras writes.

- Keras 1 / 2.0 `Merge` (every mode), `MaxoutDense` and `Highway`: modern Keras cannot write them, so
  the configs are written here by hand the way Keras 2.0 (and Keras 1.2) wrote them, the weights as
  its HDF5 files held them, and the expected numbers come from NumPy reference math.
- Keras 2 `LocallyConnected1D/2D` (all three implementations, both data formats) and Keras 2
  spellings of other layers: files written by real tf_keras
  (tests/fixtures/make_keras2_layer_fixtures.py) with tf_keras's outputs beside them.
"""
import json
from pathlib import Path

import h5py
import numpy as np
import pytest

import kerasjit
from kerasjit.compiler.interpret import interpret
from layer_check import graph_of
from oracle import assert_matches

FIXTURES = Path(__file__).parent / "fixtures" / "keras2_layers"


# ----------------------------------------------------------------------------- hand-written Keras 2.0 files
def _input(name: str, dim: int) -> dict:
    return {"name": name, "class_name": "InputLayer", "inbound_nodes": [],
            "config": {"batch_input_shape": [None, dim], "dtype": "float32", "sparse": False, "name": name}}


def _node(name: str, cls: str, config: dict, inputs: list[str], keras1: bool = False) -> dict:
    refs = [[i, 0, 0] if keras1 else [i, 0, 0, {}] for i in inputs]
    return {"name": name, "class_name": cls, "config": {"name": name, **config}, "inbound_nodes": [refs]}


def _merge(name: str, mode: str, inputs: list[str], **extra) -> dict:
    cfg = {"mode": mode, "mode_type": "raw", "concat_axis": -1, "dot_axes": -1, "output_shape": None,
           "output_shape_type": "raw", "output_mask": None, "output_mask_type": "raw", "arguments": {}}
    return _node(name, "Merge", {**cfg, **extra}, inputs)


def _write(tmp_path: Path, model: dict, weights: dict[str, list[tuple[str, np.ndarray]]], version: str):
    """The model as Keras 2.0 saved it: JSON + save_weights file, and a full-model .h5."""
    layer_names = [layer["name"] for layer in model["config"]["layers"]]

    def fill(group: h5py.Group) -> None:
        group.attrs["layer_names"] = [n.encode() for n in layer_names]
        group.attrs["keras_version"] = version.encode()
        group.attrs["backend"] = b"tensorflow"
        for n in layer_names:
            g = group.create_group(n)
            ws = weights.get(n, [])
            g.attrs["weight_names"] = [f"{n}/{w}".encode() for w, _ in ws]
            for w, arr in ws:
                g.create_dataset(f"{n}/{w}", data=arr)
    text = json.dumps({**model, "keras_version": version, "backend": "tensorflow"})
    (tmp_path / "model.json").write_text(text)
    with h5py.File(tmp_path / "weights.h5", "w") as f:
        fill(f)
    with h5py.File(tmp_path / "model.h5", "w") as f:
        f.attrs["model_config"] = text.encode()
        f.attrs["keras_version"] = version.encode()
        f.attrs["backend"] = b"tensorflow"
        fill(f.create_group("model_weights"))
    return (tmp_path / "model.json", tmp_path / "weights.h5"), (tmp_path / "model.h5",)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _functional(name: str, layers: list[dict], inputs: list[str], outputs: list[str]) -> dict:
    return {"class_name": "Model", "config": {"name": name, "layers": layers,
                                              "input_layers": [[i, 0, 0] for i in inputs],
                                              "output_layers": [[o, 0, 0] for o in outputs]}}


def legacy_model(keras1: bool, rng: np.random.Generator):
    """Merge in every mode, MaxoutDense and Highway; returns (config, weights, reference function)."""
    d = 6
    layers = [_input("a", d), _input("b", d), _input("c", d)]
    layers += [
        _merge("m_sum", "sum", ["a", "b", "c"]),
        _merge("m_mul", "mul", ["a", "b"]),
        _merge("m_ave", "ave", ["a", "b", "c"]),
        _merge("m_max", "max", ["a", "c"]),
        _merge("m_concat", "concat", ["a", "b"], concat_axis=1),
        _merge("m_dot", "dot", ["a", "b"], dot_axes=[1, 1]),
        _merge("m_cos", "cos", ["b", "c"], dot_axes=1),
        _node("maxout", "MaxoutDense", {"output_dim": 4, "nb_feature": 3, "init": "glorot_uniform", "bias": True,
                                        "input_dim": None}, ["m_sum"], keras1),
        _node("highway", "Highway", {"init": "glorot_uniform", "activation": "tanh", "bias": True,
                                     "input_dim": None}, ["m_ave"], keras1),
        _node("highway_nb", "Highway", {"init": "glorot_uniform", "activation": "linear", "bias": False,
                                        "input_dim": None}, ["m_max"], keras1),
    ]
    outputs = ["m_mul", "m_concat", "m_dot", "m_cos", "maxout", "highway", "highway_nb"]
    if keras1:
        for layer in layers:
            for node in layer["inbound_nodes"]:
                for ref in node:
                    del ref[3:]
    w = {k: rng.normal(0, 0.5, s).astype(np.float32) for k, s in [
        ("mW", (3, d, 4)), ("mb", (3, 4)), ("hW", (d, d)), ("hWc", (d, d)), ("hb", (d,)), ("hbc", (d,)),
        ("nW", (d, d)), ("nWc", (d, d))]}
    highway = [("W:0", w["hW"]), ("b:0", w["hb"]), ("W_carry:0", w["hWc"]), ("b_carry:0", w["hbc"])] if keras1 \
        else [("W:0", w["hW"]), ("W_carry:0", w["hWc"]), ("b:0", w["hb"]), ("b_carry:0", w["hbc"])]
    weights = {"maxout": [("W:0", w["mW"]), ("b:0", w["mb"])], "highway": highway,
               "highway_nb": [("W:0", w["nW"]), ("W_carry:0", w["nWc"])]}

    def reference(a, b, c):
        a, b, c = (v.astype(np.float64) for v in (a, b, c))
        s, ave, mx = a + b + c, (a + b + c) / 3, np.maximum(a, c)
        dot = (a * b).sum(1, keepdims=True)
        cos = (b * c).sum(1, keepdims=True) / np.maximum(np.sqrt((b * b).sum(1, keepdims=True)
                                                                 * (c * c).sum(1, keepdims=True)), 1e-7)
        maxout = (np.einsum("ni,fio->nfo", s, w["mW"]) + w["mb"]).max(axis=1)
        t = _sigmoid(ave @ w["hWc"] + w["hbc"])
        highway = np.tanh(ave @ w["hW"] + w["hb"]) * t + (1 - t) * ave
        t2 = _sigmoid(mx @ w["nWc"])
        highway_nb = (mx @ w["nW"]) * t2 + (1 - t2) * mx
        return [a * b, np.concatenate([a, b], 1), dot, cos, maxout, highway, highway_nb]
    return _functional("legacy", layers, ["a", "b", "c"], outputs), weights, reference


@pytest.mark.parametrize("keras1", [False, True], ids=["keras2.0", "keras1.2"])
def test_legacy_merge_maxout_highway(keras1, tmp_path, cache_dir):
    rng = np.random.default_rng(5)
    model, weights, reference = legacy_model(keras1, rng)
    json_files, h5_files = _write(tmp_path, model, weights, "1.2.2" if keras1 else "2.0.8")
    xs = [rng.standard_normal((3, 6)).astype(np.float32) for _ in range(3)]
    ref = [np.asarray(r) for r in reference(*xs)]
    base = graph_of(json_files)
    assert str(graph_of(h5_files)) == str(base)
    assert_matches(interpret(base, xs), ref, "legacy [interpreted]")
    if not keras1:  # one compile: the Keras 1 files differ only in what the front end reads
        assert_matches(kerasjit.compile(*json_files, cache_dir=cache_dir).predict(xs), ref, "legacy [compiled]")


# ----------------------------------------------------------------------------- files written by tf_keras
def _fixture(name: str):
    with np.load(FIXTURES / f"{name}.npz") as z:
        xs = [z[f"x{i}"] for i in range(len(z.files)) if f"x{i}" in z.files]
        ys = [z[f"y{i}"] for i in range(len(z.files)) if f"y{i}" in z.files]
    return xs, ys


@pytest.mark.parametrize("name", ["locally_connected", "keras2_spellings"])
def test_keras2_fixtures(name, cache_dir):
    """tf_keras's own numbers, from the full .h5 and JSON + weights (the same graph), interpreted; the
    LocallyConnected layers, whose code paths no Keras 3 test takes, compiled too."""
    xs, ys = _fixture(name)
    h5 = (FIXTURES / f"{name}.h5",)
    g = graph_of(h5)
    assert str(graph_of((FIXTURES / f"{name}.json", FIXTURES / f"{name}_weights.h5"))) == str(g)
    assert_matches(interpret(g, xs), ys, f"{name} [interpreted]")
    if name == "locally_connected":
        assert_matches(kerasjit.compile(*h5, cache_dir=cache_dir).predict(xs), ys, f"{name} [compiled]")
