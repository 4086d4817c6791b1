"""The encoder against real Keras: every format a model can be saved in reads back to the weights
`layer.get_weights()` gives, filed under the right layer path, with the writer's version recorded.

Keras 3 (JAX backend) is the oracle for Keras 3 files; tests/fixtures/keras2/ holds files written by
tf.keras 2 (tests/fixtures/make_keras2_fixtures.py) with tf.keras's own get_weights beside them.
No numba needed.
"""
from __future__ import annotations

import json
import os
import re
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest

from kerasjit.encoder import ModelSpec, read_model
from kerasjit.errors import ModelFormatError, WeightsMismatchError

os.environ.setdefault("KERAS_BACKEND", "jax")

KERAS2 = Path(__file__).parent / "fixtures" / "keras2"
KERAS2_MODELS = ("convnet", "functional", "nested", "rnn")
FORMATS = ("keras", "h5", "json+weights.h5", "json+legacy.h5")


# --------------------------------------------------------------------------------------------------
# Keras 3 models, saved once per module in every format


def _randomize(keras, model, rng: np.random.Generator) -> None:
    """Random weights everywhere, BatchNormalization statistics included (variance kept positive)."""
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            _randomize(keras, layer, rng)
        elif layer.weights:
            layer.set_weights([
                (rng.uniform(0.5, 1.5, w.shape) if "variance" in w.name else rng.normal(0, 0.5, w.shape))
                .astype(np.float32)
                for w in layer.weights
            ])


def _sequential(keras):
    L = keras.layers
    return keras.Sequential(
        [
            keras.Input((10, 10, 3)),
            L.Conv2D(4, 3, name="conv"),
            L.BatchNormalization(name="bn"),
            L.DepthwiseConv2D(3, name="dw"),
            L.SeparableConv2D(5, 3, padding="same", name="sep"),
            L.MaxPooling2D(2, name="pool"),
            L.Flatten(name="flat"),
            L.Dense(3, name="logits"),
        ],
        name="seq",
    )


def _functional(keras):
    """Nested Sequential (with BatchNormalization), a Functional nested in it a Sequential (nested
    twice), and a shared Dense layer called on two tensors."""
    L = keras.layers
    inp = keras.Input((8, 8, 3), name="img")
    x = L.ReLU(name="relu")(L.BatchNormalization(name="bn1")(L.Conv2D(4, 3, padding="same", name="c1")(inp)))
    subseq = keras.Sequential(
        [keras.Input((8, 8, 4)), L.Conv2D(4, 1, name="sub_c"), L.BatchNormalization(name="sub_bn")],
        name="subseq",
    )
    g = L.GlobalAveragePooling2D(name="gap")(L.Add(name="add")([x, subseq(x)]))
    deep = keras.Sequential([keras.Input((4,)), L.Dense(4, name="deep_d")], name="deep")
    fin = keras.Input((4,))
    subfun = keras.Model(fin, L.Dense(4, name="fun_d")(deep(fin)), name="subfun")
    shared = L.Dense(4, name="shared")
    h = L.Concatenate(name="cat")([shared(g), shared(subfun(g))])
    return keras.Model(inp, L.Dense(2, name="logits")(h), name="fun")


def _recurrent(keras):
    L = keras.layers
    inp = keras.Input((5, 3))
    x = L.GRU(3, name="gru")(L.LSTM(4, return_sequences=True, name="lstm")(inp))
    return keras.Model(inp, L.Dense(2, name="logits")(x), name="rec")


def _bidirectional(keras):
    L = keras.layers
    inp = keras.Input((5, 3))
    return keras.Model(inp, L.Bidirectional(L.GRU(2), name="bidi")(inp), name="bi")


def _deep_sequential(keras):
    """Twelve layers of one class: groups dense ... dense_11, where string order is not list order."""
    return keras.Sequential([keras.Input((3,))] + [keras.layers.Dense(3, name=f"d{i}") for i in range(12)])


BUILDERS = {
    "sequential": _sequential,
    "functional": _functional,
    "recurrent": _recurrent,
    "bidirectional": _bidirectional,
    "deep_sequential": _deep_sequential,
}


def _save_all(keras, model, d: Path) -> dict[str, tuple[Path, ...]]:
    from keras.src.legacy.saving import legacy_h5_format

    d.mkdir()
    model.save(d / "m.keras")
    model.save(d / "m.h5")
    (d / "m.json").write_text(model.to_json())
    model.save_weights(d / "m.weights.h5")
    with h5py.File(d / "legacy_weights.h5", "w") as f:  # what Keras 2's save_weights("w.h5") wrote
        legacy_h5_format.save_weights_to_hdf5_group(f, model)
    return {
        "keras": (d / "m.keras",),
        "h5": (d / "m.h5",),
        "json+weights.h5": (d / "m.json", d / "m.weights.h5"),
        "json+legacy.h5": (d / "m.json", d / "legacy_weights.h5"),
    }


