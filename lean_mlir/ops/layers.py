"""Layers as compositions of lean ops (no op of their own: each differentiates exactly as its parts
do, and the back ends fuse the elementwise parts): layer_norm, batch_norm (training mode),
max_pool2d / avg_pool2d, scaled_dot_product_attention.

Pooling ties: the gradient of a window's maximum is shared equally by the elements that attain it
(the rule of lm.max, as in JAX; torch gives it all to the first). The eager interpreter, the CPU and
the GPU run the same lean ops, so they agree.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from .core import ShapeError, Spec, normalize_axes, normalize_axis
from .elementwise import sqrt
from .nn import softmax
from .reduce import max, mean
from .shape import concatenate, pad, reshape, swap_last, transpose
from .tensor import Tensor, as_tensor, constant, expect_tensor, trace_error


def _normalize(x: Tensor, axes: tuple[int, ...], eps: float) -> tuple[Tensor, Tensor, Tensor]:
    """((x - mean) / sqrt(var + eps), mean, biased var) over `axes`, kept as size-1 axes."""
    mu = mean(x, axes, keepdims=True)
    d = x - mu
    var = mean(d * d, axes, keepdims=True)
    return d / sqrt(var + eps), mu, var


def layer_norm(x: Tensor, weight: Any = None, bias: Any = None, axis: int | Sequence[int] = -1,
               eps: float = 1e-5) -> Tensor:
    """(x - mean) / sqrt(var + eps) * weight + bias, the statistics over `axis` (torch's layer_norm
    over the trailing axes; weight and bias broadcast as NumPy does, None: 1 and 0)."""
    x = expect_tensor(x, "layer_norm")
    try:
        axes = normalize_axes(axis, x.ndim)
    except ShapeError as e:
        raise trace_error("layer_norm", e) from None
    y, _, _ = _normalize(x, axes, eps)
    if weight is not None:
        y = y * weight
    return y if bias is None else y + bias


def batch_norm(x: Tensor, weight: Any = None, bias: Any = None, axis: int = 1, eps: float = 1e-5,
               return_stats: bool = False) -> Tensor | tuple[Tensor, Tensor, Tensor]:
    """Training-mode batch norm: normalized with the batch statistics over every axis but `axis` (the
    channels), then scaled by weight and shifted by bias (each of shape (channels,)). With
    return_stats, also the batch mean and biased variance, each of shape (channels,)."""
    x = expect_tensor(x, "batch_norm")
    try:
        axis = normalize_axis(axis, x.ndim)
    except ShapeError as e:
        raise trace_error("batch_norm", e) from None
    axes = tuple(a for a in range(x.ndim) if a != axis)
    y, mu, var = _normalize(x, axes, eps)
    per_channel = tuple(x.shape[axis] if a == axis else 1 for a in range(x.ndim))
    if weight is not None:
        y = y * reshape(as_tensor(weight, x), per_channel)
    if bias is not None:
        y = y + reshape(as_tensor(bias, x), per_channel)
    if return_stats:
        return y, reshape(mu, (x.shape[axis],)), reshape(var, (x.shape[axis],))
    return y


def _pair(v: int | Sequence[int], what: str) -> tuple[int, int]:
    out = (v, v) if isinstance(v, int) else tuple(v)
    if len(out) != 2 or not all(isinstance(d, int) and not isinstance(d, bool) for d in out):
        raise TypeError(f"{what} must be an int or a pair of ints, got {v!r}")
    return out


def _windows(x: Tensor, kernel: Any, stride: Any, padding: Any, fill: float, name: str) -> Tensor:
    """(n, c, oh, ow, kh * kw): every pooling window of NCHW `x`, padded with `fill`."""
    x = expect_tensor(x, name)
    kh, kw = _pair(kernel, f"{name}: kernel")
    sh, sw = _pair(kernel if stride is None else stride, f"{name}: stride")
    ph, pw = _pair(padding, f"{name}: padding")
    if x.ndim != 4:
        raise trace_error(name, ShapeError(f"expected an NCHW input of rank 4, got shape {x.shape}"))
    if min(kh, kw, sh, sw) < 1 or min(ph, pw) < 0 or ph > kh // 2 or pw > kw // 2:
        raise trace_error(name, ShapeError(f"kernel {kh, kw} and stride {sh, sw} must be positive, padding {ph, pw} "
                                           "at most half the kernel"))
    n, c, h, w = x.shape
    oh, ow = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    if oh < 1 or ow < 1:
        raise trace_error(name, ShapeError(f"kernel {kh, kw} is larger than the padded input {h + 2 * ph, w + 2 * pw}"))
    if (kh, kw) == (sh, sw) and (ph, pw) == (0, 0) and h % kh == 0 and w % kw == 0:  # tiles: one reshape
        tiles = reshape(x, (n, c, oh, kh, ow, kw))
        return reshape(transpose(tiles, (0, 1, 2, 4, 3, 5)), (n, c, oh, ow, kh * kw))
    big = (n, c, h + 2 * ph, w + 2 * pw)
    xp = pad(x, (0, 0, ph, pw), big)
    if fill != 0 and (ph or pw):
        border = np.full(big[2:], fill)
        border[ph:ph + h, pw:pw + w] = 0
        xp = xp + constant(border, Spec(big[2:], x.dtype))
    parts = [reshape(xp[:, :, p:p + sh * (oh - 1) + 1:sh, q:q + sw * (ow - 1) + 1:sw], (n, c, oh, ow, 1))
             for p in range(kh) for q in range(kw)]
    return concatenate(parts, axis=4)


def max_pool2d(x: Tensor, kernel: int | Sequence[int], stride: int | Sequence[int] | None = None,
               padding: int | Sequence[int] = 0) -> Tensor:
    """torch's max_pool2d on NCHW (stride defaults to the kernel; padding counts as -inf)."""
    return max(_windows(x, kernel, stride, padding, -math.inf, "max_pool2d"), axis=4)


def avg_pool2d(x: Tensor, kernel: int | Sequence[int], stride: int | Sequence[int] | None = None,
               padding: int | Sequence[int] = 0) -> Tensor:
    """torch's avg_pool2d on NCHW (padding counts as zeros in the mean: count_include_pad=True)."""
    return mean(_windows(x, kernel, stride, padding, 0.0, "avg_pool2d"), axis=4)


def scaled_dot_product_attention(q: Tensor, k: Tensor, v: Tensor, mask: Any = None, causal: bool = False,
                                 scale: float | None = None) -> Tensor:
    """softmax(q @ k^T * scale + mask) @ v over the last two axes (scale: 1 / sqrt(head size)).
    `mask`: a boolean NumPy array (True: attend) or an additive float mask; `causal`: position i
    attends to positions <= i."""
    q, k, v = (expect_tensor(t, "scaled_dot_product_attention", i) for i, t in enumerate((q, k, v)))
    scale = 1 / math.sqrt(q.shape[-1]) if scale is None else scale
    s = (q @ swap_last(k)) * scale
    if causal:
        t, u = s.shape[-2:]
        s = s + np.triu(np.full((t, u), -np.inf), 1)
    if mask is not None:
        if isinstance(mask, np.ndarray) and mask.dtype == np.bool_:
            mask = np.where(mask, 0.0, -np.inf)
        s = s + mask
    return softmax(s, axis=-1) @ v
