"""Bad model files, end to end through `kerasjit.compile`: every one fails with a `KerasJitError` whose
message names the file, the layer and what was expected against what was found; NaN/Inf weights
compile with a warning. (tests/test_encoder.py checks the readers alone.)"""
from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
import warnings
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest

import kerasjit
from kerasjit.errors import (KerasJitError, ModelFormatError, NonFiniteWeightsWarning, UnsupportedLayerError,
                             WeightsMismatchError)
from oracle import assert_matches, keras, keras_predict
from reliability_util import report, save_all, small_functional

CASES: list[str] = []


@pytest.fixture(scope="module", autouse=True)
def _report_counts():
    yield
    report("bad model files", cases=len(CASES))


@pytest.fixture(scope="module")
def model_files(tmp_path_factory):
    m = small_functional()
    return m, save_all(m, tmp_path_factory.mktemp("files"))


def expect(exc: type, args: tuple, *fragments: str, cache_dir) -> KerasJitError:
    """Compile `args`; assert it raises `exc` and that the message holds every fragment."""
    CASES.append(" + ".join(map(str, args)))
    with pytest.raises(exc) as info:
        kerasjit.compile(*args, cache_dir=cache_dir)
    msg = str(info.value)
    for frag in fragments:
        assert frag in msg, f"{frag!r} not in the message: {msg}"
    return info.value


def _copy(src: str, dst: Path) -> Path:
    shutil.copy(src, dst)
    return dst


# ------------------------------------------------------------------ files that are not Keras models

@pytest.mark.parametrize("suffix", [".keras", ".h5", ".json"])
def test_empty_file(tmp_path, cache_dir, suffix):
    p = tmp_path / f"empty{suffix}"
    p.write_bytes(b"")
    expect(ModelFormatError, (str(p),), str(p), "empty", cache_dir=cache_dir)


@pytest.mark.parametrize("content", [b"\x89PNG\r\n\x1a\n" + bytes(100), b"hello world\n", bytes(range(256)) * 8,
                                     b"PK\x03\x04garbage", b"\x89HDF\r\n\x1a\n" + bytes(64)])
def test_not_a_model_file(tmp_path, cache_dir, content):
    p = tmp_path / "model.keras"
    p.write_bytes(content)
    expect(ModelFormatError, (str(p),), str(p), cache_dir=cache_dir)


@pytest.mark.parametrize("fmt", ["keras", "h5"])
@pytest.mark.parametrize("fraction", [0.02, 0.3, 0.6, 0.95])
def test_truncated_model_file(model_files, tmp_path, cache_dir, fmt, fraction):
    src = Path(model_files[1][fmt][0])
    data = src.read_bytes()
    p = tmp_path / f"cut{src.suffix}"
    p.write_bytes(data[:int(len(data) * fraction)])
    err = expect(KerasJitError, (str(p),), str(p), cache_dir=cache_dir)
    assert isinstance(err, (ModelFormatError, WeightsMismatchError))


def test_truncated_weights_file(model_files, tmp_path, cache_dir):
    j, w = model_files[1]["json"]
    p = tmp_path / "cut.weights.h5"
    p.write_bytes(Path(w).read_bytes()[:3000])
    expect(ModelFormatError, (j, str(p)), str(p), cache_dir=cache_dir)


def _compile_in_child(path: Path, cache_dir, timeout: float = 120) -> str:
    """`kerasjit.compile(path)` in a child process, so that a file that hangs HDF5 fails the test instead
    of hanging the suite; the exception's class and message, or "compiled"."""
    code = ("import sys, kerasjit\n"
            "try:\n    kerasjit.compile(sys.argv[1], cache_dir=sys.argv[2]); print('compiled')\n"
            "except kerasjit.KerasJitError as e:\n    print(type(e).__name__ + ': ' + str(e))\n")
    try:
        done = subprocess.run([sys.executable, "-c", code, str(path), str(cache_dir)], capture_output=True,
                              text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"kerasjit.compile({path}) did not return in {timeout} s")
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip().splitlines()[-1]


def test_hdf5_file_that_hangs_h5py(cache_dir):
    """A fuzz-mutated file (tests/fixtures/hang/README.md) whose vlen attribute read loops forever in HDF5."""
    path = Path(__file__).parent / "fixtures" / "hang" / "mutated_backend_attr.h5"
    CASES.append(str(path))
    out = _compile_in_child(path, cache_dir)
    assert out.startswith("ModelFormatError: ") and str(path) in out and "global heap" in out, out


