"""Generated parallel drivers for the CPU backend: conv and dense with their epilogue fused.

A driver is generated once per (kind, epilogue) shape and reused by every node that has it; shapes
are run-time arguments. It splits the output rows into `prange` tasks; a task computes its rows
(BLAS GEMM on im2col rows, or a direct depthwise loop) and applies the epilogue to them while they
are in cache, so the output is written once instead of once per elementwise op.

Epilogue operands are viewed as (batch, middle, channel) arrays, each axis either full or broadcast
(size 1): the form of a bias, a residual, or a squeeze-and-excitation scale. A node whose operands
do not fit that form returns None from `plan_operands`, and the caller uses the unfused path.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ...kernels.cpu import packed as _packed
from ...kernels.cpu import winograd as _wino
from ..ir import Node, Op
from .common import IndentedBuffer, step_lines

if TYPE_CHECKING:
    from .cpu import CpuCodegen

PJIT = "@njit(parallel=True, cache=True, nogil=True, error_model='numpy', boundscheck=False)"


def _three(shape: tuple) -> tuple[tuple, tuple, tuple]:
    """Axis groups of a rank-r output: batch, middle (may be empty), channel."""
    r = len(shape)
    return (0,), tuple(range(1, r - 1)), (r - 1,)


def operand_views(cg: "CpuCodegen", node: Node) -> list[tuple[str, str, tuple[bool, bool, bool]]] | None:
    """(value, 3D view dims, broadcast flags) of each epilogue operand, or None if one does not fit."""
    out = node.out.shape
    groups = _three(out)
    res = []
    for s in node.epilogue:
        if s.operand is None:
            continue
        name = node.inputs[s.operand]
        shape = cg.shape(name)
        if len(shape) > len(out):
            return None
        padded = (1,) * (len(out) - len(shape)) + tuple(shape)
        flags, dims = [], []
        for grp in groups:
            if not grp:
                flags.append(True)
                dims.append("1")
                continue
            bc = [padded[a] == 1 and out[a] != 1 for a in grp]
            if any(bc) and not all(bc):
                return None
            flags.append(all(bc))
            if all(bc):
                dims.append("1")
            elif grp == (0,):
                dims.append("n")
            else:
                size = 1
                for a in grp:
                    size *= int(padded[a])
                dims.append(str(size))
        res.append((name, ", ".join(dims), tuple(flags)))
    return res


def operands_fit(cg: "CpuCodegen", node: Node) -> bool:
    """Whether the fused drivers can take the node's epilogue operands (no code is emitted)."""
    return operand_views(cg, node) is not None


def plan_operands(cg: "CpuCodegen", node: Node) -> list[tuple[str, tuple[bool, bool, bool]]] | None:
    """(3D view expression, broadcast flags) of each epilogue operand, or None if one does not fit."""
    views = operand_views(cg, node)
    if views is None:
        return None
    return [(f"{cg.ref(name)}.reshape(({dims}))", flags) for name, dims, flags in views]


def _driver_operands(cg: "CpuCodegen", node: Node) -> tuple[list, list, str] | None:
    """(operands as `plan_operands` gives them, their broadcast flags, the driver's parameter list
    `, a0, a1, ...`) of the node's epilogue, or None if they do not fit the fused drivers."""
    ops = plan_operands(cg, node)
    if ops is None:
        return None
    return ops, [f for _, f in ops], "".join(f", a{k}" for k in range(len(ops)))


def _output(cg: "CpuCodegen", node: Node, out: str) -> tuple[str, int, int]:
    """(the output as a (batch, pixels, width) view, channels, first channel): the node's own buffer,
    or the buffer of the concatenation it is a slice of (plan.py's "slice" storage)."""
    shape = node.out.shape
    middle = 1
    for d in shape[1:-1]:
        middle *= int(d)
    kind, where = cg.plan.storage[node.out.name]
    if kind == "slice":
        parent, off = where
        return f"{cg.ref(parent)}.reshape((n, {middle}, {cg.shape(parent)[-1]}))", int(shape[-1]), int(off)
    return f"{out}.reshape((n, {middle}, {shape[-1]}))", int(shape[-1]), 0


