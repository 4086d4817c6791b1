"""The IR, verifier, printer, reference interpreter, passes and memory plan (no numba needed)."""
import numpy as np
import pytest

from kerasjit.compiler.builder import GraphBuilder
from kerasjit.compiler.interpret import interpret
from kerasjit.compiler.ir import Graph, Node, Op, Value, freeze
from kerasjit.compiler.passes import PASSES, fold_scale_shift, fuse_elementwise, remove_noops, run_passes
from kerasjit.compiler.plan import plan_memory
from kerasjit.compiler.verify import verify
from kerasjit.errors import CompileError

RNG = np.random.default_rng(0)


def conv_bn_relu_graph(residual: bool = True) -> Graph:
    b = GraphBuilder("t")
    x = b.input("x", (6, 5, 3))
    w = b.param("w", RNG.standard_normal((3, 3, 3, 4)).astype(np.float32))
    y = b.add(Op.CONV, [x, w], {"strides": (1, 1), "dilation": (1, 1), "pads": ((1, 1), (1, 1)), "groups": 1}, "conv")
    y = b.add(Op.ADD, [y, b.param("bias", RNG.standard_normal(4).astype(np.float32))], layer="conv")
    y = b.add(Op.IDENTITY, [y], layer="dropout")
    y = b.add(Op.MUL, [y, b.param("scale", RNG.uniform(0.5, 2, 4).astype(np.float32))], layer="bn")
    y = b.add(Op.ADD, [y, b.param("shift", RNG.standard_normal(4).astype(np.float32))], layer="bn")
    if residual:
        r = b.add(Op.CONV, [x, b.param("w2", RNG.standard_normal((1, 1, 3, 4)).astype(np.float32))],
                  {"strides": (1, 1), "dilation": (1, 1), "pads": ((0, 0), (0, 0)), "groups": 1}, "shortcut")
        y = b.add(Op.ADD, [y, r], layer="add")
    y = b.add(Op.RELU, [y], layer="relu")
    y = b.add(Op.MEAN, [y], {"axes": (1, 2), "keepdims": False}, "gap")
    return b.finish([y], ["gap"])


def test_printer_one_node_per_line():
    g = conv_bn_relu_graph()
    text = str(g)
    node_lines = [ln for ln in text.splitlines() if " = " in ln]
    assert len(node_lines) == len(g.nodes)
    assert "conv:float32[N,6,5,4] = conv(x, w)" in text
    assert text.splitlines()[0] == "graph(x:float32[N,6,5,3])"


def test_verifier_rejects_bad_graphs():
    g = conv_bn_relu_graph()
    verify(g)
    # use before definition
    bad = g.with_nodes((g.nodes[1],) + g.nodes[:1] + g.nodes[2:])
    with pytest.raises(CompileError, match="not defined before use"):
        verify(bad)
    # a wrong output shape
    n0 = g.nodes[0]
    wrong = n0.with_(out=Value(n0.out.name, (None, 6, 5, 5)))
    with pytest.raises(CompileError, match="shape rule"):
        verify(g.with_nodes((wrong,) + g.nodes[1:]))
    # an undefined output
    with pytest.raises(CompileError, match="not a runtime value"):
        verify(g.with_nodes(g.nodes, outputs=["nope"]))


def test_interpreter_matches_numpy_conv():
    b = GraphBuilder()
    x = b.input("x", (5, 5, 2))
    w = RNG.standard_normal((3, 3, 2, 3)).astype(np.float32)
    y = b.add(Op.CONV, [x, b.param("w", w)],
              {"strides": (2, 2), "dilation": (1, 1), "pads": ((1, 1), (1, 1)), "groups": 1})
    g = b.finish([y], ["y"])
    xv = RNG.standard_normal((2, 5, 5, 2)).astype(np.float32)
    (out,) = interpret(g, [xv])
    xp = np.pad(xv, ((0, 0), (1, 1), (1, 1), (0, 0)))
    ref = np.zeros((2, 3, 3, 3))
    for i in range(3):
        for j in range(3):
            ref[:, i, j] = np.einsum("npqc,pqco->no", xp[:, 2 * i:2 * i + 3, 2 * j:2 * j + 3], w)
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("upto", range(1, len(PASSES) + 1))
def test_each_prefix_of_passes_keeps_meaning(upto):
    g = conv_bn_relu_graph()
    xv = RNG.standard_normal((3, 6, 5, 3)).astype(np.float32)
    (ref,) = interpret(g, [xv])
    g2 = run_passes(g, PASSES[:upto])
    (got,) = interpret(g2, [xv])
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)


