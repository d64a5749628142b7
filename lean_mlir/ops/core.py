"""The rule table: one `OpDef` per lean op, holding everything that knows about that op.

An OpDef has the op's shape rule, its NumPy semantics, its JVP and VJP rules (one per operand,
written with lean ops through the traced-value API) and its lowering to linalg. The stanzas live in
the sibling modules (elementwise.py, reduce.py, shape.py, contract.py, nn.py); the passes
(autodiff, lowering, the interpreter, the verifier) only ever look ops up here by name.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from mlir import ir

from ..irutils.types import DTYPES, element_type

# The largest tensor in bytes: sizes, offsets and malloc arguments are signed 64-bit in the generated code.
MAX_BYTES = 2**63 - 1


class ShapeError(ValueError):
    """An op was applied to operands whose shapes, dtypes or attributes do not fit it."""


@dataclass(frozen=True)
class Spec:
    """Shape and element type of a tensor; a rank-0 Spec is a scalar."""

    shape: tuple[int, ...]
    dtype: str = "f32"

    def __post_init__(self) -> None:
        shape = tuple(self.shape) if isinstance(self.shape, tuple | list) else (self.shape,)
        bad = [d for d in shape if isinstance(d, bool) or not isinstance(d, int | np.integer)]
        if bad:
            raise TypeError(f"dimensions must be integers, got {bad[0]!r} in shape {shape}")
        object.__setattr__(self, "shape", tuple(int(d) for d in shape))
        if self.dtype not in DTYPES:
            raise TypeError(f"element type must be one of {sorted(DTYPES)}, got {self.dtype!r}")
        if any(d < 0 for d in self.shape):
            raise ShapeError(f"negative dimension in shape {self.shape}")
        # exact (Python int) arithmetic: a size that wraps at 2^64 must not pass for a small one
        if math.prod(self.shape) * DTYPES[self.dtype].itemsize > MAX_BYTES:
            raise ShapeError(f"shape {self.shape} of {self.dtype} holds {math.prod(self.shape)} elements, more than "
                             f"a 64-bit index can address ({MAX_BYTES} bytes)")

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def np_dtype(self) -> np.dtype:
        return DTYPES[self.dtype]

    def mlir_type(self) -> ir.RankedTensorType:
        return ir.RankedTensorType.get(list(self.shape), element_type(self.dtype))

    @staticmethod
    def of_type(t: ir.Type) -> Spec:
        if not isinstance(t, ir.RankedTensorType):
            raise ShapeError(f"expected a ranked tensor type, got {t}")
        rt = ir.RankedTensorType(t)
        elt = str(rt.element_type)
        if elt not in DTYPES:
            raise ShapeError(f"element type must be f32 or f64, got {elt} in {t}")
        return Spec(tuple(rt.shape), elt)

    @staticmethod
    def of_array(a: np.ndarray) -> Spec:
        return Spec.of_dtype(a.shape, a.dtype)

    @staticmethod
    def of_dtype(shape: tuple[int, ...], dtype: np.dtype) -> Spec:
        for name, dt in DTYPES.items():
            if dtype == dt:
                return Spec(shape, name)
        raise TypeError(f"arrays must be float32 or float64, got {dtype}")

    def __str__(self) -> str:
        return f"{self.dtype}[{', '.join(map(str, self.shape))}]"


class _SpecFactory:
    """`lm.f32[8, 4]` and `lm.f64[()]` build Specs."""

    def __init__(self, dtype: str) -> None:
        self.dtype = dtype

    def __getitem__(self, shape: Any) -> Spec:
        if not isinstance(shape, tuple):
            shape = (shape,)
        return Spec(shape, self.dtype)


f32 = _SpecFactory("f32")
f64 = _SpecFactory("f64")


# ---- attributes: Python value <-> MLIR attribute, by kind
def _i64(v: int) -> ir.Attribute:
    return ir.IntegerAttr.get(ir.IntegerType.get_signless(64), int(v))


def _dense(a: np.ndarray) -> ir.Attribute:
    """A dense attribute of exactly `a`'s shape and element type."""
    name = next((n for n, dt in DTYPES.items() if dt == a.dtype), None)
    if name is None:
        return ir.DenseElementsAttr.get(a)
    return ir.DenseElementsAttr.get(a, type=ir.RankedTensorType.get(list(a.shape), element_type(name)))


ATTR_KINDS: dict[str, tuple[Callable[[Any], ir.Attribute], Callable[[ir.Attribute], Any]]] = {
    "ints": (lambda v: ir.DenseI64ArrayAttr.get([int(x) for x in v]),
             lambda a: tuple(ir.DenseI64ArrayAttr(a))),
    "int": (_i64, lambda a: ir.IntegerAttr(a).value),
    "bool": (lambda v: ir.BoolAttr.get(bool(v)), lambda a: ir.BoolAttr(a).value),
    "float": (lambda v: ir.FloatAttr.get_f64(float(v)), lambda a: ir.FloatAttr(a).value),
    "dense": (lambda v: _dense(np.asarray(v).copy(order="C")),  # (np.ascontiguousarray makes rank 0 rank 1)
              lambda a: np.array(ir.DenseElementsAttr(a))),
}


