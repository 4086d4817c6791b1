"""CUDA emitters of the sequence ops (RNN, GATHER, ONE_HOT, BMM), registered into `cuda.EMITTERS`.

An RNN node is (at most) one kernel launch for the whole sequence: one thread block per batch row loops over
time inside the kernel, so a 200-step LSTM costs one launch, not 200. Per step, the block's threads
first compute the recurrent product z = h @ U, one column of U each (h in shared memory, read as a
broadcast; U's column in registers when it fits, else read from global memory, where it stays in
L1/L2), then one thread per unit applies the cell's gates, activations and the input projection xp
(one read of xp[b, t]) and updates its h (and c) in shared memory. Two barriers per step (four for a
GRU without reset_after, whose candidate needs (r * h) @ U_h). A masked step is block-uniform (a
block is one row), so it skips the step, barriers included. Independent RNN nodes (a Bidirectional's
two directions, parallel branches) are moved side by side and launched together: grid (n, nodes),
blockIdx.y picks the node's branch, so both directions of a Bidirectional run at once in one launch. The input projection of every timestep
is the MATMUL (or GATHER, for an Embedding folded into it) before the node: one GEMM.

A ConvLSTM2D node is one launch too, one block per batch row looping over time (`_convlstm_body`):
its input convolution of every frame is the CONV node before it (one implicit-GEMM launch), and each
step's recurrent convolution of h is computed inside the kernel, with h double-buffered so that one
barrier per step suffices. Its states live in shared memory, or in per-row arena scratch when they do
not fit (`scratch_floats`); it is never grouped with other RNN nodes (that scratch is its own).

Stateful RNNs read and leave their states in the `state` device buffer that `launches` takes last
(`cpu_seq.state_layout` assigns the slots, the same as on the CPU).
"""
from __future__ import annotations

import re
from typing import Any, Callable

import numpy as np

from ...errors import CompileError
from ...kernels.cuda import seq as _seq
from ..ir import Graph, Node, Op
from ..rules import same_pads
from .cpu_seq import _RnnGeometry, program_lines
from .common import IndentedBuffer

#: at most this many threads per RNN block, and the most floats of U a thread keeps in registers
MAX_THREADS = 1024
MAX_CACHED = 128
#: static shared memory per block (bytes)
SHARED_BYTES = 48 * 1024


def _threads(width: int) -> int:
    # not rounded up to whole warps: threads past `width` would only wait at the barriers
    return min(MAX_THREADS, width)


