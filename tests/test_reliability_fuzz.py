"""Fuzz: mutated real model files and configs either raise a `KerasJitError` or compile to a model that
computes what Keras computes for the same mutated files; nothing else (no exception from h5py, zipfile,
json or numba, no silent difference).

Each case is judged in stages, so that the suite stays fast while every case is checked:
1. read and lower the mutant (encoder, front end, passes, codegen): a `KerasJitError` is an answer;
2. if its generated artifact files are byte-identical to the unmutated model's, the mutation changed
   nothing kerasjit reads (padding, timestamps, unused attributes): the original's compiled model,
   checked against Keras, is its compiled model;
3. otherwise it computes something else: Keras loads the same mutated files, and kerasjit's result must
   match that model. The first COMPILE_CAP such cases run through `kerasjit.compile` and numba; the
   others through the reference interpreter on the very graph that codegen rendered (the numba path
   of that code is what every other test checks). If Keras refuses a mutant that kerasjit accepts, the
   case is recorded and must be one of the explained kinds (`_explained`).
Set KERASJIT_FUZZ_EXAMPLES to run more cases (the CI default keeps the file under ~2 minutes).
"""
from __future__ import annotations

import ast
import copy
import json
import re
import os
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import kerasjit  # noqa: E402
from kerasjit.compiler.driver import build  # noqa: E402
from kerasjit.compiler.interpret import interpret  # noqa: E402
from kerasjit.encoder import read_model  # noqa: E402
from kerasjit.errors import CompileError, KerasJitError, SelfTestError  # noqa: E402
from oracle import keras  # noqa: E402
from reliability_util import report, saved  # noqa: E402

EXAMPLES = int(os.environ.get("KERASJIT_FUZZ_EXAMPLES", "0")) or None
BYTE_EXAMPLES = EXAMPLES or 50    # per source model (three of them)
CONFIG_EXAMPLES = EXAMPLES or 50
COMPILE_CAP = 1                   # mutants per test that go through numba (each costs a compile)
#: CI runs the same cases every time; KERASJIT_FUZZ_SEED=<n> explores others
SEED = os.environ.get("KERASJIT_FUZZ_SEED")


@dataclass
class Tally:
    """What the fuzz saw, by stage; `wrong` must stay empty."""

    outcomes: Counter = field(default_factory=Counter)
    errors: Counter = field(default_factory=Counter)   # KerasJitError subclass -> count
    compiled: int = 0                                  # through kerasjit.compile and numba
    compiled_in_test: int = 0
    keras_refused: list = field(default_factory=list)  # (case, why) kerasjit accepted, Keras did not
    wrong: list = field(default_factory=list)          # (case, what): anything but an answer


TALLY = Tally()


@pytest.fixture(scope="module", autouse=True)
def _report_counts():
    yield
    report("fuzz", cases=sum(TALLY.outcomes.values()), outcomes=dict(TALLY.outcomes), errors=dict(TALLY.errors),
           numba_compiled=TALLY.compiled, keras_refused=len(TALLY.keras_refused), wrong=len(TALLY.wrong))


KERAS2 = Path(__file__).parent / "fixtures" / "keras2"


@dataclass
class Source:
    """A real model to mutate: its files, and the artifact files kerasjit generates from them unmutated."""

    files: dict[str, tuple[str, ...]]      # format -> compile arguments
    baseline: dict[str, dict[str, bytes]]  # format -> generated files


@pytest.fixture(scope="module", params=["functional", "conv", "keras2_convnet"])
def source(request, cache_dir) -> Source:
    """A Keras 3 functional model and convnet (all formats), and a tf.keras 2 convnet (.h5) from the
    fixtures; each compiled unmutated once and checked against Keras."""
    if request.param == "keras2_convnet":
        files = {"h5": (str(KERAS2 / "convnet.h5"),)}
        model = keras().models.load_model(files["h5"][0], compile=False)
    else:
        model, files = saved(request.param)
        files = {**files, "json+h5": (files["json"][0], files["h5"][0])}
    x = _input_for(model.input_shape)
    cm = kerasjit.compile(*files["h5"], cache_dir=cache_dir)
    np.testing.assert_allclose(cm.predict(x), np.asarray(model(x)), rtol=1e-4, atol=1e-4 * max(1, np.abs(model(x)).max()))
    return Source(files, {fmt: build(read_model(*args))[0] for fmt, args in files.items()})


