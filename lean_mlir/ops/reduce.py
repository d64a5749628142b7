"""Reductions over `axes` with `keepdims`: sum, mean, max."""

from __future__ import annotations

import builtins
import math
from collections.abc import Callable
from typing import Any

import numpy as np
from mlir import ir
from mlir.dialects import arith

from ..irutils import builders as LL
from .core import OpDef, Spec, check, ieee_max, normalize_axes, register
from .elementwise import sqrt
from .tensor import Tensor, emit, expect_tensor


def reduced_shape(shape: tuple[int, ...], axes: tuple[int, ...], keepdims: bool) -> tuple[int, ...]:
    return tuple(1 if i in axes else d for i, d in enumerate(shape) if keepdims or i not in axes)


def _infer(x: Spec, axes: tuple[int, ...], keepdims: bool) -> Spec:
    check(list(axes) == sorted(set(axes)) and all(0 <= a < x.rank for a in axes),
          f"axes {axes} must be sorted, distinct and within rank {x.rank}")
    return Spec(reduced_shape(x.shape, axes, keepdims), x.dtype)


def _max_infer(x: Spec, axes: tuple[int, ...], keepdims: bool) -> Spec:
    check(all(x.shape[a] > 0 for a in axes if a < x.rank), f"max over a zero-size axis of {x.shape}")
    return _infer(x, axes, keepdims)


def keep(g: Tensor, x: Tensor, a: dict[str, Any]) -> Tensor:
    """Broadcast a reduction's output (or cotangent) back to x's shape."""
    from .shape import broadcast_to, reshape
    return broadcast_to(reshape(g, reduced_shape(x.shape, a["axes"], True)), x.shape)


def count(x: Tensor, a: dict[str, Any]) -> int:
    return math.prod([x.shape[i] for i in a["axes"]])


def _max_mask(x: Tensor, y: Tensor, a: dict[str, Any]) -> Tensor:
    """Ties share the derivative equally: mask / (number of maxima)."""
    from .elementwise import equal
    hit = equal(x, keep(y, x, a))
    return hit / keep(sum(hit, a["axes"], keepdims=True), x, {**a, "keepdims": True})


def _np_reduce(fn: Callable[..., np.ndarray]) -> Callable[..., np.ndarray]:
    def run(x: np.ndarray, axes: tuple[int, ...], keepdims: bool) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.asarray(fn(x, axis=tuple(axes), keepdims=keepdims), dtype=x.dtype)
    return run


def _lower(reduce: Callable[[ir.Value, tuple[int, ...]], ir.Value]) -> Callable[..., ir.Value]:
    """linalg.reduce over `axes`, then a reshape that restores size-1 dims for keepdims."""
    def lower(ops: list[ir.Value], t: ir.RankedTensorType, axes: tuple[int, ...], keepdims: bool) -> ir.Value:
        return LL.reshape(reduce(ops[0], axes), t)
    return lower


def _mean(x: ir.Value, axes: tuple[int, ...]) -> ir.Value:
    """sum / count, divided like NumPy (an empty axis gives 0/0 = NaN)."""
    s = LL.reduce_sum(x, axes)
    t = ir.RankedTensorType(s.type)
    n = math.prod([ir.RankedTensorType(x.type).shape[i] for i in axes])
    return LL.parallel(lambda v: arith.divf(v, LL.scalar(t.element_type, n)), [s], t)


ATTRS = {"axes": "ints", "keepdims": "bool"}
register(OpDef("sum", ("x",), _infer, _np_reduce(np.sum),
               jvp=(lambda t, x, y, a: emit("sum", [t], **a),), vjp=(lambda g, x, y, a: keep(g, x, a),),
               attrs=ATTRS, lower=_lower(LL.reduce_sum)))
register(OpDef("mean", ("x",), _infer, _np_reduce(np.mean),
               jvp=(lambda t, x, y, a: emit("mean", [t], **a),),
               vjp=(lambda g, x, y, a: keep(g, x, a) * (1.0 / builtins.max(count(x, a), 1)),), attrs=ATTRS,
               lower=_lower(_mean)))
register(OpDef("max", ("x",), _max_infer, _np_reduce(ieee_max),
               jvp=(lambda t, x, y, a: emit("sum", [t * _max_mask(x, y, a)], **a),),
               vjp=(lambda g, x, y, a: keep(g, x, a) * _max_mask(x, y, a),), attrs=ATTRS,
               lower=_lower(LL.reduce_max)))


def _front(name: str) -> Callable[..., Tensor]:
    def fn(x: Tensor, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Tensor:
        x = expect_tensor(x, name)
        return emit(name, [x], axes=normalize_axes(axis, x.ndim), keepdims=bool(keepdims))
    fn.__name__ = name
    fn.__doc__ = f"NumPy's `{name}(x, axis=None, keepdims=False)` (lean.{name})."
    return fn


sum = _front("sum")  # noqa: A001 - NumPy's name
mean = _front("mean")
max = _front("max")  # noqa: A001 - NumPy's name


# ---- compositions (no op of their own: mean and elementwise ops differentiate them exactly)
def var(x: Tensor, axis: int | tuple[int, ...] | None = None, keepdims: bool = False, ddof: int = 0) -> Tensor:
    """NumPy's var: the mean squared deviation from the mean, divided by n - ddof instead of n."""
    x = expect_tensor(x, "var")
    axes = normalize_axes(axis, x.ndim)
    n = int(np.prod([x.shape[a] for a in axes]))
    if not 0 <= ddof < builtins.max(n, 1):
        raise ValueError(f"var: ddof must be in [0, {n}) for {n} elements, got {ddof}")
    d = x - mean(x, axes, keepdims=True)
    return mean(d * d, axes, keepdims) * (n / (n - ddof)) if ddof else mean(d * d, axes, keepdims)


def std(x: Tensor, axis: int | tuple[int, ...] | None = None, keepdims: bool = False, ddof: int = 0) -> Tensor:
    """NumPy's std: the square root of var."""
    return sqrt(var(x, axis, keepdims, ddof))


def min(x: Tensor, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Tensor:  # noqa: A001
    """NumPy's min, as -max(-x) (ties share the derivative, as for max)."""
    return -max(-expect_tensor(x, "min"), axis, keepdims)
