"""CPU emitters of the sequence ops (RNN, GATHER, ONE_HOT, BMM), registered into `cpu.EMITTERS`.

An RNN node becomes one generated njit function per node: the loop over time with the cell's gates
fused into one pass over the units, its activations inlined (tanh and sigmoid as the vectorizable
kernels of `kernels/cpu/rnn.py`, any other through `step_lines`), and the recurrent product of each
step through `kernels/cpu/rnn.recur_matmul` (dense cells) or the im2col convolution (ConvLSTM). The input
projection of all timesteps is a MATMUL (or CONV) node before it, which BLAS does in one call.

Stateful RNNs keep their states in a `state` buffer that the runtime owns and passes to `run` as its
last argument (only when the model has one): `state_layout` assigns each stateful node a slot of
per-sample floats, scaled by the batch like the arena.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ..ir import Graph, Group, Node, Op, Step
from ..rules import same_pads
from ..rules_seq import GATES, N_STATES, rnn_input_names
from .common import IndentedBuffer, step_lines


# ---------------------------------------------------------------------- geometry of an RNN node
class _RnnGeometry:
    """Static sizes of one RNN node: T steps, P positions (H*W for ConvLSTM, else 1), F units, G gates."""

    def __init__(self, node: Node, values: dict):
        a = dict(node.attrs)
        self.attrs = a
        self.names = rnn_input_names(a)
        xp = values[node.inputs[0]].shape
        self.cell = a["cell"]
        self.T = xp[1]
        self.spatial = tuple(xp[2:-1])
        self.P = int(np.prod(self.spatial, dtype=np.int64)) if self.spatial else 1
        self.F = a["units"]
        self.G = GATES[self.cell]
        self.K = N_STATES[self.cell]
        self.gru_split = self.cell == "gru" and not a.get("reset_after")
        #: an activation of a whole gate (softmax, ...): the gates are computed gate by gate
        self.rows_mode = isinstance(a["activation"], str) or isinstance(a["recurrent_activation"], str)
        self.R = self.T if a.get("return_sequences") else 1
        self.rows = self.R + a.get("out_states", 0)
        pf, gf = self.P * self.F, self.F * self.G
        # per-sample work regions: name -> (offset, size)
        sizes = [("h", pf), ("c", pf if self.K == 2 else 0),
                 ("z", self.P * (2 * self.F if self.gru_split else gf)),
                 ("zh", pf if self.gru_split else 0), ("rh", pf if self.gru_split else 0),
                 ("seen", 1 if a.get("unroll") and a.get("has_mask") else 0),
                 ("v", pf if self.rows_mode and self.K == 2 else 0)]
        if self.cell == "convlstm":
            sizes.append(("col", self.P * a["kernel_hw"][0] * a["kernel_hw"][1] * self.F))
        self.work: dict[str, tuple[int, int]] = {}
        off = 0
        for name, size in sizes:
            if size:
                self.work[name] = (off, size)
                off += -(-size // 16) * 16
        self.work_size = off


def scratch_need(node: Node, values: dict, params: dict) -> int | None:
    """Per-sample scratch floats of a sequence op (None for ops this module does not emit)."""
    if node.op is Op.RNN:
        return _RnnGeometry(node, values).work_size
    return None


def state_layout(g: Graph) -> dict[str, tuple[int, int]]:
    """Stateful RNN node -> (offset, size) of its states in the runtime's state buffer, per sample."""
    out: dict[str, tuple[int, int]] = {}
    off = 0
    values = g.values()
    for n in g.nodes:
        if n.op is Op.RNN and n.attr("stateful"):
            geo = _RnnGeometry(n, values)
            size = geo.K * geo.P * geo.F
            out[n.out.name] = (off, size)
            off += size
    return out