def _input_for(shape: tuple) -> np.ndarray:
    return np.random.default_rng(0).standard_normal((3,) + tuple(shape[1:])).astype(np.float32)


# ------------------------------------------------------------------ judging one case

_UNKNOWN_KWARGS = re.compile(r"Unrecognized keyword arguments passed to (\w+): (\{.*?\})")


def _keras_outputs(args: tuple[str, ...], work: Path) -> tuple[np.ndarray | None, str]:
    """What Keras computes with the mutated files, or (None, why it refused them).

    Keras refuses config keys a layer class does not take (after a class_name was changed, say); kerasjit
    reads the keys it needs and ignores the others. Such a refusal is checked, not excused: the keys
    are dropped from the config and Keras loads it again; kerasjit must then match that model."""
    k = keras()
    dropped: list[str] = []
    for _ in range(4):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if len(args) == 1:
                    model = k.models.load_model(args[0], compile=False)
                else:
                    model = k.models.model_from_json(Path(args[0]).read_text())
                    model.load_weights(args[1])
                x = _input_for(model.input_shape)
                return np.asarray(model(x), np.float64), "; ".join(dropped)
        except Exception as e:  # noqa: BLE001 - any refusal by Keras is an answer here
            why = f"{type(e).__name__}: {str(e)[:300]}"
            found = _UNKNOWN_KWARGS.search(str(e))
            if not found or args[0].endswith(".keras"):
                return None, why
            cls, keys = found.group(1), list(ast.literal_eval(found.group(2)))
            dropped.append(f"dropped {keys} from {cls}")
            args = _without_keys(args, cls, keys, work)
    return None, why


def _without_keys(args: tuple[str, ...], cls: str, keys: list[str], work: Path) -> tuple[str, ...]:
    """A copy of the model files whose config lacks `keys` in every layer of class `cls`."""
    import h5py

    def strip(node):
        if isinstance(node, dict):
            if node.get("class_name") == cls and isinstance(node.get("config"), dict):
                for key in keys:
                    node["config"].pop(key, None)
            for v in node.values():
                strip(v)
        elif isinstance(node, list):
            for v in node:
                strip(v)

    if args[0].endswith(".json"):
        cfg = json.loads(Path(args[0]).read_text())
        strip(cfg)
        p = work / f"stripped-{len(list(work.iterdir()))}.json"
        p.write_text(json.dumps(cfg))
        return (str(p),) + args[1:]
    p = work / f"stripped-{len(list(work.iterdir()))}.h5"
    p.write_bytes(Path(args[0]).read_bytes())
    with h5py.File(p, "r+") as f:
        attr = f.attrs["model_config"]
        cfg = json.loads(attr.decode() if isinstance(attr, bytes) else attr)
        strip(cfg)
        f.attrs["model_config"] = json.dumps(cfg)
    return (str(p),) + args[1:]


def _agree(ours: np.ndarray, ref: np.ndarray, extreme: bool) -> bool:
    """design.md's tolerance on the finite values, and NaN/Inf exactly where Keras has them. With
    `extreme` weights (NaN, Inf, or large enough to overflow float32 in a few products), where each
    implementation overflows depends on its order of operations (BatchNormalization folded into the
    kernel first, a BLAS's summation order): then only values finite on both sides are compared."""
    ours = np.asarray(ours, np.float64)
    if ours.shape != ref.shape:
        return False
    if extreme:
        fin = np.isfinite(ref) & np.isfinite(ours)
    else:
        if not (np.array_equal(np.isnan(ours), np.isnan(ref)) and np.array_equal(np.isposinf(ours), np.isposinf(ref))
                and np.array_equal(np.isneginf(ours), np.isneginf(ref))):
            return False
        fin = np.isfinite(ref)
    if not fin.any():
        return True
    return float(np.max(np.abs(ours[fin] - ref[fin]))) <= 1e-4 * max(1.0, float(np.max(np.abs(ref[fin]))))


