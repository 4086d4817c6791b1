"""Memory planning: every runtime value gets storage, reused by liveness.

All runtime values carry the batch as dimension 0, so every size is `batch * per_sample`. Offsets are
planned once in per-sample units and scaled by the batch at run time: one plan serves every batch size.

Storage kinds:
- ("input", k):  the k-th graph input array, read only;
- ("output", k): the k-th output array handed to the generated code;
- ("arena", off): `arena[n*off : n*(off + per_sample)]`;
- ("alias", name): a view of another value's storage (RESHAPE moves no data);
- ("slice", (name, offset)): channels offset.. of value `name`, the output of a concatenation along
  the last axis: the node that makes this value writes it straight into the concatenation's buffer
  (rows of the concatenation's width), and the concatenation copies nothing for it. Only for values
  the concatenation alone reads, made by nodes the backend can write so (`slice_ok`).
- ("pooled", name): not stored; the node that makes this value pools it on the fly into value `name`,
  the output of the pooling node that alone reads it (the backend's `pooled` pairs). `name` is
  allocated when this value's node runs, so it never shares memory with that node's inputs.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from .ir import Graph, Node, Op

ALIGN = 16  # elements: 64-byte alignment of every buffer for any batch size


def _align(x: int) -> int:
    return -(-x // ALIGN) * ALIGN


@dataclass
class Plan:
    storage: dict[str, tuple[str, object]] = field(default_factory=dict)
    scratch: dict[str, tuple[int, int]] = field(default_factory=dict)  # node out -> (offset, size) per sample
    arena_per_sample: int = 0
    #: outputs that must be copied in at the end (an output that is an input or a reshape view)
    output_copies: list[tuple[int, str]] = field(default_factory=list)
    in_place: set[str] = field(default_factory=set)

    def root(self, name: str) -> str:
        while self.storage.get(name, ("", None))[0] == "alias":
            name = self.storage[name][1]  # type: ignore[assignment]
        return name


class _Arena:
    """First-fit allocator over per-sample offsets with coalescing of freed blocks."""

    def __init__(self) -> None:
        self.free: list[tuple[int, int]] = []  # (offset, size), sorted by offset
        self.top = 0

    def alloc(self, size: int) -> int:
        size = _align(max(size, 1))
        for i, (off, sz) in enumerate(self.free):
            if sz >= size:
                if sz == size:
                    self.free.pop(i)
                else:
                    self.free[i] = (off + size, sz - size)
                return off
        if self.free and self.free[-1][0] + self.free[-1][1] == self.top:
            off = self.free.pop()[0]
            self.top = off + size
            return off
        off = self.top
        self.top += size
        return off

    def release(self, off: int, size: int) -> None:
        size = _align(max(size, 1))
        self.free.append((off, size))
        self.free.sort()
        merged: list[tuple[int, int]] = []
        for o, s in self.free:
            if merged and merged[-1][0] + merged[-1][1] == o:
                merged[-1] = (merged[-1][0], merged[-1][1] + s)
            else:
                merged.append((o, s))
        self.free = merged


def _slices(g: Graph, values: dict, taken: set, slice_ok: Callable[[Node], bool]) -> dict[str, tuple[str, int]]:
    """Values that can be written into their concatenation's buffer: value -> (concat output, offset).
    `taken`: values whose storage is fixed already (graph inputs and outputs, reshape views)."""
    uses: dict[str, int] = {}
    for n in g.nodes:
        for i in n.inputs:
            uses[i] = uses.get(i, 0) + 1
    for o in g.outputs:
        uses[o] = uses.get(o, 0) + 1
    producer = {n.out.name: n for n in g.nodes}
    res: dict[str, tuple[str, int]] = {}
    for n in g.nodes:
        rank = len(n.out.shape)
        if n.op is not Op.CONCAT or n.attr("axis") % rank != rank - 1:
            continue
        off = 0
        for i in n.inputs:
            p = producer.get(i)
            if (p is not None and uses.get(i) == 1 and i not in taken and p.op not in (Op.RESHAPE, Op.CONCAT)
                    and len(values[i].shape) == rank and slice_ok(p)):
                res[i] = (n.out.name, off)
            off += int(values[i].shape[-1])
    return res


def plan_memory(g: Graph, scratch_size: Callable[[Node, dict], int] | None = None,
                in_place_ok: Callable[[Node], bool] | None = None,
                slice_ok: Callable[[Node], bool] | None = None, pooled: dict[str, str] | None = None,
                together: set[int] | None = None) -> Plan:
    """Assign storage to every value of `g`; `scratch_size(node, values)` is the backend's per-sample
    scratch need of a node; `in_place_ok(node)` says whether it may write over its first input;
    `slice_ok(node)` whether it can write its output into a concatenation's buffer; `pooled` maps a
    value to the output of the pooling node (its only reader, the next node) that its own node
    writes instead of it; `together` holds the positions of nodes that run at the same time as the
    next node: nothing either reads, writes or uses as scratch is freed before both are done."""
    pooled = pooled or {}
    together = together or set()
    pending: list[tuple[int, int]] = []  # blocks to free once the running group of nodes is done
    plan = Plan()
    values = g.values()
    inputs = {v.name: k for k, v in enumerate(g.inputs)}
    for name, k in inputs.items():
        plan.storage[name] = ("input", k)
    out_index: dict[str, int] = {}
    for k, o in enumerate(g.outputs):
        if o in out_index or o in inputs:
            plan.output_copies.append((k, o))
        else:
            out_index[o] = k
    for n in g.nodes:
        if n.op is Op.RESHAPE:
            plan.storage[n.out.name] = ("alias", n.inputs[0])
            if n.out.name in out_index:
                plan.output_copies.append((out_index.pop(n.out.name), n.out.name))
    slices = _slices(g, values, set(plan.storage) | set(g.outputs), slice_ok) if slice_ok else {}
    # last use of every storage root
    last: dict[str, int] = {}
    for idx, n in enumerate(g.nodes):
        for i in n.inputs:
            if i in values:
                last[plan.root(i)] = idx
    for _, o in plan.output_copies:
        last[plan.root(o)] = len(g.nodes)
    arena = _Arena()
    live: dict[str, tuple[int, int]] = {}

    def allocate(name: str) -> None:
        if name in out_index:
            plan.storage[name] = ("output", out_index[name])
        else:
            size = values[name].per_sample()
            live[name] = (arena.alloc(size), size)
            plan.storage[name] = ("arena", live[name][0])

    def in_place(n: Node, idx: int) -> str | None:
        """The root of n's first input when n can write over it (its last use, same size), else None."""
        main = plan.root(n.inputs[0]) if n.inputs and n.inputs[0] in values else None
        if (main in live and last.get(main) == idx and in_place_ok is not None and in_place_ok(n)
                and values[main].per_sample() == values[n.out.name].per_sample()
                and sum(1 for i in n.inputs if i in values and plan.root(i) == main) == 1):
            return main
        return None

    for idx, n in enumerate(g.nodes):
        name = n.out.name
        if plan.storage.get(name, ("",))[0] == "alias":
            continue
        if name in pooled:  # its node writes the pooling's output: allocated now, before its inputs go
            allocate(pooled[name])
            plan.storage[name] = ("pooled", pooled[name])
        elif name in slices:
            parent, off = slices[name]
            if parent not in plan.storage:  # the first part made: the concatenation's buffer from here on
                allocate(parent)
            plan.storage[name] = ("slice", (parent, off))
        elif name in plan.storage:  # a concatenation whose buffer its parts made, or a fused pooling
            pass
        elif name not in out_index and (main := in_place(n, idx)) is not None:
            live[name] = live.pop(main)
            plan.storage[name] = ("arena", live[name][0])
            plan.in_place.add(name)
        else:
            allocate(name)
        need = scratch_size(n, values) if scratch_size else 0
        if need:
            off = arena.alloc(need)
            plan.scratch[name] = (off, need)
            pending.append((off, need))
        for i in set(n.inputs):
            r = plan.root(i) if i in values else None
            if r in live and last.get(r) == idx and r != name:
                pending.append(live.pop(r))
        if name in live and name not in last and name not in out_index:
            pending.append(live.pop(name))  # a value nobody reads (an unused branch)
        if idx not in together:
            for block in pending:
                arena.release(*block)
            pending.clear()
    plan.arena_per_sample = arena.top
    return plan
