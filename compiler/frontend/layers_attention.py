"""Attention layers: Attention (Luong), AdditiveAttention (Bahdanau), MultiHeadAttention, and EinsumDense.

All of them lower to MATMUL (a projection by a weight), BMM (scores and their product with the values:
two runtime values), SOFTMAX, and layout ops. Masks of every kind (the inputs' Keras masks, a causal
mask, an `attention_mask` tensor) combine into one float 0/1 mask m of the scores, applied as Keras
does: Attention and AdditiveAttention subtract 1e9 where m is 0 (scores + (m - 1) * 1e9);
MultiHeadAttention replaces the score by -1e9 (select(s, m) + (m - 1) * 1e9, exactly Keras's where,
which differs for a query that may attend nothing) and, on Keras's explicit (non-fused) path, zeroes
the masked weights after the softmax.
"""
from __future__ import annotations

import string

import numpy as np

from ..ir import Op
from .activations import apply_activation
from .context import LayerCall, layer
from .layers_seq import not_equal
from .primitives import const
from .sublayers import check_all_used, inner_call, select

LARGE = 1.0e9  # Keras's bias for masked scores in float32 (Attention's max_value, Softmax's large negative)


# ---------------------------------------------------------------------- EinsumDense
def _expand_ellipsis(equation: str, x_rank: int) -> str:
    if "..." not in equation:
        return equation
    used = set(equation)
    spare = [c for c in string.ascii_letters if c not in used]
    lhs = equation.split("->")[0].split(",")[0]
    n = x_rank - (len(lhs) - 3)
    return equation.replace("...", "".join(spare[:n]))


def einsum_dense(call: LayerCall, x: str, equation: str, kernel: np.ndarray, bias: np.ndarray | None,
                 bias_axes: str, what: str = "") -> str:
    """x (einsum) kernel + bias as TRANSPOSE / RESHAPE / MATMUL: x's free axes first, the contracted ones
    flattened last, times the kernel with the contracted axes flattened first."""
    shape = call.shape(x)
    equation = _expand_ellipsis(equation.replace(" ", ""), len(shape))
    lhs, out = equation.split("->")
    xs_, ws_ = lhs.split(",")
    if len(xs_) != len(shape) or len(ws_) != kernel.ndim:
        raise call.unsupported(f"equation {equation!r} for an input {shape} and a kernel {kernel.shape}")
    dims = {c: d for c, d in zip(xs_, shape)}
    for c, d in zip(ws_, kernel.shape):
        if c in dims and dims[c] is not None and dims[c] != d:
            raise call.unsupported(f"equation {equation!r}: axis {c!r} is {dims[c]} in the input, {d} in the kernel")
        dims.setdefault(c, d)
    free = [c for c in xs_ if c in out and c not in ws_]
    contracted = [c for c in xs_ if c in ws_ and c not in out]
    w_only = [c for c in ws_ if c in out and c not in xs_]
    if xs_[0] not in free or any(c in ws_ and c in out for c in xs_) or any(c not in ws_ + out for c in xs_):
        raise call.unsupported(f"equation {equation!r} (kerasjit takes x's batch axis kept, the rest either "
                               f"contracted with the kernel or kept)")
    summed_w = [i for i, c in enumerate(ws_) if c not in xs_ and c not in out]
    if summed_w:
        kernel = kernel.sum(axis=tuple(summed_w))
        ws_ = "".join(c for c in ws_ if c in xs_ or c in out)
    perm = [xs_.index(c) for c in free + contracted]
    if perm != list(range(len(xs_))):
        x = call.add(Op.TRANSPOSE, [x], {"perm": tuple(perm)})
    k = int(np.prod([dims[c] for c in contracted], dtype=np.int64))
    m = int(np.prod([dims[c] for c in w_only], dtype=np.int64))
    x = call.add(Op.RESHAPE, [x], {"shape": tuple(dims[c] for c in free[1:]) + (k,)})
    w = kernel.transpose([ws_.index(c) for c in contracted + w_only]).reshape(k, m)
    y = call.add(Op.MATMUL, [x, call.param(f"{what}kernel", w)])
    y = call.add(Op.RESHAPE, [y], {"shape": tuple(dims[c] for c in free[1:] + w_only)})
    order = free + w_only
    if order != list(out):
        y = call.add(Op.TRANSPOSE, [y], {"perm": tuple(order.index(c) for c in out)})
    if bias is not None:
        first = min(out.index(c) for c in bias_axes)
        bshape = tuple(dims[c] if c in bias_axes else 1 for c in out[first:])
        if int(np.prod(bshape)) != bias.size:
            raise call.unsupported(f"bias of {bias.size} values for axes {bias_axes!r} of {equation!r}")
        y = call.add(Op.ADD, [y, call.param(f"{what}bias", bias.reshape(bshape))])
    return y