def _extreme(spec) -> bool:
    return any(not np.all(np.isfinite(w)) or (w.size and np.abs(w).max() > 1e18)
               for ws in spec.weights.values() for w in (np.asarray(a, np.float64) for a in ws))


def judge(case: str, args: tuple[str, ...], baseline: dict[str, bytes], work: Path) -> None:
    """Run one mutant through kerasjit and record the outcome in TALLY (never raises)."""
    try:
        spec = read_model(*args)
        files, _, graph = build(spec)
    except (SelfTestError, CompileError) as e:
        TALLY.wrong.append((case, f"{type(e).__name__}: {e}"))
        return
    except KerasJitError as e:
        TALLY.outcomes["rejected"] += 1
        TALLY.errors[type(e).__name__] += 1
        return
    except Exception as e:  # noqa: BLE001 - the very thing this test hunts
        TALLY.wrong.append((case, f"escaped {type(e).__name__}: {e}"))
        return
    if all(files.get(n) == baseline.get(n) for n in ("model_gen.py", "weights.bin")):
        TALLY.outcomes["unchanged"] += 1
        return
    ref, note = _keras_outputs(args, work)
    x = _input_for(graph.inputs[0].shape)
    stage = "interpreted"
    try:
        if TALLY.compiled_in_test < COMPILE_CAP:
            stage = "compiled"
        else:
            try:
                ours = interpret(graph, [x])[0]
            except CompileError:  # the interpreter materializes what the kernels need not (a huge padding)
                stage = "compiled"
        if stage == "compiled":
            ours = kerasjit.compile(*args, cache_dir=work / "cache", self_test=False).predict(x)
            TALLY.compiled += 1
            TALLY.compiled_in_test += 1
    except KerasJitError as e:  # an answer, given late: the runtime refused what the front end let through
        TALLY.outcomes["rejected_at_run_time"] += 1
        TALLY.errors[type(e).__name__] += 1
        return
    except Exception as e:  # noqa: BLE001
        TALLY.wrong.append((case, f"lowered, then {type(e).__name__}: {e}"))
        return
    extreme = _extreme(spec)
    kind = "extreme_weights_" if extreme else ""
    if ref is None:
        TALLY.outcomes["keras_refused"] += 1
        TALLY.keras_refused.append((case, note))
    elif _agree(ours, ref, extreme):
        TALLY.outcomes[f"changed_{kind}matches_keras{'_after_dropping_unknown_keys' if note else ''}_{stage}"] += 1
    else:
        TALLY.wrong.append((case, f"{stage}: differs from Keras{' (' + note + ')' if note else ''}: "
                                  f"max|ours-keras| {np.nanmax(np.abs(np.asarray(ours, np.float64) - ref)):.3g}"))


def _fuzz_settings(examples: int):
    """Bounded, reproducible runs: no deadline (a case may compile), no shrinking (outcomes are collected,
    not raised), no example database on disk."""
    def apply(fn):
        fn = settings(max_examples=examples, deadline=None, derandomize=SEED is None, database=None,
                      phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))(fn)
        return hypothesis.seed(int(SEED))(fn) if SEED is not None else fn
    return apply


# ------------------------------------------------------------------ byte mutations of real files

@st.composite
def byte_mutation(draw, size: int, hot: list[tuple[int, int]]) -> tuple[str, int, int, bytes]:
    """(kind, position, length, bytes); half the positions fall in `hot` ranges (the weights' bytes,
    a small part of an HDF5 file, where a mutation changes the model instead of breaking the file)."""
    kind = draw(st.sampled_from(["flip", "flip", "truncate", "zero", "insert"]))
    if hot and draw(st.booleans()):
        start, length = draw(st.sampled_from(hot))
        pos = start + draw(st.integers(0, max(length - 1, 0)))
    else:
        pos = draw(st.integers(0, size - 1))
    return kind, min(pos, size - 1), draw(st.integers(1, 16)), draw(st.binary(min_size=1, max_size=8))


