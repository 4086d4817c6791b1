"""CPU backend: renders a planned graph as the Python source of one module of `numba.njit` functions.

The module defines `run(blob, arena, n, in0, ..., out0, ...)`, the whole model as one compiled call:
`blob` is the packed weights (float32, 1-D), `arena` the planned scratch memory (float32, 1-D, at
least `n * arena_per_sample` long), `n` the batch size. Hand-written kernels come from
`kerasjit.kernels.cpu`; generated ones (fused elementwise loops) are defined in the module itself.
A backend is the table `EMITTERS: op -> emitter`; everything else here is shared plumbing.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ...errors import CompileError
from ...kernels.cpu import packed as _packed
from ..ir import Graph, Group, Node, Op
from ..plan import Plan, plan_memory
from . import cpu_fused
from .common import Blob, Constants, IndentedBuffer, collapse, dims_expr, step_lines
from .cpu_layout import emit_concat, emit_pad, emit_slice, emit_transpose
from .cpu_seq import SEQ_EMITTERS, emit_rnn_group, group_recurrences, scratch_need, state_layout

JIT = "@njit(cache=True, nogil=True, error_model='numpy', boundscheck=False)"
PJIT = cpu_fused.PJIT  # the parallel form, for generated functions with prange
PART_NODES = 24  # nodes per jitted part of `run` (see CpuCodegen.generate)


@dataclass
class Generated:
    source: str
    blob: Blob
    plan: Plan
    #: floats per sample of the state buffer `run` takes last (stateful RNNs); 0: no such argument
    state_per_sample: int = 0


class CpuCodegen:
    """Holds the state of rendering one graph: variable names, weights blob, generated kernels."""

    def __init__(self, g: Graph):
        #: the node order of the graph (the manifest's): profile ticks name nodes by it
        self.index = {n.out.name: k for k, n in enumerate(g.nodes)}
        # independent RNN nodes side by side, each run of them one parallel region
        # (cpu_seq.group_recurrences, emit_rnn_group)
        g, self.rnn_groups = group_recurrences(g)
        self.g = g
        self.producers = g.producers()
        self.values = g.values()
        self.state_slots = state_layout(g)  # stateful node -> (offset, size) in the state buffer
        #: conv output -> the pooling node that alone reads it, pooled by the conv's own driver
        self.pooled: dict[str, Node] = _fused_pools(self)
        #: positions of nodes that run at the same time as the next one (the runs of rnn_groups)
        self.together: set[int] = {k for k, n in enumerate(g.nodes)
                                   if self.rnn_groups.get(n.out.name, [n.out.name])[-1] != n.out.name}
        self.plan = plan_memory(g, scratch_size=self.scratch_size, in_place_ok=self.in_place_ok,
                                slice_ok=self.slice_ok,
                                pooled={k: p.out.name for k, p in self.pooled.items()},
                                together=self.together)
        self.blob = Blob()
        self.c = Constants()
        self.kernels: dict[str, str] = {}   # kernel body (name-free) -> function name
        self.kernel_src: list[str] = []
        self.drivers: dict[tuple, str] = {}  # (kind, driver body) -> function name (cpu_fused.py)
        self.body = IndentedBuffer()
        self.var: dict[str, str] = {}
        self.nvar = 0

    # ------------------------------------------------------------------ helpers for emitters
    def shape(self, name: str) -> tuple:
        if name in self.values:
            return self.values[name].shape
        return tuple(self.g.params[name].shape)

    def ref(self, name: str) -> str:
        """The Python expression of a value or parameter (parameters as views of the blob)."""
        if name in self.var:
            return self.var[name]
        if name in self.g.params:
            return self.weight(name, self.g.params[name])
        if name in self.values and name in self.plan.storage:
            return self.define(name)  # made in an earlier part of `run`: bind it in this one
        raise CompileError(f"value {name!r} used before it is defined")

    def weight(self, key: str, array: np.ndarray) -> str:
        off, shape = self.blob.add(key, array)
        size = int(np.prod(shape)) if shape else 1
        dims = ", ".join(str(d) for d in shape) if shape else "1"
        return f"blob[{off}:{off + size}].reshape(({dims},))"

    def scratch(self, node: Node) -> str:
        off, size = self.plan.scratch[node.out.name]
        return f"arena[n * {off}:n * {off + size}]"

    def line(self, text: str) -> None:
        self.body.line(text)

    def scratch_size(self, n: Node, values: dict) -> int:
        need = scratch_need(n, values, self.g.params)
        if need is not None:
            return need
        if n.op not in (Op.CONV, Op.CONV_TRANSPOSE):
            return 0
        x, w = values[n.inputs[0]].shape, self.g.params[n.inputs[1]].shape
        taps = int(np.prod(w[:-2], dtype=np.int64))
        if n.op is Op.CONV_TRANSPOSE:  # the (input pixels, taps * cout) GEMM result
            return int(np.prod(x[1:-1], dtype=np.int64)) * taps * w[-1]
        cig, co = w[-2:]
        groups = n.attr("groups", 1)
        pixels = int(np.prod(n.out.shape[1:-1], dtype=np.int64))
        if _is_depthwise(n, x, w):
            return 0
        if groups == 1 and _is_pointwise(n, x, w):
            return 0
        row = _rowconv(n, x, w) if groups == 1 else None
        if row is not None:  # the width-padded input (its lines are row[-1] wide), or im2col rows
            return max(int(np.prod(x[1:-2], dtype=np.int64)) * row[-1] * cig, pixels * taps * cig)
        wm = _winograd_m(n, x, w)
        if wm:  # V and M of every tile, or im2col rows if the fused driver can't be used
            tiles = (-(-n.out.shape[1] // wm)) * (-(-n.out.shape[2] // wm))
            return max((wm + 2) ** 2 * (cig + co) * tiles, pixels * taps * cig)
        return pixels * taps * cig + (pixels * (co // groups) if groups > 1 else 0)

    def slice_ok(self, n: Node) -> bool:
        """Whether the node's code can write its output into a concatenation's buffer: the fused GEMM
        and Winograd drivers (cpu_fused.py) take a row stride and a first column."""
        if len(n.inputs) < 2 or n.inputs[1] not in self.g.params or not cpu_fused.operands_fit(self, n):
            return False
        w = self.g.params[n.inputs[1]].shape
        if n.op is Op.MATMUL:
            return len(w) == 2
        if n.op is Op.CONV:
            return (len(w) == 4 and len(n.out.shape) == 4 and n.attr("groups", 1) == 1
                    and not _is_depthwise(n, self.shape(n.inputs[0]), w))
        return False

    def in_place_ok(self, n: Node) -> bool:
        main = n.inputs[0]
        return n.op is Op.FUSED and main in self.values and tuple(self.values[main].shape) == tuple(n.out.shape)

    def define_kernel(self, prefix: str, body: str, parallel: bool = False) -> str:
        """The name of the generated function `body` (its name a `{name}` placeholder), defined in the
        module once per body: `prefix` and a number."""
        name = self.kernels.get(body)
        if name is None:
            name = f"{prefix}{len(self.kernels)}"
            self.kernels[body] = name
            self.kernel_src.append((PJIT if parallel else JIT) + "\n" + body.replace("{name}", name))
        return name

    # ------------------------------------------------------------------ fused elementwise loops
    def elementwise(self, node: Node, main: str | None, out: str) -> None:
        """Emit `out = epilogue(main)` as one generated loop; `main` None means `out` in place."""
        steps = node.epilogue
        operands = [node.inputs[s.operand] for s in steps if s.operand is not None]
        out_shape = node.out.shape
        shapes = [self.shape(main) if main is not None else out_shape] + [self.shape(o) for o in operands]
        groups, bflags = collapse(out_shape, shapes)
        rank = len(groups)
        buf = IndentedBuffer()
        args = ", ".join(f"a{i}" for i in range(len(operands) + 1))
        buf.line(f"def {{name}}(out, {args}):")
        with buf.indent():
            buf.line(", ".join(f"d{k}" for k in range(rank)) + (", = out.shape" if rank == 1 else " = out.shape"))
            for k in range(rank):
                buf.line(f"for i{k} in range(d{k}):")
                buf.level += 1

            def index(flags: list[bool]) -> str:
                return ", ".join("0" if f else f"i{k}" for k, f in enumerate(flags))

            buf.line(f"x = a0[{index(bflags[0])}]")
            k_op = 1
            for s in steps:
                operand = None
                if s.operand is not None:
                    operand = f"a{k_op}[{index(bflags[k_op])}]"
                    k_op += 1
                for ln in step_lines(s, "x", operand, self.c):
                    buf.line(ln)
            buf.line(f"out[{index([False] * rank)}] = x")
            buf.level -= rank
        name = self.define_kernel("_ew", buf.getvalue())
        call_args = [f"{out}.reshape({dims_expr(out_shape, groups, [False] * rank, 'n')})"]
        main_expr = out if main is None else self.ref(main)
        padded = [(1,) * (len(out_shape) - len(s)) + tuple(s) for s in shapes]
        call_args.append(f"{main_expr}.reshape({dims_expr(padded[0], groups, bflags[0], 'n')})")
        for k, o in enumerate(operands, start=1):
            call_args.append(f"{self.ref(o)}.reshape({dims_expr(padded[k], groups, bflags[k], 'n')})")
        self.line(f"{name}({', '.join(call_args)})")

    # ------------------------------------------------------------------ driver
    def define(self, name: str) -> str:
        """Bind the Python variable of value `name` to its planned storage."""
        kind, where = self.plan.storage[name]
        if kind == "slice":  # written into the concatenation's buffer by its node (cpu_fused._output)
            return self.ref(where[0])
        if kind == "pooled":  # its node writes the pooling's output (`_fused_pools`)
            return self.ref(where)
        v = self.values[name]
        dims = ", ".join(["n"] + [str(d) for d in v.shape[1:]])
        var = f"v{self.nvar}"
        self.nvar += 1
        if kind == "input":
            expr = f"in{where}"
        elif kind == "output":
            expr = f"out{where}"
        elif kind == "alias":
            expr = f"{self.ref(where)}.reshape(({dims},))"
        else:
            ps = v.per_sample()
            expr = f"arena[n * {where}:n * {where + ps}].reshape(({dims},))"
        self.line(f"{var} = {expr}")
        self.var[name] = var
        return var

    def generate(self) -> Generated:
        g = self.g
        ins = [f"in{k}" for k in range(len(g.inputs))]
        outs = [f"out{k}" for k in range(len(g.outputs))]
        state = ["state"] if self.state_slots else []
        args = ", ".join(["blob", "arena", "n", "nt"] + ins + outs + state)
        # `run` calls the model in parts of PART_NODES nodes, each its own jitted function: numba's
        # compile time grows faster than linearly with a function's length (LLVM optimizes one huge
        # function for many minutes: DenseNet121's ~560 statements), and linearly with their number.
        # (a run of recurrences that runs at once stays in one part)
        parts: list[list[Node]] = [[]]
        for i, node in enumerate(g.nodes):
            if len(parts[-1]) >= PART_NODES and i - 1 not in self.together:
                parts.append([])
            parts[-1].append(node)
        idx = -1
        for k, part in enumerate(parts):
            self.var = {}  # every part binds the values it uses to their storage anew
            self.nvar = 0
            self.body.line(JIT)
            self.body.line(f"def _run{k}({args}):")
            with self.body.indent():
                for node in part:
                    idx += 1
                    if idx:
                        self.line(f"#@tick {self.index[g.nodes[idx - 1].out.name]}")
                    # the node's index, not its layer's name: code that differs only in names (a model
                    # built again, re-saved, retrained) is the same code, compiled once; the manifest's
                    # `nodes` (and graph.txt) name the layers of node k (the manifest's order: the
                    # recurrences of a run are side by side here)
                    self.line(f"# node {self.index[node.out.name]}: {node.op.label}")
                    out = self.ref(node.out.name)  # bound already if its parts wrote into it
                    if idx - 1 in self.together:
                        self.line("# run with the node before it")
                        continue
                    emit = EMITTERS.get(node.op)
                    if idx in self.together:
                        run = [self.producers[o] for o in self.rnn_groups[node.out.name]]
                        emit = lambda cg, _n, _o, run=run: emit_rnn_group(cg, run, [cg.ref(r.out.name) for r in run])
                    if emit is None:
                        raise CompileError(f"the CPU backend has no emitter for {node.op.label} (layer {node.layer!r})")
                    try:
                        emit(self, node, out)
                    except CompileError:
                        raise
                    except Exception as e:
                        raise CompileError(f"while generating code for {node}: {type(e).__name__}: {e}") from e
                if k == len(parts) - 1:
                    for j, name in self.plan.output_copies:
                        self.line(f"out{j}[:] = {self.ref(name)}.reshape(out{j}.shape)")
                    self.line(f"#@tick {self.index[g.nodes[-1].out.name] if g.nodes else -1}")
                self.line("return 0")
            self.body.line("")
        self.body.line(JIT)
        self.body.line(f"def run({args}):")
        with self.body.indent():
            for k in range(len(parts)):
                self.line(f"_run{k}({args})")
            self.line("return 0")
        head = ["import math", "import numpy as np", "from numba import get_thread_id, njit, prange",
                "from kerasjit.kernels.cpu import gemm as _gemm",
                "from kerasjit.kernels.cpu import conv as _conv, pool as _pool, reduce as _reduce",
                "from kerasjit.kernels.cpu import conv3d as _conv3d, conv_transpose as _convt, pool3d as _pool3d",
                "from kerasjit.kernels.cpu import layout as _layout, sparsemax as _sparsemax",
                "from kerasjit.kernels.cpu import rnn as _rnn, seq as _seq, winograd as _wino, packed as _pk", "",
                "_F0 = np.float32(0.0)", "_F1 = np.float32(1.0)", "_I = np.int64", ""]
        run = unliteral_int_args(self.body.getvalue())
        src = "\n".join(head + self.c.declarations() + [""] + [k + "\n" for k in self.kernel_src]) + "\n" + \
            run + "\n\n" + _profiled_twin(run)
        return Generated(src, self.blob, self.plan, sum(size for _, size in self.state_slots.values()))


def unliteral_int_args(source: str) -> str:
    """`source` with every integer constant passed to a call (alone or in a tuple) as `_I(k)`.

    numba types a constant argument of a call between jitted functions as `Literal[int](k)` and
    compiles the callee once per literal value, and again for every callee it passes the value on to:
    ResNet50's one Winograd driver was compiled five times (once per geometry, ~3 s each) and the
    generic drivers of cpu_fused.py were re-specialized per layer. `_I` (np.int64) gives the plain
    int64 type, so a driver or kernel is compiled once per array types; LLVM still folds the value.
    Array methods (`reshape`) keep their constants: their shapes are not passed on."""
    tree = ast.parse(source)
    spots: list[tuple[int, int, int]] = []

    def take(arg: ast.expr) -> None:
        if isinstance(arg, ast.UnaryOp) and isinstance(arg.op, ast.USub):
            arg_c = arg.operand
        else:
            arg_c = arg
        if isinstance(arg_c, ast.Constant) and type(arg_c.value) is int:
            spots.append((arg.lineno, arg.col_offset, arg.end_col_offset))
        elif isinstance(arg, ast.Tuple):
            for e in arg.elts:
                take(e)

    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        if isinstance(node.func, ast.Attribute) and node.func.attr in ("reshape", "int64"):
            continue
        for arg in node.args:
            take(arg)
    lines = [ln.encode() for ln in source.split("\n")]  # ast's column offsets count UTF-8 bytes
    for lineno, c0, c1 in sorted(spots, reverse=True):  # right to left keeps earlier offsets valid
        ln = lines[lineno - 1]
        lines[lineno - 1] = ln[:c0] + b"_I(" + ln[c0:c1] + b")" + ln[c1:]
    return "\n".join(ln.decode() for ln in lines)


def _profiled_twin(run_source: str) -> str:
    """`run_profiled(..., tick)`: the same code as plain Python calling the same jitted kernels, with
    `tick(k)` after node k, so a profiler can time every node. Never used on the fast path."""
    lines = []
    for ln in run_source.splitlines():
        stripped = ln.strip()
        if stripped == JIT:
            continue
        if stripped.startswith("def run(") or stripped.startswith("def _run"):
            ln = ln.replace("(", "_profiled(", 1).replace("):", ", tick):")
        elif stripped.startswith("_run"):  # run's call of one of its parts
            ln = ln.replace("(", "_profiled(", 1)[:-1] + ", tick)"
        elif stripped.startswith("#@tick "):
            ln = ln.replace("#@tick ", "tick(") + ")"
        lines.append(ln)
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------- emitters
def _is_depthwise(n: Node, x: tuple, w: tuple) -> bool:
    # 3D convolutions always take the im2col path (Keras has no depthwise 3D layer)
    return len(w) <= 4 and w[-2] == 1 and n.attr("groups", 1) == x[-1] and n.attr("groups", 1) > 1


#: Winograd for dense 3x3 stride-1 convs (kernels/cpu/winograd.py). F(4x4, 3x3) (4x fewer
#: multiplications) where the input has at least WINOGRAD4_MIN_CIN channels and the output at least
#: WINOGRAD4_MIN_TILES 4x4 tiles per sample, or WINOGRAD4_FEW_TILES when its transformed kernels fit
#: in WINOGRAD4_SMALL_BYTES. Those are 4x the plain ones and every task of tiles reads them all, so
#: at few tiles per task the weights' trip from L3 costs more than the multiplications saved: inside
#: ResNet50 (2 Xeon cores) its 14x14 convs (16 tiles, 9.4 MB of kernels) took the model from 27.7 to
#: 29.7 ms at batch 1 and 404 to 413 ms at batch 16, though alone, their kernels in cache, they ran
#: 0.38 against 0.48 ms. Alone against the direct conv (batch 1 / 16): 35x35 96 -> 96 0.62 -> 0.30 /
#: 9.8 -> 4.8 ms; 56x56 64 -> 64 0.68 -> 0.34 / 11.9 -> 5.7; 147x147 32 -> 64 2.55 -> 1.35 / 53 -> 35;
#: MNIST's 24x24 32 -> 64 (36 tiles, 0.3 MB of kernels) 78 -> 39 us / 1.10 -> 0.55 ms; 55x55 16 -> 64
#: 0.195 -> 0.137 / 2.9 -> 2.3 ms.
WINOGRAD4_MIN_CIN = 16
WINOGRAD4_MIN_TILES = 48
WINOGRAD4_FEW_TILES = 16
WINOGRAD4_SMALL_BYTES = 1 << 20
#: F(2x2, 3x3) (2.25x fewer) for the smaller outputs, with at least this many input channels (fewer:
#: the transforms cost more than the multiplications they save; a network's first layer) ...
WINOGRAD_MIN_CIN = 64
#: ... when it saves at least this factor of multiplications: 16 per 2x2 tile of the output against 9
#: per pixel, so odd and tiny outputs save less (3x3: 1.27x, 5x5: 1.56x, 7x7: 1.72x, even: 2.25x).
#: The transformed kernels are 16/9 the size of the plain ones and every task of tiles reads them
#: all, which at few tiles costs more than the multiplications saved: on 2 Xeon cores, ResNet50's
#: 7x7 stage inside the network took 2.1 ms per conv with Winograd against 1.25 ms without (batch 1;
#: batch 16 level), so the 7x7 outputs (1.72x) stay on the GEMM. (On 2 Zen 4 cores with 1.5 here
#: they gained, 1.19 -> 0.92 ms.)
WINOGRAD_MIN_SAVING = 1.8


def _is_winograd(n: Node, x: tuple, w: tuple) -> bool:
    return _winograd_m(n, x, w) > 0


def _winograd_m(n: Node, x: tuple, w: tuple) -> int:
    """m of the Winograd F(m x m, 3x3) a conv takes (4 or 2), or 0 if it takes none."""
    if not (len(w) == 4 and tuple(w[:2]) == (3, 3) and n.attr("groups", 1) == 1
            and tuple(n.attr("strides")) == (1, 1) and tuple(n.attr("dilation")) == (1, 1)
            and len(n.out.shape) == 4):
        return 0
    oh, ow = int(n.out.shape[1]), int(n.out.shape[2])
    tiles4 = (-(-oh // 4)) * (-(-ow // 4))
    if w[2] >= WINOGRAD4_MIN_CIN and (tiles4 >= WINOGRAD4_MIN_TILES or (
            tiles4 >= WINOGRAD4_FEW_TILES and 36 * 4 * int(w[2]) * int(w[3]) <= WINOGRAD4_SMALL_BYTES)):
        return 4
    tiles = ((oh + 1) // 2) * ((ow + 1) // 2)
    return 2 if w[2] >= WINOGRAD_MIN_CIN and 9 * oh * ow >= WINOGRAD_MIN_SAVING * 16 * tiles else 0


#: dense convs without dilation along the width run as "implicit GEMMs" on the input lines
#: (cpu_fused.emit_rowconv) instead of GEMMs on im2col rows, when a kernel row has at least
#: ROWCONV_MIN_K elements (kw * cin) and an output line at least ROWCONV_MIN_W pixels (the rows of
#: one GEMM: at 17 pixels, Inception v3's 1x7 convs were slower than on im2col rows). Even MNIST's
#: first conv (kw * cin = 3: three GEMMs of depth 3) gained, 18.3 -> 13.4 us at batch 1 and 101 -> 83
#: at batch 16: its im2col copied 3 floats at a time.
ROWCONV_MIN_K = 1
ROWCONV_MIN_W = 24


def _rowconv(n: Node, x: tuple, w: tuple) -> tuple | None:
    """(oh, ow, kh, kw, sh, sw, dh, pt, pl, wp) of a conv taken by `cpu_fused.emit_rowconv`, else None;
    wp is the width of the input lines it reads (with the padding: (ow - 1) * sw + kw)."""
    rank = len(n.attr("strides"))
    if not (rank in (1, 2) and len(w) == rank + 2 and n.attr("groups", 1) == 1 and not _is_pointwise(n, x, w)
            and not _is_winograd(n, x, w)):
        return None
    ks = _lead(w[:-2], rank, 2, 1)
    ss = _lead(n.attr("strides"), rank, 2, 1)
    ds = _lead(n.attr("dilation"), rank, 2, 1)
    pads = _lead(n.attr("pads"), rank, 2, (0, 0))
    spatial = _lead(n.out.shape[1:-1], rank, 2, 1)
    oh, ow = int(spatial[0]), int(spatial[1])
    if ds[1] != 1 or ks[1] * w[-2] < ROWCONV_MIN_K or ow < ROWCONV_MIN_W or min(min(p) for p in pads) < 0:
        return None
    return (oh, ow, int(ks[0]), int(ks[1]), int(ss[0]), int(ss[1]), int(ds[0]), int(pads[0][0]),
            int(pads[1][0]), (ow - 1) * int(ss[1]) + int(ks[1]))


def _fused_pools(cg: CpuCodegen) -> dict[str, Node]:
    """Convs whose 2x2 stride-2 pooling (max or average, no padding) runs inside their Winograd
    driver: each output tile pools its own windows (a tile's origin is even, so windows never straddle
    two tiles) and the conv's full-size output is never written nor read again. The pooling must be the
    conv's only reader and the next node (its output is allocated when the conv runs), and the conv's
    epilogue operands per channel (the epilogue runs on the tile before it is pooled)."""
    g, res = cg.g, {}
    consumers = g.consumers()
    outputs = set(g.outputs)
    for n, p in zip(g.nodes, g.nodes[1:]):
        if not (n.op is Op.CONV and p.op in (Op.MAXPOOL, Op.AVGPOOL) and p.inputs[0] == n.out.name
                and len(consumers.get(n.out.name, [])) == 1 and n.out.name not in outputs
                and len(n.out.shape) == 4 and tuple(p.attr("pool")) == (2, 2) and tuple(p.attr("strides")) == (2, 2)
                and all(tuple(q) == (0, 0) for q in p.attr("pads"))):
            continue
        w = g.params.get(n.inputs[1])
        if w is None or not _winograd_m(n, cg.shape(n.inputs[0]), w.shape):
            continue
        views = cpu_fused.operand_views(cg, n)
        if views is None or not all(fm for _, _, (_, fm, _) in views):
            continue
        res[n.out.name] = p
    return res


def _is_pointwise(n: Node, x: tuple, w: tuple) -> bool:
    return (len(w) <= 4 and all(k == 1 for k in w[:-2]) and all(s == 1 for s in n.attr("strides"))
            and all(tuple(p) == (0, 0) for p in n.attr("pads")))


def _epilogue(cg: CpuCodegen, node: Node, out: str) -> None:
    if node.epilogue:
        cg.elementwise(node, None, out)


def _lead(values: tuple, rank: int, target: int, fill) -> tuple:
    """Per-spatial-dim `values` of a rank-`rank` op, padded in front with `fill` to `target` dims."""
    return (fill,) * (target - rank) + tuple(values)


def _spatial_view(expr: str, shape: tuple, target: int) -> str:
    """`expr` (batch, *spatial, C) viewed with unit spatial dims in front up to `target` spatial dims:
    the 2D kernels serve 1D ops and the 3D transposed-conv kernel serves 1D and 2D ones."""
    rank = len(shape) - 2
    if rank == target:
        return expr
    dims = ", ".join(["n"] + ["1"] * (target - rank) + [str(d) for d in shape[1:]])
    return f"{expr}.reshape(({dims},))"


def emit_conv(cg: CpuCodegen, node: Node, out: str) -> None:
    x, wname = node.inputs[0], node.inputs[1]
    w = cg.g.params[wname]
    rank = len(node.attr("strides"))
    groups = node.attr("groups", 1)
    xs = cg.shape(x)
    target = 3 if rank == 3 else 2
    ks = _lead(w.shape[:-2], rank, target, 1)
    ss = _lead(node.attr("strides"), rank, target, 1)
    ds = _lead(node.attr("dilation"), rank, target, 1)
    ps = _lead((lo for lo, _ in node.attr("pads")), rank, target, 0)
    cig, co = w.shape[-2:]
    geometry = ", ".join(str(v) for v in ks + ss + ds + ps)
    xv, ov = _spatial_view(cg.ref(x), xs, target), _spatial_view(out, node.out.shape, target)
    scratch = cg.scratch(node) if node.out.name in cg.plan.scratch else "arena[0:0]"
    if target == 3:
        packed = w.reshape(-1, groups, co // groups).transpose(1, 0, 2)
        cg.line(f"_conv3d.conv3d({xv}, {cg.weight(f'{wname}@gemm', packed)}, {ov}, {geometry}, {scratch})")
    elif _is_depthwise(node, xs, w.shape):
        wv = cg.weight(f"{wname}@dw", w.reshape(ks[0], ks[1], co))
        if cpu_fused.emit_depthwise(cg, node, ov, xv, wv, ss + ds + ps):
            return
        cg.line(f"_conv.depthwise2d({xv}, {wv}, {ov}, {', '.join(str(v) for v in ss + ds + ps)})")
    elif ((wm := _winograd_m(node, xs, w.shape)) and
          cpu_fused.emit_winograd(cg, node, out, xv, wname, w, ps, scratch, wm, cg.pooled.get(node.out.name))):
        return
    elif (groups == 1 and (row := _rowconv(node, xs, w.shape)) is not None and
          cpu_fused.emit_rowconv(cg, node, out, xv, wname, w.reshape((1,) * (4 - w.ndim) + w.shape), row, scratch)):
        return
    elif groups == 1 and _fused_conv(cg, node, out, xv, w, ks, ss, ds, ps, scratch):
        return
    else:
        _not_a_slice(cg, node)
        packed = w.reshape(-1, groups, co // groups).transpose(1, 0, 2)
        cg.line(f"_conv.conv2d({xv}, {cg.weight(f'{wname}@gemm', packed)}, {ov}, {geometry}, {scratch})")
    _epilogue(cg, node, out)


def _not_a_slice(cg: CpuCodegen, node: Node) -> None:
    """The unfused paths write whole buffers: reaching one with a "slice" output is a planner bug."""
    if cg.plan.storage[node.out.name][0] == "slice":
        raise CompileError(f"internal: {node} was planned to write into a concatenation, "
                           "but its fused driver could not be used")


def emit_conv_transpose(cg: CpuCodegen, node: Node, out: str) -> None:
    x, wname = node.inputs[0], node.inputs[1]
    w = cg.g.params[wname]
    rank = len(node.attr("strides"))
    cin, cout = w.shape[-2:]
    packed = w.reshape(-1, cin, cout).transpose(1, 0, 2).reshape(cin, -1)
    ks = _lead(w.shape[:-2], rank, 3, 1)
    ss = _lead(node.attr("strides"), rank, 3, 1)
    ds = _lead(node.attr("dilation"), rank, 3, 1)
    cs = _lead((lo for lo, _ in node.attr("pads")), rank, 3, 0)
    geometry = ", ".join(str(v) for v in ks + ss + ds + cs)
    xv, ov = _spatial_view(cg.ref(x), cg.shape(x), 3), _spatial_view(out, node.out.shape, 3)
    cg.line(f"_convt.conv_transpose3d_par({xv}, {cg.weight(f'{wname}@ctpk', _packed.pack(packed))}, {ov}, {geometry}, "
            f"{cg.scratch(node)}, nt)")
    _epilogue(cg, node, out)


def _fused_conv(cg: CpuCodegen, node: Node, out: str, xv: str, w: np.ndarray, ks, ss, ds, ps, scratch: str) -> bool:
    """A dense (groups == 1) 2D conv as a fused GEMM driver: plain rows when pointwise, else im2col."""
    kk, co = int(np.prod(w.shape[:-1])), w.shape[-1]
    wkey, w2 = node.inputs[1], w.reshape(kk, co)
    if _is_pointwise(node, cg.shape(node.inputs[0]), w.shape):
        rows = int(np.prod(node.out.shape[1:-1], dtype=np.int64))
        return cpu_fused.emit_gemm(cg, node, out, f"{xv}.reshape((n * {rows}, {kk}))", wkey, w2, None)
    spatial = tuple(node.out.shape[1:-1])
    oh, ow = (1,) * (2 - len(spatial)) + spatial
    return cpu_fused.emit_gemm(cg, node, out, "", wkey, w2, (xv, oh, ow) + tuple(ks) + tuple(ss) + tuple(ds) + tuple(ps)
                               + (scratch,))


def emit_matmul(cg: CpuCodegen, node: Node, out: str) -> None:
    x, wname = node.inputs[0], node.inputs[1]
    k, m = cg.g.params[wname].shape
    rows = int(np.prod(cg.shape(x)[1:-1], dtype=np.int64))
    r = "n" if rows == 1 else f"n * {rows}"
    if cpu_fused.emit_gemm(cg, node, out, f"{cg.ref(x)}.reshape(({r}, {k}))", wname, cg.g.params[wname], None):
        return
    _not_a_slice(cg, node)
    cg.line(f"_conv.matmul({cg.ref(x)}.reshape(({r}, {k})), {cg.ref(wname)}, {out}.reshape(({r}, {m})))")
    _epilogue(cg, node, out)


def emit_fused(cg: CpuCodegen, node: Node, out: str) -> None:
    cg.elementwise(node, None if node.out.name in cg.plan.in_place else node.inputs[0], out)


def emit_pool(cg: CpuCodegen, node: Node, out: str) -> None:
    if node.inputs[0] in cg.pooled:
        cg.line("# pooled by the conv before it")
        return
    rank = len(node.attr("pool"))
    target = 3 if rank == 3 else 2
    ks = _lead(node.attr("pool"), rank, target, 1)
    ss = _lead(node.attr("strides"), rank, target, 1)
    ps = _lead((lo for lo, _ in node.attr("pads")), rank, target, 0)
    geometry = ", ".join(str(v) for v in ks + ss + ps)
    xv = _spatial_view(cg.ref(node.inputs[0]), cg.shape(node.inputs[0]), target)
    ov = _spatial_view(out, node.out.shape, target)
    if target == 3:
        cg.line(f"_pool3d.pool3d({xv}, {ov}, {geometry}, {node.op is Op.MAXPOOL})")
        return
    fn = "maxpool2d" if node.op is Op.MAXPOOL else "avgpool2d"
    cg.line(f"_pool.{fn}({xv}, {ov}, {geometry})")


def _three(shape: tuple, first: int, last: int) -> str:
    """(outer, reduced, inner) view expression of `shape` reducing axes first..last."""
    def prod(dims: tuple) -> str:
        static = int(np.prod([d for d in dims if d is not None], dtype=np.int64))
        if any(d is None for d in dims):
            return "n" if static == 1 else f"n * {static}"
        return str(static)
    return f"({prod(shape[:first])}, {prod(shape[first:last + 1])}, {prod(shape[last + 1:])})"


def emit_reduce(cg: CpuCodegen, node: Node, out: str) -> None:
    axes = sorted(node.attr("axes"))
    if axes != list(range(axes[0], axes[-1] + 1)) or axes[0] == 0:
        raise CompileError(f"layer {node.layer!r}: reduction over axes {axes} (not one run of non-batch axes)")
    xs = cg.shape(node.inputs[0])
    view = _three(xs, axes[0], axes[-1])
    a, _, b = view.strip("()").split(", ")
    if node.op is Op.MEAN:
        cg.line(f"_reduce.mean3_par({cg.ref(node.inputs[0])}.reshape({view}), {out}.reshape(({a}, {b})), nt)")
    else:
        cg.line(f"_reduce.max3({cg.ref(node.inputs[0])}.reshape({view}), {out}.reshape(({a}, {b})))")


def emit_softmax(cg: CpuCodegen, node: Node, out: str) -> None:
    axis = node.attr("axis")
    view = _three(cg.shape(node.inputs[0]), axis, axis)
    cg.line(f"_reduce.softmax3_par({cg.ref(node.inputs[0])}.reshape({view}), {out}.reshape({view}), nt)")


def emit_sparsemax(cg: CpuCodegen, node: Node, out: str) -> None:
    axis = node.attr("axis")
    view = _three(cg.shape(node.inputs[0]), axis, axis)
    cg.line(f"_sparsemax.sparsemax3({cg.ref(node.inputs[0])}.reshape({view}), {out}.reshape({view}))")


def emit_reshape(cg: CpuCodegen, node: Node, out: str) -> None:
    pass  # an alias: `define` already bound the view


# TRANSPOSE, SLICE, PAD and CONCAT: cpu_layout.py (one strided-copy kernel for all of them).


EMITTERS: dict[Op, Callable[[CpuCodegen, Node, str], None]] = {
    Op.CONV: emit_conv,
    Op.MATMUL: emit_matmul,
    Op.FUSED: emit_fused,
    Op.MAXPOOL: emit_pool,
    Op.AVGPOOL: emit_pool,
    Op.MEAN: emit_reduce,
    Op.MAX: emit_reduce,
    Op.SOFTMAX: emit_softmax,
    Op.RESHAPE: emit_reshape,
    Op.TRANSPOSE: emit_transpose,
    Op.PAD: emit_pad,
    Op.CONCAT: emit_concat,
    Op.CONV_TRANSPOSE: emit_conv_transpose,
    Op.SPARSEMAX: emit_sparsemax,
    Op.SLICE: emit_slice,
}
EMITTERS.update(SEQ_EMITTERS)


def generate_cpu(g: Graph) -> Generated:
    """Source, packed weights and memory plan of `g` (after passes) for the CPU backend."""
    for n in g.nodes:
        if n.op.group in (Group.UNARY, Group.BINARY):
            raise CompileError(f"unfused elementwise node reached codegen: {n}")
    return CpuCodegen(g).generate()
