"""Clear errors, in kerasjit's own exception family, for unsupported models and bad inputs."""
import json

import numpy as np
import pytest

import kerasjit
from kerasjit.errors import InputError, KerasJitError, UnsupportedLayerError, WeightsMismatchError
from oracle import keras, save


def test_unsupported_layers_are_all_listed_at_once(tmp_path, cache_dir):
    path = tmp_path / "model.json"
    cfg = {"class_name": "Sequential", "config": {"name": "s", "layers": [
        {"class_name": "InputLayer", "config": {"batch_shape": [None, 4], "name": "in"}},
        {"class_name": "Dense", "config": {"name": "ok", "units": 3}},
        {"class_name": "FancyLayer", "config": {"name": "fancy_1"}},
        {"class_name": "Dense", "config": {"name": "ok2", "units": 3}},
        {"class_name": "OtherLayer", "config": {"name": "other_7"}},
    ]}, "keras_version": "3.0.0"}
    path.write_text(json.dumps(cfg))
    weights = tmp_path / "w.h5"
    import h5py
    with h5py.File(weights, "w") as f:
        f.attrs["layer_names"] = np.array([b"ok", b"fancy_1", b"ok2", b"other_7"])
        for n in ("fancy_1", "other_7"):
            f.create_group(n).attrs["weight_names"] = np.array([], dtype="S1")
        for n in ("ok", "ok2"):
            g = f.create_group(n)
            g.attrs["weight_names"] = np.array([f"{n}/kernel:0".encode(), f"{n}/bias:0".encode()])
            g.create_dataset(f"{n}/kernel:0", data=np.zeros((4 if n == "ok" else 3, 3), np.float32))
            g.create_dataset(f"{n}/bias:0", data=np.zeros(3, np.float32))
    with pytest.raises(UnsupportedLayerError) as e:
        kerasjit.compile(path, weights, cache_dir=cache_dir)
    msg = str(e.value)
    assert "fancy_1 (FancyLayer)" in msg and "other_7 (OtherLayer)" in msg and "2 layer(s)" in msg
    assert [(n, c) for n, c, _ in e.value.layers] == [("fancy_1", "FancyLayer"), ("other_7", "OtherLayer")]
    assert str(path) in msg


def test_weights_of_another_shape_name_the_layer(tmp_path, cache_dir):
    k = keras()
    a = k.Sequential([k.Input((5,)), k.layers.Dense(3, name="d")])
    b = k.Sequential([k.Input((5,)), k.layers.Dense(4, name="d")])
    ja, _ = save(a, tmp_path / "a", "json")
    _, wb = save(b, tmp_path / "b", "json")
    with pytest.raises(KerasJitError) as e:
        kerasjit.compile(ja, wb, cache_dir=cache_dir)
    assert "'d'" in str(e.value)
    assert isinstance(e.value, (WeightsMismatchError, kerasjit.ModelFormatError))


@pytest.fixture(scope="module")
def two_input_model(tmp_path_factory):
    k = keras()
    a, b = k.Input((3,), name="a"), k.Input((2, 2), name="b")
    out = k.layers.Concatenate()([a, k.layers.Flatten()(b)])
    m = k.Model([a, b], k.layers.Dense(2)(out))
    d = tmp_path_factory.mktemp("m")
    return kerasjit.compile(save(m, d, "keras")[0], cache_dir=d / "cache"), m


def test_predict_input_errors(two_input_model):
    cm, _ = two_input_model
    a, b = np.zeros((2, 3), np.float32), np.zeros((2, 2, 2), np.float32)
    with pytest.raises(InputError, match=r"expected shape \(batch, 3\), got \(2, 4\)"):
        cm.predict([np.zeros((2, 4)), b])
    with pytest.raises(InputError, match="takes 2 input"):
        cm.predict([a])
    with pytest.raises(InputError, match="unknown \\['c'\\]"):
        cm.predict({"a": a, "b": b, "c": a})
    with pytest.raises(InputError, match="not numeric"):
        cm.predict([a.astype(str), b])
    with pytest.raises(InputError, match="batch 2 differs from the first input.s 3"):
        cm.predict([np.zeros((3, 3)), b])


def test_predict_casts_and_never_modifies_inputs(two_input_model):
    cm, m = two_input_model
    a = np.arange(12, dtype=np.float64).reshape(4, 3)[:, ::-1]  # float64 and not contiguous
    b = np.ones((4, 2, 2), np.int64)
    a0, b0 = a.copy(), b.copy()
    y = cm.predict({"a": a, "b": b})
    ref = np.asarray(m([a.astype(np.float32), b.astype(np.float32)]))
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5)
    assert np.array_equal(a, a0) and np.array_equal(b, b0)
    assert cm.predict([a[:0], b[:0]]).shape == (0, 2)