@layer("EinsumDense")
def lower_einsum_dense(call: LayerCall, xs: list[str]) -> list[str]:
    bias_axes = call.get("bias_axes") or ""
    ws = call.weights([("kernel", None)] + ([("bias", None)] if bias_axes else []))
    y = einsum_dense(call, xs[0], call.get("equation"), ws[0], ws[1] if bias_axes else None, bias_axes)
    return [apply_activation(call, y, call.get("activation", "linear"))]


# ---------------------------------------------------------------------- shared attention steps
def _masked_scores(call: LayerCall, scores: str, keep: str | None) -> str:
    """scores where keep, scores - 1e9 elsewhere (keep: 0/1, broadcasting against scores)."""
    if keep is None:
        return scores
    if keep in call.builder.params:
        return call.add(Op.ADD, [scores, call.param(f"{keep}-adder", (call.builder.params[keep] - 1.0) * LARGE)])
    adder = call.add(Op.MUL, [call.add(Op.SUB, [keep, const(call, "one", 1.0)]), const(call, "large", LARGE)])
    return call.add(Op.ADD, [scores, adder])


def _and(call: LayerCall, a: str | None, b: str | None) -> str | None:
    if a is None or b is None:
        return a if b is None else b
    params = call.builder.params
    if a in params and b in params:  # two constant masks (causal, sliding window) make a constant
        return call.param(f"{a.rsplit('/', 1)[-1]}*{b.rsplit('/', 1)[-1]}", params[a] * params[b])
    return call.add(Op.MUL, [a, b])


def _causal(call: LayerCall, tq: int, tv: int, window: int | None = None) -> str:
    """The (1, Tq, Tv) mask of positions i may attend: j <= i (and |i - j| < window)."""
    i, j = np.arange(tq)[:, None], np.arange(tv)[None, :]
    keep = (j <= i) if window is None else (np.abs(i - j) < window)
    return call.param(f"causal_{tq}x{tv}" if window is None else f"window{window}_{tq}x{tv}",
                      keep.astype(np.float32)[None])


def _as_steps(call: LayerCall, m: str | None, steps: int) -> str | None:
    """A sequence mask as (N, steps)."""
    if m is None:
        return None
    if call.shape(m)[1:] != (steps,):
        m = call.add(Op.RESHAPE, [m], {"shape": (steps,)})
    return m


# ---------------------------------------------------------------------- Attention, AdditiveAttention
def _attention_inputs(call: LayerCall, xs: list[str]) -> tuple[str, str, str, str | None, str | None]:
    if len(xs) not in (2, 3):
        raise call.unsupported(f"{len(xs)} inputs (it takes [query, value] or [query, value, key])")
    q, v = xs[0], xs[1]
    k = xs[2] if len(xs) > 2 else v
    masks = call.mask or []
    q_mask = _as_steps(call, masks[0] if masks else None, call.shape(q)[1])
    v_mask = _as_steps(call, masks[1] if len(masks) > 1 else None, call.shape(v)[1])
    return q, v, k, q_mask, v_mask


