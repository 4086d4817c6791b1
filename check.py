"""`kerasjit check`: run a model in Keras and in kerasjit on the same input, layer by layer, and name the
first layer whose output differs.

Three kerasjit values are compared with Keras's: the NumPy reference interpreter over the graph before
passes (every Keras layer's output, by layer path), the interpreter over the graph after passes, and the
compiled model's outputs. Where they part tells whose bug it is: the interpreter disagreeing with Keras
is the front end's (the lowering of that layer); the graph after passes disagreeing with the one before
is a pass's; the compiled code disagreeing with the graph it was made from is codegen's.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from .encoder.spec import ModelSpec
from .progress import Bar
from .reference import describe_keras, import_keras, is_live_model, keras_outputs, load_keras_model, max_error, \
    random_inputs


@dataclass
class LayerResult:
    """One output of one call of one Keras layer, as Keras and the interpreter computed it."""

    path: str
    class_name: str
    call: int
    output: int
    shape: tuple
    error: float
    bound: float
    ours_shape: tuple | None = None

    @property
    def ok(self) -> bool:
        return self.error <= self.bound


@dataclass
class CheckReport:
    """What `check_model` found."""

    source: str
    reference: str
    layers: list[LayerResult] = field(default_factory=list)
    #: final outputs, per stage: (stage name, [(error, bound) per output])
    finals: list[tuple[str, list[tuple[float, float]]]] = field(default_factory=list)
    #: Keras layers kerasjit has no value for (wrapped sub-layers, ops folded into others)
    unmatched: list[str] = field(default_factory=list)

    @property
    def first_difference(self) -> LayerResult | None:
        return next((r for r in self.layers if not r.ok), None)

    def stage_ok(self, stage: str) -> bool | None:
        for name, errs in self.finals:
            if name == stage:
                return all(e <= b for e, b in errs)
        return None

    @property
    def ok(self) -> bool:
        return self.first_difference is None and all(all(e <= b for e, b in errs) for _, errs in self.finals)

    def verdict(self) -> str:
        """One sentence: everything agrees, or where the first difference comes from."""
        first = self.first_difference
        if first is not None:
            return (f"front end: kerasjit's graph already differs from Keras at layer {first.path!r} "
                    f"({first.class_name}); look at how that layer is lowered")
        if self.stage_ok("interpreter, before passes") is False:
            return "front end: the outputs differ from Keras although no single layer's output does"
        if self.stage_ok("interpreter, after passes") is False:
            return "passes: the graph after passes computes something else than the graph before them"
        if self.stage_ok("compiled") is False:
            return "codegen: the compiled code differs from the graph it was generated from"
        return "kerasjit agrees with Keras on every layer and output"


# ---------------------------------------------------------------------------------------------- Keras side
def keras_layer_outputs(kmodel: Any, xs: Sequence[np.ndarray]) -> list[tuple[str, str, list[np.ndarray]]]:
    """(layer path, class name, outputs) of every layer call of a functional or Sequential Keras model,
    nested models entered, in execution (topological) order."""
    try:  # Keras's own wrapper passes `training` only to layers whose call takes it
        from keras.src.models.functional import operation_fn as with_call_context
    except ImportError:  # another Keras 3 release: call the layer as it is (inference is its default)
        def with_call_context(op: Any, training: bool = False) -> Any:
            return op
    records: list[tuple[str, str, list[np.ndarray]]] = []

    def run(model: Any, inputs: list, prefix: str) -> Any:
        graph = getattr(model, "_functional", None) if model.__class__.__name__ == "Sequential" else model
        if graph is None or not hasattr(graph, "_run_through_graph"):
            raise TypeError(f"{model.name!r} is a subclassed model; only its final outputs can be compared")

        def operation(op: Any):
            def call(*args: Any, **kwargs: Any) -> Any:
                if hasattr(op, "_run_through_graph") or hasattr(op, "_functional"):
                    flat = [a for a in _flatten(args)]
                    out = run(op, flat, f"{prefix}{op.name}/")
                else:
                    out = with_call_context(op, training=False)(*args, **kwargs)
                records.append((prefix + op.name, op.__class__.__name__,
                                [np.asarray(o, dtype=np.float32) for o in _flatten(out)]))
                return out
            return call
        return graph._run_through_graph(inputs, operation_fn=operation)

    run(kmodel, [np.asarray(x) for x in xs], "")
    return records


def _flatten(obj: Any) -> list:
    if isinstance(obj, (list, tuple)):
        return [y for x in obj for y in _flatten(x)]
    if isinstance(obj, dict):
        return [y for x in obj.values() for y in _flatten(x)]
    return [obj] if obj is not None else []


# ------------------------------------------------------------------------------------------- kerasjit side
def traced_lowering(spec: ModelSpec):
    """(graph before passes, [(layer path, output value names)] for every layer call in order).

    The front end's own walk, with each `call_layer` recorded (nested models' layers included, a nested
    model itself after its layers)."""
    from .compiler.frontend import topology
    topology.check_supported(spec)
    trace: list[tuple[str, list[str]]] = []

    class Tracing(topology._Lowering):
        def call_layer(self, lc: dict, path: str, xs: list[str], *args: Any, **kwargs: Any) -> list[str]:
            outs = super().call_layer(lc, path, xs, *args, **kwargs)
            trace.append((path, list(outs)))
            return outs

    low = Tracing(spec)
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old, 20000))
    try:
        outs = low.model(spec.config, "", None)
    finally:
        sys.setrecursionlimit(old)
    return low.b.finish(outs, topology._output_names(spec.config, len(outs))), trace


def _read_spec(model: Any, weights: Any, metadata: Any) -> ModelSpec:
    if is_live_model(model):
        from .encoder.live import spec_from_model
        return spec_from_model(model)
    from .encoder import read_model
    return read_model(model, weights, metadata) if metadata is not None else read_model(model, weights)


def check_model(model: Any, weights: Any = None, metadata: Any = None, inputs: Sequence[np.ndarray] | None = None,
                batch: int = 2, seed: int = 0, compile_it: bool = True, cache_dir: Any = None,
                progress: bool | None = None) -> CheckReport:
    """Compare kerasjit with Keras on `inputs` (default: random, `batch` samples from `seed`), layer by
    layer. Raises `KerasUnavailable` when Keras cannot run the model."""
    from .compiler.interpret import interpret
    from .compiler.passes import run_passes
    bar = Bar(5, desc="check", unit="stage", show=progress)
    try:
        bar.describe("reading the model")
        spec = _read_spec(model, weights, metadata)
        graph, trace = traced_lowering(spec)
        bar.update()
        bar.describe("loading it in Keras")
        import_keras()
        kmodel = load_keras_model(model, weights, spec)
        if inputs is None:
            inputs = random_inputs([v.shape for v in graph.inputs], [v.dtype for v in graph.inputs], batch, seed)
        xs = [np.asarray(x, dtype=v.dtype) for x, v in zip(inputs, graph.inputs)]
        report = CheckReport(spec.source, describe_keras())
        bar.update()
        bar.describe("running Keras layer by layer")
        try:
            records = keras_layer_outputs(kmodel, xs)
        except TypeError as e:
            records = []
            report.unmatched.append(str(e))
        final_ref = keras_outputs(kmodel, xs)
        bar.update()
        bar.describe("running kerasjit's reference interpreter")
        env = interpret(graph, xs, keep=True)
        _compare_layers(report, records, trace, env)
        report.finals.append(("interpreter, before passes", _errors([env[o] for o in graph.outputs], final_ref)))
        after = run_passes(graph, dump_after="")
        report.finals.append(("interpreter, after passes", _errors(interpret(after, xs), final_ref)))
        bar.update()
        if compile_it:
            bar.describe("compiling")
            from .api import compile as kj_compile
            from .errors import SelfTestError
            try:  # the artifact check leaves in the cache is the one `kerasjit compile` would make
                cm = kj_compile(model, weights, metadata=metadata, cache_dir=cache_dir, progress=False)
            except SelfTestError:
                cm = kj_compile(model, weights, metadata=metadata, cache_dir=cache_dir, self_test=False,
                                progress=False)
            ys = cm.predict(xs if len(xs) > 1 else xs[0])
            report.finals.append(("compiled", _errors(ys if isinstance(ys, list) else [ys], final_ref)))
        bar.update()
        return report
    finally:
        bar.close()


def _errors(ours: Sequence[np.ndarray], refs: Sequence[np.ndarray]) -> list[tuple[float, float]]:
    if len(ours) != len(refs):
        return [(float("inf"), 0.0)]
    return [max_error(np.asarray(a), np.asarray(b)) for a, b in zip(ours, refs)]


def _compare_layers(report: CheckReport, records, trace, env) -> None:
    ours_by_path: dict[str, list[list[str]]] = {}
    for path, outs in trace:
        ours_by_path.setdefault(path, []).append(outs)
    calls: dict[str, int] = {}
    for path, class_name, outs in records:
        k = calls.get(path, 0)
        calls[path] = k + 1
        candidates = ours_by_path.get(path, [])
        if class_name == "InputLayer":
            continue
        if k >= len(candidates):
            report.unmatched.append(path)
            continue
        for i, (ref, name) in enumerate(zip(outs, candidates[k])):
            mine = env.get(name)
            if mine is None:
                continue
            err, bound = max_error(np.asarray(mine), ref)
            report.layers.append(LayerResult(path, class_name, k, i, tuple(ref.shape), err, bound,
                                             tuple(np.shape(mine))))


def format_report(report: CheckReport, all_layers: bool = False) -> str:
    """The report as text: the first difference (or every layer with `all_layers`), finals, verdict."""
    lines = [f"checked {report.source} against {report.reference}: {len(report.layers)} layer outputs compared"]
    first = report.first_difference
    rows = report.layers if all_layers else ([first] if first else [])
    for r in rows:
        status = "ok" if r.ok else "DIFFERS"
        shape = "" if r.ours_shape == r.shape else f" (kerasjit's shape {r.ours_shape})"
        call = f"[call {r.call}]" if r.call else ""
        out = f"[output {r.output}]" if r.output else ""
        lines.append(f"  {status:8s} {r.path}{call}{out} ({r.class_name}) {r.shape}: max error {r.error:.3g} "
                     f"(bound {r.bound:.3g}){shape}")
    if first is not None:
        lines.append(f"first difference: layer {first.path!r} ({first.class_name}), max error {first.error:.3g} > "
                     f"{first.bound:.3g}")
    for stage, errs in report.finals:
        worst = ", ".join(f"{e:.3g}" for e, _ in errs)
        ok = all(e <= b for e, b in errs)
        lines.append(f"final outputs, {stage}: max error {worst} {'ok' if ok else 'DIFFERS'}")
    if report.unmatched:
        lines.append(f"not compared: {', '.join(report.unmatched[:10])}" + (" ..." if len(report.unmatched) > 10 else ""))
    lines.append(f"verdict: {report.verdict()}")
    return "\n".join(lines)
