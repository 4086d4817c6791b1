"""CUDA backend: renders a planned graph as the Python source of one module of `numba.cuda.jit` kernels
and a host function that lists their launches.

The module defines `launches(blob, arena, ws, n, sms, in0, ..., out0, ...[, state])`: every kernel
launch of one predict at batch `n`, in order, as `(kernel, grid, block, args)` tuples. All arrays are
flat float32 device arrays (inputs in their own dtype): `blob` the packed weights, `arena` the planned
scratch memory (`n * arena_per_sample` long), `ws` the split-K workspace (`WORKSPACE` long), `sms`
the device's multiprocessor count (tile choice), `state` the stateful RNNs' states (only in a model
that has them, `n * state_per_sample` long, kept by the runtime across calls). The
runtime calls it once per batch size with its own device buffers, so launch arguments are computed
once; it then replays the list, or a CUDA graph captured from it.

Kernels are instances of the templates in `kerasjit.kernels.cuda` (source copied in, tile constants
fixed, `epilogue` bound to a generated device function) and generated elementwise kernels; equal
instances are emitted once. A contraction's epilogue (bias, folded BatchNormalization, activation,
residual add) runs inside its kernel on the way out, so each of those chains is one kernel.
A backend is the table `EMITTERS: op -> emitter`; everything else here is shared plumbing.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np

from ...errors import CompileError
from ...kernels.cuda import conv3d as _conv3d
from ...kernels.cuda import conv_transpose as _convt
from ...kernels.cuda import depthwise as _dw
from ...kernels.cuda import gemm as _gemm
from ...kernels.cuda import layout as _layout
from ...kernels.cuda import pool as _pool
from ...kernels.cuda import reduce as _reduce
from ...kernels.cuda import sparsemax as _sparsemax
from ...kernels.cuda.template import instantiate, simulated, template_source
from ..ir import Graph, Group, Node, Op
from ..plan import plan_memory
from .common import Blob, Constants, IndentedBuffer, collapse, step_lines
from .cpu import Generated, _is_depthwise, _is_pointwise, _lead, _three
from .cpu_seq import state_layout
from .cpu_seq import group_recurrences
from .cuda_seq import SEQ_EMITTERS, planning_view, scratch_floats

BLOCK = 256  # threads per block of the one-thread-per-element kernels
JIT = "@cuda.jit(cache=True)"

#: floats of device workspace for split-K partial sums (one buffer per model, any batch size)
WORKSPACE = 1 << 22


def _ceil(a: str, b: int) -> str:
    return f"-(-({a}) // {b})"


class CudaCodegen:
    """Holds the state of rendering one graph: variable names, weights blob, kernel instances."""

    def __init__(self, g: Graph):
        # independent RNN nodes side by side, each run of them one launch (cpu_seq.group_recurrences)
        g, self.rnn_groups = group_recurrences(g)
        self.g = g
        self.values = g.values()
        self.state_slots = state_layout(g)  # stateful RNN node -> (offset, size) in the state buffer
        self.simulated = simulated()
        self.plan = plan_memory(planning_view(g, self.rnn_groups), scratch_size=scratch_floats,
                                in_place_ok=self.in_place_ok)
        self.blob = Blob()
        self.c = Constants()
        self.defs: dict[str, str] = {}      # source with `{name}` placeholder -> emitted name
        self.def_src: list[str] = []
        self.body = IndentedBuffer()
        self.var: dict[str, str] = {}
        self.node: Node | None = None

    # ------------------------------------------------------------------ helpers for emitters
    def shape(self, name: str) -> tuple:
        if name in self.values:
            return self.values[name].shape
        return tuple(self.g.params[name].shape)

    def ref(self, name: str) -> str:
        """The flat device array expression of a value or parameter (parameters are blob slices)."""
        if name in self.var:
            return self.var[name]
        if name in self.g.params:
            return self.weight(name, self.g.params[name])
        raise CompileError(f"value {name!r} used before it is defined")

    def weight(self, key: str, array: np.ndarray) -> str:
        off, shape = self.blob.add(key, array)
        size = int(np.prod(shape)) if shape else 1
        return f"blob[{off}:{off + max(size, 1)}]"

    def line(self, text: str) -> None:
        self.body.line(text)

    def in_place_ok(self, n: Node) -> bool:
        main = n.inputs[0]
        return n.op is Op.FUSED and main in self.values and tuple(self.values[main].shape) == tuple(n.out.shape)

    def unique(self, prefix: str, src: str) -> str:
        """Emit `src` (a definition whose name is written `{name}`) once; return its name."""
        name = self.defs.get(src)
        if name is None:
            name = f"{prefix}{len(self.defs)}"
            self.defs[src] = name
            self.def_src.append(src.replace("{name}", name))
        return name

    def kernel(self, template, consts: dict | None = None, epilogue: str | None = None,
               max_registers: int | None = None) -> str:
        """The name of an instance of kernel `template` with `consts` and `epilogue` bound."""
        calls = {}
        if "epilogue(" in template_source(template):
            calls = {"epilogue": epilogue or self.epilogue_fn([], [])}
        src = instantiate(template, "{name}", consts, calls)
        jit = JIT if max_registers is None or simulated() else JIT[:-1] + f", max_registers={max_registers})"
        return self.unique("_k", jit + "\n" + src)

    def launch(self, kernel: str, grid: str, block: int, args: list[str]) -> None:
        self.line(f"L.append(({kernel}, {grid}, {block}, ({', '.join(args)},)))")

    def launch_1d(self, kernel: str, total: str, args: list[str]) -> None:
        """One thread per element of `total` (an expression in n); `total` is passed before `args`."""
        self.line(f"total = {total}")
        self.line("if total:")
        with self.body.indent():
            self.launch(kernel, _ceil("total", BLOCK), BLOCK, args)

    def size(self, shape: tuple) -> str:
        """Elements of a value of `shape` (batch first) as an expression in n."""
        per = int(np.prod([d for d in shape[1:]], dtype=np.int64)) if len(shape) > 1 else 1
        return "n" if per == 1 else f"n * {per}"

    # ------------------------------------------------------------------ epilogues
    def epilogue_operands(self, node: Node) -> list[str] | None:
        """Per epilogue operand, its index in the epilogue's terms (`o` flat output offset, `c`
        channel, `0` scalar), or None when one broadcasts another way (then not fusable)."""
        out = node.out.shape
        kinds = []
        for s in node.epilogue:
            if s.operand is None:
                continue
            shp = tuple(self.shape(node.inputs[s.operand]))
            shp = (1,) * (len(out) - len(shp)) + shp
            if shp == tuple(out) or (shp[0] is None and shp[1:] == tuple(out[1:])):
                kinds.append("o")
            elif all(d == 1 for d in shp):
                kinds.append("0")
            elif all(d == 1 for d in shp[:-1]) and shp[-1] == out[-1]:
                kinds.append("c")
            else:
                return None
        return kinds

    def epilogue_fn(self, steps, kinds: list[str]) -> str:
        """A device function `(v, r, c, o, ep) -> v` applying `steps`; operand k is `ep[k][kinds[k]]`."""
        buf = IndentedBuffer()
        buf.line("@cuda.jit(device=True)" if simulated() else "@cuda.jit(device=True, forceinline=True)")
        buf.line("def {name}(v, r, c, o, ep):")
        with buf.indent():
            k = 0
            for s in steps:
                operand = None
                if s.operand is not None:
                    operand = f"ep[{k}][{kinds[k]}]"
                    k += 1
                for ln in step_lines(s, "v", operand, self.c):
                    buf.line(ln)
            buf.line("return v")
        return self.unique("_epi", buf.getvalue())

    def fused_epilogue(self, node: Node, out: str) -> tuple[str, str]:
        """(epilogue function, `ep` tuple expression) for a contraction-like node; when its operands
        cannot be indexed from the kernel's (r, c, o), an identity epilogue now and a separate
        in-place elementwise kernel after (`finish_epilogue`)."""
        kinds = self.epilogue_operands(node)
        if kinds is None:
            return self.epilogue_fn([], []), "()"
        operands = [self.ref(node.inputs[s.operand]) for s in node.epilogue if s.operand is not None]
        ep = "(" + "".join(f"{o}, " for o in operands) + ")"
        return self.epilogue_fn(node.epilogue, kinds), ep

    def finish_epilogue(self, node: Node, out: str) -> None:
        if node.epilogue and self.epilogue_operands(node) is None:
            self.elementwise(node, None, out)

    # ------------------------------------------------------------------ fused elementwise kernels
    def elementwise(self, node: Node, main: str | None, out: str) -> None:
        """Emit `out = epilogue(main)` as one generated kernel; `main` None means `out` in place."""
        steps = node.epilogue
        operands = [node.inputs[s.operand] for s in steps if s.operand is not None]
        out_shape = node.out.shape
        shapes = [self.shape(main) if main is not None else out_shape] + [self.shape(o) for o in operands]
        groups, bflags = collapse(out_shape, shapes)
        rank = len(groups)
        buf = IndentedBuffer()
        args = ", ".join(f"a{i}" for i in range(len(operands) + 1))
        dims = ", ".join(f"d{k}" for k in range(rank))
        buf.line(JIT)
        buf.line(f"def {{name}}(out, {args}, total, {dims}):")
        with buf.indent():
            buf.line("i = cuda.grid(1)")
            buf.line("if i >= total:")
            buf.line("    return")
            broadcast = any(any(f) for f in bflags)
            if broadcast:  # decode the collapsed multi-index (only then is it needed)
                buf.line("t = i")
                for k in range(rank - 1, 0, -1):
                    buf.line(f"i{k} = t % d{k}")
                    buf.line(f"t = t // d{k}")
                buf.line("i0 = t")

            def offset(flags: list[bool]) -> str:
                if not broadcast:
                    return "i"
                off = ""
                for k, f in enumerate(flags):
                    if f:
                        continue
                    off = f"i{k}" if not off else f"({off}) * d{k} + i{k}"
                return off or "0"

            buf.line(f"x = a0[{offset(bflags[0])}]")
            k_op = 1
            for s in steps:
                operand = None
                if s.operand is not None:
                    operand = f"a{k_op}[{offset(bflags[k_op])}]"
                    k_op += 1
                for ln in step_lines(s, "x", operand, self.c):
                    buf.line(ln)
            buf.line("out[i] = x")
        name = self.unique("_ew", buf.getvalue())
        dim_exprs = []
        for grp in groups:
            static = int(np.prod([out_shape[a] for a in grp if out_shape[a] is not None], dtype=np.int64))
            dyn = any(out_shape[a] is None for a in grp)
            dim_exprs.append((f"n * {static}" if static != 1 else "n") if dyn else str(static))
        main_expr = out if main is None else self.ref(main)
        refs = [out, main_expr] + [self.ref(o) for o in operands]
        self.launch_1d(name, self.size(out_shape), refs + ["total"] + dim_exprs)

    # ------------------------------------------------------------------ driver
    def define(self, name: str) -> str:
        """Bind the Python variable of value `name` to its planned (flat) storage."""
        kind, where = self.plan.storage[name]
        v = self.values[name]
        var = f"v{len(self.var)}"
        if kind == "input":
            expr = f"in{where}"
        elif kind == "output":
            expr = f"out{where}"
        elif kind == "alias":
            expr = self.var[where]  # flat storage: a reshape is the same array
        else:
            ps = v.per_sample()
            expr = f"arena[n * {where}:n * {where + ps}]"
        self.line(f"{var} = {expr}")
        self.var[name] = var
        return var

    def generate(self) -> Generated:
        g = self.g
        ins = [f"in{k}" for k in range(len(g.inputs))]
        outs = [f"out{k}" for k in range(len(g.outputs))]
        state = ["state"] if self.state_slots else []
        self.line(f"def launches(blob, arena, ws, n, sms, {', '.join(ins + outs + state)}):")
        with self.body.indent():
            self.line('"""Every kernel launch of one predict at batch n: (kernel, grid, block, args)."""')
            self.line("L = []")
            for v in g.inputs:
                self.define(v.name)
            for idx, node in enumerate(g.nodes):
                self.line(f"# node {idx}: {node.op.label}")  # layer names: manifest.json `nodes`[idx]
                out = self.define(node.out.name)
                emit = EMITTERS.get(node.op)
                if emit is None:
                    raise CompileError(f"the CUDA backend has no kernel for {node.op.label} (layer {node.layer!r}); "
                                       f"compile this model with target='cpu'")
                try:
                    emit(self, node, out)
                except CompileError:
                    raise
                except Exception as e:
                    raise CompileError(f"while generating CUDA code for {node}: {type(e).__name__}: {e}") from e
            for k, name in self.plan.output_copies:
                copy_flat(self, self.ref(name), f"out{k}", self.size(self.values[name].shape))
            self.line("return L")
        head = ['"""Generated by kerasjit (CUDA backend). Do not edit: the artifact\'s manifest hashes it."""',
                "import math", "import numpy as np", "from numba import cuda, float32, float64, int64, uint64",
                "from kerasjit.kernels.cuda.gemm import choose as _choose", "", f"WORKSPACE = {WORKSPACE}", ""]
        src = "\n".join(head + self.c.declarations() + [""] + [d + "\n" for d in self.def_src]) + "\n" + \
            self.body.getvalue()
        return Generated(src, self.blob, self.plan, sum(size for _, size in self.state_slots.values()))