def _apply_scores(call: LayerCall, scores: str, q: str, v: str, q_mask: str | None, v_mask: str | None) -> list[str]:
    tq, tv = call.shape(scores)[1:]
    keep = None if v_mask is None else call.add(Op.RESHAPE, [v_mask], {"shape": (1, tv)})
    causal = bool(call.kwargs.get("use_causal_mask", False) or call.get("causal", False))
    if causal:
        keep = _and(call, keep, _causal(call, tq, tv))
    weights = call.add(Op.SOFTMAX, [_masked_scores(call, scores, keep)], {"axis": 2})
    out = call.add(Op.BMM, [weights, v])
    if q_mask is not None:
        out = call.add(Op.MUL, [out, call.add(Op.RESHAPE, [q_mask], {"shape": (tq, 1)})])
    call.output_masks = [q_mask]
    return [out, weights] if call.kwargs.get("return_attention_scores") else [out]


@layer("Attention")
def lower_attention(call: LayerCall, xs: list[str]) -> list[str]:
    q, v, k, q_mask, v_mask = _attention_inputs(call, xs)
    mode = call.get("score_mode", "dot")
    use_scale = bool(call.get("use_scale", False))
    ws = call.weights(([("scale", None)] if use_scale else [])
                      + ([("concat_score_weight", None)] if mode == "concat" else []))
    scale = float(ws[0].reshape(())) if use_scale else None
    if mode == "dot":
        scores = call.add(Op.BMM, [q, k], {"transpose_b": True})
        if scale is not None:
            scores = call.add(Op.MUL, [scores, const(call, "scale", scale)])
    elif mode == "concat":
        d = call.shape(q)[-1]
        s = _pair_sum(call, q, k)
        if scale is not None:
            s = call.add(Op.MUL, [s, const(call, "scale", scale)])
        s = call.add(Op.TANH, [s])
        weight = float(ws[-1].reshape(()))
        scores = _sum_last(call, s, np.ones(d, np.float32))
        scores = call.add(Op.MUL, [scores, const(call, "concat_score_weight", weight)])
    else:
        raise call.unsupported(f"score_mode {mode!r}")
    return _apply_scores(call, scores, q, v, q_mask, v_mask)


def _pair_sum(call: LayerCall, q: str, k: str) -> str:
    """q[:, i] + k[:, j] for every (i, j): (N, Tq, Tv, d)."""
    (tq, d), tv = call.shape(q)[1:], call.shape(k)[1]
    qr = call.add(Op.RESHAPE, [q], {"shape": (tq, 1, d)})
    kr = call.add(Op.RESHAPE, [k], {"shape": (1, tv, d)})
    return call.add(Op.ADD, [qr, kr])


def _sum_last(call: LayerCall, x: str, weights: np.ndarray) -> str:
    """sum over the last axis of x * weights: (N, Tq, Tv, d) -> (N, Tq, Tv)."""
    y = call.add(Op.MATMUL, [x, call.param("score_weights", weights.reshape(-1, 1))])
    return call.add(Op.RESHAPE, [y], {"shape": tuple(call.shape(y)[1:-1])})


@layer("AdditiveAttention")
def lower_additive_attention(call: LayerCall, xs: list[str]) -> list[str]:
    q, v, k, q_mask, v_mask = _attention_inputs(call, xs)
    d = call.shape(q)[-1]
    use_scale = bool(call.get("use_scale", True))
    ws = call.weights([("scale", (d,))] if use_scale else [])
    s = call.add(Op.TANH, [_pair_sum(call, q, k)])
    scores = _sum_last(call, s, ws[0] if use_scale else np.ones(d, np.float32))
    return _apply_scores(call, scores, q, v, q_mask, v_mask)


# ---------------------------------------------------------------------- MultiHeadAttention
_PROJECTIONS = {"query": ("query_dense", "query"), "key": ("key_dense", "key"), "value": ("value_dense", "value"),
                "output": ("output_dense", "attention_output")}


def _projection_weights(call: LayerCall, which: str, use_bias: bool) -> tuple[np.ndarray, np.ndarray | None]:
    attr, scope = _PROJECTIONS[which]
    sub = inner_call(call, {"class_name": "EinsumDense", "config": {"name": scope}}, attr, select(call, attr, {scope}))
    ws = sub.weights([("kernel", None)] + ([("bias", None)] if use_bias else []))
    return ws[0], (ws[1] if use_bias else None)


