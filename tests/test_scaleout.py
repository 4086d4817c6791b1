"""kerasjit on a real local Dask cluster (several worker processes): order, shipping, a killed worker."""
import os

import numpy as np
import pytest

import kerasjit
from oracle import save
from test_layers import conv_zoo

dask = pytest.importorskip("dask")
distributed = pytest.importorskip("distributed")
da = pytest.importorskip("dask.array")


@pytest.fixture(scope="module")
def artifact(tmp_path_factory):
    d = tmp_path_factory.mktemp("dist")
    import keras
    L = keras.layers
    inp = keras.Input((6, 5, 3), name="x")
    y = L.Conv2D(4, 3, padding="same", activation="relu")(inp)
    y = L.GlobalAveragePooling2D()(y)
    m = keras.Model(inp, L.Dense(3)(y))
    cm = kerasjit.compile(save(m, d, "keras")[0], cache_dir=d / "cache")
    return str(cm.save(d / "model.kjit")), cm


@pytest.fixture(scope="module")
def cluster():
    from distributed import Client, LocalCluster
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                      silence_logs=40) as lc, Client(lc) as client:
        yield client


def _data(n=1000):
    return np.random.default_rng(0).standard_normal((n, 6, 5, 3)).astype(np.float32)


def test_array_in_order_matches_single_process(artifact, cluster):
    import kerasjit.scaleout as kd
    path, cm = artifact
    x = _data()
    y = kd.predict_array(path, da.from_array(x, chunks=(137, 6, 5, 3))).compute()
    np.testing.assert_allclose(y, cm.predict(x), rtol=1e-5, atol=1e-6)
    workers = cluster.run(lambda: os.getpid())
    assert len(set(workers.values())) == 2


def test_shipped_bytes_and_dataframe(artifact, cluster):
    import dask.dataframe as dd
    import pandas as pd
    import kerasjit.scaleout as kd
    path, cm = artifact
    x = _data(300)
    pdf = pd.DataFrame(x.reshape(300, -1), columns=[f"f{i}" for i in range(90)])
    ddf = dd.from_pandas(pdf, npartitions=5)
    out = kd.predict_dataframe(path, ddf, to_input=lambda p: p.to_numpy(np.float32).reshape(-1, 6, 5, 3),
                               ship=True).compute()
    assert list(out.index) == list(range(300))
    np.testing.assert_allclose(out.to_numpy(), cm.predict(x), rtol=1e-5, atol=1e-6)


def test_a_killed_worker_loses_and_duplicates_nothing(artifact, cluster, tmp_path):
    """The first attempt at one block kills its worker process; Dask re-runs the block elsewhere."""
    import kerasjit.scaleout as kd
    path, cm = artifact
    marker = str(tmp_path / "killed-once")
    counter = str(tmp_path / "calls")

    def fragile(block, src):
        with open(counter, "a") as f:
            f.write(f"{block.shape[0]}\n")
        if block.shape[0] == 77 and not os.path.exists(marker):
            open(marker, "w").close()
            os._exit(1)  # the worker process dies mid-task
        return kd.predict_block(block, src, 1)

    x = _data(777)
    arr = da.from_array(x, chunks=((100,) * 7 + (77,), 6, 5, 3)).map_blocks(fragile, path, dtype=np.float32,
                                                                 chunks=((100,) * 7 + (77,), (3,)), drop_axis=[2, 3])
    y = arr.compute()
    assert os.path.exists(marker), "the fault was not injected"
    np.testing.assert_allclose(y, cm.predict(x), rtol=1e-5, atol=1e-6)
    calls = open(counter).read().split()
    assert calls.count("77") == 2  # the killed attempt and its retry


def test_an_artifact_from_another_cpu_is_rebuilt_once_with_a_log_line(artifact, tmp_path, caplog):
    """A worker whose CPU differs from the compiling machine's rebuilds the artifact locally."""
    import json
    import shutil
    import kerasjit.scaleout as kd
    from kerasjit.runtime.artifact import NUMBA_CACHE, write_manifest
    path, cm = artifact
    other = tmp_path / "other.kjit"
    shutil.copytree(path, other)
    manifest = json.loads((other / "manifest.json").read_text())
    manifest["env"]["cpu"] = "some-other-cpu"
    manifest["key"] = "other-cpu-" + manifest["key"]
    manifest["files"] = {k: v for k, v in manifest["files"].items() if not k.startswith(NUMBA_CACHE)}
    shutil.rmtree(other / NUMBA_CACHE, ignore_errors=True)
    write_manifest(other, {k: v for k, v in manifest.items() if k != "checksum"})
    with pytest.raises(kerasjit.ArtifactError, match="some-other-cpu"):
        kerasjit.load(other)
    x = _data(50)
    with caplog.at_level("WARNING", logger="kerasjit"):
        y = kd.predict_block(x, str(other), 1)
    assert "compiled for another CPU model" in caplog.text
    np.testing.assert_allclose(y, cm.predict(x), rtol=1e-5, atol=1e-6)
