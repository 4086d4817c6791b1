"""The `kerasjit` command line: compile, predict, demo."""
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
@click.option("-o", "--output", type=click.Path(), required=True, help="Artifact directory to write (model.kjit).")
@click.option("--target", default="cpu", show_default=True, help="cpu or cuda.")
@click.option("--cache-dir", type=click.Path(), default=None, help="Cache directory (default: user cache).")
def compile_cmd(model: str, weights: str | None, output: str, target: str, cache_dir: str | None) -> None:
    """Compile MODEL (.keras, .h5, or .json with WEIGHTS) into an artifact directory."""
    from .api import compile as kj_compile
    t0 = time.perf_counter()
    try:
        cm = kj_compile(model, weights, target=target, cache_dir=cache_dir)
        dest = cm.save(output)
    except KerasJitError as e:
        _fail(e)
    click.echo(f"compiled {cm.name!r} to {dest} in {time.perf_counter() - t0:.2f}s")
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
def predict_cmd(artifact: str, inputs: str, output: str) -> None:
    """Run ARTIFACT on INPUTS (.npy, or .npz keyed by input name) and write the outputs."""
    from .runtime import load
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


if __name__ == "__main__":
    main()