def _mha_operands(call: LayerCall, xs: list[str]) -> tuple[str, str, str, bool]:
    """(query, value, key, whether key was given) from positional and keyword tensors."""
    kw = call.tensor_kwargs
    named = list(xs) + [None] * (3 - len(xs))
    q = named[0] or (kw.get("query") or [None])[0]
    v = named[1] or (kw.get("value") or [None])[0]
    k = named[2] or (kw.get("key") or [None])[0]
    if q is None or v is None:
        raise call.unsupported("a call without query and value tensors")
    return q, v, (k or v), k is not None


def _attention_axes(call: LayerCall, rank: int) -> tuple[int, ...]:
    """Keras's attention axes of inputs of `rank`: by default every axis between the batch and the
    features; negative axes count from the end of the projected rank (rank + 1, heads included)."""
    axes = call.get("attention_axes")
    if axes is None:
        return tuple(range(1, rank - 1))
    axes = (axes,) if isinstance(axes, int) else tuple(axes)
    out = tuple(int(a) if int(a) >= 0 else rank + int(a) for a in axes)
    if not out or len(set(out)) != len(out) or any(not 1 <= a <= rank - 2 for a in out):
        raise call.unsupported(f"attention_axes {axes!r} for inputs of rank {rank} (axes between the batch "
                               f"and the features, 1 to {rank - 2})")
    return out


