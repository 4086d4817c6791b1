"""Every `kerasjit` command end to end, as a user runs it: the installed command in a subprocess, real
files, exit codes and output."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from cli_fixtures import kerasjit_command, mnist, run_cli, run_cli_self_test  # noqa: F401  (fixtures)
from oracle import assert_matches

COMMANDS = [["compile"], ["predict"], ["demo"], ["inspect"], ["check"], ["bench"], ["encode"], ["cache"],
            ["cache", "list"], ["cache", "size"], ["cache", "clear"], ["layers"]]


def test_help_everywhere(run_cli):
    out = run_cli("--help").stdout
    for cmd in ("compile", "predict", "inspect", "check", "bench", "encode", "cache", "layers", "demo"):
        assert cmd in out
    for cmd in COMMANDS:
        proc = run_cli(*cmd, "--help")
        assert proc.stdout.startswith("Usage: kerasjit " + " ".join(cmd)), proc.stdout
    assert run_cli("-h").stdout.startswith("Usage:")
    assert run_cli("--version").stdout.strip().endswith("0.1.0")


def test_compile_predict_and_self_test(run_cli_self_test, mnist):
    run_cli = run_cli_self_test
    mnist.copy_to(run_cli.cwd)
    out = run_cli("compile", "model.keras", "-o", "model.kjit").stdout
    assert "compiled 'mnist_cnn' to model.kjit" in out
    assert "self-test: against keras" in out and "input  input_1: (None, 28, 28, 1)" in out
    manifest = json.loads((run_cli.cwd / "model.kjit" / "manifest.json").read_text())
    assert "self_test.npz" in manifest["files"], "the self-test is hashed like every artifact file"

    run_cli("predict", "model.kjit", "input.npy", "-o", "out.npy")
    assert_matches([np.load(run_cli.cwd / "out.npy")], [mnist.y], "predict")
    # streamed: memory-mapped in and out, batch by batch
    out = run_cli("predict", "model.kjit", "input.npy", "-o", "streamed.npy", "--batch-size", "3").stdout
    assert "in 3 batches of 3" in out
    assert_matches([np.load(run_cli.cwd / "streamed.npy")], [mnist.y], "predict --batch-size")
    np.savez(run_cli.cwd / "in.npz", input_1=mnist.x)
    run_cli("predict", "model.kjit", "in.npz", "-o", "out.npz")
    with np.load(run_cli.cwd / "out.npz") as z:
        assert list(z.keys()) == ["predictions"]
        assert_matches([z["predictions"]], [mnist.y], "predict npz")

    out = run_cli("check", "model.kjit").stdout
    assert "hashes ok" in out and "self-test against keras" in out and out.rstrip().endswith(": ok")


def _tamper_self_test(artifact, scale: float) -> None:
    """Change the stored reference outputs and re-hash them: a well-formed artifact whose code no
    longer computes what its reference says."""
    import hashlib
    p = artifact / "self_test.npz"
    with np.load(p) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["output_0"] = arrays["output_0"] * scale + 1.0
    np.savez(p, **arrays)
    from kerasjit.runtime.artifact import write_manifest
    manifest = json.loads((artifact / "manifest.json").read_text())
    manifest["files"]["self_test.npz"] = hashlib.sha256(p.read_bytes()).hexdigest()
    write_manifest(artifact, {k: v for k, v in manifest.items() if k != "checksum"})


def test_self_test_mismatch_fails_loudly(run_cli_self_test, mnist):
    run_cli = run_cli_self_test
    import kerasjit
    mnist.copy_to(run_cli.cwd)
    run_cli("compile", "model.keras", "-o", "model.kjit")
    art = run_cli.cwd / "model.kjit"
    _tamper_self_test(art, 2.0)
    proc = run_cli("check", "model.kjit", expect=1)
    assert "fails its self-test" in proc.stderr and "predictions" in proc.stderr
    with pytest.raises(kerasjit.SelfTestError, match="fails its self-test"):
        kerasjit.load(art)
    with pytest.raises(kerasjit.ArtifactError):  # SelfTestError is an ArtifactError
        kerasjit.load(art)
    cm = kerasjit.load(art, self_test=False)  # hashes only
    assert_matches(cm.predict(mnist.x), [mnist.y], "without the self-test")
    kerasjit.load(art, verify=False)


def test_compile_with_the_users_wrong_test_output_fails(run_cli, mnist):
    mnist.copy_to(run_cli.cwd)
    np.save(run_cli.cwd / "tx.npy", mnist.x[:2])
    np.save(run_cli.cwd / "ty.npy", mnist.y[:2] + 1.0)
    proc = run_cli("compile", "model.keras", "-o", "bad.kjit", "--test-input", "tx.npy", "--test-output", "ty.npy",
                   expect=2)
    assert "fails its self-test against the user's test output" in proc.stderr
    assert not (run_cli.cwd / "bad.kjit").exists()


def test_check_model_layer_by_layer(run_cli, mnist):
    mnist.copy_to(run_cli.cwd)
    out = run_cli("check", "model.keras", "--layers").stdout
    for layer in ("conv", "bn", "relu", "pool", "flatten", "predictions"):
        assert f"ok       {layer} (" in out, out
    assert "final outputs, compiled: max error" in out
    assert "verdict: kerasjit agrees with Keras on every layer and output" in out


CHECK_WITH_BUG = """
import sys
import numpy as np
from kerasjit.compiler.frontend import LAYERS
from kerasjit.compiler.ir import Op
from kerasjit.cli import main
dense = LAYERS["Dense"]
def buggy(call, xs):  # a front-end bug: Dense forgets half of its output
    (y,) = dense(call, xs)
    return [call.add(Op.MUL, [y, call.param("bug", np.full((), 0.5, np.float32))])]