# ---------------------------------------------------------------------- scalar programs
def program_lines(program: tuple, x: str, out: str, c: Callable[[float], str], tag: str,
                  vector_math: bool = True) -> list[str]:
    """Statements computing scalar `out` = program(x) (see rules_seq: the activations of a cell);
    `vector_math`: tanh and sigmoid through the vectorizable CPU kernels of kernels/cpu/rnn.py (the
    CUDA backend's device code uses the libdevice functions of `step_lines` instead)."""
    if not program:
        return [f"{out} = {x}"]
    lines: list[str] = []
    names = [f"{tag}{k}" for k in range(len(program))]

    def arg(a: Any) -> str:
        if a == "x":
            return x
        if isinstance(a, tuple):
            return names[a[1]]
        return c(float(a))
    for k, (op, attrs, args) in enumerate(program):
        v = names[k]
        lines.append(f"{v} = {arg(args[0])}")
        if op is Op.TANH and vector_math:
            lines.append(f"{v} = _rnn.tanh32({v})")
        elif op is Op.SIGMOID and vector_math:
            lines.append(f"{v} = _rnn.sigmoid32({v})")
        elif op.group is Group.UNARY:
            lines += step_lines(Step(op, tuple(attrs)), v, None, c)
        else:
            lines += step_lines(Step(op, (), 1), v, arg(args[1]), c)
    lines.append(f"{out} = {names[-1]}")
    return lines


# ---------------------------------------------------------------------- the RNN kernel
def _gate_lines(geo: _RnnGeometry, c: Callable[[float], str]) -> list[str]:
    """The fused update of unit j at position p of row b, from z (recurrent product) and xp."""
    a, F = geo.attrs, geo.F
    act = lambda x, out, tag: program_lines(a["activation"], x, out, c, tag)  # noqa: E731
    ract = lambda x, out, tag: program_lines(a["recurrent_activation"], x, out, c, tag)  # noqa: E731
    one = c(1.0)
    lines = ["q = p * F + j", "g = p * GF + j"]
    if geo.cell == "simple":
        lines += act("xp[b, t, g] + z[b, g]", "hn", "_a")
        lines.append("h[b, q] = hn")
    elif geo.cell == "gru" and a.get("reset_after"):
        rb = lambda k: f" + rb[{k * F} + j]" if a.get("has_rbias") else ""  # noqa: E731
        lines += ract(f"xp[b, t, g] + (z[b, g]{rb(0)})", "gz", "_r")
        lines += ract(f"xp[b, t, g + {F}] + (z[b, g + {F}]{rb(1)})", "gr", "_s")
        lines += act(f"xp[b, t, g + {2 * F}] + gr * (z[b, g + {2 * F}]{rb(2)})", "hh", "_a")
        lines.append(f"h[b, q] = gz * h[b, q] + ({one} - gz) * hh")
    elif geo.cell == "gru":  # the second half, after the product of r * h (see `_kernel_source`)
        lines += act(f"xp[b, t, g + {2 * F}] + zh[b, q]", "hh", "_a")
        lines.append("gz = z[b, p * 2 * F + j]")
        lines.append(f"h[b, q] = gz * h[b, q] + ({one} - gz) * hh")
    else:  # lstm, convlstm: gates i, f, c, o
        lines += ract("xp[b, t, g] + z[b, g]", "gi", "_r")
        lines += ract(f"xp[b, t, g + {F}] + z[b, g + {F}]", "gf", "_s")
        lines += act(f"xp[b, t, g + {2 * F}] + z[b, g + {2 * F}]", "gc", "_a")
        lines += ract(f"xp[b, t, g + {3 * F}] + z[b, g + {3 * F}]", "go", "_o")
        lines.append("cn = gf * c[b, q] + gi * gc")
        lines.append("c[b, q] = cn")
        lines += act("cn", "hc", "_b")
        lines.append("h[b, q] = go * hc")
    return lines


def _apply_lines(program: tuple | str, arr: str, start: str, c: Callable[[float], str], tag: str) -> list[str]:
    """Statements applying an activation in place to one gate's units arr[b, start:start + F]."""
    if isinstance(program, str):
        return [f"_rnn.{program}_row({arr}, b, {start}, F)"]
    if not program:
        return []
    cell = f"{arr}[b, {start} + j]"
    return ["for j in range(F):"] + ["    " + line for line in program_lines(program, cell, cell, c, tag)]


def _loop(n: str, *body: str) -> list[str]:
    return [f"for j in range({n}):"] + ["    " + line for line in body]


