"""What every backend's codegen shares: a source buffer, scalar expressions for elementwise steps, the
broadcast-collapsing of fused loops, and the weight blob layout."""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Callable, Iterator, Sequence

import numpy as np

from ..ir import Group, Op, Step
from ..rules import SELU_ALPHA, SELU_SCALE


class IndentedBuffer:
    """Lines of Python source with an indentation level (as in torch.fx / inductor)."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.level = 0

    def line(self, text: str = "") -> None:
        self.lines.append(("    " * self.level + text) if text else "")

    @contextlib.contextmanager
    def indent(self) -> Iterator[None]:
        self.level += 1
        try:
            yield
        finally:
            self.level -= 1

    def getvalue(self) -> str:
        return "\n".join(self.lines) + "\n"


class Constants:
    """float32 constants of the generated module, so scalar math stays in float32."""

    def __init__(self) -> None:
        self.names: dict[float, str] = {}

    def __call__(self, value: float) -> str:
        value = float(value)
        if value not in self.names:
            self.names[value] = f"_C{len(self.names)}"
        return self.names[value]

    def declarations(self, ctor: str = "np.float32") -> list[str]:
        return [f"{n} = {ctor}({v!r})" for v, n in self.names.items()]


def step_lines(step: Step, x: str, operand: str | None, c: Callable[[float], str]) -> list[str]:
    """Statements that update scalar variable `x` by one elementwise step (valid in njit and cuda.jit)."""
    op, a = step.op, dict(step.attrs)
    if op.group is Group.BINARY:
        lhs, rhs = (operand, x) if step.swap else (x, operand)
        sym = {Op.ADD: "+", Op.SUB: "-", Op.MUL: "*", Op.DIV: "/"}.get(op)
        if sym:
            return [f"{x} = {lhs} {sym} {rhs}"]
        if op is Op.SELECT:
            return [f"{x} = {lhs} if {rhs} != {c(0.0)} else {c(0.0)}"]
        fn = "max" if op is Op.MAXIMUM else "min"
        return [f"{x} = {fn}({lhs}, {rhs})"]
    zero, one = c(0.0), c(1.0)
    if op is Op.IDENTITY:
        return []
    if op is Op.RELU:
        mv, slope, thr = a.get("max_value"), a.get("negative_slope", 0.0), a.get("threshold", 0.0)
        lines = []
        if slope:
            lines.append(f"_neg = max({c(thr)} - {x}, {zero})")
        if thr:
            lines.append(f"{x} = {x} if {x} > {c(thr)} else {zero}")
        else:
            lines.append(f"{x} = max({x}, {zero})")
        if mv is not None:
            lines.append(f"{x} = min(max({x}, {zero}), {c(mv)})")
        if slope:
            lines.append(f"{x} = {x} - {c(slope)} * _neg")
        return lines
    if op is Op.SIGMOID:
        return [f"{x} = {one} / ({one} + math.exp(-{x}))"]
    if op is Op.HARD_SIGMOID:
        return [f"{x} = min(max({c(a['slope'])} * {x} + {c(a['offset'])}, {zero}), {one})"]
    if op is Op.HARD_SWISH:
        return [f"{x} = {x} * min(max({x} + {c(3.0)}, {zero}), {c(6.0)}) / {c(6.0)}"]
    if op is Op.TANH:
        return [f"{x} = math.tanh({x})"]
    if op is Op.ELU:
        return [f"{x} = {x} if {x} > {zero} else {c(a.get('alpha', 1.0))} * math.expm1({x})"]
    if op is Op.SELU:
        return [f"{x} = {c(SELU_SCALE)} * ({x} if {x} > {zero} else {c(SELU_ALPHA)} * math.expm1({x}))"]
    if op is Op.SILU:
        beta = a.get("beta", 1.0)
        bx = x if beta == 1.0 else f"{c(beta)} * {x}"
        return [f"{x} = {x} / ({one} + math.exp(-{bx}))"]
    if op is Op.GELU:
        if a.get("approximate"):
            return [f"{x} = {c(0.5)} * {x} * ({one} + math.tanh({c(np.sqrt(2 / np.pi))} * "
                    f"({x} + {c(0.044715)} * {x} * {x} * {x})))"]
        return [f"{x} = {c(0.5)} * {x} * ({one} + math.erf({x} * {c(1 / np.sqrt(2))}))"]
    if op is Op.SOFTPLUS:
        return [f"{x} = max({x}, {zero}) + math.log1p(math.exp(-abs({x})))"]
    if op is Op.SOFTSIGN:
        return [f"{x} = {x} / ({one} + abs({x}))"]
    if op is Op.EXP:
        return [f"{x} = math.exp({x})"]
    if op is Op.NEG:
        return [f"{x} = -{x}"]
    if op is Op.CAST:
        return [f"{x} = np.float32({x})"]
    if op is Op.POW:
        p = float(a["exponent"])
        if p == 2.0:
            return [f"{x} = {x} * {x}"]
        if p == 0.5:
            return [f"{x} = math.sqrt({x})"]
        if p == -0.5:
            return [f"{x} = {one} / math.sqrt({x})"]
        return [f"{x} = {x} ** {c(p)}"]
    if op is Op.LOG:
        return [f"{x} = math.log({x})"]
    if op is Op.SIGN:
        return [f"{x} = {one} if {x} > {zero} else (-{one} if {x} < {zero} else {x})"]
    if op is Op.FLOOR:
        # math.floor gives an int64 in numba: only below 2**23, where floats may have a fraction (inf
        # and NaN, which an integer cannot hold, are not below it and pass unchanged)
        return [f"{x} = float(math.floor({x})) if abs({x}) < {c(2.0 ** 23)} else {x}"]
    raise NotImplementedError(f"no scalar form for {op}")


def collapse(out_shape: Sequence, operand_shapes: Sequence[Sequence]) -> tuple[list[list[int]], list[list[bool]]]:
    """Group adjacent axes of the output that every operand treats alike (all broadcast or all not).

    Returns the axis groups and, per operand, a broadcast flag per group. Operands are right-aligned
    to the output as in NumPy broadcasting.
    """
    rank = len(out_shape)
    flags = []
    for s in operand_shapes:
        s = (1,) * (rank - len(s)) + tuple(s)
        flags.append([(s[i] == 1 and out_shape[i] != 1) for i in range(rank)])
    groups: list[list[int]] = []
    for axis in range(rank):
        if axis != 0 and out_shape[axis] == 1:
            groups[-1].append(axis)  # a size-1 axis changes no index: it rides along
        elif groups and all(f[axis] == f[groups[-1][0]] for f in flags):
            groups[-1].append(axis)
        else:
            groups.append([axis])
    per_operand = [[f[grp[0]] for grp in groups] for f in flags]
    return groups, per_operand


def dims_expr(shape: Sequence, groups: list[list[int]], broadcast: list[bool] | None, batch: str) -> str:
    """The collapsed shape of an array as a Python tuple expression (`batch` for the symbolic dim)."""
    parts = []
    for gi, grp in enumerate(groups):
        if broadcast is not None and broadcast[gi]:
            parts.append("1")
            continue
        static = 1
        dyn = False
        for a in grp:
            if shape[a] is None:
                dyn = True
            else:
                static *= int(shape[a])
        parts.append(f"{batch} * {static}" if dyn and static != 1 else batch if dyn else str(static))
    return "(" + ", ".join(parts) + ("," if len(parts) == 1 else "") + ")"


@dataclass
class Blob:
    """The packed weights: float32 arrays at 64-byte aligned offsets in one flat buffer."""

    entries: dict[str, tuple[int, tuple]] = field(default_factory=dict)  # key -> (offset, shape)
    arrays: list[tuple[int, np.ndarray]] = field(default_factory=list)
    size: int = 0

    def add(self, key: str, array: np.ndarray) -> tuple[int, tuple]:
        if key not in self.entries:
            a = np.ascontiguousarray(array, dtype=np.float32)
            off = self.size
            self.entries[key] = (off, tuple(a.shape))
            self.arrays.append((off, a))
            self.size = off + (-(-max(a.size, 1) // 16) * 16)
        return self.entries[key]

    def tobytes(self) -> bytes:
        buf = np.zeros(self.size, np.float32)
        for off, a in self.arrays:
            buf[off: off + a.size] = a.reshape(-1)
        return buf.tobytes()
