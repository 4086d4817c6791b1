"""The compiled graph as a picture: Graphviz DOT text, and PNG/SVG through Graphviz's `dot` program.

One box per compiled node, labelled with its op (and fused epilogue), output shape, FLOPs and the Keras
layers it covers; colour by op group; edges follow the data. `dot` comes from the system package
(`apt-get install graphviz`, `brew install graphviz`); without it, `render` says so and the DOT text
can still be written and drawn elsewhere.
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from .compiler.cost import graph_costs, human
from .compiler.ir import Group, Op
from .errors import KerasJitError
from .inspection import Inspection

_COLORS = {
    Group.CONTRACTION: "#9ecae1", Group.FUSED: "#fdd49e", Group.WINDOW: "#a1d99b", Group.REDUCTION: "#fc9272",
    Group.LAYOUT: "#d9d9d9", Group.RECURRENT: "#dadaeb", Group.UNARY: "#fdd49e", Group.BINARY: "#fdd49e",
}


def _quote(s: str) -> str:
    """A DOT string literal; newlines become DOT's centred line breaks."""
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _short(layers: list[str], limit: int = 4) -> str:
    names = [p.rsplit("/", 1)[-1] if len(p) > 28 else p for p in layers]
    return "\n".join(names[:limit] + ([f"+{len(names) - limit} more"] if len(names) > limit else []))


def _window_text(n, params) -> str:
    """' 7x7/2' for a convolution or pooling window (kernel, and stride when not 1)."""
    if n.op.group is Group.CONTRACTION and n.op is not Op.MATMUL and n.op is not Op.BMM and len(n.inputs) > 1:
        w = params.get(n.inputs[1])
        kernel = tuple(w.shape[:-2]) if w is not None else ()
    elif n.op.group is Group.WINDOW:
        kernel = tuple(n.attr("pool", ()))
    else:
        return ""
    strides = tuple(n.attr("strides", ()) or ())
    stride = f"/{strides[0]}" if strides and any(st != 1 for st in strides) and len(set(strides)) == 1 else \
        (f"/{'x'.join(map(str, strides))}" if strides and any(st != 1 for st in strides) else "")
    return f" {'x'.join(map(str, kernel))}{stride}" if kernel else ""


def to_dot(ins: Inspection) -> str:
    """DOT source of the compiled graph of `ins` (top to bottom, inputs first)."""
    g = ins.final
    costs = {c.node.out.name: c for c in graph_costs(g)}
    groups = {grp.node.out.name: grp for grp in ins.groups()}
    lines = [f"digraph {_quote(g.name)} {{",
             '  graph [rankdir=TB, nodesep=0.25, ranksep=0.3, fontname="Helvetica", '
             f'label={_quote(f"{g.name}: {len(g.nodes)} compiled nodes from {len(ins.lowered.nodes)} lowered")}, '
             'labelloc=t, fontsize=20];',
             '  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=11, margin="0.08,0.03"];',
             '  edge [color="#555555", arrowsize=0.6];']
    for name, (v, keras_name) in {v.name: (v, k) for v, k in zip(g.inputs, g.input_names)}.items():
        dims = "x".join("N" if d is None else str(d) for d in v.shape)
        label = f"input {keras_name}\n[{dims}]"
        lines.append(f'  {_quote(name)} [label={_quote(label)}, shape=oval, fillcolor="#ffffff"];')
    for n in g.nodes:
        dims = "x".join("N" if d is None else str(d) for d in n.out.shape)
        steps = " + ".join(s.op.label for s in n.epilogue)
        op = n.op.label + _window_text(n, g.params)
        head = op + (f" + {steps}" if steps and n.op.label != "fused" else (f": {steps}" if steps else ""))
        c = costs[n.out.name]
        layers = groups[n.out.name].layers or [n.layer]
        flops = f"  {human(c.flops, 'FLOP')}" if c.flops else ""
        label = f"{head}\n[{dims}]{flops}\n{_short(layers)}"
        lines.append(f"  {_quote(n.out.name)} [label={_quote(label)}, fillcolor={_quote(_COLORS.get(n.op.group, '#ffffff'))}];")
    values = g.values()
    for n in g.nodes:
        for i in dict.fromkeys(n.inputs):
            if i in values:
                lines.append(f"  {_quote(i)} -> {_quote(n.out.name)};")
    for k, (o, keras_name) in enumerate(zip(g.outputs, g.output_names)):
        out_id = f"output:{k}"
        label = f"output {keras_name}"
        lines.append(f'  {_quote(out_id)} [label={_quote(label)}, shape=oval, fillcolor="#ffffff"];')
        lines.append(f"  {_quote(o)} -> {_quote(out_id)};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def dot_program() -> str | None:
    """Path of Graphviz's `dot`, or None."""
    return shutil.which("dot")


def render(dot_source: str, path: str | Path, fmt: str | None = None, dpi: int = 96) -> Path:
    """Draw `dot_source` into `path` (format from its extension: png, svg, pdf) with Graphviz's `dot`."""
    path = Path(path)
    fmt = fmt or path.suffix.lstrip(".") or "png"
    exe = dot_program()
    if exe is None:
        raise KerasJitError("drawing needs Graphviz's `dot` program, which is not installed "
                            "(apt-get install graphviz, or brew install graphviz); "
                            "`kerasjit inspect --format dot` writes the DOT text without it")
    args = [exe, f"-T{fmt}", f"-Gdpi={dpi}", "-o", str(path)]
    try:
        proc = subprocess.run(args, input=dot_source, capture_output=True, text=True, timeout=600)
    except subprocess.TimeoutExpired as e:
        raise KerasJitError(f"Graphviz's dot took over {e.timeout:.0f}s to draw the graph") from e
    if proc.returncode != 0:
        raise KerasJitError(f"Graphviz's dot failed ({proc.returncode}): {proc.stderr.strip()[:500]}")
    return path