def _row_gate_lines(geo: _RnnGeometry, c: Callable[[float], str]) -> list[str]:
    """The update of position p of row b gate by gate, when an activation is a function of a whole gate:
    pre-activations into z, each gate's activation in place, then the new state."""
    a, F = geo.attrs, geo.F
    act = lambda arr, start, tag: _apply_lines(a["activation"], arr, start, c, tag)  # noqa: E731
    ract = lambda arr, start, tag: _apply_lines(a["recurrent_activation"], arr, start, c, tag)  # noqa: E731
    one = c(1.0)
    if geo.cell == "simple":
        return (_loop("F", "z[b, j] = xp[b, t, j] + z[b, j]") + act("z", "0", "_a")
                + _loop("F", "h[b, j] = z[b, j]"))
    if geo.cell == "gru" and a.get("reset_after"):
        rb = lambda k: f" + rb[{k} + j]" if a.get("has_rbias") else ""  # noqa: E731
        return (_loop(f"{2 * F}", f"z[b, j] = xp[b, t, j] + (z[b, j]{rb(0)})")
                + ract("z", "0", "_r") + ract("z", f"{F}", "_s")
                + _loop("F", f"z[b, {2 * F} + j] = xp[b, t, {2 * F} + j]"
                             f" + z[b, {F} + j] * (z[b, {2 * F} + j]{rb(2 * F)})")
                + act("z", f"{2 * F}", "_a")
                + _loop("F", f"h[b, j] = z[b, j] * h[b, j] + ({one} - z[b, j]) * z[b, {2 * F} + j]"))
    if geo.cell == "gru":  # the second half, after the product of r * h (see `_kernel_source`)
        return (_loop("F", f"zh[b, j] = xp[b, t, {2 * F} + j] + zh[b, j]") + act("zh", "0", "_a")
                + _loop("F", f"h[b, j] = z[b, j] * h[b, j] + ({one} - z[b, j]) * zh[b, j]"))
    # lstm, convlstm: gates i, f, c, o of position p
    return (["e = p * GF", "o = p * F"] + _loop("GF", "z[b, e + j] = xp[b, t, e + j] + z[b, e + j]")
            + ract("z", "e", "_r") + ract("z", f"e + {F}", "_s") + act("z", f"e + {2 * F}", "_a")
            + ract("z", f"e + {3 * F}", "_o")
            + _loop("F", f"cn = z[b, e + {F} + j] * c[b, o + j] + z[b, e + j] * z[b, e + {2 * F} + j]",
                    "c[b, o + j] = cn", "v[b, o + j] = cn")
            + act("v", "o", "_b")
            + _loop("F", f"h[b, o + j] = z[b, e + {3 * F} + j] * v[b, o + j]"))


def _gru_split_lines(geo: _RnnGeometry, c: Callable[[float], str]) -> list[str]:
    """GRU without reset_after, first half of a step for row b: z and r, then r * h into rh."""
    a, F = geo.attrs, geo.F
    ract = a["recurrent_activation"]
    if geo.rows_mode:
        return (_loop(f"{2 * F}", "z[b, j] = xp[b, t, j] + z[b, j]") + _apply_lines(ract, "z", "0", c, "_r")
                + _apply_lines(ract, "z", f"{F}", c, "_s") + _loop("F", f"rh[b, j] = z[b, {F} + j] * h[b, j]"))
    return _loop(f"{F}", *program_lines(ract, "xp[b, t, j] + z[b, j]", "gz", c, "_r"),
                 *program_lines(ract, f"xp[b, t, j + {F}] + z[b, j + {F}]", "gr", c, "_s"),
                 "z[b, j] = gz", "rh[b, j] = gr * h[b, j]")