# ---------------------------------------------------------------------- emitters
def _gemm_launch(cg: CudaCodegen, node: Node, out: str, x: str, packed: np.ndarray, wkey: str, m: str,
                 K: int, geometry: list[str], gather: bool, vec: int, groups: int, ng: int) -> None:
    """Launch `conv_gemm` over rows m (an expression in n) with the tile (and split-K) that
    `gemm.choose` estimates fastest at that batch size; `geometry` is its arguments from H to pl."""
    epi, ep = cg.fused_epilogue(node, out)
    w = cg.weight(wkey, packed)
    ldo = groups * ng
    cg.line(f"m = {m}")
    cg.line(f"t, s, kc = _choose(m, {ng}, {groups}, {K}, sms, WORKSPACE)")
    cg.line("if s > 1:")
    with cg.body.indent():
        tile = _gemm.TILES[_gemm.SPLIT_TILE][0]
        consts = {**_gemm.config(*tile, vec=vec, gather=gather), "SPLIT": True}
        k = cg.kernel(_gemm.conv_gemm, consts, max_registers=128)
        cg.launch(k, f"({_ceil('m', tile[0])}, {-(-ng // tile[1])}, s)", consts["NT"],
                  [x, w, "ws", "m", str(K), "kc"] + geometry + [str(ldo), str(ng), "()"])
        cg.line(f"total = m * {ldo}")
        cg.launch(cg.kernel(_gemm.splitk_reduce, epilogue=epi), _ceil("total", BLOCK), BLOCK,
                  ["ws", out, "total", str(ldo), "s", ep])
    for t, (tile, _, _) in enumerate(_gemm.TILES):
        cg.line(f"elif t == {t}:" if t < len(_gemm.TILES) - 1 else "else:")
        with cg.body.indent():
            consts = _gemm.config(*tile, vec=vec, gather=gather)
            k = cg.kernel(_gemm.conv_gemm, consts, epi, max_registers=128)
            cg.launch(k, f"({_ceil('m', tile[0])}, {-(-ng // tile[1])}, {groups})", consts["NT"],
                      [x, w, out, "m", str(K), str(K)] + geometry + [str(ldo), str(ng), ep])
    cg.finish_epilogue(node, out)


