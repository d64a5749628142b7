"""Contractions: matmul (2-D and batched) and conv2d (NCHW / OIHW) with its two adjoint maps."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from mlir import ir
from mlir.dialects import arith, linalg, tensor

from ..irutils import builders as LL
from ..irutils.linalg import matmul_maps
from .core import OpDef, ShapeError, Spec, check, register, same_dtype
from .shape import broadcast_to, concatenate, pad, reshape, reverse, slice, swap_last, transpose
from .tensor import Tensor, TraceError, broadcast_shapes, emit, expect_tensor


# ---- matmul: (..., m, k) @ (..., k, n) with equal batch dims (the front end broadcasts them)
def _matmul_infer(a: Spec, b: Spec) -> Spec:
    same_dtype(a, b)
    check(a.rank == b.rank and a.rank >= 2, f"operands must have equal rank >= 2, got {a.rank} and {b.rank}")
    check(a.shape[:-2] == b.shape[:-2], f"batch dimensions differ: {a.shape[:-2]} and {b.shape[:-2]}")
    check(a.shape[-1] == b.shape[-2], f"contraction dimensions differ: {a.shape[-1]} and {b.shape[-2]}")
    return Spec(a.shape[:-1] + b.shape[-1:], a.dtype)


def _lower_matmul(ops: list[ir.Value], t: ir.RankedTensorType) -> ir.Value:
    """linalg.matmul; batch_matmul for rank 3; rank > 3: collapse the batch dims, batch_matmul, expand."""
    a, b = ops
    if ir.RankedTensorType(a.type).shape[-1] == 1:
        # an outer product (k = 1) is elementwise: a generic fuses into its users, so
        # sum(x[:, None] @ y[None, :]) never materializes the n x n product
        r = t.rank
        return LL.parallel(arith.mulf, [a, b], t, [[*range(r - 2), r - 2, None], [*range(r - 2), None, r - 1]])
    if t.rank == 2:
        return linalg.matmul(a, b, outs=[LL.zeros(t)], indexing_maps=matmul_maps())
    if t.rank == 3:
        return linalg.batch_matmul(a, b, outs=[LL.zeros(t)], indexing_maps=matmul_maps(batch=True))
    groups = [list(range(t.rank - 2)), [t.rank - 2], [t.rank - 1]]

    def collapse(v: ir.Value) -> ir.Value:
        s = ir.RankedTensorType(v.type).shape
        flat = LL.tensor_type([math.prod(s[:-2]), *s[-2:]], t.element_type)
        return tensor.collapse_shape(flat, v, groups)

    t3 = LL.tensor_type([math.prod(t.shape[:-2]), *t.shape[-2:]], t.element_type)
    y = _lower_matmul([collapse(a), collapse(b)], t3)
    return tensor.expand_shape(t, y, groups, [], list(t.shape))


register(OpDef(
    "matmul", ("lhs", "rhs"), _matmul_infer, np.matmul,
    jvp=(lambda t, a, b, y, at: emit("matmul", [t, b]), lambda t, a, b, y, at: emit("matmul", [a, t])),
    vjp=(lambda g, a, b, y, at: emit("matmul", [g, swap_last(b)]),
         lambda g, a, b, y, at: emit("matmul", [swap_last(a), g])), lower=_lower_matmul))


def matmul(a: Tensor, b: Tensor) -> Tensor:
    """NumPy's matmul: 1-D operands are promoted and squeezed, batch dimensions broadcast."""
    a, b = expect_tensor(a, "matmul", 0), expect_tensor(b, "matmul", 1)
    if a.ndim == 0 or b.ndim == 0:
        raise TraceError(f"lean.matmul: operands must have rank >= 1, got shapes {a.shape} and {b.shape}")
    va, vb = a.ndim == 1, b.ndim == 1
    a = reshape(a, (1,) + a.shape) if va else a
    b = reshape(b, b.shape + (1,)) if vb else b
    try:
        batch = broadcast_shapes(a.shape[:-2], b.shape[:-2])
    except ShapeError as e:
        raise TraceError(f"lean.matmul: batch dimensions: {e}") from None
    out = emit("matmul", [broadcast_to(a, batch + a.shape[-2:]), broadcast_to(b, batch + b.shape[-2:])])
    squeeze = out.shape[:-2] + (() if va else out.shape[-2:-1]) + (() if vb else out.shape[-1:])
    return reshape(out, squeeze) if (va or vb) else out