def _kernel_source(geo: _RnnGeometry, c: Callable[[float], str], args: list[str]) -> str:
    a = geo.attrs
    T, F, P = geo.T, geo.F, geo.P
    has_mask, unroll, zero = a.get("has_mask"), a.get("unroll"), c(0.0)
    buf = IndentedBuffer()
    buf.line(f"def {{name}}({', '.join(args)}, n):")
    with buf.indent():
        buf.line(f"F = {F}")
        buf.line(f"GF = {geo.G * F}")
        for name, (off, size) in geo.work.items():
            cols = size if name != "seen" else 1
            buf.line(f"{name} = work[n * {off}:n * {off + size}].reshape((n, {cols}))")
        # initial states: given, kept from the last call, or zeros
        buf.line("for b in range(n):")
        with buf.indent():
            buf.line(f"for q in range({P * F}):")
            with buf.indent():
                for k, sname in enumerate(["h", "c"][:geo.K]):
                    if a.get("n_init"):
                        src = f"s{k}[b, q]"
                    elif a.get("stateful"):
                        src = f"state[b, {k}, q]"
                    else:
                        src = zero
                    buf.line(f"{sname}[b, q] = {src}")
            if "seen" in geo.work:
                buf.line(f"seen[b, 0] = {zero}")
        buf.line(f"for s in range({T}):")
        with buf.indent():
            buf.line(f"t = {T - 1} - s" if a.get("go_backwards") else "t = s")
            oi = "t" if a.get("time_order") else "s"
            # the recurrent product z = h @ U of this step (for GRU without reset_after, of z and r only)
            if geo.cell == "convlstm":
                (H, W), (kh, kw) = geo.spatial, a["kernel_hw"]
                pt, pl = same_pads(H, kh, 1)[0], same_pads(W, kw, 1)[0]
                buf.line(f"_conv.conv2d(h.reshape((n, {H}, {W}, {F})), u, z.reshape((n, {H}, {W}, {geo.G * F})), "
                         f"{kh}, {kw}, 1, 1, 1, 1, {pt}, {pl}, col.reshape(({H * W * kh * kw * F} * n,)))")
            else:
                buf.line("_rnn.recur_matmul(h, u, z)")
            if geo.gru_split:
                # z and r of every row first, then the product of r * h, then the new state
                buf.line("for b in range(n):")
                with buf.indent():
                    for line in _gru_split_lines(geo, c):
                        buf.line(line)
                buf.line("_rnn.recur_matmul(rh, uh, zh)")
            buf.line("for b in range(n):")
            with buf.indent():
                if has_mask:
                    buf.line(f"if mask[b, t] == {zero}:")
                    with buf.indent():
                        if a.get("return_sequences"):
                            buf.line(f"for q in range({P * F}):")
                            with buf.indent():
                                if a.get("zero_masked"):
                                    buf.line(f"out[b, {oi}, q] = {zero}")
                                elif unroll:
                                    buf.line(f"out[b, {oi}, q] = h[b, q] if seen[b, 0] != {zero} else {zero}")
                                else:
                                    buf.line(f"out[b, {oi}, q] = h[b, q]")
                        buf.line("continue")
                    if unroll:
                        buf.line(f"seen[b, 0] = {c(1.0)}")
                buf.line(f"for p in range({P}):")
                with buf.indent():
                    if geo.rows_mode:
                        for line in _row_gate_lines(geo, c):
                            buf.line(line)
                    else:
                        buf.line(f"for j in range({F}):")
                        with buf.indent():
                            for line in _gate_lines(geo, c):
                                buf.line(line)
                if a.get("return_sequences"):
                    buf.line(f"for q in range({P * F}):")
                    with buf.indent():
                        buf.line(f"out[b, {oi}, q] = h[b, q]")
        tail: list[str] = []  # the last output, final states and kept states of every row
        if not a.get("return_sequences"):
            last = "0" if a.get("go_backwards") else str(T - 1)
            if has_mask and a.get("zero_masked"):
                tail.append(f"out[b, 0, q] = {zero} if mask[b, {last}] == {zero} else h[b, q]")
            elif has_mask and unroll:
                tail.append(f"out[b, 0, q] = h[b, q] if seen[b, 0] != {zero} else {zero}")
            else:
                tail.append("out[b, 0, q] = h[b, q]")
        for k, sname in enumerate(["h", "c"][:a.get("out_states", 0)]):
            tail.append(f"out[b, {geo.R + k}, q] = {sname}[b, q]")
        if a.get("stateful"):
            for k, sname in enumerate(["h", "c"][:geo.K]):
                tail.append(f"state[b, {k}, q] = {sname}[b, q]")
        if tail:
            buf.line("for b in range(n):")
            with buf.indent():
                buf.line(f"for q in range({P * F}):")
                with buf.indent():
                    for line in tail:
                        buf.line(line)
        buf.line("return 0")
    return buf.getvalue()


#: arguments of a recurrence kernel that are not per batch row (weights)
_SHARED_ARGS = ("u", "uh", "rb")