@layer("MultiHeadAttention")
def lower_multi_head_attention(call: LayerCall, xs: list[str]) -> list[str]:
    """Keras's einsum attention over `attention_axes`, as BMMs: the projections are laid out as
    (N, <other axes>, heads, <attention axes flattened>, depth), which is Keras's score layout
    (N, <other axes>, heads, <query attention axes>, <key attention axes>) with the attention axes
    flattened; masks apply in Keras's layout."""
    q_in, v_in, k_in, key_given = _mha_operands(call, xs)
    qs, vs, ks = call.shape(q_in), call.shape(v_in), call.shape(k_in)
    rank = len(qs)
    if rank < 3 or len(vs) != rank or len(ks) != rank:
        raise call.unsupported(f"query, value and key of shapes {qs}, {vs}, {ks} (they take (batch, <steps...>, "
                               f"features), all of one rank)")
    if vs[1:-1] != ks[1:-1]:
        raise call.unsupported(f"a value {vs} and a key {ks} that differ in other axes than the last")
    if call.get("use_gate", False):
        raise call.unsupported("use_gate=True")
    axes = _attention_axes(call, rank)
    other = [i for i in range(1, rank - 1) if i not in axes]
    if any(qs[i] != vs[i] for i in other):
        raise call.unsupported(f"a query {qs} and a value {vs} that differ outside attention_axes {axes}")
    heads, dk = int(call.get("num_heads")), int(call.get("key_dim"))
    dv = int(call.get("value_dim") or dk)
    use_bias = bool(call.get("use_bias", True))
    weights = {w: _projection_weights(call, w, use_bias) for w in ("query", "key", "value", "output")}
    check_all_used(call, 4 * (2 if use_bias else 1))
    lead = tuple(qs[i] for i in other)
    tq = int(np.prod([qs[i] for i in axes], dtype=np.int64))
    tk = int(np.prod([vs[i] for i in axes], dtype=np.int64))
    # our layout of an (N, <inner>, heads, depth) projection: other axes, heads, attention axes, depth
    layout = [0] + other + [rank - 1] + list(axes) + [rank]

    def project(x: str, which: str, steps: int, depth: int, scale: float = 1.0) -> str:
        kernel, bias = weights[which]
        if kernel.shape[1:] != (heads, depth) or kernel.shape[0] != call.shape(x)[-1]:
            raise call.unsupported(f"a {which} kernel of shape {kernel.shape} for {heads} heads of {depth} "
                                   f"and inputs {call.shape(x)}")
        y = call.add(Op.MATMUL, [x, call.param(f"{which}/kernel", kernel.reshape(kernel.shape[0], -1) * scale)])
        if bias is not None:
            y = call.add(Op.ADD, [y, call.param(f"{which}/bias", bias.reshape(-1) * scale)])
        inner = tuple(call.shape(x)[1:-1])
        y = call.add(Op.RESHAPE, [y], {"shape": inner + (heads, depth)})
        y = call.add(Op.TRANSPOSE, [y], {"perm": tuple(layout)})
        if len(axes) > 1:
            y = call.add(Op.RESHAPE, [y], {"shape": lead + (heads, steps, depth)})
        return y

    # the query's 1/sqrt(key_dim) scaling is folded into its projection
    q = project(q_in, "query", tq, dk, 1.0 / float(np.sqrt(dk)))
    k = project(k_in, "key", tk, dk)
    v = project(v_in, "value", tk, dv)
    scores = call.add(Op.BMM, [q, k], {"transpose_b": True})  # (N, <other>, heads, Tq, Tk)
    keras_layout = lead + (heads,) + tuple(qs[i] for i in axes) + tuple(vs[i] for i in axes)
    ours = lead + (heads, tq, tk)

    def in_keras_layout(x: str) -> str:
        return x if len(axes) == 1 else call.add(Op.RESHAPE, [x], {"shape": keras_layout})

    def in_our_layout(x: str) -> str:
        return x if len(axes) == 1 else call.add(Op.RESHAPE, [x], {"shape": ours})
    keep = _mha_mask(call, q_in, v_in, k_in, key_given, len(axes), (None,) + keras_layout)
    if keep is not None:
        scores = in_our_layout(_where_kept(call, in_keras_layout(scores), keep))
    probs = call.add(Op.SOFTMAX, [scores], {"axis": len(ours)})
    # Keras's explicit path (not its fused dot_product_attention) zeroes masked weights after the softmax,
    # which differs for a query that may attend nothing (zeros rather than the mean of the values)
    explicit = float(call.get("dropout", 0.0) or 0.0) > 0 or call.kwargs.get("return_attention_scores") or rank != 3
    if keep is not None and explicit:
        probs = in_our_layout(call.add(Op.MUL, [in_keras_layout(probs), keep]))
    ctx = call.add(Op.BMM, [probs, v])  # (N, <other>, heads, Tq, dv)
    if len(axes) > 1:
        ctx = call.add(Op.RESHAPE, [ctx], {"shape": lead + (heads,) + tuple(qs[i] for i in axes) + (dv,)})
    target = [0] + list(range(1, rank - 1)) + [rank - 1, rank]
    ctx = call.add(Op.TRANSPOSE, [ctx], {"perm": tuple(layout.index(a) for a in target)})
    ctx = call.add(Op.RESHAPE, [ctx], {"shape": tuple(qs[1:-1]) + (heads * dv,)})
    kernel, bias = weights["output"]
    if kernel.shape[:2] != (heads, dv):
        raise call.unsupported(f"an output kernel of shape {kernel.shape} for {heads} heads of {dv}")
    out_shape = tuple(kernel.shape[2:])
    y = call.add(Op.MATMUL, [ctx, call.param("output/kernel", kernel.reshape(heads * dv, -1))])
    if bias is not None:
        y = call.add(Op.ADD, [y, call.param("output/bias", bias.reshape(-1))])
    if out_shape != (call.shape(y)[-1],):
        y = call.add(Op.RESHAPE, [y], {"shape": tuple(qs[1:-1]) + out_shape})
    # Keras puts the query's mask on the output and takes the masks off its inputs
    call.output_masks = [call.mask_of(q_in), None]
    call.clears_input_masks = True
    return [y, in_keras_layout(probs)] if call.kwargs.get("return_attention_scores") else [y]


def _where_kept(call: LayerCall, scores: str, keep: str) -> str:
    """Keras's where(keep, scores, -1e9), exactly: select(scores, keep) + (keep - 1) * 1e9."""
    kept = call.add(Op.SELECT, [scores, keep])
    if keep in call.builder.params:
        return call.add(Op.ADD, [kept, call.param(f"{keep}-adder", (call.builder.params[keep] - 1.0) * LARGE)])
    adder = call.add(Op.MUL, [call.add(Op.SUB, [keep, const(call, "one", 1.0)]), const(call, "large", LARGE)])
    return call.add(Op.ADD, [kept, adder])