def _epilogue_lines(cg: "CpuCodegen", node: Node, flags: list[tuple], buf: IndentedBuffer, main: str,
                    col: str = "c") -> None:
    """Statements applying the node's epilogue to `v`, read from and stored to `main` (an index expr);
    operand k is `a{k}[b, m, col]` with its broadcast axes at 0."""
    buf.line(f"v = {main}")
    k = 0
    for s in node.epilogue:
        operand = None
        if s.operand is not None:
            fb, fm, fc = flags[k]
            operand = f"a{k}[{'0' if fb else 'b'}, {'0' if fm else 'm'}, {'0' if fc else col}]"
            k += 1
        for ln in step_lines(s, "v", operand, cg.c):
            buf.line(ln)
    buf.line(f"{main} = v")


def _row_epilogue(cg: "CpuCodegen", node: Node, flags: list[tuple], buf: IndentedBuffer,
                  cols: tuple[str, str] = ("0", "C"), at: str = "0") -> None:
    """Apply the epilogue to rows r0..r1 (columns cols[0]..cols[1] of the node's output, stored from
    column `at` of `o2` on), in place.

    The column index is unsigned (`uc0 + c`, c over an unsigned range): numba checks signed indices
    for negative values, and on `for c in range(c0, c1)` that check keeps LLVM from vectorizing the
    loop (measured 7x slower: 0.49 ns against 0.07 ns per element for a bias add)."""
    if not node.epilogue:
        return
    c0, c1 = cols
    buf.line(f"uc0 = np.uint64({c0})")
    buf.line(f"uo = np.uint64({at} + {c0})")
    buf.line(f"ncol = np.uint64({c1} - {c0})")
    buf.line("for r in range(r0, r1):")
    with buf.indent():
        buf.line("b = r // M")
        buf.line("m = r - b * M")
        buf.line("for c in range(ncol):")
        with buf.indent():
            _epilogue_lines(cg, node, flags, buf, "o2[r, uo + c]", "uc0 + c")


def _define(cg: "CpuCodegen", kind: str, node: Node, flags: list[tuple], build) -> str:
    """Register the driver for this (kind, epilogue) shape once; return its function name."""
    buf = IndentedBuffer()
    build(buf)
    body = buf.getvalue()
    key = (kind, body)
    name = cg.drivers.get(key)
    if name is None:
        name = f"_{kind}{len(cg.drivers)}"
        cg.drivers[key] = name
        cg.kernel_src.append(PJIT + "\n" + body.replace("{name}", name))
    return name


def _tasks(buf: IndentedBuffer, task_body) -> None:
    """`for t in prange(tasks)`, with a serial path when there is one task (no thread hand-off)."""
    buf.line("if tasks == 1:")
    with buf.indent():
        buf.line("t = 0")
        task_body(buf)
    buf.line("else:")
    with buf.indent():
        buf.line("for t in prange(tasks):")
        with buf.indent():
            task_body(buf)


def _register_epilogue(cg: "CpuCodegen", node: Node, flags: list[tuple]) -> tuple | None:
    """The node's epilogue as the GEMM's own (`_pk.sgemm_pk_ep`: applied to the output block in
    registers), or None if it is not of that form: in this order and each optional, + a bias per
    channel, + a residual of the output's shape, ReLU (no slope or threshold; max_value a clamp).
    Returns (bias operand index or None, residual operand index or None, lo, hi, EP_* bits)."""
    bias = res = None
    lo, hi, ep = 0.0, 0.0, 0
    k = 0
    stage = 0
    for s in node.epilogue:
        if s.operand is not None:
            name = node.inputs[s.operand]
            dtype = (cg.g.params[name].dtype if name in cg.g.params else np.dtype(cg.values[name].dtype))
            if s.op is not Op.ADD or dtype != np.float32:
                return None
            f = flags[k]
            if f == (True, True, False) and stage < 1 and int(cg.shape(name)[-1]) == int(node.out.shape[-1]):
                bias, stage = k, 1
            elif f == (False, False, False) and stage < 2:
                res, stage = k, 2
            else:
                return None
            k += 1
        elif s.op is Op.RELU and stage < 3 and not s.attr("negative_slope", 0.0) and not s.attr("threshold", 0.0):
            mv = s.attr("max_value")
            lo, ep, stage = 0.0, ep | _packed.EP_LO, 3
            if mv is not None:
                hi, ep = float(mv), ep | _packed.EP_HI
        else:
            return None
    if bias is not None:
        ep |= _packed.EP_BIAS
    if res is not None:
        ep |= _packed.EP_RES
    return bias, res, lo, hi, ep