def emit_rnn(cg: Any, node: Node, out: str) -> None:
    """A recurrence alone: its batch rows split into one block per thread (each block is its own
    recurrence: rows never mix), so that a batch runs on every core; one row, or a ConvLSTM (whose
    conv has parallel loops of its own), runs as one call."""
    name, args, exprs = rnn_call(cg, node, out)
    if node.attr("cell") == "convlstm":
        cg.line(f"{name}({', '.join(exprs)}, n)")
        return
    ws = cg.plan.scratch[node.out.name][1]  # the kernel's work floats per row, as planned
    params = ", ".join(args)
    sliced = ", ".join(a if a in _SHARED_ARGS else f"work[b0 * {ws}:b1 * {ws}]" if a == "work" else f"{a}[b0:b1]"
                       for a in args)
    body = (f"def {{name}}({params}, n, nt):\n"
            f"    blocks = min(n, nt)\n"
            f"    if blocks <= 1:\n"
            f"        {name}({params}, n)\n"
            f"    else:\n"
            f"        for t in prange(blocks):\n"
            f"            b0 = t * n // blocks\n"
            f"            b1 = (t + 1) * n // blocks\n"
            f"            {name}({sliced}, b1 - b0)\n"
            f"    return 0\n")
    cg.line(f"{cg.define_kernel('_rnnb', body, parallel=True)}({', '.join(exprs)}, n, nt)")


def emit_rnn_group(cg: Any, nodes: list[Node], outs: list[str]) -> None:
    """Recurrences that do not read each other (a run of `group_recurrences`: a Bidirectional
    layer's two directions) in one parallel region, one task per node: the only parallel work a
    batch-1 call of such a model has. Their kernels are serial (BLAS on one thread inside, as
    everywhere in numba's tasks); the memory plan frees nothing of the run before its end."""
    calls = [(name, exprs) for name, _, exprs in (rnn_call(cg, nd, o) for nd, o in zip(nodes, outs))]
    params = [[f"a{k}_{j}" for j in range(len(e))] for k, (_, e) in enumerate(calls)]
    lines = [f"def {{name}}({', '.join(p for ps in params for p in ps)}, n):",
             f"    for t in prange({len(calls)}):"]
    for k, ((name, _), ps) in enumerate(zip(calls, params)):
        head = "if" if k == 0 else "elif" if k < len(calls) - 1 else "else"
        lines.append(f"        {head} t == {k}:" if head != "else" else "        else:")
        lines.append(f"            {name}({', '.join(ps)}, n)")
    lines.append("    return 0")
    name = cg.define_kernel("_rnns", "\n".join(lines) + "\n", parallel=True)
    cg.line(f"{name}({', '.join(e for _, es in calls for e in es)}, n)")


def rnn_call(cg: Any, node: Node, out: str) -> tuple[str, list[str], list[str]]:
    """(kernel name, parameter names, argument expressions) but `n` of the node's recurrence
    kernel, defined once per body."""
    geo = _RnnGeometry(node, cg.values)
    a = geo.attrs
    named = dict(zip(geo.names, node.inputs))
    T, P, F = geo.T, geo.P, geo.F
    u = cg.g.params[named["U"]]
    args, exprs = ["xp", "u"], [f"{cg.ref(named['xp'])}.reshape((n, {T}, {P * geo.G * F}))"]
    if geo.cell == "convlstm":
        exprs.append(cg.weight(f"{named['U']}@gemm", u.reshape(-1, 1, u.shape[-1]).transpose(1, 0, 2)))
    elif geo.gru_split:
        exprs.append(cg.weight(f"{named['U']}@zr", u[:, :2 * F]))
        args.append("uh")
        exprs.append(cg.weight(f"{named['U']}@h", u[:, 2 * F:]))
    else:
        exprs.append(cg.ref(named["U"]))
    if a.get("has_rbias"):
        args.append("rb")
        exprs.append(cg.ref(named["rbias"]))
    if a.get("has_mask"):
        args.append("mask")
        exprs.append(f"{cg.ref(named['mask'])}.reshape((n, {T}))")
    for k in range(a.get("n_init", 0)):
        args.append(f"s{k}")
        exprs.append(f"{cg.ref(named[f'state{k}'])}.reshape((n, {P * F}))")
    args += ["out", "work"]
    exprs += [f"{out}.reshape((n, {geo.rows}, {P * F}))", cg.scratch(node)]
    if a.get("stateful"):
        off, size = cg.state_slots[node.out.name]
        args.append("state")
        exprs.append(f"state[n * {off}:n * {off + size}].reshape((n, {geo.K}, {P * F}))")
    return cg.define_kernel("_rnn", _kernel_source(geo, cg.c, args)), args, exprs


