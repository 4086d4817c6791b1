"""Contractions of `Ops` (see tensor_ops.py): matmul and einsum.

A product with a constant is a MATMUL with that constant as its weight (after moving the contracted
axes last); a product of two runtime tensors is a BMM, whose operands share every leading dimension
(the batch first): einsum brings both to (N, *batch, M, K) and (N, *batch, K, P) by transposes and
reshapes, broadcasting a missing batch letter by a multiply with ones.
"""
from __future__ import annotations

import string
from typing import TYPE_CHECKING, Sequence

import numpy as np

from ..ir import Op

if TYPE_CHECKING:
    from .tensor_ops import Tensor, TensorLike


def _parse_einsum(subscripts: str, ranks: Sequence[int]) -> tuple[list[str], str]:
    """Operand and output letter strings of an einsum, with `...` replaced by fresh letters."""
    spec = subscripts.replace(" ", "")
    lhs, arrow, rhs = spec.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(ranks):
        raise ValueError(f"einsum {subscripts!r} names {len(terms)} operands, it was given {len(ranks)}")
    fresh = iter(c for c in string.ascii_letters if c not in spec)
    ell = ""
    if "..." in spec:
        width = max(r - (len(t) - 3) for t, r in zip(terms, ranks) if "..." in t)
        ell = "".join(next(fresh) for _ in range(width))
    out_terms = []
    for t, r in zip(terms, ranks):
        if "..." in t:
            t = t.replace("...", ell[len(ell) - (r - (len(t) - 3)):])
        if len(t) != r:
            raise ValueError(f"einsum term {t!r} for an operand of rank {r}")
        out_terms.append(t)
    if arrow:
        out = rhs.replace("...", ell)
    else:  # implicit output: the ellipsis, then letters used once, sorted
        counts = {c: "".join(out_terms).count(c) for c in "".join(out_terms)}
        out = ell + "".join(sorted(c for c, n in counts.items() if n == 1 and c not in ell))
    return out_terms, out


