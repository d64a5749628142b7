"""Elementwise ops. Each stanza: shape rule (same type), NumPy semantics, scalar body for the
linalg.generic lowering, and partial derivatives (JVP = t * d, VJP = g * d) or explicit rules."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from mlir import ir
from mlir.dialects import arith, math

from .core import DTYPES, OpDef, ShapeError, Spec, check, ieee_maximum, ieee_minimum, register, same_dtype
from .tensor import Tensor, broadcast_shapes, constant, emit


def _same(*specs: Spec, **_: Any) -> Spec:
    same_dtype(*specs)
    check(len({s.shape for s in specs}) == 1,
          f"operand shapes differ: {', '.join(str(s.shape) for s in specs)} (broadcasts must be explicit)")
    return specs[0]


def _const(like: ir.Value, v: float) -> ir.Value:
    return arith.constant(like.type, float(v))


def _select(cond: ir.Value, a: ir.Value, b: ir.Value) -> ir.Value:
    return arith.select(cond, a, b)


def _cmp(pred: arith.CmpFPredicate, a: ir.Value, b: ir.Value) -> ir.Value:
    return arith.cmpf(pred, a, b)


def elementwise(name: str, arity: int, numpy: Callable[..., np.ndarray], body: Callable[..., ir.Value],
                partials: tuple[Callable[..., Tensor] | None, ...] | None = None,
                jvp: tuple | None = None, vjp: tuple | None = None, attrs: dict[str, str] | None = None) -> OpDef:
    """Register an elementwise op; `partials[i](*xs, y, a)` is dy/dx_i (None: not differentiable)."""
    if partials is not None:
        jvp = tuple(None if d is None else (lambda t, *r, d=d: t * d(*r)) for d in partials)
        vjp = tuple(None if d is None else (lambda g, *r, d=d: g * d(*r)) for d in partials)
    operands = ("x",) if arity == 1 else ("lhs", "rhs")
    return register(OpDef(name, operands, _same, numpy, jvp, vjp, attrs=attrs or {}, elementwise=body))


# ---- front-end helpers
def unary(name: str) -> Callable[[Tensor], Tensor]:
    def fn(x: Tensor) -> Tensor:
        return emit(name, [x])
    fn.__name__ = name
    fn.__doc__ = f"Elementwise `{name}` (lean.{name})."
    return fn


def broadcast_pair(a: Any, b: Any) -> tuple[Tensor, Tensor]:
    """Make two operands (Tensors or Python/NumPy constants) the same shape and dtype, explicitly."""
    like = a if isinstance(a, Tensor) else b
    if not isinstance(like, Tensor):
        raise TypeError("at least one operand must be a traced value")
    if isinstance(a, Tensor) and isinstance(b, Tensor) and a.dtype != b.dtype:
        raise ShapeError(f"element types differ: {a.dtype} and {b.dtype} (no implicit promotion)")
    shape = broadcast_shapes(np.shape(a) if not isinstance(a, Tensor) else a.shape,
                             np.shape(b) if not isinstance(b, Tensor) else b.shape)
    from .shape import broadcast_to
    return tuple(broadcast_to(v, shape) if isinstance(v, Tensor) else constant(_number(v), Spec(shape, like.dtype))
                 for v in (a, b))


def _number(v: Any) -> np.ndarray:
    arr = np.asarray(v)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"cannot use a {type(v).__name__} as a lean value")
    return arr


def binary(name: str) -> Callable[[Any, Any], Tensor]:
    def fn(a: Any, b: Any) -> Tensor:
        try:
            a, b = broadcast_pair(a, b)
        except ShapeError as e:
            from .tensor import TraceError, _format_loc, _user_location
            loc = _user_location()
            raise TraceError(f"lean.{name}: {e}" + (f" at {_format_loc(loc)}" if loc else "")) from None
        return emit(name, [a, b])
    fn.__name__ = name
    fn.__doc__ = f"Elementwise `{name}` with NumPy broadcasting (lean.{name})."
    return fn


P = arith.CmpFPredicate

# ---- unary
elementwise("neg", 1, np.negative, lambda x: arith.negf(x), jvp=(lambda t, x, y, a: -t,),
            vjp=(lambda g, x, y, a: -g,))
elementwise("square", 1, np.square, lambda x: arith.mulf(x, x), (lambda x, y, a: 2.0 * x,))
elementwise("sqrt", 1, np.sqrt, lambda x: math.sqrt(x), (lambda x, y, a: 0.5 / y,))
elementwise("abs", 1, np.abs, lambda x: math.absf(x), (lambda x, y, a: sign(x),))
# sign: x - x is +0 for +-0 (as np.sign) and nan for nan
elementwise("sign", 1, np.sign, lambda x: _select(_cmp(P.OGT, x, _const(x, 0)), _const(x, 1), _select(
    _cmp(P.OLT, x, _const(x, 0)), _const(x, -1), arith.subf(x, x))), (None,))
elementwise("exp", 1, np.exp, lambda x: math.exp(x), (lambda x, y, a: y,))
elementwise("log", 1, np.log, lambda x: math.log(x), (lambda x, y, a: 1.0 / x,))
elementwise("sin", 1, np.sin, lambda x: math.sin(x), (lambda x, y, a: cos(x),))
elementwise("cos", 1, np.cos, lambda x: math.cos(x), (lambda x, y, a: -sin(x),))
elementwise("tanh", 1, np.tanh, lambda x: math.tanh(x), (lambda x, y, a: 1.0 - y * y,))
elementwise("erf", 1, lambda x: _np_erf(x), lambda x: math.erf(x),
            (lambda x, y, a: (2 / np.sqrt(np.pi)) * exp(-square(x)),))
# log1p and expm1 keep their precision near 0, where log(1 + x) and exp(x) - 1 lose all of it
elementwise("log1p", 1, np.log1p, lambda x: math.log1p(x), (lambda x, y, a: 1.0 / (1.0 + x),))
elementwise("expm1", 1, np.expm1, lambda x: _expm1(x), (lambda x, y, a: y + 1.0,))


def _expm1(x: ir.Value) -> ir.Value:
    """Kahan's expm1 from exp and log, both vectorized: (u - 1) * x / log(u), u = exp(x), which cancels
    the rounding of u. (math.expm1 becomes exp(x) - 1 in convert-math-to-llvm: no digits left near 0.)"""
    u = math.exp(x)
    um1 = arith.subf(u, _const(x, 1))
    ratio = arith.divf(arith.mulf(um1, x), math.log(u))
    inf = _cmp(P.OEQ, u, _const(x, float("inf")))
    return _select(_cmp(P.OEQ, u, _const(x, 1)), x, _select(_cmp(P.OEQ, um1, _const(x, -1)), _const(x, -1),
                                                           _select(inf, u, ratio)))


def _np_erf(x: np.ndarray) -> np.ndarray:
    """erf by the C library (NumPy has none): the reference the compiled erf must match."""
    import math as pymath
    return np.vectorize(pymath.erf, otypes=[x.dtype])(x) if x.size else x.copy()


def _np_sigmoid(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return (1 / (1 + np.exp(-x))).astype(x.dtype)


def _np_softplus(x: np.ndarray) -> np.ndarray:
    return (np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))).astype(x.dtype)


elementwise("sigmoid", 1, _np_sigmoid,
            lambda x: arith.divf(_const(x, 1), arith.addf(_const(x, 1), math.exp(arith.negf(x)))),
            (lambda x, y, a: y * (1.0 - y),))
elementwise("relu", 1, lambda x: ieee_maximum(x, x.dtype.type(0)).astype(x.dtype),
            lambda x: arith.maximumf(x, _const(x, 0)),
            (lambda x, y, a: greater(x, 0.0),))
elementwise("softplus", 1, _np_softplus, lambda x: arith.addf(
    arith.maximumf(x, _const(x, 0)), math.log1p(math.exp(arith.negf(math.absf(x))))),
    (lambda x, y, a: sigmoid(x),))
elementwise("stop_gradient", 1, lambda x: x.copy(), lambda x: x, (None,))
elementwise("clamp", 1, lambda x, lo, hi: ieee_minimum(ieee_maximum(x, x.dtype.type(lo)), x.dtype.type(hi)),
            lambda x, lo, hi: arith.minimumf(arith.maximumf(x, _const(x, lo)), _const(x, hi)),
            (lambda x, y, a: 1.0 - greater(a["lo"], x) - greater(x, a["hi"]),),
            attrs={"lo": "float", "hi": "float"})

# ---- binary
elementwise("add", 2, np.add, lambda a, b: arith.addf(a, b), jvp=(lambda t, a, b, y, at: t,) * 2,
            vjp=(lambda g, a, b, y, at: g,) * 2)
elementwise("sub", 2, np.subtract, lambda a, b: arith.subf(a, b),
            jvp=(lambda t, a, b, y, at: t, lambda t, a, b, y, at: -t),
            vjp=(lambda g, a, b, y, at: g, lambda g, a, b, y, at: -g))
elementwise("mul", 2, np.multiply, lambda a, b: arith.mulf(a, b), (lambda a, b, y, at: b, lambda a, b, y, at: a))
elementwise("div", 2, np.divide, lambda a, b: arith.divf(a, b),
            (lambda a, b, y, at: 1.0 / b, lambda a, b, y, at: -y / b))
elementwise("pow", 2, np.power, lambda a, b: math.powf(a, b),
            (lambda a, b, y, at: b * pow(a, b - 1.0), lambda a, b, y, at: log(a) * y))


def _tie_mask(a: Tensor, b: Tensor) -> Tensor:
    """1 where a wins, 1/2 on ties, 0 where b wins: the subgradient JAX uses for maximum."""
    return greater(a, b) + 0.5 * equal(a, b)


elementwise("maximum", 2, ieee_maximum, lambda a, b: arith.maximumf(a, b),
            (lambda a, b, y, at: _tie_mask(a, b), lambda a, b, y, at: _tie_mask(b, a)))
elementwise("minimum", 2, ieee_minimum, lambda a, b: arith.minimumf(a, b),
            (lambda a, b, y, at: _tie_mask(b, a), lambda a, b, y, at: _tie_mask(a, b)))


def _indicator(pred: arith.CmpFPredicate) -> Callable[..., ir.Value]:
    return lambda a, b: arith.uitofp(a.type, _cmp(pred, a, b))


elementwise("greater", 2, lambda a, b: np.greater(a, b).astype(a.dtype), _indicator(P.OGT), (None, None))
elementwise("equal", 2, lambda a, b: np.equal(a, b).astype(a.dtype), _indicator(P.OEQ), (None, None))
elementwise("greater_equal", 2, lambda a, b: np.greater_equal(a, b).astype(a.dtype), _indicator(P.OGE),
            (None, None))
elementwise("not_equal", 2, lambda a, b: np.not_equal(a, b).astype(a.dtype), _indicator(P.UNE), (None, None))

# where(cond, a, b): a where cond is nonzero (a 0/1 mask from the comparisons), else b. The branch not
# taken gets a zero cotangent; as in JAX, a nan that its own derivative makes (log at 0) still shows:
# mask that branch's input too
register(OpDef(
    "where", ("cond", "lhs", "rhs"), _same, lambda c, a, b: np.where(c != 0, a, b),
    jvp=(None, lambda t, c, a, b, y, at: where(c, t, 0.0), lambda t, c, a, b, y, at: where(c, 0.0, t)),
    vjp=(None, lambda g, c, a, b, y, at: where(c, g, 0.0), lambda g, c, a, b, y, at: where(c, 0.0, g)),
    elementwise=lambda c, a, b: _select(_cmp(P.UNE, c, _const(c, 0)), a, b)))

# ---- front end
(neg, square, sqrt, abs, sign, exp, log, sin, cos, tanh, erf, log1p, expm1, sigmoid, relu,  # noqa: A001 - NumPy's
 softplus, stop_gradient) = map(unary, ("neg", "square", "sqrt", "abs", "sign", "exp", "log", "sin", "cos", "tanh",
                                        "erf", "log1p", "expm1", "sigmoid", "relu", "softplus", "stop_gradient"))
add, sub, mul, div, pow, maximum, minimum, greater, equal, greater_equal, not_equal = map(  # noqa: A001
    binary, ("add", "sub", "mul", "div", "pow", "maximum", "minimum", "greater", "equal", "greater_equal",
             "not_equal"))


def less(a: Any, b: Any) -> Tensor:
    """1.0 where a < b, else 0.0 (lean.greater with the operands swapped)."""
    return greater(b, a)


def less_equal(a: Any, b: Any) -> Tensor:
    """1.0 where a <= b, else 0.0 (lean.greater_equal with the operands swapped)."""
    return greater_equal(b, a)


def where(cond: Any, a: Any, b: Any) -> Tensor:
    """NumPy's where with broadcasting: `a` where `cond` is nonzero (or True), else `b` (lean.where).
    Comparisons give 0/1 masks of the operands' float type; a NumPy bool array serves as a constant."""
    values = [v for v in (a, b, cond) if isinstance(v, Tensor)]
    if not values:
        raise TypeError("where: at least one operand must be a traced value")
    like = next((v for v in (a, b) if isinstance(v, Tensor)), values[0])
    shape = broadcast_shapes(*[v.shape if isinstance(v, Tensor) else np.shape(v) for v in (cond, a, b)])
    from .shape import broadcast_to
    operands = []
    for v in (cond, a, b):
        if isinstance(v, Tensor):
            if v.dtype != like.dtype:
                raise ShapeError(f"where: element types differ: {v.dtype} and {like.dtype} (no implicit promotion)")
            operands.append(broadcast_to(v, shape))
        else:
            operands.append(constant(_number(v).astype(np.float64), Spec(shape, like.dtype)))
    return emit("where", operands)


def clamp(x: Tensor, lo: float, hi: float) -> Tensor:
    """Elementwise `clip(x, lo, hi)` with Python-number bounds (lean.clamp)."""
    if not lo <= hi:
        raise ValueError(f"clamp: lo must be <= hi, got lo={lo}, hi={hi}")
    return emit("clamp", [x], lo=float(lo), hi=float(hi))




# ---- constants: the value attribute's type is the result type
def _constant_infer(value: np.ndarray) -> Spec:
    return Spec.of_array(np.asarray(value))


def _lower_constant(ops: list[ir.Value], t: ir.RankedTensorType, value: np.ndarray) -> ir.Value:
    v = np.asarray(value, DTYPES[str(t.element_type)]).reshape(t.shape)
    if v.size and not np.isnan(v.flat[0]) and np.all(v == v.flat[0]):
        attr = ir.DenseElementsAttr.get_splat(t, ir.FloatAttr.get(t.element_type, float(v.flat[0])))
    else:
        attr = ir.DenseElementsAttr.get(np.ascontiguousarray(v), type=t)
    return arith.constant(t, attr)


register(OpDef("constant", (), _constant_infer, lambda value: np.array(value), jvp=(), vjp=(),
               attrs={"value": "dense"}, lower=_lower_constant))