LAYERS["Dense"] = buggy
main(sys.argv[1:])
"""


def test_check_names_the_first_layer_that_differs(run_cli, mnist):
    mnist.copy_to(run_cli.cwd)
    proc = subprocess.run([sys.executable, "-c", CHECK_WITH_BUG, "check", "model.keras", "--no-compile"],
                          cwd=run_cli.cwd, env=run_cli.env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "first difference: layer 'predictions' (Dense), max error" in proc.stdout
    assert "DIFFERS  predictions (Dense) (2, 10)" in proc.stdout
    assert "verdict: front end" in proc.stdout


def test_check_without_keras_says_so(run_cli, mnist):
    mnist.copy_to(run_cli.cwd)
    code = "import sys; sys.modules['keras'] = None\nfrom kerasjit.cli import main\nmain(sys.argv[1:])"
    proc = subprocess.run([sys.executable, "-c", code, "check", "model.keras"], cwd=run_cli.cwd, env=run_cli.env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 2, proc.stderr
    assert "check needs Keras" in proc.stderr


def test_inspect_sections_and_formats(run_cli, mnist):
    mnist.copy_to(run_cli.cwd)
    out = run_cli("inspect", "model.keras").stdout
    assert "# fusion groups: " in out and "conv, bn, relu" in out  # BN and ReLU fused into the conv
    assert "# cost at batch 1:" in out and "conv" in out
    ir = run_cli("inspect", "model.keras", "--ir").stdout
    for stage in ("# lowered", "# after remove_noops", "# after fold_scale_shift", "# after fuse_elementwise"):
        assert stage in ir
    assert "def run(" in run_cli("inspect", "model.keras", "--source").stdout
    dot = run_cli("inspect", "model.keras", "--format", "dot").stdout
    assert dot.startswith('digraph "mnist_cnn"') and "predictions" in dot
    run_cli("inspect", "model.keras", "--all", "-o", "report.txt")
    assert "def run(" in (run_cli.cwd / "report.txt").read_text()
    if shutil.which("dot") is None:
        proc = run_cli("inspect", "model.keras", "--png", "g.png", expect=2)
        assert "Graphviz" in proc.stderr
    else:
        run_cli("inspect", "model.keras", "--png", "g.png")
        assert (run_cli.cwd / "g.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bench_every_local_engine(run_cli, mnist):
    mnist.copy_to(run_cli.cwd)
    out = run_cli("bench", "model.keras", "--seconds", "0.05", "-b", "1", "-b", "4").stdout
    lines = out.splitlines()
    assert any(ln.startswith("kerasjit-cpu") and " 4 " in ln for ln in lines), out
    keras_rows = [ln for ln in lines if ln.startswith("keras-jax")]
    assert len(keras_rows) == 2, out
    for ln in keras_rows:
        assert float(ln.split()[-1]) < 1e-3  # outputs agree with kerasjit's
    assert "kerasjit-cuda" in out  # timed, or listed as skipped with the reason


def test_encode_then_compile_kerasjs_files(run_cli, mnist):
    mnist.copy_to(run_cli.cwd)
    out = run_cli("encode", "model.h5", "-o", "kjs").stdout
    for name in ("model_weights.buf", "model_metadata.json", "model.json"):
        assert f"wrote kjs/{name}" in out
    meta = json.loads((run_cli.cwd / "kjs" / "model_metadata.json").read_text())
    assert {m["layer_name"] for m in meta} == {"conv", "bn", "predictions"}
    assert set(meta[0]) == {"layer_name", "weight_name", "offset", "length", "shape", "type"}
    run_cli("compile", "kjs/model.json", "kjs/model_weights.buf", "kjs/model_metadata.json", "-o", "kjs.kjit")
    run_cli("predict", "kjs.kjit", "input.npy", "-o", "out.npy")
    assert_matches([np.load(run_cli.cwd / "out.npy")], [mnist.y], "Keras.js files")
    proc = run_cli("encode", "model.keras", expect=2)
    assert "not a readable HDF5 file" in proc.stderr or "HDF5" in proc.stderr


def test_cache_list_size_clear(run_cli, mnist, cache_dir, tmp_path):
    mnist.copy_to(run_cli.cwd)
    run_cli("compile", "model.keras", "-o", "model.kjit")
    scratch = tmp_path / "scratch_cache"
    scratch.mkdir()
    shutil.copytree(run_cli.cwd / "model.kjit", scratch / "0123456789abcdef0123", copy_function=shutil.copy2)
    (scratch / "not_ours.txt").write_text("keep me")
    (scratch / ".0123.partial").mkdir()  # an interrupted write
    out = run_cli("cache", "list", "--cache-dir", scratch).stdout
    assert "1 artifact(s)" in out and "0123456789abcdef" in out and "mnist_cnn" in out
    assert "1 artifact(s)" in run_cli("cache", "size", "--cache-dir", scratch).stdout
    assert "removed 0 artifact(s)" in run_cli("cache", "clear", "ffff", "--cache-dir", scratch).stdout
    assert "removed 1 artifact(s)" in run_cli("cache", "clear", "--cache-dir", scratch).stdout
    assert sorted(p.name for p in scratch.iterdir()) == ["not_ours.txt"]
    # the default cache comes from $KERASJIT_CACHE_DIR
    assert str(cache_dir) in run_cli("cache", "size").stdout


def test_progress_bar_only_when_asked_or_on_a_terminal(run_cli, mnist):
    mnist.copy_to(run_cli.cwd)
    run_cli("compile", "model.keras", "-o", "model.kjit")
    quiet = run_cli("predict", "model.kjit", "input.npy", "-o", "o.npy", "-b", "2")
    assert quiet.stderr == "", "no bar when stderr is not a terminal"
    shown = run_cli("predict", "model.kjit", "input.npy", "-o", "o.npy", "-b", "2", KERASJIT_PROGRESS="1")
    assert "predict mnist_cnn" in shown.stderr and "/4 [" in shown.stderr


def test_verbose_logs_through_logging(run_cli, mnist):
    mnist.copy_to(run_cli.cwd)
    proc = run_cli("-v", "compile", "model.keras", "-o", "model.kjit")
    assert "kerasjit: " in proc.stderr and "artifact" in proc.stderr


def test_errors_exit_with_status_2(run_cli, tmp_path):
    proc = run_cli("compile", "missing.keras", "-o", "x.kjit", expect=2)
    assert "does not exist" in proc.stderr
    (tmp_path / "junk.keras").write_text("not a model")
    proc = run_cli("compile", "junk.keras", "-o", "x.kjit", expect=2)
    assert proc.stderr.startswith("error: ") and "junk.keras" in proc.stderr
    proc = run_cli("inspect", "junk.keras", expect=2)
    assert proc.stderr.startswith("error: ")


def test_layers_lists_the_registry(run_cli):
    from kerasjit.compiler.frontend import LAYERS
    out = run_cli("layers").stdout
    for name in ("Conv2D", "LSTM", "Dense", "Bidirectional"):
        assert name in out and name in LAYERS
    assert "activations:" in out
