"""Image layers that run at inference: Resizing, CenterCrop and UpSampling2D.

Every interpolation Keras 3 offers is separable and linear, so a resize is one constant matrix per
resized axis (`resize_matrix`, computed here as jax.image.resize computes its weights), applied with
a MATMUL along that axis. Nearest-neighbour upsampling by integer factors is a repeat instead.
"""
from __future__ import annotations

import numpy as np

from ..ir import Op
from .context import LayerCall, layer
from .layers import _channels_first, _tuple
from .primitives import linear_map, repeat

METHODS = ("bilinear", "nearest", "bicubic", "lanczos3", "lanczos5")


def _kernel(method: str):
    """(jax kernel function of the distance, for the weight matrix)."""
    if method == "bilinear":
        return lambda x: np.maximum(0.0, 1.0 - np.abs(x))
    if method == "bicubic":  # Keys, a = -0.5
        def cubic(x):
            out = ((1.5 * x - 2.5) * x) * x + 1.0
            out = np.where(x >= 1.0, ((-0.5 * x + 2.5) * x - 4.0) * x + 2.0, out)
            return np.where(x >= 2.0, 0.0, out)
        return cubic
    radius = 3.0 if method == "lanczos3" else 5.0

    def lanczos(x):
        y = radius * np.sin(np.pi * x) * np.sin(np.pi * x / radius)
        with np.errstate(divide="ignore", invalid="ignore"):
            out = np.where(x > 1e-3, y / np.where(x != 0, np.pi ** 2 * x ** 2, 1.0), 1.0)
        return np.where(x > radius, 0.0, out)
    return lanczos


def resize_matrix(size_in: int, size_out: int, method: str, antialias: bool) -> np.ndarray:
    """(size_in, size_out) weights with out[j] = sum_i in[i] * W[i, j], as jax.image.resize has them
    (half-pixel centres; `antialias` widens the kernel when downsampling)."""
    if method == "nearest":
        # jax: floor((j + 0.5) * in / out), computed in float32
        src = np.floor((np.arange(size_out, dtype=np.float32) + np.float32(0.5)) * np.float32(size_in)
                       / np.float32(size_out)).astype(np.int64)
        w = np.zeros((size_in, size_out), np.float64)
        w[np.minimum(src, size_in - 1), np.arange(size_out)] = 1.0
        return w
    inv_scale = size_in / size_out
    kernel_scale = max(inv_scale, 1.0) if antialias else 1.0
    sample = (np.arange(size_out) + 0.5) * inv_scale - 0.5
    w = _kernel(method)(np.abs(sample[None, :] - np.arange(size_in)[:, None]) / kernel_scale)
    total = w.sum(axis=0, keepdims=True)
    w = np.where(np.abs(total) > 1000.0 * float(np.finfo(np.float32).eps), w / np.where(total != 0, total, 1.0), 0.0)
    return np.where(((sample >= -0.5) & (sample <= size_in - 0.5))[None, :], w, 0.0)


def resize(call: LayerCall, x: str, axes: tuple[int, int], size: tuple[int, int], method: str,
           antialias: bool = False) -> str:
    """Resize spatial `axes` of `x` to `size` (axes already at the target size are left alone)."""
    if method not in METHODS:
        raise call.unsupported(f"interpolation {method!r} (kerasjit has {', '.join(METHODS)})")
    for axis, n in zip(axes, size):
        m = call.shape(x)[axis]
        if m != n:
            x = linear_map(call, x, axis, resize_matrix(m, n, method, antialias).astype(np.float32),
                           f"resize_{method}{'_aa' if antialias else ''}_{m}to{n}")
    return x


def _crop(call: LayerCall, x: str, axes: tuple[int, int], starts: tuple[int, int], sizes: tuple[int, int]) -> str:
    shape = call.shape(x)
    ranges = []
    for a in range(1, len(shape)):
        if a in axes:
            s, n = starts[axes.index(a)], sizes[axes.index(a)]
            ranges.append((s, s + n, 1))
        else:
            ranges.append((0, shape[a], 1))
    return call.add(Op.SLICE, [x], {"ranges": tuple(ranges)})


def crop_to_aspect(call: LayerCall, x: str, axes: tuple[int, int], target: tuple[int, int]) -> str:
    """The largest centred crop with the target's aspect ratio (Keras's crop_to_aspect_ratio and
    smart_resize, integer arithmetic as there)."""
    (h, w), (th, tw) = (call.shape(x)[a] for a in axes), target
    ch = max(min(h, int(float(w * th) / tw)), 1)
    cw = max(min(w, int(float(h * tw) / th)), 1)
    if (ch, cw) == (h, w):
        return x
    return _crop(call, x, axes, (int(float(h - ch) / 2), int(float(w - cw) / 2)), (ch, cw))


def pad_to_aspect(call: LayerCall, x: str, axes: tuple[int, int], target: tuple[int, int], fill: float) -> str:
    """Keras's pad_to_aspect_ratio: the same band of `fill` on both sides of one axis."""
    (h, w), (th, tw) = (call.shape(x)[a] for a in axes), target
    hstart = int(float(max(h, int(float(w * th) / tw)) - h) / 2)
    wstart = int(float(max(w, int(float(h * tw) / th)) - w) / 2)
    pads = [(0, 0)] * len(call.shape(x))
    if hstart > 0:
        pads[axes[0]] = (hstart, hstart)
    elif wstart > 0:
        pads[axes[1]] = (wstart, wstart)
    else:
        return x
    return call.add(Op.PAD, [x], {"pads": tuple(pads), "value": float(fill)})


def _image_axes(call: LayerCall, x: str) -> tuple[int, int]:
    if len(call.shape(x)) != 4:
        raise call.unsupported(f"input of shape {call.shape(x)}: expected a batch of images (rank 4)")
    return (2, 3) if _channels_first(call) else (1, 2)


@layer("Resizing")
def lower_resizing(call: LayerCall, xs: list[str]) -> list[str]:
    x = xs[0]
    axes = _image_axes(call, x)
    target = (int(call.get("height")), int(call.get("width")))
    if call.get("crop_to_aspect_ratio", False):
        x = crop_to_aspect(call, x, axes, target)
    elif call.get("pad_to_aspect_ratio", False):
        x = pad_to_aspect(call, x, axes, target, float(call.get("fill_value", 0.0)))
    method = str(call.get("interpolation", "bilinear"))
    return [resize(call, x, axes, target, method, bool(call.get("antialias", False)))]


@layer("CenterCrop")
def lower_center_crop(call: LayerCall, xs: list[str]) -> list[str]:
    x = xs[0]
    axes = _image_axes(call, x)
    target = (int(call.get("height")), int(call.get("width")))
    h, w = (call.shape(x)[a] for a in axes)
    if h >= target[0] and w >= target[1]:
        return [_crop(call, x, axes, ((h - target[0]) // 2, (w - target[1]) // 2), target)]
    # smaller than the target: Keras smart-resizes (aspect crop, then bilinear)
    return [resize(call, crop_to_aspect(call, x, axes, target), axes, target, "bilinear")]


@layer("UpSampling2D")
def lower_upsampling2d(call: LayerCall, xs: list[str]) -> list[str]:
    x = xs[0]
    axes = _image_axes(call, x)
    size = _tuple(call.get("size", 2), 2)
    method = str(call.get("interpolation", "nearest"))
    if method == "nearest":
        return [repeat(call, x, dict(zip(axes, size)))]
    target = tuple(call.shape(x)[a] * s for a, s in zip(axes, size))
    return [resize(call, x, axes, target, method)]