def _dataset_ranges(path: Path) -> list[tuple[int, int]]:
    """(file offset, bytes) of every contiguous dataset of an HDF5 file; [] for other files."""
    import h5py
    ranges: list[tuple[int, int]] = []
    if path.read_bytes()[:4] != b"\x89HDF":
        return ranges

    def visit(_, obj):
        if isinstance(obj, h5py.Dataset) and obj.id.get_offset() is not None:
            ranges.append((obj.id.get_offset(), obj.id.get_storage_size()))

    with h5py.File(path, "r") as f:
        f.visititems(visit)
    return ranges


def _mutate_bytes(data: bytes, kind: str, pos: int, length: int, blob: bytes) -> bytes:
    if kind == "flip":
        out = bytearray(data)
        for i, b in enumerate(blob):
            out[(pos + 97 * i) % len(out)] ^= b or 0x80
        return bytes(out)
    if kind == "truncate":
        return data[:pos]
    if kind == "zero":
        return data[:pos] + bytes(min(length, len(data) - pos)) + data[pos + length:]
    return data[:pos] + blob * length + data[pos:]


def test_fuzz_mutated_files(source, tmp_path_factory):
    """Byte flips, truncations, zeroed ranges and insertions in every file of every format."""
    work = tmp_path_factory.mktemp("fuzz_bytes")
    counter = iter(range(10**9))
    targets = [(fmt, i) for fmt, args in source.files.items() for i in range(len(args))]
    hot = {p: _dataset_ranges(Path(p)) for args in source.files.values() for p in args}

    @_fuzz_settings(BYTE_EXAMPLES)
    @given(data=st.data())
    def run(data):
        fmt, i = data.draw(st.sampled_from(targets))
        args = list(source.files[fmt])
        raw = Path(args[i]).read_bytes()
        kind, pos, length, blob = data.draw(byte_mutation(len(raw), hot[args[i]]))
        p = work / f"case{next(counter)}{''.join(Path(args[i]).suffixes)}"
        p.write_bytes(_mutate_bytes(raw, kind, pos, length, blob))
        args[i] = str(p)
        judge(f"{fmt} file {i}: {kind} at {pos} ({length}, {blob!r})", tuple(args), source.baseline[fmt], work)
        p.unlink()

    since = len(TALLY.wrong), len(TALLY.keras_refused)
    TALLY.compiled_in_test = 0
    run()
    _assert_clean(since)


# ------------------------------------------------------------------ config mutations

STRINGS = ["a", "b", "add", "act", "out", "x", "c1", "c2", "bn", "res", "img", "ghost", "", "relu", "tanh",
           "sigmoid", "linear", "softmax",
           "bogus", "Dense", "ReLU", "Add", "Concatenate", "Multiply", "Subtract", "Activation", "Dropout",
           "BatchNormalization", "Flatten", "Frobnicate", "Functional", "Sequential", "InputLayer",
           "channels_first", "same", "valid", "float64", "int32", "__keras_tensor__"]
NUMBERS = [-1, 0, 1, 2, 3, 5, 6, 7, 10**9, 0.5, -2.5, 1e30, float("nan")]
OTHERS = [None, [], {}, True, False, [None, 6], [1, 2, 3]]


def _paths(obj, prefix=()):
    """Every (path, value) in a JSON tree."""
    yield prefix, obj
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, prefix + (i,))


def _set(obj, path, value):
    for k in path[:-1]:
        obj = obj[k]
    if value is _DELETE:
        del obj[path[-1]]
    else:
        obj[path[-1]] = value


_DELETE = object()


#: keys whose values define what the model computes; most of a config is metadata (dtype policies,
#: initializers, regularizers, trainable flags) that inference never reads
MEANINGFUL = {"class_name", "activation", "units", "keras_history", "batch_shape", "batch_input_shape",
              "use_bias", "max_value", "negative_slope", "threshold", "name", "inbound_nodes", "args",
              "input_layers", "output_layers", "layers", "kwargs", "filters", "kernel_size", "strides", "padding",
              "pool_size", "data_format", "dilation_rate", "axis", "epsilon", "center", "scale", "groups", "rate"}