@pytest.fixture(scope="module")
def keras():
    return pytest.importorskip("keras")


@pytest.fixture(scope="module")
def saved(keras, tmp_path_factory) -> dict[str, tuple[object, dict[str, tuple[Path, ...]]]]:
    """name -> (keras model, format -> read_model arguments)."""
    root = tmp_path_factory.mktemp("keras3")
    rng = np.random.default_rng(0)
    out = {}
    for name, build in BUILDERS.items():
        model = build(keras)
        _randomize(keras, model, rng)
        out[name] = (model, _save_all(keras, model, root / name))
    return out


def _expected(keras, model, prefix: str = "") -> dict[str, list[np.ndarray]]:
    """`get_weights()` of every layer with weights, nested models' layers under "outer/inner"."""
    out: dict[str, list[np.ndarray]] = {}
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            out.update(_expected(keras, layer, f"{prefix}{layer.name}/"))
        elif layer.get_weights():
            out[prefix + layer.name] = layer.get_weights()
    return out


def _assert_weights(spec: ModelSpec, expected: dict[str, list[np.ndarray]]) -> None:
    assert sorted(spec.weights) == sorted(expected)
    for path, arrays in expected.items():
        got = spec.weights[path]
        assert len(got) == len(arrays) == len(spec.weight_names[path]), path
        for i, (a, b) in enumerate(zip(got, arrays)):
            assert type(a) is np.ndarray and a.dtype == b.dtype, (path, i)
            assert np.array_equal(a, b), f"{path}[{i}] ({spec.weight_names[path][i]})"


# --------------------------------------------------------------------------------------------------
# Keras 3: every model, every format


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name", ["sequential", "functional", "recurrent", "deep_sequential"])
def test_keras3_weights_equal_get_weights(keras, saved, name, fmt):
    model, files = saved[name]
    spec = read_model(*files[fmt])
    _assert_weights(spec, _expected(keras, model))
    assert spec.config["class_name"] == type(model).__name__
    assert spec.format == {"keras": "keras", "h5": "h5"}.get(fmt, "json+h5")


@pytest.mark.parametrize(
    "fmt, version, backend",
    [("keras", True, ""), ("h5", True, "jax"), ("json+weights.h5", False, ""), ("json+legacy.h5", True, "jax")],
)
def test_keras3_version_and_backend_recorded(keras, saved, fmt, version, backend):
    """What the writer recorded, nothing more: metadata.json has no backend, to_json() and a
    `.weights.h5` file record neither."""
    spec = read_model(*saved["functional"][1][fmt])
    assert spec.keras_version == (keras.__version__ if version else "")
    assert spec.backend == backend
    assert spec.keras_major == 3


def test_keras3_weight_names(saved):
    files = saved["functional"][1]
    keras_spec = read_model(*files["keras"])
    assert keras_spec.weight_names["bn1"] == ["vars/0", "vars/1", "vars/2", "vars/3"]
    assert keras_spec.weight_names["subfun/deep/deep_d"] == ["vars/0", "vars/1"]
    h5_spec = read_model(*files["h5"])
    assert h5_spec.weight_names["bn1"] == ["bn1/gamma", "bn1/beta", "bn1/moving_mean", "bn1/moving_variance"]
    assert h5_spec.weight_names["subseq/sub_c"] == ["subseq/sub_c/kernel", "subseq/sub_c/bias"]
    rec = read_model(*saved["recurrent"][1]["keras"])
    assert rec.weight_names["lstm"] == ["cell/vars/0", "cell/vars/1", "cell/vars/2"]


