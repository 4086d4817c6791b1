"""The `kerasjit` commands beyond compile/predict/demo: inspect, check, bench, encode, cache, layers.

Exit codes: 0 success; 1 the command ran and found a problem (`check`: a difference or a failed
self-test); 2 kerasjit could not do what was asked (bad file, unsupported layer, missing tool).
"""
from __future__ import annotations

import sys
from pathlib import Path

import click
import numpy as np

from .errors import KerasJitError


def fail(e: Exception | str, code: int = 2) -> None:
    """Print `error: ...` on stderr and exit with `code`."""
    click.echo(f"error: {e}", err=True)
    sys.exit(code)


def model_arguments(fn):
    """MODEL [WEIGHTS [METADATA]], as `kerasjit.compile` takes them."""
    fn = click.argument("metadata", required=False, type=click.Path(exists=True, dir_okay=False))(fn)
    fn = click.argument("weights", required=False, type=click.Path(exists=True, dir_okay=False))(fn)
    return click.argument("model", type=click.Path(exists=True))(fn)


def read_arrays(path: str, names: list[str], mmap: bool = False) -> list[np.ndarray]:
    """The arrays of a .npy file (one input) or a .npz file (keyed by input name, else in file order)."""
    data = np.load(path, allow_pickle=False, mmap_mode="r" if mmap else None)
    if isinstance(data, np.ndarray):
        return [data]
    keys = list(data.keys())
    if all(k in keys for k in names):
        return [data[k] for k in names]
    return [data[k] for k in keys]


def output_names(names: list[str]) -> list[str]:
    """Unique keys for an .npz of outputs (two outputs of one layer get a suffix)."""
    out: list[str] = []
    for n in names:
        out.append(n if n not in out else f"{n}_{len(out)}")
    return out