def test_bn_folds_and_epilogue_fuses_into_one_conv():
    g = run_passes(conv_bn_relu_graph())
    ops = [n.op for n in g.nodes]
    assert sorted(o.name for o in ops) == ["CONV", "CONV", "MEAN"], ops
    main = [n for n in g.nodes if n.op is Op.CONV and any(s.op is Op.RELU for s in n.epilogue)]
    assert len(main) == 1
    steps = [s.op for s in main[0].epilogue]
    assert steps == [Op.ADD, Op.ADD, Op.RELU], steps  # one bias, the residual, the activation


def test_fold_skips_a_scale_with_two_readers():
    b = GraphBuilder()
    x = b.input("x", (4,))
    y = b.add(Op.MATMUL, [x, b.param("w", np.eye(4, dtype=np.float32))])
    s = b.add(Op.MUL, [y, b.param("s", np.full(4, 2, np.float32))])
    t = b.add(Op.ADD, [y, s])  # y is read twice: folding the scale into w would change t
    g = b.finish([t], ["t"])
    g2 = fold_scale_shift(g)
    xv = RNG.standard_normal((2, 4)).astype(np.float32)
    np.testing.assert_allclose(interpret(g2, [xv])[0], interpret(g, [xv])[0], rtol=1e-6)
    assert any(n.op is Op.MUL for n in g2.nodes)


def test_remove_noops_and_fuse_keep_graph_outputs():
    b = GraphBuilder()
    x = b.input("x", (3,))
    y = b.add(Op.RELU, [x])
    z = b.add(Op.IDENTITY, [y])
    u = b.add(Op.TANH, [z])
    g = b.finish([y, u], ["y", "u"])
    g2 = fuse_elementwise(remove_noops(g))
    verify(g2)
    assert len(g2.outputs) == 2
    xv = RNG.standard_normal((2, 3)).astype(np.float32)
    for a, r in zip(interpret(g2, [xv]), interpret(g, [xv])):
        np.testing.assert_allclose(a, r)


def test_memory_plan_reuses_and_never_overlaps_live_values():
    g = run_passes(conv_bn_relu_graph())
    b = GraphBuilder()
    x = b.input("x", (8,))
    vals = [x]
    for i in range(6):
        vals.append(b.add(Op.MATMUL, [vals[-1], b.param(f"w{i}", np.eye(8, dtype=np.float32))]))
    chain = b.finish([vals[-1]], ["out"])
    for graph in (g, chain):
        plan = plan_memory(graph)
        values = graph.values()
        last = {}
        for idx, n in enumerate(graph.nodes):
            for i in n.inputs:
                last[plan.root(i)] = idx
        intervals = []
        for idx, n in enumerate(graph.nodes):
            kind, off = plan.storage[n.out.name]
            if kind == "arena" and n.out.name not in plan.in_place:
                intervals.append((idx, last.get(n.out.name, idx), off, off + values[n.out.name].per_sample()))
        for a in intervals:
            for c in intervals:
                if a is c:
                    continue
                live_together = a[0] <= c[1] and c[0] <= a[1]
                overlap = a[2] < c[3] and c[2] < a[3]
                assert not (live_together and overlap), (a, c)
    plan = plan_memory(chain)
    assert plan.arena_per_sample <= 2 * 16  # a chain needs two buffers, not six


def test_nodes_are_immutable():
    n = Node(Op.RELU, ("x",), Value("y", (None, 3)), freeze({}))
    with pytest.raises(Exception):
        n.op = Op.TANH  # type: ignore[misc]