def test_shared_layer_has_one_entry(saved):
    spec = read_model(*saved["functional"][1]["keras"])
    assert len(spec.weights["shared"]) == 2
    assert [p for p in spec.weights if p.endswith("shared")] == ["shared"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_bidirectional_order(keras, saved, fmt):
    """Legacy HDF5 records get_weights order (forward, backward). `.keras`/`.weights.h5` record the
    saving_lib walk order, attribute names sorted: backward_layer before forward_layer; the names
    tell them apart."""
    model, files = saved["bidirectional"]
    spec = read_model(*files[fmt])
    expected = model.get_layer("bidi").get_weights()
    if fmt in ("keras", "json+weights.h5"):
        assert [n.split("/")[0] for n in spec.weight_names["bidi"]] == ["backward_layer"] * 3 + ["forward_layer"] * 3
        expected = expected[3:] + expected[:3]
    else:
        # (the GRU's auto-generated name counts the GRUs made before it in this process: gru, gru_1, ...)
        assert re.fullmatch(r"bidi/forward_gru(_\d+)?/gru_cell/kernel", spec.weight_names["bidi"][0])
    _assert_weights(spec, {"bidi": expected})


def test_keras_file_without_layer_names(keras, saved, tmp_path):
    """tf.keras and early Keras 3 wrote no `name` attribute: groups are matched by the walk's own
    naming (snake-cased class + counter, in config order), dense_10 included."""
    for name in ("functional", "deep_sequential"):
        model, files = saved[name]
        stripped = tmp_path / f"{name}.weights.h5"
        stripped.write_bytes(files["json+weights.h5"][1].read_bytes())
        with h5py.File(stripped, "r+") as f:
            f.visititems(lambda _, obj: obj.attrs.__delitem__("name") if "name" in obj.attrs else None)
        _assert_weights(read_model(files["json+weights.h5"][0], stripped), _expected(keras, model))


def test_weights_path_overrides_model_weights(keras, saved):
    model, files = saved["sequential"]
    for fmt in ("keras", "h5"):
        spec = read_model(files[fmt][0], files["json+legacy.h5"][1])
        _assert_weights(spec, _expected(keras, model))


def test_unzipped_keras_directory(keras, saved, tmp_path):
    model, files = saved["sequential"]
    with zipfile.ZipFile(files["keras"][0]) as z:
        z.extractall(tmp_path / "unzipped")
    _assert_weights(read_model(tmp_path / "unzipped"), _expected(keras, model))


# --------------------------------------------------------------------------------------------------
# Errors: always ModelFormatError / WeightsMismatchError, naming the file


def _copy(src: Path, dst: Path, data: bytes | None = None) -> Path:
    dst.write_bytes(src.read_bytes() if data is None else data)
    return dst


def test_missing_file(tmp_path):
    with pytest.raises(ModelFormatError, match="nope.keras.*no such file"):
        read_model(tmp_path / "nope.keras")


@pytest.mark.parametrize("suffix", [".keras", ".h5", ".json"])
def test_empty_file(tmp_path, suffix):
    path = _copy(Path(__file__), tmp_path / f"empty{suffix}", b"")
    with pytest.raises(ModelFormatError, match=f"empty{suffix}.*empty"):
        read_model(path)


@pytest.mark.parametrize("fmt", ["keras", "h5"])
def test_truncated_model(saved, tmp_path, fmt):
    src = saved["sequential"][1][fmt][0]
    path = _copy(src, tmp_path / src.name, src.read_bytes()[: src.stat().st_size // 2])
    with pytest.raises(ModelFormatError, match=src.name) as info:
        read_model(path)
    assert info.value.__cause__ is not None


def test_truncated_weights_inside_zip(saved, tmp_path):
    src = saved["sequential"][1]["keras"][0]
    path = tmp_path / "cut.keras"
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(path, "w") as zout:
        for item in zin.namelist():
            data = zin.read(item)
            zout.writestr(item, data[: len(data) // 2] if item == "model.weights.h5" else data)
    with pytest.raises(ModelFormatError, match="cut.keras:model.weights.h5"):
        read_model(path)


def test_truncated_weights_file(saved, tmp_path):
    json_path, weights = saved["sequential"][1]["json+weights.h5"]
    cut = _copy(weights, tmp_path / "cut.weights.h5", weights.read_bytes()[:3000])
    with pytest.raises(ModelFormatError, match="cut.weights.h5"):
        read_model(json_path, cut)


def test_not_a_keras_file(tmp_path):
    path = _copy(Path(__file__), tmp_path / "model.keras", b"\x00\x01garbage" * 20)
    with pytest.raises(ModelFormatError, match="model.keras.*not a Keras model file"):
        read_model(path)


def test_hdf5_that_is_not_keras(tmp_path):
    path = tmp_path / "data.h5"
    with h5py.File(path, "w") as f:
        f["x"] = np.zeros(3)
    with pytest.raises(ModelFormatError, match="data.h5.*model_config"):
        read_model(path)


@pytest.mark.parametrize("drop", ["config.json", "model.weights.h5"])
def test_keras_zip_missing_member(saved, tmp_path, drop):
    src = saved["sequential"][1]["keras"][0]
    path = tmp_path / "partial.keras"
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(path, "w") as zout:
        for item in zin.namelist():
            if item != drop:
                zout.writestr(item, zin.read(item))
    with pytest.raises(ModelFormatError, match=f"partial.keras.*{drop}"):
        read_model(path)


def test_malformed_json(saved, tmp_path):
    weights = saved["sequential"][1]["json+weights.h5"][1]
    bad = _copy(weights, tmp_path / "bad.json", b'{"class_name": "Sequential", "config": {')
    with pytest.raises(ModelFormatError, match="bad.json.*malformed JSON") as info:
        read_model(bad, weights)
    assert isinstance(info.value.__cause__, json.JSONDecodeError)


def test_malformed_config_json_in_zip(saved, tmp_path):
    src = saved["sequential"][1]["keras"][0]
    path = tmp_path / "badcfg.keras"
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(path, "w") as zout:
        for item in zin.namelist():
            zout.writestr(item, b"[1, 2" if item == "config.json" else zin.read(item))
    with pytest.raises(ModelFormatError, match="badcfg.keras:config.json.*malformed JSON"):
        read_model(path)


def test_json_without_weights(saved):
    with pytest.raises(ModelFormatError, match="weights_path"):
        read_model(saved["sequential"][1]["json+weights.h5"][0])


@pytest.mark.parametrize("fmt", ["json+weights.h5", "json+legacy.h5"])
def test_weights_only_file_as_model(saved, fmt):
    with pytest.raises(ModelFormatError, match="weights"):
        read_model(saved["sequential"][1][fmt][1])


@pytest.mark.parametrize("fmt", ["json+weights.h5", "json+legacy.h5", "keras"])
def test_weights_of_another_model(saved, fmt):
    """The functional config with the sequential model's weights: the message lists both sides."""
    config = saved["functional"][1]["json+weights.h5"][0]
    weights = saved["sequential"][1][fmt][-1]
    with pytest.raises(WeightsMismatchError) as info:
        read_model(config, weights)
    message = str(info.value)
    assert weights.name in message and "c1" in message and "conv" in message


# --------------------------------------------------------------------------------------------------
# Hand-written files: Keras 1 names, chunked attributes, ten and more variables


def _write_legacy(path: Path, config: dict, layers: dict[str, dict[str, np.ndarray]], *, chunk: bool = False) -> None:
    """A Keras 1-style full-model HDF5 file (bytes attributes, no keras_version)."""
    with h5py.File(path, "w") as f:
        f.attrs["model_config"] = json.dumps(config).encode()
        g = f.create_group("model_weights")
        names = np.array([n.encode() for n in layers])
        if chunk:
            g.attrs["layer_names0"], g.attrs["layer_names1"] = names[:1], names[1:]
        else:
            g.attrs["layer_names"] = names
        for layer, weights in layers.items():
            lg = g.create_group(layer)
            lg.attrs["weight_names"] = np.array([n.encode() for n in weights])
            for n, v in weights.items():
                lg[n] = v


def test_keras1_names_and_version(tmp_path):
    def dense(name: str) -> dict:
        return {"class_name": "Dense", "config": {"name": name, "output_dim": 2, "init": "glorot_uniform"}}

    inner = {"class_name": "Sequential", "config": [dense("dense_1"), dense("dense_10")]}
    inner["name"] = "sequential_1"
    config = {
        "class_name": "Model",
        "config": {
            "name": "model_1",
            "layers": [
                {"class_name": "InputLayer", "name": "input_1", "config": {"name": "input_1"}},
                {"class_name": "Convolution2D", "name": "convolution2d_1",
                 "config": {"name": "convolution2d_1", "nb_filter": 2, "border_mode": "same"}},
                inner,
            ],
            "input_layers": [["input_1", 0, 0]],
            "output_layers": [["sequential_1", 0, 0]],
        },
    }
    rng = np.random.default_rng(1)
    w = {n: rng.normal(size=(2, 2)).astype(np.float32) for n in ("c_W", "c_b", "d10_W", "d1_W")}
    path = tmp_path / "keras1.h5"
    _write_legacy(path, config, {
        "input_1": {},
        "convolution2d_1": {"convolution2d_1_W": w["c_W"], "convolution2d_1_b": w["c_b"]},
        "sequential_1": {"dense_10_W": w["d10_W"], "dense_1_W": w["d1_W"]},
    }, chunk=True)
    spec = read_model(path)
    assert spec.keras_version == "1" and spec.keras_major == 1
    assert spec.weight_names["convolution2d_1"] == ["convolution2d_1_W", "convolution2d_1_b"]
    assert np.array_equal(spec.weights["sequential_1/dense_10"][0], w["d10_W"])
    assert np.array_equal(spec.weights["sequential_1/dense_1"][0], w["d1_W"])
    assert spec.config == config


def test_more_than_ten_variables_in_numeric_order(tmp_path):
    config = {"class_name": "Functional", "config": {"name": "m", "layers": [{"class_name": "Custom", "name": "c", "config": {"name": "c"}}]}}
    path = tmp_path / "many.weights.h5"
    with h5py.File(path, "w") as f:
        v = f.create_group("layers/custom/vars")
        v.attrs["name"] = "c"
        for i in range(12):
            v[str(i)] = np.full(1, i, np.float32)
    (tmp_path / "many.json").write_text(json.dumps(config))
    spec = read_model(tmp_path / "many.json", path)
    assert [int(a[0]) for a in spec.weights["c"]] == list(range(12))
    assert spec.weight_names["c"][10] == "vars/10"


# --------------------------------------------------------------------------------------------------
# tf.keras 2 fixtures


def _oracle(name: str) -> dict[str, list[np.ndarray]]:
    out: dict[str, dict[int, np.ndarray]] = {}
    with np.load(KERAS2 / f"{name}_layer_weights.npz") as z:
        for key in z.files:
            path, i = key.split("|")
            out.setdefault(path, {})[int(i)] = z[key]
    return {p: [ws[i] for i in sorted(ws)] for p, ws in out.items()}


def _keras2_args(name: str, fmt: str) -> tuple[Path, ...]:
    return {
        "h5": (KERAS2 / f"{name}.h5",),
        "json+h5": (KERAS2 / f"{name}.json", KERAS2 / f"{name}_weights.h5"),
        "keras": (KERAS2 / f"{name}.keras",),
    }[fmt]


@pytest.mark.parametrize("fmt", ["h5", "json+h5", "keras"])
@pytest.mark.parametrize("name", KERAS2_MODELS)
def test_keras2_fixture_weights(name, fmt):
    expected = _oracle(name)
    spec = read_model(*_keras2_args(name, fmt))
    if fmt == "keras" and "bigru" in expected:  # walk order: backward_layer first
        expected["bigru"] = expected["bigru"][3:] + expected["bigru"][:3]
    _assert_weights(spec, expected)
    with np.load(KERAS2 / f"{name}.npz") as z:
        assert spec.keras_version == str(z["keras_version"]) and spec.keras_version.startswith("2.")
        assert z["x"].shape[0] == z["y"].shape[0] == 2
    assert spec.keras_major == 2
    assert spec.backend == ("" if fmt == "keras" else "tensorflow")


@pytest.mark.parametrize("fmt", ["h5", "json+h5"])
def test_keras2_weight_names(fmt):
    fun = read_model(*_keras2_args("functional", fmt))
    assert fun.weight_names["stem_bn"] == [
        "stem_bn/gamma:0", "stem_bn/beta:0", "stem_bn/moving_mean:0", "stem_bn/moving_variance:0"
    ]
    assert fun.weight_names["sep"] == ["sep/depthwise_kernel:0", "sep/pointwise_kernel:0", "sep/bias:0"]
    # a nested model's layers are recorded without the nested model's name
    assert fun.weight_names["subseq/sub_conv"] == ["sub_conv/kernel:0", "sub_conv/bias:0"]
    assert fun.weight_names["subfun/sub_dense1"] == ["sub_dense1/kernel:0", "sub_dense1/bias:0"]
    # ... and a model nested twice without the middle model's name either
    nested = read_model(*_keras2_args("nested", fmt))
    assert nested.weight_names["mid/inner/deep"] == ["deep/kernel:0", "deep/bias:0"]
    rnn = read_model(*_keras2_args("rnn", fmt))
    assert rnn.weight_names["lstm"][0] == "lstm/lstm_cell/kernel:0"
    assert rnn.weight_names["bigru"][3] == "bigru/backward_gru/gru_cell/kernel:0"


def test_keras2_json_keeps_its_wrapper_keys():
    spec = read_model(*_keras2_args("convnet", "json+h5"))
    assert spec.config["keras_version"].startswith("2.") and spec.config["backend"] == "tensorflow"
    assert spec.config["class_name"] == "Sequential"


def test_keras2_fixtures_are_small():
    for path in KERAS2.iterdir():
        assert path.stat().st_size < 200_000, path.name


def test_keras2_full_model_as_weights_file():
    """A weights file is read by content: a Keras 2 full-model .h5 also serves as weights_path."""
    spec = read_model(KERAS2 / "convnet.json", KERAS2 / "convnet.h5")
    _assert_weights(spec, _oracle("convnet"))
