"""Normalizations along one axis: softmax, log_softmax, logsumexp (which drops the axis)."""

from __future__ import annotations

from typing import Any

import numpy as np
from mlir import ir
from mlir.dialects import arith, math

from ..irutils import builders as LL
from .core import OpDef, Spec, check, normalize_axis, register
from .elementwise import abs, erf, exp, log1p, maximum, sigmoid, sqrt, tanh
from .reduce import keep, mean, sum
from .tensor import Tensor, emit, expect_tensor


def _axis_ok(x: Spec, axis: int) -> None:
    check(0 <= axis < x.rank, f"axis {axis} is out of range for rank {x.rank}")


def _same_infer(x: Spec, axis: int) -> Spec:
    _axis_ok(x, axis)
    return x


def _lse_infer(x: Spec, axis: int) -> Spec:
    _axis_ok(x, axis)
    check(x.shape[axis] > 0, f"logsumexp over a zero-size axis of {x.shape}")
    return Spec(x.shape[:axis] + x.shape[axis + 1:], x.dtype)


def _np_lse(x: np.ndarray, axis: int, keepdims: bool = False) -> np.ndarray:
    m = np.max(x, axis=axis, keepdims=True) if x.size else np.zeros_like(x.sum(axis, keepdims=True))
    m = np.where(np.isfinite(m), m, 0)
    with np.errstate(divide="ignore"):
        out = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
    return (out if keepdims else np.squeeze(out, axis)).astype(x.dtype)


def _np_softmax(x: np.ndarray, axis: int) -> np.ndarray:
    return np.exp(x - _np_lse(x, axis, keepdims=True)).astype(x.dtype)


def _np_log_softmax(x: np.ndarray, axis: int) -> np.ndarray:
    return (x - _np_lse(x, axis, keepdims=True)).astype(x.dtype)


def _lower_lse(x: ir.Value, axis: int) -> tuple[ir.Value, list[int]]:
    """Like _np_lse: m = max (0 where not finite), log(sum(exp(x - m))) + m; and x's dims it keeps."""
    xt = ir.RankedTensorType(x.type)
    kept = [i for i in range(xt.rank) if i != axis]
    m = LL.reduce_max(x, [axis])
    mt = ir.RankedTensorType(m.type)
    inf = LL.scalar(mt.element_type, float("inf"))
    m = LL.parallel(lambda v: arith.select(arith.cmpf(arith.CmpFPredicate.ONE, math.absf(v), inf), v,
                                           LL.scalar(mt.element_type, 0.0)), [m], mt)
    e = LL.parallel(lambda v, mv: math.exp(arith.subf(v, mv)), [x, m], xt, [None, kept])
    lse = LL.parallel(lambda sv, mv: arith.addf(math.log(sv), mv), [LL.reduce_sum(e, [axis]), m], mt)
    return lse, kept


def _lower_softmax(ops: list[ir.Value], t: ir.RankedTensorType, axis: int) -> ir.Value:
    lse, kept = _lower_lse(ops[0], axis)
    return LL.parallel(lambda v, l: math.exp(arith.subf(v, l)), [ops[0], lse], t, [None, kept])


def _lower_log_softmax(ops: list[ir.Value], t: ir.RankedTensorType, axis: int) -> ir.Value:
    lse, kept = _lower_lse(ops[0], axis)
    return LL.parallel(lambda v, l: arith.subf(v, l), [ops[0], lse], t, [None, kept])


def _dot_keep(u: Tensor, v: Tensor, a: dict[str, Any]) -> Tensor:
    """sum(u * v) along the axis, broadcast back to the full shape."""
    return keep(sum(u * v, a["axis"], keepdims=True), u, {"axes": (a["axis"],)})


register(OpDef("softmax", ("x",), _same_infer, _np_softmax,
               jvp=(lambda t, x, y, a: y * (t - _dot_keep(t, y, a)),),
               vjp=(lambda g, x, y, a: y * (g - _dot_keep(g, y, a)),), attrs={"axis": "int"},
               lower=_lower_softmax))