def _register_args(cg: "CpuCodegen", reg: tuple, row: str) -> str:
    """The epilogue arguments of a `_pk.sgemm_pk_ep` call for `_register_epilogue`'s `reg`, on a block
    of the output from row `row` and column c0 (operands a0, a1, ... of the driver; `o2` stands in
    for an operand the epilogue has not)."""
    bias, res, lo, hi, ep = reg
    bv, bo = (f"a{bias}.reshape(-1)", "c0") if bias is not None else ("o2", "0")
    rv, ro = (f"a{res}.reshape(-1)", f"{row} * C + c0") if res is not None else ("o2", "0")
    return f", {bv}, {bo}, {rv}, {ro}, C, {cg.c(lo)}, {cg.c(hi)}, {ep}"


def emit_gemm(cg: "CpuCodegen", node: Node, out: str, x2: str, wkey: str, w: np.ndarray,
              im2col: tuple | None) -> bool:
    """Emit a fused GEMM driver call: rows of `x2` (or im2col rows of x when `im2col` is given:
    (x, oh, ow, kh, kw, sh, sw, dh, dw, pt, pl, scratch), x viewed as NHWC) times the (K, C) weights
    `w` (stored packed, kernels/cpu/packed.py, under `wkey`), epilogue fused. False if it cannot.

    The output is cut into a grid of tiles (`_gemm.tiles`): blocks of rows when there are many, else
    blocks of columns, so that each thread reads only its share of the weights. A task builds the
    im2col rows of its block (or, with column blocks, all tasks share rows built first), multiplies
    with `_pk.sgemm_pk` and applies the epilogue while its tile is in cache."""
    got = _driver_operands(cg, node)
    if got is None:
        return False
    ops, flags, args = got
    kdim = int(w.shape[0])
    wv = cg.weight(f"{wkey}@pk", _packed.pack(w))
    kind = "conv" if im2col else "gemm"
    reg = _register_epilogue(cg, node, flags) if node.epilogue else None

    def build(buf: IndentedBuffer) -> None:
        head = ("x, w, K, o3, C, co, nt, oh, ow, kh, kw, sh, sw, dh, dw, pt, pl, scratch" if im2col
                else "x2, w, K, o3, C, co, nt")
        buf.line(f"def {{name}}({head}{args}):")
        with buf.indent():
            buf.line("N, M, LD = o3.shape")
            buf.line("rows = N * M")
            buf.line("o2 = o3.reshape((rows, LD))")
            buf.line("rchunk, cchunk = _gemm.tiles(rows, K, C, nt)")
            buf.line("rt = (rows + rchunk - 1) // rchunk")
            buf.line("ct = (C + cchunk - 1) // cchunk")
            buf.line("tasks = rt * ct")
            if im2col:
                buf.line("a = scratch[:rows * K]")
                buf.line("if ct > 1:  # column blocks share the rows: build them all first")
                with buf.indent():
                    buf.line("_gemm.im2col_par(x, rows, kh, kw, sh, sw, dh, dw, pt, pl, oh, ow, a, nt)")
                # with more tasks than threads, a thread builds each task's rows in its own slot of
                # the scratch (numba thread ids are 0..nt-1 inside prange), which stays in L2 from
                # one task to the next, instead of writing all rows x K floats out to memory
                buf.line("slots = ct == 1 and nt * rchunk <= rows")
            else:
                buf.line("a = x2")

            def task(b: IndentedBuffer) -> None:
                b.line("ri = t // ct")
                b.line("r0 = ri * rchunk")
                b.line("r1 = min(rows, r0 + rchunk)")
                b.line("c0 = (t - ri * ct) * cchunk")
                b.line("c1 = min(C, c0 + cchunk)")
                if im2col:
                    b.line("ao = r0 * K")
                    b.line("if slots:")
                    with b.indent():
                        b.line("ao = get_thread_id() * rchunk * K")
                    b.line("if ct == 1:")
                    with b.indent():
                        b.line("_gemm.im2col_rows(x, r0, r1, kh, kw, sh, sw, dh, dw, pt, pl, oh, ow, "
                               "a[ao:ao + (r1 - r0) * K].reshape((r1 - r0, K)))")
                else:
                    b.line("ao = r0 * K")
                if reg is None:
                    b.line("_pk.sgemm_pk(a, ao, K, w, 0, K, o2, r0 * LD + co + c0, LD, r1 - r0, c0, c1 - c0, _F0)")
                    _row_epilogue(cg, node, flags, b, ("c0", "c1"), "co")
                else:
                    b.line("_pk.sgemm_pk_ep(a, ao, K, w, 0, K, o2, r0 * LD + co + c0, LD, r1 - r0, c0, c1 - c0, _F0"
                           f"{_register_args(cg, reg, 'r0')})")
            _tasks(buf, task)
    name = _define(cg, kind, node, flags, build)
    o3, cc, co = _output(cg, node, out)
    opargs = "".join(f", {e}" for e, _ in ops)
    if im2col:
        x, oh, ow, kh, kw, sh, sw, dh, dw, pt, pl, scratch = im2col
        cg.line(f"{name}({x}, {wv}, {kdim}, {o3}, {cc}, {co}, nt, {oh}, {ow}, {kh}, {kw}, {sh}, {sw}, {dh}, {dw}, "
                f"{pt}, {pl}, {scratch}{opargs})")
    else:
        cg.line(f"{name}({x2}, {wv}, {kdim}, {o3}, {cc}, {co}, nt{opargs})")
    return True


