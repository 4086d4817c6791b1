"""The benchmark suite runs end to end on one small model and reports what it could not run.

No speed is asserted (design.md: speed is measured, never asserted). TensorFlow is not needed: the
engines are kerasjit (whatever state it is in: working or failing, both must be reported), Keras on JAX,
and two that are never available on a CPU-only CI machine (CUDA), which must be noted, not crash.
"""
import json
import subprocess
import sys
from pathlib import Path

import pytest

# one xdist worker runs this module (the module-scoped suite run happens once, not once per worker)
pytestmark = pytest.mark.xdist_group("benchmarks")

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # `benchmarks/` is a folder of the repository, not part of the package
    sys.path.insert(0, str(REPO))

ENGINES = ["kerasjit-cpu", "jax", "kerasjit-cuda", "torch"]


@pytest.fixture(scope="module")
def suite_out(tmp_path_factory):
    pytest.importorskip("keras")
    pytest.importorskip("jax")
    out = tmp_path_factory.mktemp("bench")
    cmd = [sys.executable, "-m", "benchmarks", "--quick", "--models", "mnist", "--engines", ",".join(ENGINES),
           "--rounds", "2", "--round-time", "0.02", "--out", str(out)]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=240,
                          env={**__import__("os").environ, "NUMBA_ENABLE_CUDASIM": "0"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, proc.stdout


def test_results_json_fields(suite_out):
    out, _ = suite_out
    r = json.loads((out / "results.json").read_text())
    assert {"cpu_model", "cpu_count", "date", "python"} <= set(r["machine"])
    assert {"numpy", "numba", "keras", "jax", "tensorflow", "onnxruntime", "torch"} <= set(r["versions"])
    assert r["config"]["rounds"] == 2 and r["config"]["engines"] == ENGINES
    mnist = r["models"]["mnist"]
    assert mnist["prep_keras3"]["ok"], mnist["prep_keras3"]
    jax = mnist["engines"]["jax"]
    assert jax["status"] == "ok", jax.get("error")
    assert jax["verify"]["ok"] and jax["verify"]["max_abs_diff"] <= jax["verify"]["tolerance"]
    for batch in ("1", "16"):
        b = jax["batches"][batch]
        assert b["n"] >= 2 and b["median_s"] > 0 and b["throughput_per_s"] > 0
    assert jax["setup_cold_s"] > 0 and jax["setup_warm_s"] > 0
    assert jax["memory"]["peak_rss_mib"] > 0
    kj = mnist["engines"]["kerasjit-cpu"]
    assert kj["status"] in ("ok", "failed")
    if kj["status"] == "ok":
        assert jax["ratio_to_kerasjit"]["1"] > 0
        assert "inside_s" in kj["coldstart"] or "error" in kj["coldstart"]
    else:
        assert kj["error"]


def test_missing_engines_are_noted(suite_out):
    out, stdout = suite_out
    r = json.loads((out / "results.json").read_text())
    md = (out / "results.md").read_text()
    assert md.strip() == stdout.strip()
    for engine in ("kerasjit-cuda", "torch"):  # no GPU in CI
        assert r["engines"][engine]["status"] == "unavailable"
        assert f"- {engine}: skipped (" in md
    assert "| MNIST convnet | 1 |" in md and "| MNIST convnet | 16 |" in md


def test_failed_engine_is_a_table_cell():
    from benchmarks.report import markdown

    results = {
        "machine": {"date": "d", "cpu_model": "cpu", "cpus_allowed": 2, "gpus": [], "load_average": None,
                    "kerasjit_commit": None},
        "config": {"engines": ["kerasjit-cpu", "jax"], "threads": 2, "quick": True, "rounds": 2},
        "versions": {"numpy": "2"}, "engines": {"kerasjit-cpu": {"status": "ran"}, "jax": {"status": "ran"}},
        "models": {"mnist": {"title": "MNIST convnet", "prep_keras3": {"ok": True, "output_max_abs": 1.0},
                             "engines": {
            "kerasjit-cpu": {"status": "failed", "error": "UnsupportedLayerError: Foo", "batches": {}},
            "jax": {"status": "ok", "batches": {"1": {"median_s": 1e-3, "throughput_per_s": 1e3}},
                    "ratio_reference": "kerasjit-cpu", "ratio_to_kerasjit": {"1": None},
                    "verify": {"ok": True, "max_abs_diff": 0.0}, "setup_cold_s": 1.0, "setup_warm_s": 0.1}}}},
    }
    md = markdown(results)
    assert "| MNIST convnet | 1 | failed (UnsupportedLayerError: Foo) | 1 ms |" in md
    assert "- MNIST convnet, kerasjit-cpu: failed (UnsupportedLayerError: Foo)" in md
