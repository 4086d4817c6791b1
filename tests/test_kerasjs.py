"""Keras.js's files: `kerasjit encode` writes model_weights.buf + model_metadata.json from an HDF5 weights
file, and the reader compiles model.json + those two to the numbers tf.keras gave (fixtures written by
real tf.keras 2)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import kerasjit
from kerasjit.compiler.frontend import lower
from kerasjit.compiler.interpret import interpret
from kerasjit.compiler.passes import run_passes
from kerasjit.encoder import read_model
from kerasjit.encoder.kerasjs import encode_weights, metadata_path_for
from kerasjit.errors import ModelFormatError, WeightsMismatchError
from oracle import assert_matches

KERAS2 = Path(__file__).parent / "fixtures" / "keras2"
FIXTURES = ("convnet", "functional", "nested", "rnn")


def _trio(name: str, dest: Path) -> tuple[Path, Path, Path]:
    """Keras.js's three files for fixture `name`, made as a Keras.js user made them."""
    buf, meta = encode_weights(KERAS2 / f"{name}_weights.h5", dest, stem="model")
    shutil.copy(KERAS2 / f"{name}.json", dest / "model.json")
    return dest / "model.json", buf, meta


@pytest.mark.parametrize("name", FIXTURES)
def test_kerasjs_files_hold_exactly_the_hdf5_weights(name, tmp_path):
    model_json, buf, meta = _trio(name, tmp_path)
    assert (buf.name, meta.name) == ("model_weights.buf", "model_metadata.json")
    ours = read_model(model_json, buf, meta)
    ref = read_model(KERAS2 / f"{name}.json", KERAS2 / f"{name}_weights.h5")
    assert ours.format == "kerasjs" and ours.keras_version == ref.keras_version
    assert ours.weights.keys() == ref.weights.keys()
    for path in ref.weights:
        assert [w.shape for w in ours.weights[path]] == [w.shape for w in ref.weights[path]]
        for a, b in zip(ours.weights[path], ref.weights[path]):
            np.testing.assert_array_equal(a, b.astype(np.float32))
    # the metadata file sits beside the buffer, so it may be left out
    assert read_model(model_json, buf).weights.keys() == ref.weights.keys()
    # and the model computes what tf.keras computed (the reference interpreter: no numba needed)
    with np.load(KERAS2 / f"{name}.npz") as z:
        x, y = z["x"], z["y"]
    g = run_passes(lower(ours))
    assert_matches(interpret(g, [x]), [y], f"{name} from Keras.js files")


def test_metadata_layout_is_keras_js(tmp_path):
    _, buf, meta = _trio("convnet", tmp_path)
    entries = json.loads(meta.read_text())
    offset = 0
    for e in entries:
        assert set(e) == {"layer_name", "weight_name", "offset", "length", "shape", "type"}
        assert e["type"] == "float32" and e["offset"] == offset  # bytes, back to back
        assert e["length"] == int(np.prod(e["shape"]))          # float32 elements
        offset += 4 * e["length"]
    assert buf.stat().st_size == offset
    assert entries[0]["weight_name"].endswith(":0")  # the HDF5 file's own weight names
    assert metadata_path_for(buf) == meta


def test_compile_the_three_files(tmp_path, cache_dir):
    model_json, buf, meta = _trio("convnet", tmp_path)
    cm = kerasjit.compile(model_json, buf, meta, cache_dir=cache_dir)
    with np.load(KERAS2 / "convnet.npz") as z:
        assert_matches(cm.predict(z["x"]), [z["y"]], "compiled from Keras.js files")
    assert cm.manifest["source_format"] == "kerasjs"


def test_reader_errors_name_the_file(tmp_path):
    model_json, buf, meta = _trio("functional", tmp_path)
    data = buf.read_bytes()
    (tmp_path / "short_weights.buf").write_bytes(data[: len(data) // 8 * 4])
    with pytest.raises(ModelFormatError, match="outside the .*buffer"):
        read_model(model_json, tmp_path / "short_weights.buf", meta)
    with pytest.raises(ModelFormatError, match="metadata file"):
        read_model(model_json, tmp_path / "short_weights.buf")  # no short_metadata.json beside it
    entries = json.loads(meta.read_text())
    entries[0]["type"] = "uint8"
    (tmp_path / "q_metadata.json").write_text(json.dumps(entries))
    with pytest.raises(ModelFormatError, match="uint8"):
        read_model(model_json, buf, tmp_path / "q_metadata.json")
    entries = json.loads(meta.read_text())
    entries[0]["layer_name"] = "no_such_layer"
    (tmp_path / "bad_metadata.json").write_text(json.dumps(entries))
    with pytest.raises(WeightsMismatchError, match="no_such_layer"):
        read_model(model_json, buf, tmp_path / "bad_metadata.json")
    del entries[0]["offset"]
    (tmp_path / "bad_metadata.json").write_text(json.dumps(entries))
    with pytest.raises(ModelFormatError, match="lacks offset"):
        read_model(model_json, buf, tmp_path / "bad_metadata.json")


def test_encode_refuses_a_keras3_weights_file(tmp_path):
    import keras
    m = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    m.save_weights(tmp_path / "m.weights.h5")
    with pytest.raises(ModelFormatError, match="Keras 1/2-style"):
        encode_weights(tmp_path / "m.weights.h5")
