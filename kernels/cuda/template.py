"""Turning a kernel template (a plain function in a `kernels.cuda` module) into generated source.

A template refers to two kinds of module-level names that an instance may change: UPPER_CASE tile
constants (`BM`, `VEC`, ...) and the device function `epilogue`. `instantiate` copies the function's
source, renames it, replaces each constant by its literal value (so numba sizes shared and local
arrays from literals) and each renamed callee by its new name. Word-boundary replacement is enough
because templates keep these names distinctive and never use them as attribute or keyword names.

A loop written `for v in range(CONST):  # unroll` is unrolled in the source (`v = 0`, body, `v = 1`,
body, ...): NVVM does not unroll a loop body as large as a GEMM step, and the unrolled copies index
shared memory at constant offsets from one base. Such a body must not `break` or `continue`.
"""
from __future__ import annotations

import inspect
import re
import textwrap
from types import FunctionType
from typing import Any, Mapping


def template_source(fn: FunctionType) -> str:
    """The source of template `fn`, dedented, without decorators."""
    src = textwrap.dedent(inspect.getsource(fn))
    lines = src.splitlines()
    while lines and lines[0].lstrip().startswith("@"):
        lines.pop(0)
    return "\n".join(lines) + "\n"


def constants_of(fn: FunctionType) -> dict[str, Any]:
    """The template's own defaults for its UPPER_CASE constants (module globals it reads)."""
    src = template_source(fn)
    return {k: v for k, v in fn.__globals__.items() if k.isupper() and isinstance(v, (int, float, bool))
            and re.search(rf"\b{k}\b", src)}


def instantiate(fn: FunctionType, name: str, consts: Mapping[str, Any] | None = None,
                calls: Mapping[str, str] | None = None) -> str:
    """Source of template `fn` as a function called `name`, with every UPPER_CASE constant it uses
    replaced by `consts[name]` (else the template's default) and callees renamed through `calls`."""
    src = template_source(fn)
    src = re.sub(rf"^def {fn.__name__}\(", f"def {name}(", src, count=1, flags=re.M)
    values = {**constants_of(fn), **(consts or {})}
    if simulated() and "ALIGN" in values:
        values["ALIGN"] = None  # the simulator refuses aligned shared arrays
    for k, v in values.items():
        if isinstance(v, float):
            v = repr(v)
        src = re.sub(rf"(?<![.\w]){k}\b", str(v), src)
    for old, new in (calls or {}).items():
        src = re.sub(rf"(?<![.\w]){old}\(", f"{new}(", src)
    return unroll(src)


_UNROLL = re.compile(r"^(\s*)for (\w+) in range\((\d+)\):\s*# unroll\s*$")


def unroll(src: str) -> str:
    """Expand every `for v in range(N):  # unroll` loop (N a literal) into N copies of its body."""
    lines = src.splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        m = _UNROLL.match(lines[i])
        if not m:
            out.append(lines[i])
            i += 1
            continue
        indent, var, count = m.group(1), m.group(2), int(m.group(3))
        body = []
        i += 1
        while i < len(lines) and (not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > len(indent)):
            body.append(lines[i])
            i += 1
        inner = unroll("\n".join(body)).splitlines()
        step = min(len(b) - len(b.lstrip()) for b in inner if b.strip()) - len(indent)
        for k in range(count):
            out.append(f"{indent}{var} = {k}")
            out.extend(b[step:] if b.strip() else b for b in inner)
    return "\n".join(out) + "\n"


def simulated() -> bool:
    """True under NUMBA_ENABLE_CUDASIM=1 (numba's CUDA simulator)."""
    from numba import config
    return bool(config.ENABLE_CUDASIM)


def jit(fn: FunctionType, **consts: Any):
    """`fn` compiled as a standalone kernel with `consts` (tests and kernel benchmarks): the template
    instantiated into a fresh namespace that shares its module's globals."""
    name = f"{fn.__name__}_standalone"
    src = instantiate(fn, name, consts)
    namespace = dict(fn.__globals__)
    exec(compile(src, f"<kerasjit template {fn.__module__}.{fn.__name__}>", "exec"), namespace)
    from numba import cuda
    return cuda.jit(namespace[name])