def emit_rowconv(cg: "CpuCodegen", node: Node, out: str, x: str, wkey: str, w: np.ndarray, geometry: tuple,
                 scratch: str) -> bool:
    """Emit a fused "implicit GEMM" driver call for a dense 2D conv without dilation along the width:
    no im2col. For one output line (b, i) and one kernel row p, the A operand is the input line
    i * sh - pt + p * dh itself, read with a row stride of sw * cin: row j, column q * cin + c is
    x[b, ih, j * sw + q, c], so kw * cin consecutive floats. The conv is then kh GEMMs of ow x (kw *
    cin) by the kernel row's (kw * cin, C) weights (each packed, kernels/cpu/packed.py), accumulated
    in the output. A conv padded along the width first copies its input into a width-padded buffer
    (1 / (kh * kw) of what im2col writes at stride 1). `geometry` is (oh, ow, kh, kw, sh, sw, dh, pt,
    pl, wp); False if the epilogue's operands do not fit."""
    got = _driver_operands(cg, node)
    if got is None:
        return False
    ops, flags, args = got
    oh, ow, kh, kw, sh, sw, dh, pt, pl, wp = geometry
    krow = kw * int(w.shape[2])
    cout = int(w.shape[3])
    per = _packed.packed_size(krow, cout)
    wv = cg.weight(f"{wkey}@rowpk", np.concatenate([_packed.pack(w[p].reshape(krow, cout)) for p in range(kh)]))
    reg = _register_epilogue(cg, node, flags) if node.epilogue else None

    def build(buf: IndentedBuffer) -> None:
        buf.line(f"def {{name}}(x, w, per, o3, C, co, nt, oh, ow, kh, kw, sh, sw, dh, pt, pl, wp, scratch{args}):")
        with buf.indent():
            buf.line("N, M, LD = o3.shape")
            buf.line("n, h, wd, cin = x.shape")
            buf.line("KR = kw * cin")
            buf.line("o2 = o3.reshape((N * M, LD))")
            buf.line("if pl == 0 and wp <= wd:  # every pixel read lies inside the lines: read them in place")
            with buf.indent():
                buf.line("xf = x.reshape(-1)")
                buf.line("lw = wd")
            buf.line("else:")
            with buf.indent():
                buf.line("xp = scratch[:n * h * wp * cin].reshape((n, h, wp, cin))")
                buf.line("_gemm.pad_width_par(x, pl, xp, nt)")
                buf.line("xf = xp.reshape(-1)")
                buf.line("lw = wp")
            buf.line("lines = N * oh")
            buf.line("lchunk, cchunk = _gemm.line_tiles(lines, ow, kh * KR, C, nt)")
            buf.line("lt = (lines + lchunk - 1) // lchunk")
            buf.line("ct = (C + cchunk - 1) // cchunk")
            buf.line("tasks = lt * ct")

            def task(b: IndentedBuffer) -> None:
                b.line("li = t // ct")
                b.line("l0 = li * lchunk")
                b.line("l1 = min(lines, l0 + lchunk)")
                b.line("c0 = (t - li * ct) * cchunk")
                b.line("c1 = min(C, c0 + cchunk)")
                b.line("for ln in range(l0, l1):")
                with b.indent():
                    b.line("bi = ln // oh")
                    b.line("i = ln - bi * oh")
                    b.line("first = True")
                    if reg is not None:  # the epilogue goes with the line's last GEMM
                        b.line("plast = -1")
                        b.line("for p in range(kh):")
                        with b.indent():
                            b.line("ih = i * sh - pt + p * dh")
                            b.line("if ih >= 0 and ih < h:")
                            with b.indent():
                                b.line("plast = p")
                    b.line("for p in range(kh):")
                    with b.indent():
                        b.line("ih = i * sh - pt + p * dh")
                        b.line("if ih >= 0 and ih < h:")
                        with b.indent():
                            call = ("xf, (bi * h + ih) * lw * cin, sw * cin, w, p * per, KR, o2, "
                                    "ln * ow * LD + co + c0, LD, ow, c0, c1 - c0, _F0 if first else _F1")
                            if reg is None:
                                b.line(f"_pk.sgemm_pk({call})")
                            else:
                                b.line("if p == plast:")
                                with b.indent():
                                    b.line(f"_pk.sgemm_pk_ep({call}{_register_args(cg, reg, 'ln * ow')})")
                                b.line("else:")
                                with b.indent():
                                    b.line(f"_pk.sgemm_pk({call})")
                            b.line("first = False")
                    b.line("if first:  # every kernel row in the padding")
                    with b.indent():
                        b.line("for r in range(ln * ow, ln * ow + ow):")
                        with b.indent():
                            b.line("for c in range(c0, c1):")
                            with b.indent():
                                b.line("o2[r, co + c] = 0.0")
                        if reg is not None:
                            b.line("r0 = ln * ow")
                            b.line("r1 = r0 + ow")
                            _row_epilogue(cg, node, flags, b, ("c0", "c1"), "co")
                if reg is None:
                    b.line("r0 = l0 * ow")
                    b.line("r1 = l1 * ow")
                    _row_epilogue(cg, node, flags, b, ("c0", "c1"), "co")
            _tasks(buf, task)
    name = _define(cg, "rowconv", node, flags, build)
    o3, cc, co = _output(cg, node, out)
    opargs = "".join(f", {e}" for e, _ in ops)
    cg.line(f"{name}({x}, {wv}, {per}, {o3}, {cc}, {co}, nt, {oh}, {ow}, {kh}, {kw}, {sh}, {sw}, {dh}, {pt}, {pl}, "
            f"{wp}, {scratch}{opargs})")
    return True