def _as_2d(node: Node, xs: tuple, w: tuple) -> tuple:
    """(H, W, kh, kw, strides, dilation, pad-lo) of a 1D or 2D convolution, 1D as height 1."""
    rank = len(node.attr("strides"))
    pad = lambda k: (1,) * (2 - rank) + tuple(k)  # noqa: E731
    h, wd = pad(xs[1:-1])
    kh, kw = pad(w[:-2])
    (sh, sw), (dh, dw) = pad(node.attr("strides")), pad(node.attr("dilation"))
    pt, pl = (0,) * (2 - rank) + tuple(lo for lo, _ in node.attr("pads"))
    return h, wd, kh, kw, (sh, sw), (dh, dw), (pt, pl)


def _frames(node: Node, w: tuple) -> bool:
    """Whether a 3D convolution is the same 2D convolution of every depth slice (kernel depth 1, stride 1,
    no padding along depth: a ConvLSTM2D's input projection), so that it runs as one with the depth
    folded into the batch."""
    return (w[0] == 1 and node.attr("strides")[0] == 1 and tuple(node.attr("pads")[0]) == (0, 0))


def emit_conv3d(cg: CudaCodegen, node: Node, out: str) -> None:
    """A general 3D convolution: the direct kernel, one thread per output value, epilogue fused."""
    x, wname = node.inputs[0], node.inputs[1]
    w = cg.g.params[wname]
    xs = cg.shape(x)
    groups = node.attr("groups", 1)
    cig, co = w.shape[-2:]
    epi, ep = cg.fused_epilogue(node, out)
    geometry = (tuple(xs[1:]) + tuple(node.out.shape[1:]) + tuple(w.shape[:3]) + tuple(node.attr("strides"))
                + tuple(node.attr("dilation")) + tuple(lo for lo, _ in node.attr("pads")) + (cig, co // groups))
    cg.launch_1d(cg.kernel(_conv3d.conv3d, epilogue=epi), cg.size(node.out.shape),
                 [cg.ref(x), cg.ref(wname), out, "total"] + [str(int(v)) for v in geometry] + [ep])
    cg.finish_epilogue(node, out)


def emit_conv(cg: CudaCodegen, node: Node, out: str) -> None:
    x, wname = node.inputs[0], node.inputs[1]
    w = cg.g.params[wname]
    xs = cg.shape(x)
    groups = node.attr("groups", 1)
    if len(node.attr("strides")) == 3:
        if not _frames(node, w.shape):
            emit_conv3d(cg, node, out)
            return
        # the depth folded into the batch: a 2D convolution of N * D images (D == OD here)
        node = node.with_(attrs={**dict(node.attrs), "strides": tuple(node.attr("strides"))[1:],
                                 "dilation": tuple(node.attr("dilation"))[1:], "pads": tuple(node.attr("pads"))[1:]})
        xs, w = (None,) + tuple(xs[2:]), w.reshape(w.shape[1:])
    h, wd, kh, kw, (sh, sw), (dh, dw), (pt, pl) = _as_2d(node, xs, w.shape)
    oh, ow = ((1,) + tuple(node.out.shape[1:-1]))[-2:]  # of a folded 3D one: its last two
    cin, (cig, co) = xs[-1], w.shape[-2:]
    if _is_depthwise(node, xs, w.shape):
        epi, ep = cg.fused_epilogue(node, out)
        consts = dict(H=h, W=wd, C=cin, OH=oh, OW=ow, CO=co, MULT=co // cin, KH=kh, KW=kw, SH=sh, SW=sw,
                      DH=dh, DW=dw, PT=pt, PL=pl)
        k = cg.kernel(_dw.depthwise, consts, epi)
        wv = cg.weight(f"{wname}@dw", w.reshape(kh, kw, co))
        cg.launch_1d(k, cg.size(node.out.shape), [cg.ref(x), wv, out, "total", ep])
        cg.finish_epilogue(node, out)
        return
    ng = co // groups
    packed = w.reshape(-1, groups, ng).transpose(1, 0, 2)
    K = kh * kw * cig
    gather = not (groups == 1 and _is_pointwise(node, xs, w.shape))
    vec = 4 if cig % 4 == 0 or not gather else 1
    geometry = [str(v) for v in (h, wd, cin, oh * ow, ow, kw, cig, sh, sw, dh, dw, pt, pl)]
    _gemm_launch(cg, node, out, cg.ref(x), packed, f"{wname}@gemm", cg.size(node.out.shape[:-1]), K, geometry,
                 gather, vec, groups, ng)


def emit_matmul(cg: CudaCodegen, node: Node, out: str) -> None:
    x, wname = node.inputs[0], node.inputs[1]
    w = cg.g.params[wname]
    k, m = w.shape
    geometry = [str(v) for v in (1, 1, k, 1, 1, 1, k, 1, 1, 1, 1, 0, 0)]
    _gemm_launch(cg, node, out, cg.ref(x), w.reshape(1, k, m), f"{wname}@gemm", cg.size(cg.shape(x)[:-1]), k,
                 geometry, False, 4, 1, m)


def emit_fused(cg: CudaCodegen, node: Node, out: str) -> None:
    cg.elementwise(node, None if node.out.name in cg.plan.in_place else node.inputs[0], out)


def emit_pool(cg: CudaCodegen, node: Node, out: str) -> None:
    rank = len(node.attr("pool"))
    if rank == 3:
        emit_pool3d(cg, node, out)
        return
    lead = (1,) * (2 - rank)
    xs = cg.shape(node.inputs[0])
    h, wd = (lead + tuple(xs[1:-1]))
    oh, ow = (lead + tuple(node.out.shape[1:-1]))
    kh, kw = lead + tuple(node.attr("pool"))
    sh, sw = lead + tuple(node.attr("strides"))
    pt, pl = (0,) * (2 - rank) + tuple(lo for lo, _ in node.attr("pads"))
    k = cg.kernel(_pool.maxpool2d if node.op is Op.MAXPOOL else _pool.avgpool2d)
    cg.launch_1d(k, cg.size(node.out.shape), [cg.ref(node.inputs[0]), out, "total"] +
                 [str(v) for v in (h, wd, xs[-1], oh, ow, kh, kw, sh, sw, pt, pl)])


def emit_pool3d(cg: CudaCodegen, node: Node, out: str) -> None:
    xs = cg.shape(node.inputs[0])
    geometry = (tuple(xs[1:]) + tuple(node.out.shape[1:-1]) + tuple(node.attr("pool")) + tuple(node.attr("strides"))
                + tuple(lo for lo, _ in node.attr("pads")))
    k = cg.kernel(_pool.maxpool3d if node.op is Op.MAXPOOL else _pool.avgpool3d)
    cg.launch_1d(k, cg.size(node.out.shape), [cg.ref(node.inputs[0]), out, "total"] + [str(int(v)) for v in geometry])


def emit_conv_transpose(cg: CudaCodegen, node: Node, out: str) -> None:
    x, wname = node.inputs[0], node.inputs[1]
    w = cg.g.params[wname]
    rank = len(node.attr("strides"))
    cin, cout = w.shape[-2:]
    xs = cg.shape(x)
    epi, ep = cg.fused_epilogue(node, out)
    geometry = (_lead(xs[1:-1], rank, 3, 1) + (cin,) + _lead(node.out.shape[1:-1], rank, 3, 1) + (cout,)
                + _lead(w.shape[:-2], rank, 3, 1) + _lead(node.attr("strides"), rank, 3, 1)
                + _lead(node.attr("dilation"), rank, 3, 1) + _lead((lo for lo, _ in node.attr("pads")), rank, 3, 0))
    cg.launch_1d(cg.kernel(_convt.conv_transpose3d, epilogue=epi), cg.size(node.out.shape),
                 [cg.ref(x), cg.ref(wname), out, "total"] + [str(int(v)) for v in geometry] + [ep])
    cg.finish_epilogue(node, out)


def _three_exprs(shape: tuple, first: int, last: int) -> list[str]:
    return _three(shape, first, last).strip("()").split(", ")


def emit_reduce(cg: CudaCodegen, node: Node, out: str) -> None:
    axes = sorted(node.attr("axes"))
    if axes != list(range(axes[0], axes[-1] + 1)) or axes[0] == 0:
        raise CompileError(f"layer {node.layer!r}: reduction over axes {axes} (not one run of non-batch axes)")
    a, r, b = _three_exprs(cg.shape(node.inputs[0]), axes[0], axes[-1])
    k = cg.kernel(_reduce.mean3 if node.op is Op.MEAN else _reduce.max3)
    cg.line(f"total = ({a}) * ({b})")
    cg.launch(k, _ceil("total", BLOCK), BLOCK, [cg.ref(node.inputs[0]), out, a, r, b])


def emit_softmax(cg: CudaCodegen, node: Node, out: str) -> None:
    axis = node.attr("axis")
    a, r, b = _three_exprs(cg.shape(node.inputs[0]), axis, axis)
    cg.line(f"total = ({a}) * ({b})")
    cg.launch(cg.kernel(_reduce.softmax3), _ceil("total", BLOCK), BLOCK, [cg.ref(node.inputs[0]), out, a, r, b])


def emit_sparsemax(cg: CudaCodegen, node: Node, out: str) -> None:
    axis = node.attr("axis")
    a, r, b = _three_exprs(cg.shape(node.inputs[0]), axis, axis)
    cg.line(f"total = ({a}) * ({b})")
    cg.launch(cg.kernel(_sparsemax.sparsemax3), _ceil("total", BLOCK), BLOCK, [cg.ref(node.inputs[0]), out, a, r, b])


def emit_reshape(cg: CudaCodegen, node: Node, out: str) -> None:
    pass  # an alias: `define` bound the same flat storage


def _strides(shape: tuple) -> list[str]:
    """C-order strides of a value (batch first) as expressions; the batch stride is static."""
    strides, acc = [], 1
    for d in reversed(shape[1:]):
        strides.append(acc)
        acc *= int(d)
    return [str(acc)] + [str(s) for s in reversed(strides)]


def _dims(shape: tuple) -> list[str]:
    return ["n"] + [str(d) for d in shape[1:]]


def _six(items: list[str], fill: str) -> str:
    if len(items) > 6:
        raise CompileError(f"rank {len(items)} layout ops are not supported by the CUDA backend (at most 6)")
    items = [fill] * (6 - len(items)) + items
    return "(" + ", ".join(items) + ")"


def copy_strided(cg: CudaCodegen, src: str, dst: str, dims: list[str], src_strides: list[str], src_off: str,
                 dst_strides: list[str], dst_off: str) -> None:
    k = cg.kernel(_layout.copy_strided)
    total = " * ".join(f"({d})" for d in dims)
    cg.launch_1d(k, total, [src, dst, "total", _six(dims, "1"), _six(src_strides, "0"), src_off,
                            _six(dst_strides, "0"), dst_off])


def copy_flat(cg: CudaCodegen, src: str, dst: str, size: str) -> None:
    copy_strided(cg, src, dst, [size], ["1"], "0", ["1"], "0")


def emit_transpose(cg: CudaCodegen, node: Node, out: str) -> None:
    xs = cg.shape(node.inputs[0])
    perm = tuple(node.attr("perm"))
    ins = _strides(xs)
    copy_strided(cg, cg.ref(node.inputs[0]), out, _dims(node.out.shape), [ins[p] for p in perm], "0",
                 _strides(node.out.shape), "0")


def emit_pad(cg: CudaCodegen, node: Node, out: str) -> None:
    xs = cg.shape(node.inputs[0])
    os_ = _strides(node.out.shape)
    cg.launch_1d(cg.kernel(_layout.fill), cg.size(node.out.shape), [out, "total", repr(float(node.attr("value", 0.0)))])
    off = sum(int(lo) * int(s) for (lo, _), s in zip(node.attr("pads")[1:], os_[1:]))
    copy_strided(cg, cg.ref(node.inputs[0]), out, _dims(xs), _strides(xs), "0", os_, str(off))


def emit_concat(cg: CudaCodegen, node: Node, out: str) -> None:
    axis = node.attr("axis") % len(node.out.shape)
    os_ = _strides(node.out.shape)
    off = 0
    for i in node.inputs:
        s = cg.shape(i)
        copy_strided(cg, cg.ref(i), out, _dims(s), _strides(s), "0", os_, str(off * int(os_[axis])))
        off += int(s[axis])


def emit_slice(cg: CudaCodegen, node: Node, out: str) -> None:
    xs = cg.shape(node.inputs[0])
    ins = _strides(xs)
    ranges = node.attr("ranges")
    src_strides = [ins[0]] + [str(int(s) * int(step)) for s, (_, _, step) in zip(ins[1:], ranges)]
    off = sum(int(start) * int(s) for s, (start, _, _) in zip(ins[1:], ranges))
    copy_strided(cg, cg.ref(node.inputs[0]), out, _dims(node.out.shape), src_strides, str(off),
                 _strides(node.out.shape), "0")


EMITTERS: dict[Op, Callable[[CudaCodegen, Node, str], None]] = {
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
    Op.SLICE: emit_slice,
    Op.CONV_TRANSPOSE: emit_conv_transpose,
    Op.SPARSEMAX: emit_sparsemax,
}
EMITTERS.update(SEQ_EMITTERS)


def generate_cuda(g: Graph) -> Generated:
    """Source, packed weights and memory plan of `g` (after passes) for the CUDA backend."""
    for n in g.nodes:
        if n.op.group in (Group.UNARY, Group.BINARY):
            raise CompileError(f"unfused elementwise node reached codegen: {n}")
    return CudaCodegen(g).generate()