def _cached(nt: int, floats: int) -> bool:
    """Whether `floats` of U per thread fit in registers next to the rest at `nt` threads per block
    (65536 registers per multiprocessor, about 48 for everything else)."""
    return floats <= min(MAX_CACHED, 65536 // nt - 48)


def _matvec(buf: IndentedBuffer, src: str, w: str, cache: str | None, width: int, F: int, nt: int,
            dst: str) -> None:
    """dst[col] = sum_k src[k] * w[k, col] for col < width (w row-major (F, width)); with `cache`, the
    thread's column lives in the local array of that name (one column per thread: width <= nt)."""
    if cache:
        buf.line(f"if tid < {width}:")
        with buf.indent():
            for a in range(4):
                buf.line(f"a{a} = float32(0.0)")
            for k in range(F):
                buf.line(f"a{k % 4} += {src}[{k}] * {cache}[{k}]")
            buf.line(f"{dst}[tid] = (a0 + a1) + (a2 + a3)")
        return
    buf.line(f"for col in range(tid, {width}, {nt}):")
    with buf.indent():
        buf.line("acc = float32(0.0)")
        buf.line(f"for k in range({F}):")
        buf.line(f"    acc += {src}[k] * {w}[k * {width} + col]")
        buf.line(f"{dst}[col] = acc")


def _load_cache(buf: IndentedBuffer, w: str, cache: str, width: int, F: int) -> None:
    buf.line(f"{cache} = cuda.local.array({F}, float32)")
    buf.line(f"col = min(tid, {width - 1})")  # threads past the last column load a copy of it, unused
    for k in range(F):
        buf.line(f"{cache}[{k}] = {w}[{k * width} + col]")


def _gate_lines(geo: _RnnGeometry, c: Callable[[float], str]) -> list[str]:
    """The fused update of unit j of the block's row, from zs (recurrent product) and xp[xb:]."""
    a, F = geo.attrs, geo.F
    act = lambda x, out, tag: program_lines(a["activation"], x, out, c, tag, False)  # noqa: E731
    ract = lambda x, out, tag: program_lines(a["recurrent_activation"], x, out, c, tag, False)  # noqa: E731
    one = c(1.0)
    if geo.cell == "simple":
        return act("xp[xb + j] + zs[j]", "hn", "_a") + ["hs[j] = hn"]
    if geo.cell == "gru" and a.get("reset_after"):
        rb = lambda k: f" + rb[{k * F} + j]" if a.get("has_rbias") else ""  # noqa: E731
        return (ract(f"xp[xb + j] + (zs[j]{rb(0)})", "gz", "_r")
                + ract(f"xp[xb + {F} + j] + (zs[{F} + j]{rb(1)})", "gr", "_s")
                + act(f"xp[xb + {2 * F} + j] + gr * (zs[{2 * F} + j]{rb(2)})", "hh", "_a")
                + [f"hs[j] = gz * hs[j] + ({one} - gz) * hh"])
    if geo.cell == "gru":  # the second half, after zh = (r * h) @ U_h (see `_kernel_source`)
        return act(f"xp[xb + {2 * F} + j] + zh[j]", "hh", "_a") + \
            ["gz = zs[j]", f"hs[j] = gz * hs[j] + ({one} - gz) * hh"]
    return (ract("xp[xb + j] + zs[j]", "gi", "_r")
            + ract(f"xp[xb + {F} + j] + zs[{F} + j]", "gf", "_s")
            + act(f"xp[xb + {2 * F} + j] + zs[{2 * F} + j]", "gc", "_a")
            + ract(f"xp[xb + {3 * F} + j] + zs[{3 * F} + j]", "go", "_o")
            + ["cn = gf * cs[j] + gi * gc", "cs[j] = cn"]
            + act("cn", "hc", "_b") + ["hs[j] = go * hc"])


def _columns(geo: _RnnGeometry) -> int:
    """Columns of the first recurrent product (U's, or U_z and U_r's for a GRU without reset_after)."""
    return 2 * geo.F if geo.gru_split else geo.G * geo.F


def _convlstm_floats(geo: _RnnGeometry) -> int:
    """Floats of a ConvLSTM row's states: h twice (this step's and the next's) and c; with an activation
    of a whole gate, also every position's pre-activations (P * 4F)."""
    return 3 * geo.P * geo.F + (geo.P * geo.G * geo.F if geo.rows_mode else 0)


def convlstm_in_global(geo: _RnnGeometry) -> bool:
    """Whether a ConvLSTM row's states live in global memory (scratch of the arena), not shared memory."""
    return 4 * _convlstm_floats(geo) > SHARED_BYTES


def _shared_bytes(geo: _RnnGeometry) -> int:
    """Static shared memory of one node's branch: h (and c), the product, and r * h with its product."""
    if geo.cell == "convlstm":
        return 0 if convlstm_in_global(geo) else 4 * _convlstm_floats(geo)
    return 4 * (geo.F * (1 + (geo.K == 2) + 2 * geo.gru_split) + _columns(geo))


def scratch_floats(node: Node, values: dict) -> int:
    """Per-sample arena scratch of a node: the states of a ConvLSTM too big for shared memory."""
    if node.op is not Op.RNN or node.attr("cell") != "convlstm":
        return 0
    geo = _RnnGeometry(node, values)
    return _convlstm_floats(geo) if convlstm_in_global(geo) else 0


def _needed_threads(geo: _RnnGeometry, layer: str) -> int:
    """Threads per block the node wants; CompileError when its shared memory does not fit a block."""
    F, zw = geo.F, _columns(geo)
    shared = _shared_bytes(geo) // 4
    if geo.cell == "convlstm":
        return _threads(geo.P * F)
    if shared * 4 > SHARED_BYTES:
        raise CompileError(f"layer {layer!r}: {F} units of a {geo.cell} cell need {shared * 4} bytes of shared "
                           f"memory per block, more than the CUDA backend's {SHARED_BYTES}; compile this "
                           f"model with target='cpu'")
    return _threads(max(zw, F))


def _kernel_body(geo: _RnnGeometry, c: Callable[[float], str], nt: int) -> str:
    """The statements of one RNN node's block (row `b`, thread `tid`, `nt` threads), reading its
    arguments by their plain names (xp, u, uh, rb, mask, s0, s1, out, state)."""
    if geo.cell == "convlstm":
        return _convlstm_body(geo, c, nt)
    a = geo.attrs
    T, F, G = geo.T, geo.F, geo.G
    split = geo.gru_split
    zw = _columns(geo)
    cache = zw <= nt and _cached(nt, F * (2 if split else 1))
    has_mask, unroll, zero = a.get("has_mask"), a.get("unroll"), c(0.0)
    rows, seqs = geo.rows, a.get("return_sequences")
    buf = IndentedBuffer()
    buf.line(f"hs = cuda.shared.array({F}, float32)")
    if geo.K == 2:
        buf.line(f"cs = cuda.shared.array({F}, float32)")
    buf.line(f"zs = cuda.shared.array({zw}, float32)")
    if split:
        buf.line(f"rh = cuda.shared.array({F}, float32)")
        buf.line(f"zh = cuda.shared.array({F}, float32)")
    # initial states: given, kept from the last call, or zeros
    buf.line(f"for j in range(tid, {F}, {nt}):")
    with buf.indent():
        for k, sname in enumerate(["hs", "cs"][:geo.K]):
            if a.get("n_init"):
                src = f"s{k}[b * {F} + j]"
            elif a.get("stateful"):
                src = f"state[(b * {geo.K} + {k}) * {F} + j]"
            else:
                src = zero
            buf.line(f"{sname}[j] = {src}")
    if cache:
        _load_cache(buf, "u", "uc", zw, F)
        if split:
            _load_cache(buf, "uh", "uhc", F, F)
    if unroll and has_mask:
        buf.line("seen = False")
    buf.line("cuda.syncthreads()")
    buf.line(f"for s in range({T}):")
    with buf.indent():
        buf.line(f"t = {T - 1} - s" if a.get("go_backwards") else "t = s")
        oi = "t" if a.get("time_order") else "s"
        if has_mask:
            # one row per block: the branch is uniform, so the barriers inside it are safe
            buf.line(f"if mask[b * {T} + t] == {zero}:")
            with buf.indent():
                if seqs:
                    if a.get("zero_masked"):
                        val = zero
                    elif unroll:
                        val = f"hs[j] if seen else {zero}"
                    else:
                        val = "hs[j]"
                    buf.line(f"for j in range(tid, {F}, {nt}):")
                    buf.line(f"    out[(b * {rows} + {oi}) * {F} + j] = {val}")
                buf.line("continue")
            if unroll:
                buf.line("seen = True")
        _matvec(buf, "hs", "u", "uc" if cache else None, zw, F, nt, "zs")
        buf.line("cuda.syncthreads()")
        buf.line(f"xb = (b * {T} + t) * {G * F}")
        if split and geo.rows_mode:
            buf.line("if tid == 0:")  # an activation of a whole gate: the row's update by one thread
            with buf.indent():
                for line in _dense_row_lines(geo, c, first_half=True):
                    buf.line(line)
            buf.line("cuda.syncthreads()")
            _matvec(buf, "rh", "uh", "uhc" if cache else None, F, F, nt, "zh")
            buf.line("cuda.syncthreads()")
        elif split:
            buf.line(f"for j in range(tid, {F}, {nt}):")
            with buf.indent():
                for line in program_lines(a["recurrent_activation"], "xp[xb + j] + zs[j]", "gz", c, "_r", False):
                    buf.line(line)
                for line in program_lines(a["recurrent_activation"], f"xp[xb + {F} + j] + zs[{F} + j]", "gr",
                                          c, "_s", False):
                    buf.line(line)
                buf.line("zs[j] = gz")
                buf.line("rh[j] = gr * hs[j]")
            buf.line("cuda.syncthreads()")
            _matvec(buf, "rh", "uh", "uhc" if cache else None, F, F, nt, "zh")
            buf.line("cuda.syncthreads()")
        if geo.rows_mode:
            buf.line("if tid == 0:")
            with buf.indent():
                for line in _dense_row_lines(geo, c, first_half=False):
                    buf.line(line)
            if seqs:
                buf.line("cuda.syncthreads()")
                buf.line(f"for j in range(tid, {F}, {nt}):")
                buf.line(f"    out[(b * {rows} + {oi}) * {F} + j] = hs[j]")
        else:
            buf.line(f"for j in range(tid, {F}, {nt}):")
            with buf.indent():
                for line in _gate_lines(geo, c):
                    buf.line(line)
                if seqs:
                    buf.line(f"out[(b * {rows} + {oi}) * {F} + j] = hs[j]")
        buf.line("cuda.syncthreads()")
    tail: list[str] = []  # the last output, final states and kept states of the row
    if not seqs:
        last = "0" if a.get("go_backwards") else str(T - 1)
        if has_mask and a.get("zero_masked"):
            tail.append(f"out[b * {rows} * {F} + j] = {zero} if mask[b * {T} + {last}] == {zero} else hs[j]")
        elif has_mask and unroll:
            tail.append(f"out[b * {rows} * {F} + j] = hs[j] if seen else {zero}")
        else:
            tail.append(f"out[b * {rows} * {F} + j] = hs[j]")
    for k, sname in enumerate(["hs", "cs"][:a.get("out_states", 0)]):
        tail.append(f"out[(b * {rows} + {geo.R + k}) * {F} + j] = {sname}[j]")
    if a.get("stateful"):
        for k, sname in enumerate(["hs", "cs"][:geo.K]):
            tail.append(f"state[(b * {geo.K} + {k}) * {F} + j] = {sname}[j]")
    if tail:
        buf.line(f"for j in range(tid, {F}, {nt}):")
        with buf.indent():
            for line in tail:
                buf.line(line)
    return buf.getvalue()


def _row_lines(name: str, arr: str, base: str, F: int) -> list[str]:
    """Statements applying the activation `name` (one of rules_seq.ROW_ACTIVATIONS) in place to the F
    units arr[base:base + F] of one gate, as kernels/cpu/rnn.py's `*_row` functions do."""
    x = lambda j: f"{arr}[{base} + {j}]"  # noqa: E731
    if name == "glu":  # a gate of 2 units: one value, broadcast over both (Keras's cell)
        return [f"rg = {x(0)} * (float32(1.0) / (float32(1.0) + math.exp(-{x(1)})))", f"{x(0)} = rg", f"{x(1)} = rg"]
    if name in ("softmax", "log_softmax"):
        lines = [f"rm = {x(0)}", f"for rj in range(1, {F}):", f"    rm = max(rm, {x('rj')})",
                 "rt = float32(0.0)", f"for rj in range({F}):"]
        if name == "softmax":
            return lines + [f"    re = math.exp({x('rj')} - rm)", f"    {x('rj')} = re", "    rt += re",
                            f"for rj in range({F}):", f"    {x('rj')} = {x('rj')} / rt"]
        return lines + [f"    rt += math.exp({x('rj')} - rm)", "rl = math.log(rt)",
                        f"for rj in range({F}):", f"    {x('rj')} = ({x('rj')} - rm) - rl"]
    if name == "sparsemax":  # sort-free, in float64, as kernels/cuda/sparsemax.py
        return ["racc = float64(0.0)", "rcount = 0", f"for rk in range({F}):",
                f"    rv = float64({x('rk')})", "    rcs = rv", "    rrank = 1", f"    for rq in range({F}):",
                f"        rw = float64({x('rq')})", "        if rw > rv or (rw == rv and rq < rk):",
                "            rcs += rw", "            rrank += 1",
                "    if rv - (rcs - 1.0) / rrank > 0.0:", "        racc += rcs", "        rcount += 1",
                "rtau = (racc - 1.0) / max(rcount, 1)", f"for rk in range({F}):",
                f"    rv = float64({x('rk')}) - rtau", f"    {x('rk')} = float32(rv) if rv > 0.0 else float32(0.0)"]
    raise CompileError(f"no CUDA code for the row activation {name!r}")


def _apply_lines(program: tuple | str, arr: str, base: str, F: int, c: Callable[[float], str],
                 tag: str) -> list[str]:
    """Statements applying a cell's activation in place to one gate's F units arr[base:base + F]."""
    if isinstance(program, str):
        return _row_lines(program, arr, base, F)
    if not program:
        return []
    cell = f"{arr}[{base} + j]"
    return [f"for j in range({F}):"] + ["    " + ln for ln in program_lines(program, cell, cell, c, tag, False)]


def _dense_row_lines(geo: _RnnGeometry, c: Callable[[float], str], first_half: bool) -> list[str]:
    """The update of the block's row when an activation is a function of a whole gate, run by one
    thread (as cpu_seq._row_gate_lines): pre-activations into zs (zh), each gate's activation in place,
    then the new state. `first_half`: a GRU without reset_after's z and r, and r * h into rh."""
    a, F = geo.attrs, geo.F
    act = lambda arr, start, tag: _apply_lines(a["activation"], arr, str(start), F, c, tag)  # noqa: E731
    ract = lambda arr, start, tag: _apply_lines(a["recurrent_activation"], arr, str(start), F, c, tag)  # noqa: E731
    loop = lambda n, *body: [f"for j in range({n}):"] + ["    " + ln for ln in body]  # noqa: E731
    one = c(1.0)
    if first_half:
        return (loop(2 * F, "zs[j] = xp[xb + j] + zs[j]") + ract("zs", 0, "_r") + ract("zs", F, "_s")
                + loop(F, f"rh[j] = zs[{F} + j] * hs[j]"))
    if geo.cell == "simple":
        return loop(F, "zs[j] = xp[xb + j] + zs[j]") + act("zs", 0, "_a") + loop(F, "hs[j] = zs[j]")
    if geo.cell == "gru" and a.get("reset_after"):
        rb = lambda k: f" + rb[{k} + j]" if a.get("has_rbias") else ""  # noqa: E731
        return (loop(2 * F, f"zs[j] = xp[xb + j] + (zs[j]{rb(0)})") + ract("zs", 0, "_r") + ract("zs", F, "_s")
                + loop(F, f"zs[{2 * F} + j] = xp[xb + {2 * F} + j] + zs[{F} + j] * (zs[{2 * F} + j]{rb(2 * F)})")
                + act("zs", 2 * F, "_a") + loop(F, f"hs[j] = zs[j] * hs[j] + ({one} - zs[j]) * zs[{2 * F} + j]"))
    if geo.cell == "gru":  # the second half, after zh = (r * h) @ U_h
        return (loop(F, f"zh[j] = xp[xb + {2 * F} + j] + zh[j]") + act("zh", 0, "_a")
                + loop(F, f"hs[j] = zs[j] * hs[j] + ({one} - zs[j]) * zh[j]"))
    return (loop(4 * F, "zs[j] = xp[xb + j] + zs[j]") + ract("zs", 0, "_r") + ract("zs", F, "_s")
            + act("zs", 2 * F, "_a") + ract("zs", 3 * F, "_o")
            + loop(F, f"cn = zs[{F} + j] * cs[j] + zs[j] * zs[{2 * F} + j]", "cs[j] = cn", f"zs[{2 * F} + j] = cn")
            + act("zs", 2 * F, "_b") + loop(F, f"hs[j] = zs[{3 * F} + j] * zs[{2 * F} + j]"))


def _convlstm_body(geo: _RnnGeometry, c: Callable[[float], str], nt: int) -> str:
    """The statements of one ConvLSTM2D row's block (row `b`, thread `tid`, `nt` threads): per step, each
    thread takes items q = (position, unit) in turn, computes the recurrent convolution of h for its four
    gates (U is the Keras kernel (kh, kw, F, 4F), 'same' padding, stride 1), the gates with xp (the input
    convolution of every step, the CONV node before), and writes c in place and the new h into the other
    half of a double buffer, so one barrier per step suffices. States in shared memory, or in the arena
    scratch `wk` (3 * P * F floats per row) when they do not fit (`convlstm_in_global`).
    With an activation of a whole gate (softmax, ...), the items write their pre-activations to z and,
    after a barrier, one thread per position applies the gates unit by unit (a second barrier)."""
    a = geo.attrs
    T, F, G, P = geo.T, geo.F, geo.G, geo.P
    PF, GF = P * F, G * F
    (H, W), (KH, KW) = geo.spatial, a["kernel_hw"]
    PT, PL = same_pads(H, KH, 1)[0], same_pads(W, KW, 1)[0]
    has_mask, unroll, zero = a.get("has_mask"), a.get("unroll"), c(0.0)
    rows, seqs = geo.rows, a.get("return_sequences")
    act = lambda x, out, tag: program_lines(a["activation"], x, out, c, tag, False)  # noqa: E731
    ract = lambda x, out, tag: program_lines(a["recurrent_activation"], x, out, c, tag, False)  # noqa: E731
    rows_mode = geo.rows_mode
    buf = IndentedBuffer()
    if convlstm_in_global(geo):
        hs = cs = zs = "wk"
        buf.line(f"hb = b * {_convlstm_floats(geo)}")
        buf.line(f"cb = hb + {2 * PF}")
        buf.line(f"zb = hb + {3 * PF}")
    else:
        hs, cs, zs = "hs", "cs", "zs"
        buf.line(f"hs = cuda.shared.array({2 * PF}, float32)")
        buf.line(f"cs = cuda.shared.array({PF}, float32)")
        if rows_mode:
            buf.line(f"zs = cuda.shared.array({P * GF}, float32)")
        buf.line("hb = 0")
        buf.line("cb = 0")
        buf.line("zb = 0")
    cur = f"{hs}[hb + cur + q]"  # this step's h of item q
    buf.line("cur = 0")  # offset of this step's h in the double buffer: block-uniform
    buf.line(f"for q in range(tid, {PF}, {nt}):")
    with buf.indent():
        for k, (arr, base) in enumerate([(hs, "hb"), (cs, "cb")]):
            if a.get("n_init"):
                src = f"s{k}[b * {PF} + q]"
            elif a.get("stateful"):
                src = f"state[(b * 2 + {k}) * {PF} + q]"
            else:
                src = zero
            buf.line(f"{arr}[{base} + q] = {src}")
    if unroll and has_mask:
        buf.line("seen = False")
    buf.line("cuda.syncthreads()")
    buf.line(f"for s in range({T}):")
    with buf.indent():
        buf.line(f"t = {T - 1} - s" if a.get("go_backwards") else "t = s")
        oi = "t" if a.get("time_order") else "s"
        if has_mask:
            # one row per block: the branch is uniform; a masked step changes no state, so no barrier
            buf.line(f"if mask[b * {T} + t] == {zero}:")
            with buf.indent():
                if seqs:
                    if a.get("zero_masked"):
                        val = zero
                    elif unroll:
                        val = f"{cur} if seen else {zero}"
                    else:
                        val = cur
                    buf.line(f"for q in range(tid, {PF}, {nt}):")
                    buf.line(f"    out[(b * {rows} + {oi}) * {PF} + q] = {val}")
                buf.line("continue")
            if unroll:
                buf.line("seen = True")
        buf.line(f"nxt = {PF} - cur")
        buf.line(f"xb = (b * {T} + t) * {P * GF}")
        buf.line(f"for q in range(tid, {PF}, {nt}):")
        with buf.indent():
            buf.line(f"p = q // {F}")
            buf.line(f"j = q - p * {F}")
            buf.line(f"py = p // {W}")
            buf.line(f"px = p - py * {W}")
            for k in range(4):
                buf.line(f"z{k} = float32(0.0)")
            buf.line(f"for dy in range({KH}):")
            with buf.indent():
                buf.line(f"iy = py + dy - {PT}")
                buf.line(f"if iy >= 0 and iy < {H}:")
                with buf.indent():
                    buf.line(f"for dx in range({KW}):")
                    with buf.indent():
                        buf.line(f"ix = px + dx - {PL}")
                        buf.line(f"if ix >= 0 and ix < {W}:")
                        with buf.indent():
                            buf.line(f"hq = hb + cur + (iy * {W} + ix) * {F}")
                            buf.line(f"wr = (dy * {KW} + dx) * {F * GF} + j")
                            buf.line(f"for k in range({F}):")
                            with buf.indent():
                                buf.line(f"hv = {hs}[hq + k]")
                                for g in range(4):
                                    buf.line(f"z{g} += hv * u[wr + {g * F}]")
                                buf.line(f"wr += {GF}")
            buf.line(f"g = xb + p * {GF} + j")
            if rows_mode:
                for k in range(4):
                    buf.line(f"{zs}[zb + p * {GF} + {k * F} + j] = xp[g + {k * F}] + z{k}")
            else:
                gates = (ract("xp[g] + z0", "gi", "_r") + ract(f"xp[g + {F}] + z1", "gf", "_s")
                         + act(f"xp[g + {2 * F}] + z2", "gc", "_a") + ract(f"xp[g + {3 * F}] + z3", "go", "_o")
                         + [f"cn = gf * {cs}[cb + q] + gi * gc", f"{cs}[cb + q] = cn"] + act("cn", "hc", "_b")
                         + ["hn = go * hc", f"{hs}[hb + nxt + q] = hn"]
                         + ([f"out[(b * {rows} + {oi}) * {PF} + q] = hn"] if seqs else []))
                for line in gates:
                    buf.line(line)
        if rows_mode:
            buf.line("cuda.syncthreads()")
            buf.line(f"for p in range(tid, {P}, {nt}):")
            with buf.indent():
                buf.line(f"e = zb + p * {GF}")
                buf.line(f"qb = p * {F}")
                for k, (prog, tag) in enumerate([(a["recurrent_activation"], "_r"), (a["recurrent_activation"], "_s"),
                                                  (a["activation"], "_a"), (a["recurrent_activation"], "_o")]):
                    for line in _apply_lines(prog, zs, f"e + {k * F}", F, c, tag):
                        buf.line(line)
                buf.line(f"for j in range({F}):")
                with buf.indent():
                    buf.line(f"cn = {zs}[e + {F} + j] * {cs}[cb + qb + j] + {zs}[e + j] * {zs}[e + {2 * F} + j]")
                    buf.line(f"{cs}[cb + qb + j] = cn")
                    buf.line(f"{zs}[e + {2 * F} + j] = cn")  # the candidate gate's slot, now used: tanh(c)
                for line in _apply_lines(a["activation"], zs, f"e + {2 * F}", F, c, "_b"):
                    buf.line(line)
                buf.line(f"for j in range({F}):")
                with buf.indent():
                    buf.line(f"hn = {zs}[e + {3 * F} + j] * {zs}[e + {2 * F} + j]")
                    buf.line(f"{hs}[hb + nxt + qb + j] = hn")
                    if seqs:
                        buf.line(f"out[(b * {rows} + {oi}) * {PF} + qb + j] = hn")
        buf.line("cuda.syncthreads()")
        buf.line("cur = nxt")
    tail: list[str] = []  # the last output, final states and kept states of the row
    if not seqs:
        last = "0" if a.get("go_backwards") else str(T - 1)
        if has_mask and a.get("zero_masked"):
            tail.append(f"out[b * {rows} * {PF} + q] = {zero} if mask[b * {T} + {last}] == {zero} else {cur}")
        elif has_mask and unroll:
            tail.append(f"out[b * {rows} * {PF} + q] = {cur} if seen else {zero}")
        else:
            tail.append(f"out[b * {rows} * {PF} + q] = {cur}")
    states = [cur, f"{cs}[cb + q]"]
    for k in range(a.get("out_states", 0)):
        tail.append(f"out[(b * {rows} + {geo.R + k}) * {PF} + q] = {states[k]}")
    if a.get("stateful"):
        for k in range(2):
            tail.append(f"state[(b * 2 + {k}) * {PF} + q] = {states[k]}")
    if tail:
        buf.line(f"for q in range(tid, {PF}, {nt}):")
        with buf.indent():
            for line in tail:
                buf.line(line)
    return buf.getvalue()


_ARG = re.compile(r"\b(xp|uh|u|rb|mask|s0|s1|out|state|wk)(?=\[)")


def _arguments(cg: Any, node: Node, out: str, geo: _RnnGeometry) -> tuple[list[str], list[str]]:
    """(argument names, launch expressions) of one RNN node."""
    a = geo.attrs
    named = dict(zip(geo.names, node.inputs))
    F, u = geo.F, cg.g.params[named["U"]]
    args, exprs = ["xp", "u"], [cg.ref(named["xp"])]
    if geo.gru_split:
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
        exprs.append(cg.ref(named["mask"]))
    for k in range(a.get("n_init", 0)):
        args.append(f"s{k}")
        exprs.append(cg.ref(named[f"state{k}"]))
    args.append("out")
    exprs.append(out)
    if a.get("stateful"):
        off, size = cg.state_slots[node.out.name]
        args.append("state")
        exprs.append(f"state[n * {off}:n * {off + size}]")
    if node.out.name in cg.plan.scratch:
        off, size = cg.plan.scratch[node.out.name]
        args.append("wk")
        exprs.append(f"arena[n * {off}:n * {off + size}]")
    return args, exprs


def emit_rnn_group(cg: Any, nodes: list[Node], outs: list[str]) -> None:
    """One launch for independent RNN nodes (a Bidirectional's two directions): grid (n, len(nodes)),
    blockIdx.y picks the node; each branch is the node's own kernel body, its arguments suffixed."""
    from .cuda import JIT  # cuda imports this module
    geos = [_RnnGeometry(nd, cg.values) for nd in nodes]
    nt = max(_needed_threads(geo, nd.layer) for geo, nd in zip(geos, nodes))
    all_args: list[str] = []
    all_exprs: list[str] = []
    buf = IndentedBuffer()
    for k, (geo, nd, out) in enumerate(zip(geos, nodes, outs)):
        args, exprs = _arguments(cg, nd, out, geo)
        suffix = f"_{k}" if len(nodes) > 1 else ""
        all_args += [x + suffix for x in args]
        all_exprs += exprs
        body = _ARG.sub(lambda m: m.group(1) + suffix, _kernel_body(geo, cg.c, nt))
        if len(nodes) == 1:
            buf.lines += body.rstrip("\n").split("\n")
            continue
        buf.line(("if" if k == 0 else "elif" if k < len(nodes) - 1 else "else") +
                 (f" cuda.blockIdx.y == {k}:" if k < len(nodes) - 1 else ":"))
        buf.lines += ["    " + ln if ln else ln for ln in body.rstrip("\n").split("\n")]
    steps = ", ".join(str(g.T) for g in geos)
    head = [f"def {{name}}({', '.join(all_args)}):",
            f'    """One block per batch row and node, {nt} threads; the loop over {steps} steps inside."""',
            "    b = cuda.blockIdx.x", "    tid = cuda.threadIdx.x"]
    src = "\n".join(head + ["    " + ln if ln else ln for ln in buf.lines]) + "\n"
    regs = None if cg.simulated else min(255, 65536 // nt) // 8 * 8
    jit = JIT if regs is None else JIT[:-1] + f", max_registers={regs})"
    name = cg.unique("_rnn", jit + "\n" + src)
    cg.launch(name, "n" if len(nodes) == 1 else f"(n, {len(nodes)})", nt, all_exprs)


def emit_rnn(cg: Any, node: Node, out: str) -> None:
    group = cg.rnn_groups.get(node.out.name, [node.out.name])
    if group[-1] != node.out.name:
        return  # launched with the last node of its group
    producers = cg.g.producers()
    nodes = [producers[o] for o in group]
    # the branches' shared arrays are all allocated: a run too big for one block launches node by node
    if sum(_shared_bytes(_RnnGeometry(nd, cg.values)) for nd in nodes) > SHARED_BYTES:
        for nd in nodes:
            emit_rnn_group(cg, [nd], [cg.ref(nd.out.name)])
        return
    emit_rnn_group(cg, nodes, [cg.ref(o) for o in group])


def planning_view(g: Graph, groups: dict[str, list[str]]) -> Graph:
    """`g` as the memory planner must see it when each run of `groups` is launched at its last node:
    that node also reads every input of the run, so none is freed (and overwritten by a member's
    output) while the run's kernel may still read it. For planning only: not a valid graph."""
    last = {run[-1]: run for run in groups.values()}
    producers = g.producers()
    nodes = []
    for nd in g.nodes:
        run = last.get(nd.out.name)
        if run:
            extra = tuple(i for o in run[:-1] for i in producers[o].inputs if i not in nd.inputs)
            nd = nd.with_(inputs=nd.inputs + tuple(dict.fromkeys(extra)))
        nodes.append(nd)
    return g.with_nodes(nodes)


# ---------------------------------------------------------------------- gathers and batched matmuls
def _rows(shape: tuple) -> str:
    """Elements of `shape` (batch included) as an expression of n."""
    static = int(np.prod([d for d in shape[1:]], dtype=np.int64))
    return "n" if static == 1 else f"n * {static}"


def emit_gather(cg: Any, node: Node, out: str) -> None:
    idx, table = node.inputs
    rows = cg.g.params[table]
    width = int(np.prod(rows.shape[1:], dtype=np.int64))
    tv = cg.weight(f"{table}@rows", rows.reshape(rows.shape[0], width))
    cg.launch_1d(cg.kernel(_seq.gather_rows), f"({_rows(cg.shape(idx))}) * {width}",
                 [cg.ref(idx), tv, out, "total", str(rows.shape[0]), str(width)])


def emit_one_hot(cg: Any, node: Node, out: str) -> None:
    idx = node.inputs[0]
    depth = int(node.attr("depth"))
    cg.launch_1d(cg.kernel(_seq.one_hot), f"({_rows(cg.shape(idx))}) * {depth}",
                 [cg.ref(idx), out, "total", str(depth), str(bool(node.attr("truncate")))])


def emit_bmm(cg: Any, node: Node, out: str) -> None:
    a, b = node.inputs[0], node.inputs[1]  # then the operands of a fused epilogue
    sa, so = cg.shape(a), node.out.shape
    m, k, p = int(sa[-2]), int(sa[-1]), int(so[-1])
    lead = _rows(so[:-2])
    ts = _seq.TS
    tm, tp = -(-m // ts), -(-p // ts)
    epi, ep = cg.fused_epilogue(node, out)
    kern = cg.kernel(_seq.bmm, {"TRANS": bool(node.attr("transpose_b"))}, epi)
    cg.line(f"total = ({lead}) * {tm * tp}")
    cg.line("if total:")
    with cg.body.indent():
        cg.launch(kern, "total", ts * ts, [cg.ref(a), cg.ref(b), out, str(m), str(k), str(p), str(tm), str(tp), ep])
    cg.finish_epilogue(node, out)


SEQ_EMITTERS: dict[Op, Callable[[Any, Node, str], None]] = {
    Op.RNN: emit_rnn,
    Op.GATHER: emit_gather,
    Op.ONE_HOT: emit_one_hot,
    Op.BMM: emit_bmm,
}