def predict_streaming(artifact: str, inputs: str, output: str, batch_size: int) -> None:
    """`kerasjit predict --batch-size`: read INPUTS memory-mapped, run it batch by batch through
    `predict_iter`, and write each batch's outputs as it comes (into a memory-mapped .npy for one output)."""
    import time

    from .runtime import load
    try:
        cm = load(artifact)
        xs = read_arrays(inputs, cm.input_names, mmap=True)
        n = int(xs[0].shape[0]) if xs and xs[0].ndim else 0
        if any(x.ndim == 0 or x.shape[0] != n for x in xs):
            raise KerasJitError(f"{inputs}: the arrays do not share one batch dimension")
        batches = ((xs[0][i:i + batch_size] if len(xs) == 1 else [x[i:i + batch_size] for x in xs])
                   for i in range(0, n, batch_size))
        single = len(cm.output_names) == 1 and output.endswith(".npy")
        outs = [np.lib.format.open_memmap(output, mode="w+", dtype=np.float32,
                                          shape=(n,) + tuple(cm.output_shapes[0][1:]))] if single else \
            [np.empty((n,) + tuple(s[1:]), np.float32) for s in cm.output_shapes]
        t0 = time.perf_counter()
        row = 0
        for ys in cm.predict_iter(batches, total=-(-n // batch_size)):
            ys = ys if isinstance(ys, list) else [ys]
            for o, y in zip(outs, ys):
                o[row:row + len(y)] = y
            row += len(ys[0])
        dt = time.perf_counter() - t0
        if single:
            outs[0].flush()
        elif output.endswith(".npz") or len(outs) > 1:
            np.savez(output, **dict(zip(output_names(cm.output_names), outs)))
        else:
            np.save(output, outs[0])
    except (KerasJitError, OSError, ValueError) as e:
        fail(e)
    click.echo(f"wrote {output}: {', '.join(str(o.shape) for o in outs)} in {-(-n // batch_size)} batches "
               f"of {batch_size}, {dt:.2f}s")


# ------------------------------------------------------------------------------------------------ inspect
@click.command("inspect")
@model_arguments
@click.option("--ir", "show_ir", is_flag=True, help="Print the IR after each pass.")
@click.option("--groups", "show_groups", is_flag=True, help="Print the fusion groups (Keras layers per compiled node).")
@click.option("--cost", "show_cost", is_flag=True, help="Print FLOPs and bytes per compiled node.")
@click.option("--source", "show_source", is_flag=True, help="Print the generated source.")
@click.option("--all", "show_all", is_flag=True, help="Print every section.")
@click.option("--format", "fmt", type=click.Choice(["text", "dot"]), default="text", show_default=True,
              help="dot: write the compiled graph as Graphviz DOT instead of text.")
@click.option("--png", type=click.Path(dir_okay=False), default=None,
              help="Draw the compiled graph into this PNG (or .svg/.pdf) file; needs Graphviz's `dot`.")
@click.option("--target", default="cpu", show_default=True, help="Backend whose source --source shows (cpu, cuda).")
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None, help="Write to this file, not stdout.")
def inspect_cmd(model: str, weights: str | None, metadata: str | None, show_ir: bool, show_groups: bool,
                show_cost: bool, show_source: bool, show_all: bool, fmt: str, png: str | None, target: str,
                output: str | None) -> None:
    """Show what the compiler makes of MODEL: the IR after each pass, the fusion groups, FLOPs and bytes
    per op, the generated source, or a picture of the compiled graph.

    Without a section flag, prints the fusion groups and the cost table. MODEL is a .keras file, a full-model .h5 file, or an architecture .json with its WEIGHTS (HDF5, or
    Keras.js's model_weights.buf with METADATA, its model_metadata.json).
    """
    from .inspection import format_costs, format_groups, format_passes, inspect_model
    try:
        ins = inspect_model(model, weights, metadata, target=target)
        parts: list[str] = []
        if fmt == "dot":
            from .drawing import to_dot
            parts.append(to_dot(ins))
        else:
            default = not (show_ir or show_groups or show_cost or show_source or png)
            if show_ir or show_all:
                parts.append(format_passes(ins))
            if show_groups or show_all or default:
                parts.append(format_groups(ins))
            if show_cost or show_all or default:
                parts.append(format_costs(ins))
            if show_source or show_all:
                parts.append(f"# generated source ({target})\n{ins.source()}")
        if png:
            from .drawing import render, to_dot
            render(to_dot(ins), png)
            click.echo(f"drew {len(ins.final.nodes)} nodes of {ins.final.name!r} into {png}", err=True)
    except KerasJitError as e:
        fail(e)
    text = "\n\n".join(p.rstrip("\n") for p in parts)
    if not text:
        return
    if output:
        Path(output).write_text(text + "\n")
        click.echo(f"wrote {output}", err=True)
    else:
        click.echo(text)


# -------------------------------------------------------------------------------------------------- check
@click.command("check")
@model_arguments
@click.option("--input", "input_file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Input to check on (.npy, or .npz keyed by input name); default: random.")
@click.option("--batch", default=2, show_default=True, help="Batch size of the random input.")
@click.option("--seed", default=0, show_default=True, help="Seed of the random input.")
@click.option("--layers", "all_layers", is_flag=True, help="List every layer compared, not only the first difference.")
@click.option("--no-compile", is_flag=True, help="Compare the interpreter only; do not compile.")
@click.option("--cache-dir", type=click.Path(), default=None, help="Cache directory (default: user cache).")
def check_cmd(model: str, weights: str | None, metadata: str | None, input_file: str | None, batch: int, seed: int,
              all_layers: bool, no_compile: bool, cache_dir: str | None) -> None:
    """Check MODEL against Keras, layer by layer, and name the first layer whose output differs.

    MODEL runs in Keras (which must be installed) and in kerasjit on the same input; the report
    gives the first Keras layer (in topological order) whose output differs beyond
    1e-4 * max(1, max|keras|), with the error, and whether the compiled code agrees with kerasjit's
    reference interpreter (a front-end bug, or a pass or codegen bug). Exit status 1 on a difference.

    MODEL may also be a compiled artifact directory (model.kjit): its stored self-test is re-run.
    MODEL is a .keras file, a full-model .h5 file, or an architecture .json with its WEIGHTS (HDF5, or
    Keras.js's model_weights.buf with METADATA, its model_metadata.json).
    """
    if Path(model).is_dir() and (Path(model) / "manifest.json").exists():
        _check_artifact(model)
        return
    from .check import check_model, format_report
    from .reference import KerasUnavailable
    try:
        inputs = None
        if input_file:
            inputs = read_arrays(input_file, [])
        report = check_model(model, weights, metadata, inputs=inputs, batch=batch, seed=seed,
                             compile_it=not no_compile, cache_dir=cache_dir)
    except KerasUnavailable as e:
        fail(f"check needs Keras to run the model: {e}")
    except KerasJitError as e:
        fail(e)
    click.echo(format_report(report, all_layers=all_layers))
    if not report.ok:
        sys.exit(1)


def _check_artifact(path: str) -> None:
    from .errors import SelfTestError
    from .runtime import load
    from .runtime.selftest import run_self_test
    try:
        cm = load(path, self_test=False)
        result = run_self_test(cm)
    except SelfTestError as e:
        fail(e, code=1)
    except KerasJitError as e:
        fail(e)
    if result is None:
        click.echo(f"{path}: hashes ok; stores no self-test (compile it with Keras installed, or pass "
                   f"--test-input/--test-output to `kerasjit compile`)")
        return
    click.echo(f"{path}: hashes ok; {result}: ok")


# -------------------------------------------------------------------------------------------------- bench
@click.command("bench")
@model_arguments
@click.option("-b", "--batch", "batches", multiple=True, type=int, default=(1, 32), show_default=True,
              help="Batch size (repeat the option for several).")
@click.option("--seconds", default=1.0, show_default=True, help="Time spent per engine and batch size.")
@click.option("--engine", "engine_names", multiple=True,
              help="Only these engines (kerasjit-cpu, kerasjit-cuda, keras); default: every one available.")
@click.option("--cache-dir", type=click.Path(), default=None, help="Cache directory (default: user cache).")
def bench_cmd(model: str, weights: str | None, metadata: str | None, batches: tuple[int, ...], seconds: float,
              engine_names: tuple[str, ...], cache_dir: str | None) -> None:
    """Time MODEL on every engine available here (kerasjit CPU, kerasjit CUDA, Keras) on the same inputs,
    and check their outputs agree. MODEL is a .keras file, a full-model .h5 file, or an architecture .json with its WEIGHTS (HDF5, or
    Keras.js's model_weights.buf with METADATA, its model_metadata.json).
    """
    from .bench import engines, format_table, run_bench
    try:
        found, skipped, cm = engines(model, weights, metadata, cache_dir, include=list(engine_names) or None)
        rows = run_bench(found, cm.input_shapes, cm.input_dtypes, batches=batches, seconds=seconds)
    except KerasJitError as e:
        fail(e)
    click.echo(f"model {cm.name!r}: " + ", ".join(f"{n}{tuple(s)}" for n, s in zip(cm.input_names, cm.input_shapes)))
    click.echo(format_table(rows, skipped))


# ------------------------------------------------------------------------------------------------- encode
@click.command("encode")
@click.argument("weights_h5", type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--output-dir", type=click.Path(file_okay=False), default=None,
              help="Folder to write into (default: beside the HDF5 file).")
@click.option("-n", "--name", default=None, help="File stem (default: the HDF5 file's name without extension).")
def encode_cmd(weights_h5: str, output_dir: str | None, name: str | None) -> None:
    """Write Keras.js's <name>_weights.buf and <name>_metadata.json from WEIGHTS_H5.

    WEIGHTS_H5 is a Keras 1/2 (tf.keras) `save_weights` HDF5 file, or a full-model .h5 file, whose
    architecture is then written as <name>.json too. The files are those Keras.js's encoder wrote, and
    `kerasjit compile model.json <name>_weights.buf <name>_metadata.json` compiles them.
    """
    from .encoder.kerasjs import encode_weights
    try:
        written = encode_weights(weights_h5, output_dir, name)
    except KerasJitError as e:
        fail(e)
    for p in written:
        click.echo(f"wrote {p} ({p.stat().st_size:,} bytes)")


# -------------------------------------------------------------------------------------------------- cache
@click.group("cache")
def cache_group() -> None:
    """List, measure or clear the compiled-artifact cache."""


_cache_dir_option = click.option("--cache-dir", type=click.Path(), default=None,
                                 help="Cache directory (default: $KERASJIT_CACHE_DIR, else the user cache).")


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


@cache_group.command("list")
@_cache_dir_option
def cache_list(cache_dir: str | None) -> None:
    """One line per cached artifact: key, model name, target, size, date compiled."""
    from .cache import list_entries
    from .api import cache_root
    entries = list_entries(cache_dir)
    click.echo(f"{cache_root(cache_dir)}: {len(entries)} artifact(s)")
    for e in entries:
        click.echo(f"  {e.key[:16]}  {e.model_name:24s} {e.target:5s} {e.source_format:8s} {_mb(e.size):>10s}  {e.date}")


@cache_group.command("size")
@_cache_dir_option
def cache_size(cache_dir: str | None) -> None:
    """How many artifacts the cache holds and how much disk they take."""
    from .api import cache_root
    from .cache import total_size
    count, size = total_size(cache_dir)
    click.echo(f"{cache_root(cache_dir)}: {count} artifact(s), {_mb(size)}")


@cache_group.command("clear")
@click.argument("keys", nargs=-1)
@_cache_dir_option
def cache_clear(keys: tuple[str, ...], cache_dir: str | None) -> None:
    """Remove the cached artifacts whose keys start with KEYS (all of them without KEYS)."""
    from .cache import clear
    removed, freed = clear(cache_dir, list(keys) or None)
    click.echo(f"removed {removed} artifact(s), freed {_mb(freed)}")


# ------------------------------------------------------------------------------------------------- layers
@click.command("layers")
@click.option("--markdown", is_flag=True, help="Print the README's Markdown section.")
def layers_cmd(markdown: bool) -> None:
    """List the Keras layers and activations kerasjit compiles."""
    from .layer_list import markdown as md
    from .layer_list import supported_activations, supported_layers
    if markdown:
        click.echo(md())
        return
    for title, names in supported_layers().items():
        click.echo(f"{title}:")
        click.echo("  " + ", ".join(names))
    click.echo("activations:")
    click.echo("  " + ", ".join(supported_activations()))


def register(group: click.Group) -> None:
    """Add these commands to the `kerasjit` group."""
    for cmd in (inspect_cmd, check_cmd, bench_cmd, encode_cmd, cache_group, layers_cmd):
        group.add_command(cmd)