@st.composite
def config_mutation(draw, cfg: dict):
    """One edit of the config: delete a key or list item, or replace a value by another of the same
    kind (a layer name, class, activation, number) or of another kind. Two edits in three hit a value
    under a key that defines the computation."""
    spots = [(p, v) for p, v in _paths(cfg) if p]
    meaningful = [(p, v) for p, v in spots if any(k in MEANINGFUL for k in p if isinstance(k, str))
                  and not any(k in ("dtype", "kernel_initializer", "bias_initializer") for k in p)]
    path, value = draw(st.sampled_from(meaningful if draw(st.integers(0, 2)) else spots))
    if isinstance(value, str):
        choice = draw(st.sampled_from(STRINGS + ["<delete>", "<other>"]))
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        choice = draw(st.sampled_from(NUMBERS + ["<delete>", "<other>"]))
    else:
        choice = draw(st.sampled_from(["<delete>", "<other>", "<duplicate>"]))
    if choice == "<delete>":
        return path, _DELETE
    if choice == "<other>":
        return path, draw(st.sampled_from(OTHERS + ["x", 3]))
    if choice == "<duplicate>":
        return path, copy.deepcopy(value) if not isinstance(value, list) else copy.deepcopy(value + value[:1])
    return path, choice


def test_fuzz_mutated_configs(source, tmp_path_factory):
    """One edit of the config, then the edited config with the unedited weights: an architecture JSON
    with its weights file (Keras 3 `.weights.h5`, or the full `.h5` read by layer name), or, for the
    tf.keras 2 file, the `model_config` inside the `.h5`."""
    import h5py
    work = tmp_path_factory.mktemp("fuzz_configs")
    counter = iter(range(10**9))
    if "json" in source.files:
        cfg = json.loads(Path(source.files["json"][0]).read_text())
    else:
        with h5py.File(source.files["h5"][0], "r") as f:
            attr = f.attrs["model_config"]
            cfg = json.loads(attr.decode() if isinstance(attr, bytes) else attr)

    @_fuzz_settings(CONFIG_EXAMPLES)
    @given(data=st.data())
    def run(data):
        mutant = copy.deepcopy(cfg)
        path, value = data.draw(config_mutation(mutant))
        try:
            _set(mutant, path, value)
        except (KeyError, IndexError, TypeError):
            return
        shown = f"config {'/'.join(map(str, path))} = {'<deleted>' if value is _DELETE else repr(value)[:40]}"
        n = next(counter)
        if "json" in source.files:
            fmt = data.draw(st.sampled_from(["json", "json+h5"]))
            p = work / f"case{n}.json"
            p.write_text(json.dumps(mutant))
            args = (str(p), source.files[fmt][1])
        else:
            fmt = "h5"
            p = work / f"case{n}.h5"
            p.write_bytes(Path(source.files["h5"][0]).read_bytes())
            with h5py.File(p, "r+") as f:
                f.attrs["model_config"] = json.dumps(mutant)
            args = (str(p),)
        judge(f"{shown} ({fmt})", args, source.baseline[fmt], work)
        p.unlink()

    since = len(TALLY.wrong), len(TALLY.keras_refused)
    TALLY.compiled_in_test = 0
    run()
    _assert_clean(since)


def _explained(case: str, why: str) -> bool:
    """Mutants kerasjit accepts and Keras refuses, for reasons that do not change what the model computes:
    none are known yet; each new kind is examined and listed here with its reason."""
    return False


def _assert_clean(since: tuple[int, int]) -> None:
    """No wrong outcome and no unexplained refusal by Keras among the cases recorded after `since`."""
    unexplained = [(c, w) for c, w in TALLY.keras_refused[since[1]:] if not _explained(c, w)]
    problems = TALLY.wrong[since[0]:] + [(c, f"accepted, Keras refused: {w}") for c, w in unexplained]
    if os.environ.get("KERASJIT_FUZZ_LOG"):  # every problem in full, for examining a long run
        with open(os.environ["KERASJIT_FUZZ_LOG"], "a") as f:
            f.writelines(f"{c}: {w}\n" for c, w in problems)
    assert not problems, "\n".join(f"{c}: {w}" for c, w in problems[:30])