def group_recurrences(g: Graph) -> tuple[Graph, dict[str, list[str]]]:
    """`g` with every RNN node delayed to just before the first node that reads it (RESHAPE views of
    it move along), so that independent ones, such as a Bidirectional's two directions, become
    adjacent; and, for each RNN node of a run of two or more adjacent ones, that run's outputs (the
    codegen launches a run as one kernel; the CPU codegen as one parallel region, one task per node).
    Each RNN still runs after its inputs, and the memory plan, made after this reordering, keeps their
    inputs alive until then."""
    pending: list[Node] = []        # delayed RNN nodes and views of them, in order
    pending_names: set[str] = set()
    order: list[Node] = []
    groups: dict[str, list[str]] = {}

    def flush() -> None:
        rnns = [nd for nd in pending if nd.op is Op.RNN]
        order.extend(rnns)
        order.extend(nd for nd in pending if nd.op is not Op.RNN)
        if len(rnns) > 1:
            run = [nd.out.name for nd in rnns]
            for name in run:
                groups[name] = run
        pending.clear()
        pending_names.clear()

    for nd in g.nodes:
        reads = any(i in pending_names for i in nd.inputs)
        if nd.op is Op.RESHAPE and reads:
            pending.append(nd)
            pending_names.add(nd.out.name)
            continue
        if reads:
            flush()
        if nd.op is Op.RNN and nd.attr("cell") != "convlstm":  # a ConvLSTM runs alone (its scratch)
            pending.append(nd)
            pending_names.add(nd.out.name)
        else:
            order.append(nd)
    flush()
    return g.with_nodes(order), groups


# ---------------------------------------------------------------------- gathers and batched matmuls
def _count(shape: tuple) -> str:
    """Elements of `shape` (batch included) as an expression of n."""
    static = int(np.prod([d for d in shape[1:]], dtype=np.int64))
    return "n" if static == 1 else f"n * {static}"


def emit_gather(cg: Any, node: Node, out: str) -> None:
    idx, table = node.inputs
    rows = cg.g.params[table]
    width = int(np.prod(rows.shape[1:], dtype=np.int64))
    m = _count(cg.shape(idx))
    tv = cg.weight(f"{table}@rows", rows.reshape(rows.shape[0], width))
    cg.line(f"_seq.gather_rows({cg.ref(idx)}.reshape(({m},)), {tv}, {out}.reshape(({m}, {width})))")


def emit_one_hot(cg: Any, node: Node, out: str) -> None:
    idx = node.inputs[0]
    m = _count(cg.shape(idx))
    cg.line(f"_seq.one_hot({cg.ref(idx)}.reshape(({m},)), {out}.reshape(({m}, {node.attr('depth')})), "
            f"{bool(node.attr('truncate'))})")


def emit_bmm(cg: Any, node: Node, out: str) -> None:
    from .cpu import _epilogue  # cpu imports this module
    a, b = node.inputs[0], node.inputs[1]  # then the operands of a fused epilogue
    sa, sb, so = cg.shape(a), cg.shape(b), node.out.shape
    lead = _count(so[:-2])
    view = lambda s: f"({lead}, {s[-2]}, {s[-1]})"  # noqa: E731
    cg.line(f"_seq.bmm_par({cg.ref(a)}.reshape({view(sa)}), {cg.ref(b)}.reshape({view(sb)}), "
            f"{out}.reshape({view(so)}), {bool(node.attr('transpose_b'))}, nt)")
    _epilogue(cg, node, out)


SEQ_EMITTERS: dict[Op, Callable[[Any, Node, str], None]] = {
    Op.RNN: emit_rnn,
    Op.GATHER: emit_gather,
    Op.ONE_HOT: emit_one_hot,
    Op.BMM: emit_bmm,
}