# ---- conv2d: y[n,o,i,j] = sum_{c,p,q} xpad[n, c, i*s+p, j*s+q] * w[o, c, p, q]
def _pair(v: int | Sequence[int]) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int | np.integer) else tuple(int(x) for x in v)  # type: ignore


def _conv_out(x: Sequence[int], w: Sequence[int], stride: tuple[int, ...], padding: tuple[int, ...]) -> tuple:
    check(len(stride) == 2 and len(padding) == 2, f"stride {stride} and padding {padding} must be pairs")
    check(min(stride) >= 1 and min(padding) >= 0, f"stride {stride} must be >= 1 and padding {padding} >= 0")
    check(len(x) == 4 and len(w) == 4, f"input and filter must be rank 4 (NCHW, OIHW), got {tuple(x)}, {tuple(w)}")
    check(x[1] == w[1], f"input channels {x[1]} differ from filter channels {w[1]}")
    check(all(padding[i] < w[2 + i] for i in range(2)), f"padding {padding} must be smaller than the kernel {w[2:]}")
    hw = [(x[2 + i] + 2 * padding[i] - w[2 + i]) // stride[i] + 1 for i in range(2)]
    check(min(hw) >= 1, f"kernel {tuple(w[2:])} is larger than the padded input {tuple(x[2:])}")
    return (x[0], w[0], hw[0], hw[1])


def _conv_infer(x: Spec, w: Spec, stride: tuple[int, ...], padding: tuple[int, ...]) -> Spec:
    same_dtype(x, w)
    return Spec(_conv_out(x.shape, w.shape, stride, padding), x.dtype)


def _input_grad_infer(g: Spec, w: Spec, stride: tuple, padding: tuple, shape: tuple[int, ...]) -> Spec:
    same_dtype(g, w)
    check(_conv_out(shape, w.shape, stride, padding) == g.shape, f"output grad {g.shape} does not fit input {shape}")
    return Spec(shape, g.dtype)


def _filter_grad_infer(x: Spec, g: Spec, stride: tuple, padding: tuple, shape: tuple[int, ...]) -> Spec:
    same_dtype(x, g)
    check(_conv_out(x.shape, shape, stride, padding) == g.shape, f"output grad {g.shape} does not fit filter {shape}")
    return Spec(shape, x.dtype)


def _windows(xpad: np.ndarray, kh: int, kw: int, stride: tuple[int, ...]) -> np.ndarray:
    """[n, c, i, j, p, q] = xpad[n, c, i*s+p, j*s+q]."""
    v = np.lib.stride_tricks.sliding_window_view(xpad, (kh, kw), axis=(2, 3))
    return v[:, :, ::stride[0], ::stride[1]]


def _xpad(x: np.ndarray, padding: tuple[int, ...]) -> np.ndarray:
    return np.pad(x, ((0, 0), (0, 0), (padding[0],) * 2, (padding[1],) * 2))


def _np_conv(x: np.ndarray, w: np.ndarray, stride: tuple, padding: tuple) -> np.ndarray:
    n, o, oh, ow = _conv_out(x.shape, w.shape, stride, padding)
    win = _windows(_xpad(x, padding), w.shape[2], w.shape[3], stride)[:, :, :oh, :ow]
    return np.einsum("ncijpq,ocpq->noij", win, w).astype(x.dtype)


def _np_filter_grad(x: np.ndarray, g: np.ndarray, stride: tuple, padding: tuple, shape: tuple) -> np.ndarray:
    win = _windows(_xpad(x, padding), shape[2], shape[3], stride)[:, :, :g.shape[2], :g.shape[3]]
    return np.einsum("ncijpq,noij->ocpq", win, g).astype(x.dtype)


def _np_input_grad(g: np.ndarray, w: np.ndarray, stride: tuple, padding: tuple, shape: tuple) -> np.ndarray:
    (ph, pw), (sh, sw) = padding, stride
    out = np.zeros((shape[0], shape[1], shape[2] + 2 * ph, shape[3] + 2 * pw), g.dtype)
    oh, ow = g.shape[2:]
    for p in range(w.shape[2]):
        for q in range(w.shape[3]):
            out[:, :, p:p + sh * oh:sh, q:q + sw * ow:sw] += np.einsum("noij,oc->ncij", g, w[:, :, p, q])
    return out[:, :, ph:ph + shape[2], pw:pw + shape[3]].copy()


CONV_ATTRS = {"stride": "ints", "padding": "ints"}


def _shape(v: ir.Value) -> list[int]:
    return list(ir.RankedTensorType(v.type).shape)


def _lower_xpad(x: ir.Value, padding: tuple[int, ...]) -> ir.Value:
    """Zero padding of the two spatial dims (zeros + insert_slice)."""
    if not any(padding):
        return x
    n, c, h, w = _shape(x)
    elem = ir.RankedTensorType(x.type).element_type
    t = LL.tensor_type([n, c, h + 2 * padding[0], w + 2 * padding[1]], elem)
    return LL.insert(x, LL.zeros(t), (0, 0, *padding))


def _patches(x: ir.Value, kh: int, kw: int, stride: tuple, oh: int, ow: int) -> ir.Value:
    """im2col: P[n, c, p, q, i, j] = x[n, c, i*sh + p, j*sw + q] (x padded), shaped (n, c*kh*kw, oh*ow)
    (rows past the last window, which a stride may skip, are cut off first: linalg wants each
    operand exactly as large as its map reaches)."""
    n, c, _, _ = _shape(x)
    elem = ir.RankedTensorType(x.type).element_type
    used = [(oh - 1) * stride[0] + kh, (ow - 1) * stride[1] + kw]
    if used != _shape(x)[2:]:
        x = LL.extract(x, (0, 0, 0, 0), LL.tensor_type([n, c, *used], elem))
    d = [ir.AffineDimExpr.get(i) for i in range(6)]
    p = LL.parallel(lambda v: v, [x], LL.tensor_type([n, c, kh, kw, oh, ow], elem),
                    [[0, 1, d[4] * stride[0] + d[2], d[5] * stride[1] + d[3]]])
    return LL.reshape(p, LL.tensor_type([n, c * kh * kw, oh * ow], elem))


def _conv_of_padded(x: ir.Value, w: ir.Value, t: ir.RankedTensorType, stride: tuple) -> ir.Value:
    """y[n, o, i, j] = sum_{c,p,q} x[n, c, i*sh+p, j*sw+q] w[o, c, p, q], as w (o, c*kh*kw) @ P[n]
    (a contraction with A broadcast over n, which the back ends run as their matmul kernels)."""
    n, o, oh, ow = t.shape
    _, c, kh, kw = _shape(w)
    k = c * kh * kw
    w2 = LL.reshape(w, LL.tensor_type([o, k], t.element_type))
    y = LL.generic([w2, _patches(x, kh, kw, stride, oh, ow)], [LL.affine_map(4, [1, 3]), LL.affine_map(4, [0, 3, 2])],
                   LL.zeros(LL.tensor_type([n, o, oh * ow], t.element_type)), LL.affine_map(4, [0, 1, 2]),
                   ["parallel"] * 3 + ["reduction"], lambda wv, pv, acc: arith.addf(acc, arith.mulf(wv, pv)))
    return LL.reshape(y, t)


def _lower_conv(ops: list[ir.Value], t: ir.RankedTensorType, stride: tuple, padding: tuple) -> ir.Value:
    x, w = ops
    return _conv_of_padded(_lower_xpad(x, padding), w, t, stride)


def _lower_filter_grad(ops: list[ir.Value], t: ir.RankedTensorType, stride: tuple,
                       padding: tuple) -> ir.Value:
    """dw[o, c, p, q] = sum_{n,i,j} xpad[n, c, i*s+p, j*s+q] * g[n, o, i, j] = sum_{n,ij} g[n, o, ij] P[n, k, ij]."""
    x, g = ops
    o, c, kh, kw = t.shape
    n, _, oh, ow = _shape(g)
    g2 = LL.reshape(g, LL.tensor_type([n, o, oh * ow], t.element_type))
    dw = LL.generic([g2, _patches(_lower_xpad(x, padding), kh, kw, stride, oh, ow)],
                    [LL.affine_map(4, [2, 0, 3]), LL.affine_map(4, [2, 1, 3])],
                    LL.zeros(LL.tensor_type([o, c * kh * kw], t.element_type)), LL.affine_map(4, [0, 1]),
                    ["parallel"] * 2 + ["reduction"] * 2, lambda gv, pv, acc: arith.addf(acc, arith.mulf(gv, pv)))
    return LL.reshape(dw, t)


def _lower_input_grad(ops: list[ir.Value], t: ir.RankedTensorType, stride: tuple, padding: tuple) -> ir.Value:
    """The output grad, dilated by the stride and placed so that a stride-1 convolution with the
    flipped, transposed filter yields the input grad directly:
    dx[h] = sum_p g[(h+ph-p)/sh] w[p] = sum_p' D[h+p'] w[kh-1-p'] with D[kh-1-ph + i*sh] = g[i]
    (padding < kernel keeps every offset non-negative, and D has H + kh - 1 rows)."""
    g, w = ops
    n, c, h, wd = t.shape
    o, _, kh, kw = _shape(w)
    elem = t.element_type
    dil = LL.insert(g, LL.zeros(LL.tensor_type([n, o, h + kh - 1, wd + kw - 1], elem)),
                    (0, 0, kh - 1 - padding[0], kw - 1 - padding[1]), (1, 1, *stride))
    d = [ir.AffineDimExpr.get(i) for i in range(4)]
    flip = [1, 0, ir.AffineConstantExpr.get(kh - 1) - d[2], ir.AffineConstantExpr.get(kw - 1) - d[3]]
    wf = LL.parallel(lambda v: v, [w], LL.tensor_type([c, o, kh, kw], elem), [flip])
    return _conv_of_padded(dil, wf, t, (1, 1))


def _conv(x: Tensor, w: Tensor, a: dict) -> Tensor:
    return emit("conv2d", [x, w], **a)


def _input_grad(g: Tensor, w: Tensor, shape: tuple, a: dict) -> Tensor:
    return emit("conv2d_input_grad", [g, w], shape=shape, **a)


def _filter_grad(x: Tensor, g: Tensor, shape: tuple, a: dict) -> Tensor:
    return emit("conv2d_filter_grad", [x, g], shape=shape, **a)


# Each map is bilinear; the adjoint of one argument of one map is another of the three maps.
register(OpDef(
    "conv2d", ("input", "filter"), _conv_infer, _np_conv,
    jvp=(lambda t, x, w, y, a: _conv(t, w, a), lambda t, x, w, y, a: _conv(x, t, a)),
    vjp=(lambda g, x, w, y, a: _input_grad(g, w, x.shape, a), lambda g, x, w, y, a: _filter_grad(x, g, w.shape, a)),
    attrs=CONV_ATTRS, lower=_lower_conv))
register(OpDef(
    "conv2d_input_grad", ("output_grad", "filter"), _input_grad_infer, _np_input_grad,
    jvp=(lambda t, g, w, y, a: _input_grad(t, w, y.shape, a), lambda t, g, w, y, a: _input_grad(g, t, y.shape, a)),
    vjp=(lambda c, g, w, y, a: _conv(c, w, a), lambda c, g, w, y, a: _filter_grad(c, g, w.shape, a)),
    attrs=CONV_ATTRS, shape_from_result=True, lower=_lower_input_grad))
register(OpDef(
    "conv2d_filter_grad", ("input", "output_grad"), _filter_grad_infer, _np_filter_grad,
    jvp=(lambda t, x, g, y, a: _filter_grad(t, g, y.shape, a), lambda t, x, g, y, a: _filter_grad(x, t, y.shape, a)),
    vjp=(lambda c, x, g, y, a: _input_grad(g, c, x.shape, a), lambda c, x, g, y, a: _conv(x, c, a)),
    attrs=CONV_ATTRS, shape_from_result=True, lower=_lower_filter_grad))


def conv2d(x: Tensor, w: Tensor, b: Tensor | None = None, stride: int | Sequence[int] = 1,
           padding: int | Sequence[int] = 0, dilation: int | Sequence[int] = 1, groups: int = 1) -> Tensor:
    """torch's conv2d: the cross-correlation of an NCHW input with OIHW filters (lean.conv2d), zero
    padding; `b`: a bias per output channel. `dilation` spaces the filter taps (the filter is spread
    with zeros: exact, at the cost of the zeros' multiplies); `groups` splits the channels into
    independent convolutions (one lean.conv2d per group, concatenated)."""
    x, w = expect_tensor(x, "conv2d"), expect_tensor(w, "conv2d", 1)
    dh, dw = _pair(dilation)
    if min(dh, dw) < 1 or not isinstance(groups, int) or groups < 1:
        raise TraceError(f"lean.conv2d: dilation {dilation} and groups {groups} must be positive integers")
    if dh > 1 or dw > 1:
        w = _spread(_spread(w, 2, dh), 3, dw)
    if groups == 1:
        y = emit("conv2d", [x, w], stride=_pair(stride), padding=_pair(padding))
    else:
        if x.ndim != 4 or w.ndim != 4 or x.shape[1] % groups or w.shape[0] % groups or \
                w.shape[1] * groups != x.shape[1]:
            raise TraceError(f"lean.conv2d: {groups} groups do not divide input {x.shape} and filters {w.shape} "
                             "(channels = groups * filter channels, filters a multiple of groups)")
        cg, og = x.shape[1] // groups, w.shape[0] // groups
        parts = [emit("conv2d", [slice(x, (0, g * cg, 0, 0), (x.shape[0], cg, *x.shape[2:])),
                                 slice(w, (g * og, 0, 0, 0), (og, *w.shape[1:]))],
                      stride=_pair(stride), padding=_pair(padding)) for g in range(groups)]
        y = concatenate(parts, axis=1)
    return y if b is None else y + reshape(b, (y.shape[1], 1, 1))


def _spread(t: Tensor, axis: int, d: int) -> Tensor:
    """`t` with d - 1 zeros between consecutive elements along `axis` (size k -> (k - 1) * d + 1)."""
    k = t.shape[axis]
    split = t.shape[:axis + 1] + (1,) + t.shape[axis + 1:]
    wide = pad(reshape(t, split), (0,) * len(split), split[:axis + 1] + (d,) + split[axis + 2:])
    flat = reshape(wide, t.shape[:axis] + (k * d,) + t.shape[axis + 1:])
    return slice(flat, (0,) * t.ndim, t.shape[:axis] + ((k - 1) * d + 1,) + t.shape[axis + 1:])


def conv_transpose2d(x: Tensor, w: Tensor, b: Tensor | None = None, stride: int | Sequence[int] = 1,
                     padding: int | Sequence[int] = 0, output_padding: int | Sequence[int] = 0) -> Tensor:
    """torch's conv_transpose2d (the adjoint of conv2d in x): NCHW input, (C_in, C_out, kh, kw)
    filters. Composed as a stride-1 conv2d of the input spread by `stride` and padded by
    kernel - 1 - padding (output_padding more at the end), with the filters flipped and swapped."""
    x, w = expect_tensor(x, "conv_transpose2d"), expect_tensor(w, "conv_transpose2d", 1)
    (sh, sw), (ph, pw), (oh, ow) = _pair(stride), _pair(padding), _pair(output_padding)
    if x.ndim != 4 or w.ndim != 4 or x.shape[1] != w.shape[0]:
        raise TraceError(f"lean.conv_transpose2d: expected NCHW input and (C_in, C_out, kh, kw) filters with the "
                         f"same C_in, got {x.shape} and {w.shape}")
    kh, kw = w.shape[2:]
    if min(sh, sw) < 1 or not (0 <= ph <= kh - 1 and 0 <= pw <= kw - 1) or not (0 <= oh < sh and 0 <= ow < sw):
        raise TraceError(f"lean.conv_transpose2d: stride {sh, sw} must be >= 1, padding {ph, pw} in [0, kernel - 1] "
                         f"and output_padding {oh, ow} below the stride")
    xs = _spread(_spread(x, 2, sh), 3, sw) if sh > 1 or sw > 1 else x
    lo = (0, 0, kh - 1 - ph, kw - 1 - pw)
    big = (xs.shape[0], xs.shape[1], xs.shape[2] + 2 * lo[2] + oh, xs.shape[3] + 2 * lo[3] + ow)
    xp = pad(xs, lo, big)
    wf = transpose(reverse(w, (2, 3)), (1, 0, 2, 3))
    y = emit("conv2d", [xp, wf], stride=(1, 1), padding=(0, 0))
    return y if b is None else y + reshape(b, (y.shape[1], 1, 1))