def _mask_of_shape(call: LayerCall, m: str | None, inner: tuple) -> str | None:
    """A Keras mask of a tensor (N, *inner, features) as (N, *inner)."""
    if m is None or tuple(call.shape(m)[1:]) == tuple(inner):
        return m
    if int(np.prod(call.shape(m)[1:], dtype=np.int64)) != int(np.prod(inner, dtype=np.int64)):
        raise call.unsupported(f"a mask of shape {call.shape(m)} for inputs with steps {inner}")
    return call.add(Op.RESHAPE, [m], {"shape": tuple(inner)})


def _mha_mask(call: LayerCall, q_in: str, v_in: str, k_in: str, key_given: bool, n_axes: int,
              scores: tuple) -> str | None:
    """Keras's _compute_attention_mask and _masked_softmax: the query's mask (B, *Tq, 1), the value's
    and key's (B, *S[:-1], 1, S[-1]), the causal and sliding-window masks (1, Tq[0], S[0]) and
    `attention_mask`, ANDed with NumPy broadcasting; then size-1 axes inserted before the last
    2 * n_axes axes until the mask has the rank of the `scores` (Keras's layout, batch None)."""
    qs, vs = call.shape(q_in), call.shape(v_in)
    t, s = qs[1], vs[1]
    pieces = []
    q_mask = _mask_of_shape(call, call.mask_of(q_in), qs[1:-1])
    if q_mask is not None:
        pieces.append(call.add(Op.RESHAPE, [q_mask], {"shape": tuple(qs[1:-1]) + (1,)}))
    # Keras 3 passes value_mask and key_mask only through its call arguments (filled in from the
    # tensors' masks when the call has several tensor arguments, as it always has here)
    for x, given in ((v_in, True), (k_in, key_given)):
        m = _mask_of_shape(call, call.mask_of(x), vs[1:-1]) if given else None
        if m is not None:
            pieces.append(call.add(Op.RESHAPE, [m], {"shape": tuple(vs[1:-2]) + (1, vs[-2])}))
    if call.kwargs.get("use_causal_mask", False):
        pieces.append(_causal(call, t, s))
    window = call.get("sliding_window")
    if window is not None:
        pieces.append(_causal(call, t, s, int(window)))
    user = call.tensor_kwargs.get("attention_mask")
    if user:
        pieces.append(not_equal(call, user[0], 0.0))
    if not pieces:
        return None
    keep = None
    try:
        for piece in pieces:
            keep = _and(call, keep, piece)
    except ValueError as e:
        raise call.unsupported(f"masks of shapes {[call.shape(p) for p in pieces]} that Keras cannot "
                               f"broadcast together for every batch size ({e})") from None
    shape = tuple(call.shape(keep))
    n_keep, n_scores, at = len(shape), len(scores), len(shape) - 2 * n_axes
    constant = keep in call.builder.params
    if n_keep > n_scores or (n_keep < n_scores and (at < 0 or (at == 0 and not constant))):
        raise call.unsupported(f"a combined attention mask of shape {shape} for attention scores of shape "
                               f"{scores} (Keras cannot broadcast it, or only for some batch sizes)")
    expanded = shape[:at] + (1,) * (n_scores - n_keep) + shape[at:]
    if constant:
        keep = call.param(f"{keep.rsplit('/', 1)[-1]}@{'x'.join(map(str, expanded))}",
                          call.builder.params[keep].reshape(expanded))
    elif expanded != shape:
        keep = call.add(Op.RESHAPE, [keep], {"shape": expanded[1:]})
    if any(d not in (1, e) for d, e in zip(expanded[1:], scores[1:])) or \
            (not constant and expanded[0] is not None) or (constant and expanded[0] != 1):
        raise call.unsupported(f"a combined attention mask of shape {expanded} for attention scores of shape "
                               f"{scores} (Keras cannot broadcast it)")
    return keep