Rule = Callable[..., Any] | None


@dataclass
class OpDef:
    """Everything about one lean op. Rules receive `(t_or_g, *operands, y, attrs)` with traced values."""

    name: str
    operands: tuple[str, ...]
    infer: Callable[..., Spec]  # infer(*operand_specs, **attrs) -> result spec; raises ShapeError
    numpy: Callable[..., np.ndarray]  # numpy(*arrays, **attrs) -> array (the reference semantics)
    jvp: tuple[Rule, ...]  # per operand: (tangent, *operands, y, attrs) -> tangent contribution
    vjp: tuple[Rule, ...]  # per operand: (cotangent, *operands, y, attrs) -> operand cotangent
    attrs: dict[str, str] = field(default_factory=dict)  # attribute name -> kind in ATTR_KINDS
    shape_from_result: bool = False  # infer/numpy also take `shape=`, read from the result type
    elementwise: Callable[..., Any] | None = None  # scalar body builder for linalg.generic
    lower: Callable[..., Any] | None = None  # (operands, result_type, attrs) -> ir.Value

    @property
    def full_name(self) -> str:
        return f"lean.{self.name}"

    def attrs_to_mlir(self, attrs: dict[str, Any]) -> dict[str, ir.Attribute]:
        return {k: ATTR_KINDS[kind][0](attrs[k]) for k, kind in self.attrs.items()}

    def attrs_from_op(self, op: ir.Operation) -> dict[str, Any]:
        """The op's attributes as Python values; raises ShapeError naming a missing/ill-kinded one."""
        out = {}
        for k, kind in self.attrs.items():
            if k not in op.attributes:
                raise ShapeError(f"attribute {k!r} is missing")
            try:
                out[k] = ATTR_KINDS[kind][1](op.attributes[k])
            except (ValueError, TypeError) as e:
                raise ShapeError(f"attribute {k!r} must be of kind {kind}, got {op.attributes[k]}") from e
        return out


OPS: dict[str, OpDef] = {}


def register(op: OpDef) -> OpDef:
    if op.name in OPS:
        raise ValueError(f"op {op.name!r} registered twice")
    if len(op.jvp) != len(op.operands) or len(op.vjp) != len(op.operands):
        raise ValueError(f"op {op.name!r}: one JVP and one VJP rule per operand are required")
    OPS[op.name] = op
    return op


def lookup(full_name: str) -> OpDef:
    """The OpDef of `lean.<name>`; a KeyError that names the op if it has no rules."""
    name = full_name.removeprefix("lean.")
    try:
        return OPS[name]
    except KeyError:
        raise KeyError(f"op 'lean.{name}' has no entry in the rule table (lean_mlir/ops)") from None


# ---- shape helpers shared by the stanzas
def check(cond: bool, msg: str) -> None:
    if not cond:
        raise ShapeError(msg)


def same_dtype(*specs: Spec) -> str:
    dts = {s.dtype for s in specs}
    check(len(dts) == 1, f"element types differ: {', '.join(s.dtype for s in specs)}")
    return specs[0].dtype


def normalize_axis(axis: int, rank: int) -> int:
    check(isinstance(axis, int | np.integer) and not isinstance(axis, bool), f"axis {axis!r} is not an integer")
    check(rank > 0 and -rank <= axis < rank, f"axis {axis} is out of range for rank {rank}")
    return axis % rank


def normalize_axes(axes: Any, rank: int) -> tuple[int, ...]:
    """None -> all axes; ints are normalized, sorted and checked for duplicates."""
    if axes is None:
        return tuple(range(rank))
    if isinstance(axes, int | np.integer):
        axes = (int(axes),)
    out = tuple(sorted(normalize_axis(a, rank) for a in axes))
    check(len(set(out)) == len(out), f"repeated axis in {tuple(axes)}")
    return out


# ---- NumPy semantics shared by the stanzas. Signed zeros follow IEEE 754-2019 maximum / minimum,
# which the compiled code gets from arith.maximumf / minimumf: +0 > -0 whatever the operand order
# (np.maximum returns its second operand on a tie of zeros), NaN propagates.
def ieee_maximum(a: np.ndarray, b: Any) -> np.ndarray:
    r = np.maximum(a, b)
    return np.where((a == b) & (r == 0), a + b, r)  # -0 + +0 = +0, -0 + -0 = -0


def ieee_minimum(a: np.ndarray, b: Any) -> np.ndarray:
    r = np.minimum(a, b)
    return np.where((a == b) & (r == 0), -(-a + -b), r)


def ieee_max(x: np.ndarray, axis: Any = None, keepdims: bool = False) -> np.ndarray:
    """np.max with an IEEE tie of zeros: +0 if the reduced slice holds a +0."""
    r = np.max(x, axis=axis, keepdims=keepdims)
    plus_zero = np.any((x == 0) & ~np.signbit(x), axis=axis, keepdims=keepdims)
    return np.where((r == 0) & plus_zero, np.zeros_like(r), r)