def _heap_objects(data: bytes) -> list[tuple[int, int, int]]:
    """(collection offset, object offset, object index) of every object in the file's global heaps."""
    out = []
    at = data.find(b"GCOL\x01")
    while at >= 0:
        size = int.from_bytes(data[at + 8:at + 16], "little")
        p = at + 16
        while p + 16 <= at + size:
            idx = int.from_bytes(data[p:p + 2], "little")
            n = int.from_bytes(data[p + 8:p + 16], "little")
            out.append((at, p, idx))
            p += 16 + (n + 7) // 8 * 8 if idx else n
        at = data.find(b"GCOL\x01", at + size)
    return out


@pytest.mark.parametrize("damage", ["free space of size 0", "object larger than its collection",
                                    "collection past the end of the file"])
def test_hdf5_corrupt_global_heap(model_files, tmp_path, cache_dir, damage):
    """The variable-length strings of an .h5 model (model_config, ...) live in global heap collections;
    HDF5 hangs or fails deep inside on a damaged one: kerasjit names the file and the byte offset."""
    data = bytearray(Path(model_files[1]["h5"][0]).read_bytes())
    objects = _heap_objects(bytes(data))
    assert objects, "the .h5 file has no global heap: this test would not test anything"
    if damage == "free space of size 0":
        at, p, _ = next(o for o in objects if o[2] == 0)
        data[p + 8:p + 16] = bytes(8)
    elif damage == "object larger than its collection":
        at, p, _ = next(o for o in objects if o[2] > 0)
        data[p + 8:p + 16] = (1 << 20).to_bytes(8, "little")
    else:
        at = objects[0][0]
        data[at + 8:at + 16] = (len(data) + 4096).to_bytes(8, "little")
    path = tmp_path / "heap.h5"
    path.write_bytes(bytes(data))
    CASES.append(f"{path} ({damage})")
    out = _compile_in_child(path, cache_dir)
    assert out.startswith("ModelFormatError: ") and str(path) in out and f"collection at byte {at}" in out, out


@pytest.mark.parametrize("drop", ["config.json", "model.weights.h5"])
def test_keras_zip_missing_member(model_files, tmp_path, cache_dir, drop):
    src = model_files[1]["keras"][0]
    p = tmp_path / "partial.keras"
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(p, "w") as zout:
        for item in zin.infolist():
            if item.filename != drop:
                zout.writestr(item, zin.read(item.filename))
    expect(ModelFormatError, (str(p),), str(p), drop, cache_dir=cache_dir)


# ------------------------------------------------------------------ configs

def _json_variant(model_files, tmp_path, edit, name="variant.json") -> tuple[str, str]:
    j, w = model_files[1]["json"]
    cfg = json.loads(Path(j).read_text())
    edit(cfg)
    p = tmp_path / name
    p.write_text(json.dumps(cfg))
    return str(p), w


def _layer(cfg: dict, name: str) -> dict:
    return next(lc for lc in cfg["config"]["layers"] if lc["name"] == name)


def _history(node_arg: dict) -> list:
    return node_arg["config"]["keras_history"]


@pytest.mark.parametrize("text", ['{"class_name": "Functional", "config": {', "[1, 2, 3]", '"just a string"',
                                  '{"config": {}}', "{}", '{"class_name": "Functional", "config": 7}'])
def test_malformed_json(tmp_path, model_files, cache_dir, text):
    p = tmp_path / "bad.json"
    p.write_text(text)
    expect(ModelFormatError, (str(p), model_files[1]["json"][1]), str(p), cache_dir=cache_dir)


@pytest.mark.parametrize("version", ["9.1.0", "4.0.0", "0.3", "banana"])
def test_unknown_keras_version_in_json(model_files, tmp_path, cache_dir, version):
    args = _json_variant(model_files, tmp_path, lambda c: c.update(keras_version=version))
    expect(ModelFormatError, args, args[0], version, "version", cache_dir=cache_dir)


def test_unknown_keras_version_in_h5(model_files, tmp_path, cache_dir):
    p = _copy(model_files[1]["h5"][0], tmp_path / "future.h5")
    with h5py.File(p, "r+") as f:
        f.attrs["keras_version"] = "7.0.1"
    expect(ModelFormatError, (str(p),), str(p), "7.0.1", cache_dir=cache_dir)