register(OpDef("log_softmax", ("x",), _same_infer, _np_log_softmax,
               jvp=(lambda t, x, y, a: t - _dot_keep(t, exp(y), a),),
               vjp=(lambda g, x, y, a: g - exp(y) * keep(sum(g, a["axis"], keepdims=True), g,
                                                         {"axes": (a["axis"],)}),),
               attrs={"axis": "int"}, lower=_lower_log_softmax))
register(OpDef("logsumexp", ("x",), _lse_infer, _np_lse,
               jvp=(lambda t, x, y, a: sum(t * softmax(x, a["axis"]), a["axis"]),),
               vjp=(lambda g, x, y, a: keep(g, x, {"axes": (a["axis"],)}) * softmax(x, a["axis"]),),
               attrs={"axis": "int"}, lower=lambda ops, t, axis: _lower_lse(ops[0], axis)[0]))


def softmax(x: Tensor, axis: int = -1) -> Tensor:
    """exp(x) / sum(exp(x)) along `axis`, computed stably (lean.softmax)."""
    return emit("softmax", [x], axis=normalize_axis(axis, expect_tensor(x, "softmax").ndim))


def log_softmax(x: Tensor, axis: int = -1) -> Tensor:
    """x - logsumexp(x) along `axis` (lean.log_softmax)."""
    return emit("log_softmax", [x], axis=normalize_axis(axis, expect_tensor(x, "log_softmax").ndim))


def logsumexp(x: Tensor, axis: int = -1) -> Tensor:
    """log(sum(exp(x))) along `axis`, which is dropped (lean.logsumexp)."""
    return emit("logsumexp", [x], axis=normalize_axis(axis, expect_tensor(x, "logsumexp").ndim))


# ---- compositions of the ops above and the elementwise ones (each differentiates as its parts do)
def rsqrt(x: Tensor) -> Tensor:
    """1 / sqrt(x)."""
    return 1.0 / sqrt(x)


def silu(x: Tensor) -> Tensor:
    """x * sigmoid(x) (torch's SiLU, swish)."""
    return x * sigmoid(x)


def gelu(x: Tensor, approximate: bool = False) -> Tensor:
    """x * Phi(x), exactly with erf, or with torch's / jax's tanh approximation (approximate=True)."""
    if approximate:
        return 0.5 * x * (1.0 + tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * (x * x * x))))
    return 0.5 * x * (1.0 + erf(x * (1 / np.sqrt(2))))


def logaddexp(a: Tensor, b: Tensor) -> Tensor:
    """log(exp(a) + exp(b)) without overflow: max(a, b) + log1p(exp(-|a - b|))."""
    return maximum(a, b) + log1p(exp(-abs(a - b)))


def mse_loss(prediction: Tensor, target: Tensor) -> Tensor:
    """The mean of (prediction - target)^2 over every element (torch.nn.functional.mse_loss)."""
    d = prediction - target
    return mean(d * d)


def cross_entropy(logits: Tensor, target: Tensor) -> Tensor:
    """torch's cross_entropy with class-probability targets (one-hot rows, or soft labels) of the
    logits' shape, classes on axis 1: the batch mean of -sum(target * log_softmax(logits)). Integer
    class labels come with integer tensors."""
    if expect_tensor(logits, "cross_entropy").shape != getattr(target, "shape", None):
        raise TypeError(f"cross_entropy: target must be class probabilities of the logits' shape {logits.shape}, "
                        f"got {getattr(target, 'shape', type(target).__name__)}")
    axis = 1 if logits.ndim > 1 else 0
    return sum(-(target * log_softmax(logits, axis)), axis).mean() if logits.ndim > 1 else \
        sum(-(target * log_softmax(logits, 0)))
