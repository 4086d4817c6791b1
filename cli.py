"""The `kerasjit` command line: compile, predict, demo here; inspect, check, bench, encode, cache and layers
in `cli_commands.py`."""
from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import click
import numpy as np

from .errors import KerasJitError

DATA = Path(__file__).resolve().parent / "data"


def _fail(e: Exception) -> None:
    click.echo(f"error: {e}", err=True)
    sys.exit(2)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", count=True, help="Log what kerasjit does (-vv for debug).")
@click.version_option(package_name="kerasjit")
def main(verbose: int) -> None:
    """kerasjit: compile Keras models to fused Numba kernels and run them without Keras."""
    logging.basicConfig(level=logging.WARNING - 10 * min(verbose, 2), format="%(name)s: %(message)s")


@main.command("compile")
@click.argument("model", type=click.Path(exists=True, dir_okay=True))
@click.argument("weights", required=False, type=click.Path(exists=True, dir_okay=False))
@click.argument("metadata", required=False, type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--output", type=click.Path(), required=True, help="Artifact directory to write (model.kjit).")
@click.option("--target", default="cpu", show_default=True, help="cpu or cuda.")
@click.option("--cache-dir", type=click.Path(), default=None, help="Cache directory (default: user cache).")
@click.option("--test-input", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Self-test input to store (.npy, or .npz keyed by input name); default: random.")
@click.option("--test-output", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Its expected outputs (.npy/.npz); default: computed by Keras when it is installed.")
@click.option("--self-test/--no-self-test", default=None,
              help="Require a self-test in the artifact / store none (default: when Keras or --test-* give one).")
def compile_cmd(model: str, weights: str | None, metadata: str | None, output: str, target: str,
                cache_dir: str | None, test_input: str | None, test_output: str | None,
                self_test: bool | None) -> None:
    """Compile MODEL into an artifact directory (a progress bar shows the stages on a terminal).

    MODEL is a .keras file, a full-model .h5 file, or an architecture .json with its WEIGHTS (HDF5, or
    Keras.js's model_weights.buf with METADATA, its model_metadata.json). The artifact stores a
    self-test (a test input and Keras's outputs for it) that `kerasjit check ARTIFACT` and
    `kerasjit.load` re-run.
    """
    from .api import compile as kj_compile
    from .cli_commands import read_arrays
    t0 = time.perf_counter()
    try:
        tx = read_arrays(test_input, []) if test_input else None
        ty = read_arrays(test_output, []) if test_output else None
        cm = kj_compile(model, weights, target=target, cache_dir=cache_dir, metadata=metadata,
                        test_input=tx, test_output=ty, self_test=self_test)
        dest = cm.save(output)
    except KerasJitError as e:
        _fail(e)
    click.echo(f"compiled {cm.name!r} to {dest} in {time.perf_counter() - t0:.2f}s")
    test = cm.manifest.get("self_test")
    click.echo(f"  self-test: against {test['source']}" if test else "  self-test: none stored")
    for n, s in zip(cm.input_names, cm.input_shapes):
        click.echo(f"  input  {n}: {tuple(s)}")
    for n, s in zip(cm.output_names, cm.output_shapes):
        click.echo(f"  output {n}: {tuple(s)}")


def _read_inputs(path: str, names: list[str]):
    data = np.load(path, allow_pickle=False)
    if isinstance(data, np.ndarray):
        return data
    keys = list(data.keys())
    if all(k in keys for k in names):
        return {k: data[k] for k in names}
    return [data[k] for k in keys] if len(keys) > 1 else data[keys[0]]


@main.command("predict")
@click.argument("artifact", type=click.Path(exists=True, file_okay=False))
@click.argument("inputs", type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--output", type=click.Path(), required=True, help="Where to write outputs (.npy or .npz).")
@click.option("-b", "--batch-size", type=click.IntRange(min=1), default=None,
              help="Stream INPUTS in batches of this size (memory-mapped .npy in and out; a progress bar "
                   "on a terminal), for more data than fits in memory.")
def predict_cmd(artifact: str, inputs: str, output: str, batch_size: int | None) -> None:
    """Run ARTIFACT on INPUTS (.npy, or .npz keyed by input name) and write the outputs."""
    from .runtime import load
    if batch_size is not None:
        from .cli_commands import predict_streaming
        predict_streaming(artifact, inputs, output, batch_size)
        return
    try:
        cm = load(artifact)
        x = _read_inputs(inputs, cm.input_names)
        t0 = time.perf_counter()
        ys = cm.predict(x)
        dt = time.perf_counter() - t0
    except (KerasJitError, OSError, ValueError) as e:
        _fail(e)
    ys = ys if isinstance(ys, list) else [ys]
    if output.endswith(".npz") or len(ys) > 1:
        names: list[str] = []
        for n in cm.output_names:
            names.append(n if n not in names else f"{n}_{len(names)}")
        np.savez(output, **dict(zip(names, ys)))
    else:
        np.save(output, ys[0])
    click.echo(f"wrote {output}: {', '.join(str(y.shape) for y in ys)} in {dt * 1000:.2f} ms")


@main.command("demo")
@click.option("--cache-dir", type=click.Path(), default=None, help="Cache directory (default: user cache).")
def demo_cmd(cache_dir: str | None) -> None:
    """Compile the embedded digits convnet and classify its bundled samples (no Keras needed)."""
    from .api import compile as kj_compile
    model, samples = DATA / "digits_cnn.keras", DATA / "digits_samples.npz"
    click.echo(f"model: {model.name} (a convnet trained on scikit-learn's 8x8 digits)")
    t0 = time.perf_counter()
    try:
        cm = kj_compile(model, cache_dir=cache_dir)
    except KerasJitError as e:
        _fail(e)
    click.echo(f"compile: {time.perf_counter() - t0:.2f}s  ({cm.path})")
    d = np.load(samples)
    x, labels, ref = d["images"], d["labels"], d["keras_logits"]
    logits = cm.predict(x)
    pred = logits.argmax(1)
    for i in range(8):
        img = x[i, :, :, 0]
        click.echo(f"  sample {i}: predicted {pred[i]}  true {labels[i]}  " +
                   "".join(" .:-=+*#%@"[min(int(v * 9.99), 9)] for v in img[3]))
    acc = float((pred == labels).mean())
    err = float(np.abs(logits - ref).max())
    click.echo(f"accuracy: {acc:.4f} on {len(x)} held-out digits; max |kerasjit - keras| logits: {err:.2e}")
    one = x[:1]
    for _ in range(20):
        cm.predict(one)
    ts = []
    for _ in range(200):
        t = time.perf_counter()
        cm.predict(one)
        ts.append(time.perf_counter() - t)
    t = time.perf_counter()
    for _ in range(5):
        cm.predict(x)
    tb = (time.perf_counter() - t) / 5
    click.echo(f"latency: {np.median(ts) * 1e6:.1f} us per image (batch 1, median of 200); "
               f"throughput: {len(x) / tb:,.0f} images/s (batch {len(x)})")
    if err > 1e-4 * max(1.0, float(np.abs(ref).max())):
        _fail(KerasJitError(f"demo output differs from Keras by {err:.3g}"))


from .cli_commands import register  # noqa: E402  (the commands that live in their own module)

register(main)

if __name__ == "__main__":
    main()