def test_reference_to_a_missing_layer(model_files, tmp_path, cache_dir):
    def edit(c):
        _history(_layer(c, "add")["inbound_nodes"][0]["args"][0][1])[0] = "ghost"
    args = _json_variant(model_files, tmp_path, edit)
    expect(ModelFormatError, args, args[0], "layer 'add' refers to layer 'ghost'", "not in the model config",
           cache_dir=cache_dir)


def test_reference_to_a_missing_call(model_files, tmp_path, cache_dir):
    def edit(c):
        _history(_layer(c, "out")["inbound_nodes"][0]["args"][0])[1] = 3
    args = _json_variant(model_files, tmp_path, edit)
    expect(ModelFormatError, args, args[0], "layer 'out' refers to call 3 of layer 'act'", "1 call(s)",
           cache_dir=cache_dir)


def test_cycle(model_files, tmp_path, cache_dir):
    def edit(c):  # a reads out, out reads act reads add reads a
        _history(_layer(c, "a")["inbound_nodes"][0]["args"][0])[0] = "out"
    args = _json_variant(model_files, tmp_path, edit)
    expect(ModelFormatError, args, args[0], "cycle", cache_dir=cache_dir)


def test_unknown_layer_class(model_files, tmp_path, cache_dir):
    args = _json_variant(model_files, tmp_path, lambda c: _layer(c, "act").update(class_name="Frobnicate"))
    err = expect(UnsupportedLayerError, args, args[0], "act (Frobnicate)", cache_dir=cache_dir)
    assert err.layers == [("act", "Frobnicate", "no lowering rule")]


@pytest.mark.parametrize("edit", ["drop_layers", "layers_not_list", "bad_node", "bad_shape", "no_outputs"])
def test_config_of_the_wrong_shape(model_files, tmp_path, cache_dir, edit):
    def apply(c):
        cfg = c["config"]
        if edit == "drop_layers":
            del cfg["layers"]
        elif edit == "layers_not_list":
            cfg["layers"] = {"a": 1}
        elif edit == "bad_node":
            _layer(c, "out")["inbound_nodes"] = [{"args": [{"class_name": "__keras_tensor__", "config": {}}]}]
        elif edit == "bad_shape":
            _layer(c, "x")["config"]["batch_shape"] = [None, "six"]
        else:
            del cfg["output_layers"]
    args = _json_variant(model_files, tmp_path, apply)
    expect(ModelFormatError, args, args[0], cache_dir=cache_dir)


# ------------------------------------------------------------------ weights

def _h5_variant(model_files, tmp_path, edit, name="variant.h5") -> tuple[str]:
    p = _copy(model_files[1]["h5"][0], tmp_path / name)
    with h5py.File(p, "r+") as f:
        edit(f["model_weights"])
    return (str(p),)


def _replace(group, name: str, data) -> None:
    del group[name]
    group.create_dataset(name, data=data)


def test_weight_missing(model_files, tmp_path, cache_dir):
    def edit(g):
        del g["out/out/bias"]
        g["out"].attrs["weight_names"] = np.array([b"out/kernel"])
    args = _h5_variant(model_files, tmp_path, edit)
    expect(WeightsMismatchError, args, args[0], "layer 'out' (Dense)", "expects 2 weights", "has 1",
           cache_dir=cache_dir)


def test_weight_extra_in_a_layer(model_files, tmp_path, cache_dir):
    def edit(g):
        g["out/out"].create_dataset("extra", data=np.ones(3, np.float32))
        g["out"].attrs["weight_names"] = np.array([b"out/kernel", b"out/bias", b"out/extra"])
    args = _h5_variant(model_files, tmp_path, edit)
    expect(WeightsMismatchError, args, args[0], "layer 'out' (Dense)", "expects 2 weights", "has 3",
           cache_dir=cache_dir)


def test_weight_on_a_weightless_layer(model_files, tmp_path, cache_dir):
    def edit(g):
        g["act"].create_dataset("act/alpha", data=np.ones(5, np.float32))
        g["act"].attrs["weight_names"] = np.array([b"act/alpha"])
    args = _h5_variant(model_files, tmp_path, edit)
    expect(WeightsMismatchError, args, args[0], "layer 'act' (ReLU) takes none", "act/alpha", cache_dir=cache_dir)