class ContractionOps:
    """Mixed into `Ops`: matmul and einsum."""

    def matmul(self, a: "TensorLike", b: "TensorLike") -> "Tensor":
        """numpy.matmul (the last two axes multiply, leading axes broadcast)."""
        a, b = self.tensor(a), self.tensor(b)
        if a.is_constant and b.is_constant:
            return self.const(np.matmul(a.value, b.value))
        ra, rb = a.ndim, b.ndim
        if min(ra, rb) < 1 or (not a.is_constant and ra < 2) or (not b.is_constant and rb < 2):
            raise self.unsupported(f"matmul of {a.shape} and {b.shape}")
        # as einsum: the leading axes of both broadcast together
        lead = "".join(string.ascii_lowercase[:max(ra, rb) - 2])
        ta = (lead[len(lead) - (ra - 2):] if ra > 2 else "") + ("yz" if ra > 1 else "z")
        tb = (lead[len(lead) - (rb - 2):] if rb > 2 else "") + ("zw" if rb > 1 else "z")
        to = lead + ("y" if ra > 1 else "") + ("w" if rb > 1 else "")
        if a.is_constant and ra > 2 or b.is_constant and rb > 2:
            raise self.unsupported(f"matmul of {a.shape} and {b.shape}: a constant of rank > 2")
        return self.einsum(f"{ta},{tb}->{to}", a, b)

    def einsum(self, subscripts: str, *operands: "TensorLike") -> "Tensor":
        """numpy.einsum of one or two operands (no repeated letter within an operand)."""
        ts = [self.tensor(t) for t in operands]
        if all(t.is_constant for t in ts):
            return self.const(np.einsum(subscripts, *[t.value for t in ts]))
        try:
            terms, out = _parse_einsum(subscripts, [t.ndim for t in ts])
        except ValueError as e:
            raise self.unsupported(str(e)) from e
        if any(len(set(t)) != len(t) for t in terms) or len(set(out)) != len(out) or len(ts) > 2:
            raise self.unsupported(f"einsum {subscripts!r} on {len(ts)} operand(s) (kerasjit takes one or two, "
                                   f"without repeated letters in a term)")
        # letters summed in one operand only are reduced first
        for k, (t, term) in enumerate(zip(ts, terms)):
            others = "".join(terms[:k] + terms[k + 1:]) + out
            alone = [i for i, c in enumerate(term) if c not in others]
            if alone:
                ts[k] = self.sum(t, alone)
                terms[k] = "".join(c for c in term if c in others)
        if len(ts) == 1:
            return self._arrange(ts[0], terms[0], out)
        return self._contract(ts[0], terms[0], ts[1], terms[1], out, subscripts)

    def _arrange(self, x: "Tensor", term: str, out: str) -> "Tensor":
        """`x`, whose axes are the letters `term`, with its axes in the order of `out`."""
        if sorted(term) != sorted(out):
            raise self.unsupported(f"einsum output {out!r} from letters {term!r}")
        return self.transpose(x, [term.index(c) for c in out])

    def _contract(self, a: "Tensor", ta: str, b: "Tensor", tb: str, out: str, subscripts: str) -> "Tensor":
        if a.is_constant:  # the product is symmetric: the runtime operand goes first
            a, ta, b, tb = b, tb, a, ta
        contracted = [c for c in ta if c in tb and c not in out]
        if b.is_constant:
            if any(c in out for c in tb if c in ta):
                raise self.unsupported(f"einsum {subscripts!r}: a constant sharing a kept letter with a tensor")
            free_a = [c for c in ta if c not in contracted]
            free_b = [c for c in tb if c not in contracted]
            if ta[0] not in out:
                raise self.unsupported(f"einsum {subscripts!r} sums over the batch axis")
            x = self.transpose(a, [ta.index(c) for c in free_a + contracted])
            k = int(np.prod([a.shape[ta.index(c)] for c in contracted], dtype=np.int64))
            w = self.transpose(b, [tb.index(c) for c in contracted + free_b]).value
            shape_b = [b.shape[tb.index(c)] for c in free_b]
            x = self.reshape(x, [-1] + [a.shape[ta.index(c)] for c in free_a[1:]] + [k])
            y = self.emit(Op.MATMUL, [x, w.reshape(k, -1)])
            y = self.reshape(y, [-1] + [a.shape[ta.index(c)] for c in free_a[1:]] + shape_b)
            return self._arrange(y, "".join(free_a + free_b), out)
        if ta[0] != tb[0] or ta[0] not in out:
            raise self.unsupported(f"einsum {subscripts!r}: both tensors' first letter must be the batch, kept")
        batch = [c for c in ta if c in tb and c in out]
        free_a = [c for c in ta if c not in tb]
        free_b = [c for c in tb if c not in ta]
        a = self._broadcast_letters(a, ta, batch, b, tb)
        b = self._broadcast_letters(b, tb, batch, a, ta)
        size = lambda t, term, c: t.shape[term.index(c)]  # noqa: E731
        dims = lambda t, term, cs: int(np.prod([size(t, term, c) for c in cs], dtype=np.int64))  # noqa: E731
        lead = [size(a, ta, c) for c in batch[1:]]
        m, k, p = dims(a, ta, free_a), dims(a, ta, contracted), dims(b, tb, free_b)
        x = self.reshape(self.transpose(a, [ta.index(c) for c in batch + free_a + contracted]), [-1, *lead, m, k])
        # b as (.., P, K) when it is laid out so (attention's q @ k^T), else as (.., K, P): no copy either way
        transpose_b = list(tb) == batch + free_b + contracted
        order = batch + free_b + contracted if transpose_b else batch + contracted + free_b
        y = self.reshape(self.transpose(b, [tb.index(c) for c in order]),
                         [-1, *lead] + ([p, k] if transpose_b else [k, p]))
        z = self.emit(Op.BMM, [x, y], {"transpose_b": transpose_b})
        z = self.reshape(z, [-1, *lead] + [size(a, ta, c) for c in free_a] + [size(b, tb, c) for c in free_b])
        return self._arrange(z, "".join(batch + free_a + free_b), out)

    def _broadcast_letters(self, x: "Tensor", term: str, batch: list[str], other: "Tensor",
                           other_term: str) -> "Tensor":
        """`x` with its unit batch-letter axes repeated to the other operand's size (numpy broadcasting
        of a shared, kept letter), by a multiply with ones."""
        target = [other.shape[other_term.index(c)] if c in batch and x.shape[i] == 1 and c != term[0]
                  else x.shape[i] for i, c in enumerate(term)]
        if target == list(x.shape):
            return x
        return self.multiply(x, np.ones(target[1:], np.float32))