def emit_depthwise(cg: "CpuCodegen", node: Node, out: str, x: str, w: str, geometry: tuple) -> bool:
    """Emit a fused depthwise driver call (rows in parallel, epilogue per row). False if it cannot."""
    got = _driver_operands(cg, node)
    if got is None:
        return False
    ops, flags, args = got

    def build(buf: IndentedBuffer) -> None:
        buf.line(f"def {{name}}(x, w, out, sh, sw, dh, dw, pt, pl{args}):")
        with buf.indent():
            buf.line("N, OH, OW, C = out.shape")
            buf.line("M = OH * OW")
            buf.line("o2 = out.reshape((N * M, C))")
            buf.line("tasks = N * OH")
            buf.line("for t in prange(tasks):")
            with buf.indent():
                buf.line("bb = t // OH")
                buf.line("i = t - bb * OH")
                buf.line("_gemm.depthwise_row(x, w, out, bb, i, sh, sw, dh, dw, pt, pl)")
                buf.line("r0 = t * OW")
                buf.line("r1 = r0 + OW")
                _row_epilogue(cg, node, flags, buf)
    name = _define(cg, "dw", node, flags, build)
    opargs = "".join(f", {e}" for e, _ in ops)
    sh, sw, dh, dw, pt, pl = geometry
    cg.line(f"{name}({x}, {w}, {out}, {sh}, {sw}, {dh}, {dw}, {pt}, {pl}{opargs})")
    return True