def test_weights_of_a_layer_not_in_the_config(model_files, tmp_path, cache_dir):
    def edit(g):
        g.create_group("ghost").attrs["weight_names"] = np.array([b"ghost/k"])
        g["ghost"].create_dataset("ghost/k", data=np.ones(2, np.float32))
        names = [n if isinstance(n, bytes) else n.encode() for n in g.attrs["layer_names"]]
        g.attrs["layer_names"] = np.array(names + [b"ghost"])
    args = _h5_variant(model_files, tmp_path, edit)
    expect(WeightsMismatchError, args, args[0], "not in the config: ghost", cache_dir=cache_dir)


@pytest.mark.parametrize("shape", [(5, 4), (4, 3), (15,), (5, 3, 1)])
def test_weight_misshaped(model_files, tmp_path, cache_dir, shape):
    args = _h5_variant(model_files, tmp_path, lambda g: _replace(g, "out/out/kernel", np.ones(shape, np.float32)))
    expect(WeightsMismatchError, args, args[0], "layer 'out' (Dense) weight 'kernel'", f"has shape {shape}",
           "expected (5, 3)", cache_dir=cache_dir)


@pytest.mark.parametrize("dtype", ["int32", "int8", "bool", "S4"])
def test_weight_of_the_wrong_dtype(model_files, tmp_path, cache_dir, dtype):
    args = _h5_variant(model_files, tmp_path, lambda g: _replace(g, "out/out/kernel", np.ones((5, 3)).astype(dtype)))
    expect(WeightsMismatchError, args, args[0], "layer 'out' (Dense) weight 'kernel'", "dtype",
           "expected a float type", cache_dir=cache_dir)


def test_json_with_another_models_weights(model_files, tmp_path, cache_dir):
    k = keras()
    L = k.layers
    j = model_files[1]["json"][0]
    # other layer names
    seq = k.Sequential([k.Input((6,)), L.Dense(5), L.Dense(3)])
    seq.save_weights(tmp_path / "seq.weights.h5")
    seq.save(tmp_path / "seq.h5")
    for w in ("seq.weights.h5", "seq.h5"):
        expect(WeightsMismatchError, (j, str(tmp_path / w)), str(tmp_path / w), "layers in the config but not in",
               "layers in the weights file but not in the config", cache_dir=cache_dir)
    # the same layer names, other shapes
    x = k.Input((6,), name="x")
    h = L.ReLU(name="act")(L.Add(name="add")([L.Dense(7, name="a")(x), L.Dense(7, name="b")(x)]))
    other = k.Model(x, L.Dense(3, name="out")(h))
    other.save(tmp_path / "other.h5")
    expect(WeightsMismatchError, (j, str(tmp_path / "other.h5")), "layer 'a' (Dense) weight 'kernel'",
           "has shape (6, 7), expected (6, 5)", cache_dir=cache_dir)


def test_nonfinite_weights_warn_and_compile(model_files, tmp_path, cache_dir):
    m = model_files[0]
    bad = copy.deepcopy(m.get_layer("out").get_weights())
    bad[0][0, 0], bad[0][1, 1], bad[1][2] = np.nan, np.inf, -np.inf
    k = keras()
    clone = k.models.clone_model(m)
    clone.set_weights(m.get_weights())
    clone.get_layer("out").set_weights(bad)
    path = tmp_path / "nan.keras"
    clone.save(path)
    for attempt in ("compiled", "cached"):
        CASES.append(f"{path} ({attempt})")
        with pytest.warns(NonFiniteWeightsWarning) as rec:
            cm = kerasjit.compile(path, cache_dir=cache_dir)
        msg = next(str(r.message) for r in rec if r.category is NonFiniteWeightsWarning)
        assert str(path) in msg and "layer 'out'" in msg and "1 NaN, 1 Inf" in msg and "0 NaN, 1 Inf" in msg, msg
    x = np.random.default_rng(0).standard_normal((4, 6)).astype(np.float32)
    ours, ref = cm.predict(x), keras_predict(clone, x)[0]
    assert np.array_equal(np.isnan(ours), np.isnan(ref)) and np.array_equal(np.isinf(ours), np.isinf(ref))
    finite = np.isfinite(ref)
    assert_matches([np.where(finite, ours, 0)], [np.where(finite, ref, 0)], "NaN weights")


def test_finite_weights_do_not_warn(model_files, cache_dir):
    with warnings.catch_warnings():
        warnings.simplefilter("error", NonFiniteWeightsWarning)
        cm = kerasjit.compile(*model_files[1]["keras"], cache_dir=cache_dir)
    x = np.random.default_rng(1).standard_normal((3, 6)).astype(np.float32)
    assert_matches(cm.predict(x), keras_predict(model_files[0], x), "finite")
