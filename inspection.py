"""What the compiler makes of a model, for people: the IR after each pass, the fusion groups (which Keras
layers each compiled node covers), FLOPs and bytes per node, and the generated source.

Provenance needs no bookkeeping in the IR: passes only remove, fold and fuse, and a fused node takes the
output name of the last node it absorbed, so the original nodes a final node covers are those reached
by walking back from its output in the graph before passes until a value that still exists after them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .compiler.cost import NodeCost, graph_costs, human
from .compiler.ir import Graph, Node
from .encoder.spec import ModelSpec


@dataclass(frozen=True)
class FusionGroup:
    """One node of the compiled graph and what it covers of the graph before passes."""

    node: Node
    #: the original nodes fused, folded or dropped into this one, in execution order
    covers: tuple[Node, ...]

    @property
    def layers(self) -> list[str]:
        """The Keras layers (paths) this node computes, in order."""
        return list(dict.fromkeys(n.layer for n in self.covers if n.layer))


@dataclass
class Inspection:
    """A model taken through the compiler, with every intermediate kept."""

    spec: ModelSpec
    #: ("lowered", graph before passes), then (pass name, graph after it), in pipeline order
    stages: list[tuple[str, Graph]]
    target: str = "cpu"
    _source: str | None = field(default=None, repr=False)

    @property
    def lowered(self) -> Graph:
        return self.stages[0][1]

    @property
    def final(self) -> Graph:
        return self.stages[-1][1]

    def groups(self) -> list[FusionGroup]:
        return fusion_groups(self.lowered, self.final)

    def costs(self) -> list[NodeCost]:
        return graph_costs(self.final)

    def source(self) -> str:
        """The generated module's source, exactly as `compile` writes it into the artifact."""
        if self._source is None:
            if self.target == "cuda":
                from .compiler.codegen.cuda import generate_cuda
                self._source = generate_cuda(self.final).source
            else:
                from .compiler.codegen.cpu import generate_cpu
                self._source = generate_cpu(self.final).source
        return self._source


def inspect_model(model: Any, weights: Any = None, metadata: Any = None, target: str = "cpu") -> Inspection:
    """Read `model` (anything `kerasjit.compile` takes), lower it and run the passes one at a time."""
    from .compiler.frontend import lower
    from .compiler.passes import PASSES, run_passes
    from .reference import is_live_model
    if is_live_model(model):
        from .encoder.live import spec_from_model
        spec = spec_from_model(model)
    else:
        from .encoder import read_model
        spec = read_model(model, weights, metadata) if metadata is not None else read_model(model, weights)
    g = lower(spec)
    stages = [("lowered", g)]
    for name, p in PASSES:
        g = run_passes(g, [(name, p)], dump_after="")
        stages.append((name, g))
    return Inspection(spec, stages, target)


def fusion_groups(before: Graph, after: Graph) -> list[FusionGroup]:
    """For each node of `after`, the nodes of `before` it stands for (see the module docstring)."""
    producers = before.producers()
    order = {n.out.name: i for i, n in enumerate(before.nodes)}
    kept = set(after.values())
    groups = []
    for node in after.nodes:
        seen: set[str] = set()
        stack = [node.out.name]
        while stack:
            v = stack.pop()
            if v in seen or v not in producers or (v in kept and v != node.out.name):
                continue
            seen.add(v)
            stack.extend(producers[v].inputs)
        covers = tuple(producers[v] for v in sorted(seen, key=order.__getitem__))
        groups.append(FusionGroup(node, covers))
    return groups


def node_summary(n: Node) -> str:
    """A node as one short line: op, the epilogue's steps, the output shape."""
    dims = "x".join("N" if d is None else str(d) for d in n.out.shape)
    steps = "".join(f" +{s.op.label}" for s in n.epilogue)
    return f"{n.op.label}{steps} -> [{dims}]"


def format_passes(ins: Inspection) -> str:
    """The IR after each pass, as the printer writes it, with the node count."""
    parts = []
    for name, g in ins.stages:
        parts.append(f"# after {name} ({len(g.nodes)} nodes)" if name != "lowered"
                     else f"# lowered ({len(g.nodes)} nodes, before passes)")
        parts.append(str(g))
    return "\n".join(parts)


def format_groups(ins: Inspection) -> str:
    """One line per compiled node with the Keras layers it covers; fused ones marked."""
    lines = [f"# fusion groups: {len(ins.final.nodes)} compiled nodes from {len(ins.lowered.nodes)} lowered nodes"]
    for k, grp in enumerate(ins.groups()):
        mark = "*" if len(grp.covers) > 1 else " "
        lines.append(f"{k:4d}{mark} {node_summary(grp.node):44s} {', '.join(grp.layers) or '-'}")
    return "\n".join(lines)


def format_costs(ins: Inspection, top: int | None = None) -> str:
    """FLOPs and bytes per compiled node at batch 1, with totals and a per-op summary."""
    costs = ins.costs()
    total_f = sum(c.flops for c in costs)
    total_b = sum(c.bytes for c in costs)
    by_op: dict[str, list[int]] = {}
    for c in costs:
        acc = by_op.setdefault(c.node.op.label, [0, 0, 0])
        acc[0] += 1
        acc[1] += c.flops
        acc[2] += c.bytes
    lines = [f"# cost at batch 1: {human(total_f, 'FLOP')}, {human(total_b, 'B')} moved, "
             f"{human(sum(p.size for p in ins.final.params.values()) * 4, 'B')} of weights",
             f"{'op':16s} {'nodes':>5s} {'FLOPs':>10s} {'share':>6s} {'bytes':>10s}"]
    for op, (count, f, b) in sorted(by_op.items(), key=lambda kv: -kv[1][1]):
        lines.append(f"{op:16s} {count:5d} {human(f):>10s} {100 * f / max(total_f, 1):5.1f}% {human(b):>10s}")
    lines.append(f"{'#':>4s} {'FLOPs':>10s} {'bytes':>10s} {'FLOP/B':>7s}  node")
    rows = list(enumerate(costs))
    if top is not None:
        rows = sorted(rows, key=lambda r: -r[1].flops)[:top]
    for k, c in rows:
        lines.append(f"{k:4d} {human(c.flops):>10s} {human(c.bytes):>10s} {c.intensity:7.1f}  "
                     f"{node_summary(c.node)}  # {c.node.layer}")
    return "\n".join(lines)
