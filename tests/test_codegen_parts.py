"""The CPU codegen splits `run` into jitted parts (numba's compile time grows faster than linearly with
a function's length) and emits every layout move as the one strided-copy kernel."""
import re

from kerasjit.compiler.builder import GraphBuilder
from kerasjit.compiler.codegen.cpu import PART_NODES, generate_cpu
from kerasjit.compiler.ir import Op


def _chain_of_transposes(count: int):
    b = GraphBuilder("chain")
    x = b.input("x", (3, 4, 5))
    for i in range(count):
        x = b.add(Op.TRANSPOSE, [x], {"perm": (0, 2, 3, 1)}, layer=f"t{i}")
    x = b.add(Op.SLICE, [x], {"ranges": ((0, 2, 1), (1, 4, 2), (0, 5, 2))}, layer="s")
    x = b.add(Op.PAD, [x], {"pads": ((0, 0), (1, 0), (0, 2), (3, 1)), "value": 0.5}, layer="p")
    return b.finish([b.add(Op.CONCAT, [x, x], {"axis": 2}, layer="c")], ["out"])


def test_run_is_split_into_parts():
    g = _chain_of_transposes(2 * PART_NODES + 3)
    src = generate_cpu(g).source
    parts = re.findall(r"^def (_run\d+)\(", src, re.M)
    assert parts == [f"_run{k}" for k in range(3)]
    run = src[src.index("\ndef run("):src.index("\ndef _run0_profiled(")]
    calls = [ln.strip().split("(")[0] for ln in run.splitlines()[2:] if ln.strip().startswith("_run")]
    assert calls == parts
    # a value made in one part and read in the next is bound again from its storage there
    assert src.count("_layout.copy6(") == 2 * (2 * PART_NODES + 3 + 1 + 1 + 2)  # plain and profiled twins
    assert "np.transpose" not in src


def test_layout_moves_match_the_interpreter(tmp_path):
    """The generated code, run through its plain-Python profiling twin (no numba compile of `run`,
    only of the layout kernels), gives the interpreter's numbers."""
    import importlib.util

    import numpy as np

    from kerasjit.compiler.interpret import interpret
    g = _chain_of_transposes(6)  # (a multiple of 3: the input shape again)
    gen = generate_cpu(g)
    path = tmp_path / "gen.py"
    path.write_text(gen.source)
    spec = importlib.util.spec_from_file_location("gen_layout", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    n = 2
    x = np.random.default_rng(0).standard_normal((n, 3, 4, 5)).astype(np.float32)
    out = np.zeros((n,) + g.values()[g.outputs[0]].shape[1:], np.float32)
    blob = np.frombuffer(gen.blob.tobytes(), np.float32)
    arena = np.zeros(max(n * gen.plan.arena_per_sample, 1), np.float32)
    mod.run_profiled(blob, arena, n, 1, x, out, lambda k: None)
    np.testing.assert_array_equal(out, interpret(g, [x])[0])