def emit_winograd(cg: "CpuCodegen", node: Node, out: str, x: str, wkey: str, w: np.ndarray, pads: tuple,
                  scratch: str, m: int = 2, pool: Node | None = None) -> bool:
    """Emit a fused Winograd F(m x m, 3x3) driver call (kernels/cpu/winograd.py): tasks of tiles, each
    transforms its input tiles, runs the a*a GEMMs (against the transformed kernels, each packed for
    `_pk.sgemm_pk`) and the output transform, copying a tile's outputs out with the epilogue fused.
    With `pool` (a 2x2 stride-2 max or average pooling, cpu.py `_fused_pools`) a tile is pooled after
    its epilogue and only the pooled values are stored, into `out`, the pooling's output.
    False if the epilogue's operands do not fit."""
    got = _driver_operands(cg, node)
    if got is None:
        return False
    ops, flags, args = got
    a = m + 2
    e2 = a * a
    ut = _wino.transform_weights(w, m)
    u = cg.weight(f"{wkey}@wino{m}", np.concatenate([_packed.pack(ut[e]) for e in range(e2)]))
    per = _packed.packed_size(*ut.shape[1:])

    def store(b: IndentedBuffer) -> None:
        """The tile's outputs (ys, m*m pixels x C) to o2, with the epilogue."""
        b.line(f"for dy in range(min({m}, oh - oi)):")
        with b.indent():
            b.line(f"for dx in range(min({m}, ow - oj)):")
            with b.indent():
                b.line("m = (oi + dy) * ow + oj + dx")
                b.line("r = b * M + m")
                b.line(f"k = dy * {m} + dx")
                b.line("for c in range(ucc):")
                with b.indent():
                    b.line("o2[r, uco + c] = ys[k, c]")
                    if node.epilogue:
                        _epilogue_lines(cg, node, flags, b, "o2[r, uco + c]", "c")

    def store_pooled(b: IndentedBuffer) -> None:
        """The epilogue on the tile in place (its operands are per channel), then each 2x2 window
        whose pixels all lie in the output (a pooling without padding drops an odd last row or
        column) to o2 (rows of the pooled output): the max (NaN wins, as in kernels/cpu/pool.py)
        or the mean."""
        if node.epilogue:
            b.line("m = 0")
            b.line(f"for k in range({m * m}):")
            with b.indent():
                b.line("for c in range(ucc):")
                with b.indent():
                    _epilogue_lines(cg, node, flags, b, "ys[k, c]", "c")
        b.line(f"for py in range(oi // 2, min(oi + {m}, 2 * ph) // 2):")
        with b.indent():
            b.line(f"for px in range(oj // 2, min(oj + {m}, 2 * pw) // 2):")
            with b.indent():
                b.line(f"k = (2 * py - oi) * {m} + 2 * px - oj")
                b.line("r = b * M + py * pw + px")
                b.line("for c in range(ucc):")
                with b.indent():
                    if pool.op is Op.MAXPOOL:
                        b.line("v = ys[k, c]")
                        for d in ("1", f"{m}", f"{m + 1}"):
                            b.line(f"q = ys[k + {d}, c]")
                            b.line("v = q if (q > v or q != q) else v")
                    else:
                        b.line(f"v = (ys[k, c] + ys[k + 1, c] + ys[k + {m}, c] + ys[k + {m + 1}, c]) * _Q")
                    b.line("o2[r, uco + c] = v")

    def build(buf: IndentedBuffer) -> None:
        buf.line(f"def {{name}}(x, u, per, o3, C, co, nt, oh, ow, pt, pl, scratch{args}):")
        with buf.indent():
            buf.line("N, M, LD = o3.shape")
            buf.line("CI = x.shape[3]")
            buf.line(f"th = (oh + {m - 1}) // {m}")
            buf.line(f"tw = (ow + {m - 1}) // {m}")
            if pool is not None:
                buf.line("ph = oh // 2")
                buf.line("pw = ow // 2")
                buf.line("_Q = np.float32(0.25)")
            buf.line("T = N * th * tw")
            buf.line("o2 = o3.reshape((N * M, LD))")
            buf.line(f"chunk = _wino.tile_chunk(T, {e2}, CI, C, nt)")
            buf.line("tasks = (T + chunk - 1) // chunk")
            buf.line("uco = np.uint64(co)")
            buf.line("ucc = np.uint64(C)")

            def task(b: IndentedBuffer) -> None:
                b.line("t0 = t * chunk")
                b.line("t1 = min(T, t0 + chunk)")
                b.line("cnt = t1 - t0")
                b.line(f"base = {e2} * (CI + C) * t0")
                b.line(f"vv = scratch[base:base + {e2} * cnt * CI].reshape(({e2}, cnt, CI))")
                b.line(f"mm = scratch[base + {e2} * cnt * CI:base + {e2} * cnt * (CI + C)].reshape(({e2}, cnt, C))")
                b.line(f"dd = np.empty(({a}, {a}, CI), np.float32)")
                b.line(f"rr = np.empty(({a}, {a}, CI), np.float32)")
                b.line(f"_wino.input_tiles{m}(x, t0, t1, th, tw, pt, pl, vv, dd, rr)")
                b.line(f"for e in range({e2}):")
                with b.indent():
                    b.line("_pk.sgemm_pk(vv, e * cnt * CI, CI, u, e * per, CI, mm, e * cnt * C, C, cnt, 0, C, _F0)")
                b.line(f"ss = np.empty(({m}, {a}, C), np.float32)")
                b.line(f"ys = np.empty(({m * m}, C), np.float32)")
                b.line("for i in range(cnt):")
                with b.indent():
                    b.line("tt = t0 + i")
                    b.line("b = tt // (th * tw)")
                    b.line("rem = tt - b * th * tw")
                    b.line(f"oi = {m} * (rem // tw)")
                    b.line(f"oj = {m} * (rem - (rem // tw) * tw)")
                    b.line(f"_wino.output_tile{m}(mm, i, ss, ys)")
                    (store if pool is None else store_pooled)(b)
            _tasks(buf, task)
    kind = ("wino" if m == 2 else "winof") + ("" if pool is None else "p")
    name = _define(cg, kind, node, flags, build)
    shape = node.out.shape
    o3, cc, co = _output(cg, node if pool is None else pool, out)
    opargs = "".join(f", {e}" for e, _ in ops)
    cg.line(f"{name}({x}, {u}, {per}, {o3}, {cc}, {co}, nt, {shape[1]}, {shape[2]}, {pads[0]}, {pads[1]}, "
            f"{scratch}{opargs})")
    return True
