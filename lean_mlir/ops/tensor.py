"""Traced values: `Tensor` wraps an SSA value of a lean function being built, with NumPy-like
operators; `emit` runs an op's shape rule and inserts the op. The op table's functions and its
derivative rules are written with this API, and tracing (lean_mlir.trace) hands it to user code.
"""

from __future__ import annotations

import contextlib
import inspect
import math
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
from mlir import ir

from .core import ShapeError, Spec, lookup

# The op table's front-end functions by name (lm.add, lm.sum, ...), which Tensor's operators call.
API: dict[str, Callable[..., Any]] = {}

_PKG_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_state = threading.local()


class TraceError(ShapeError):
    """A shape/dtype error found while tracing; the message names the op and the user's line."""


def _user_location() -> ir.Location | None:
    """Location of the innermost frame outside lean_mlir, while tracing a user's function."""
    if not getattr(_state, "user_trace", False):
        return None
    frame = inspect.currentframe()
    while frame is not None:
        fname = frame.f_code.co_filename
        if not os.path.abspath(fname).startswith(_PKG_DIR):
            return ir.Location.file(fname, frame.f_lineno, 1)
        frame = frame.f_back
    return None


def _binary(name: str, reflected: bool = False) -> Callable[[Tensor, Any], Tensor]:
    """The operator method `a <op> b` (or `b <op> a` for a reflected one) calling API[name]."""
    if reflected:
        return lambda self, other: API[name](other, self)
    return lambda self, other: API[name](self, other)


class Tensor:
    """A traced value: an SSA value of tensor type with NumPy-like operators."""

    __array_priority__ = 1000  # numpy scalars/arrays defer to our reflected operators

    def __init__(self, value: ir.Value) -> None:
        self.value = value
        self.spec = Spec.of_type(value.type)

    shape = property(lambda self: self.spec.shape)
    dtype = property(lambda self: self.spec.dtype)
    ndim = property(lambda self: self.spec.rank)

    def __repr__(self) -> str:
        return f"Tensor({self.spec})"

    def __bool__(self) -> bool:
        raise TypeError("a traced Tensor has no truth value; use lm.maximum/lm.greater etc. instead of `if`")

    # `==` would otherwise compare the Python objects and answer a bool, silently
    def __eq__(self, other: object) -> bool:
        raise TypeError("`==` on traced values is not elementwise; use lm.equal(a, b)")

    def __ne__(self, other: object) -> bool:
        raise TypeError("`!=` on traced values is not elementwise; use 1 - lm.equal(a, b)")

    __hash__ = object.__hash__

    # Every operator and method, each calling the op table's function of that name (`API`, filled
    # by lean_mlir/ops/__init__.py once every stanza module has defined its functions).
    __add__, __radd__ = _binary("add"), _binary("add", reflected=True)
    __sub__, __rsub__ = _binary("sub"), _binary("sub", reflected=True)
    __mul__, __rmul__ = _binary("mul"), _binary("mul", reflected=True)
    __truediv__, __rtruediv__ = _binary("div"), _binary("div", reflected=True)
    __matmul__, __rmatmul__ = _binary("matmul"), _binary("matmul", reflected=True)
    __rpow__ = _binary("pow", reflected=True)

    def __pow__(self, o: Any) -> Tensor:
        return API["square"](self) if isinstance(o, int | float) and o == 2 else API["pow"](self, o)

    def __neg__(self) -> Tensor:
        return API["neg"](self)

    def __pos__(self) -> Tensor:
        return self

    def __abs__(self) -> Tensor:
        return API["abs"](self)

    def __getitem__(self, key: Any) -> Tensor:
        """NumPy indexing: x[i], x[a:b], x[:, ::2], x[::-1], x[..., None], negative indices, one constant
        integer array (x[[2, 0]]); an IndexError names the user's line."""
        try:
            return API["getitem"](self, key)
        except IndexError as e:
            loc = _user_location()
            if loc is None:
                raise
            raise IndexError(f"{e} at {_format_loc(loc)}") from None

    def __len__(self) -> int:
        if not self.shape:
            raise TypeError("len() of a rank-0 traced value")
        return self.shape[0]

    size = property(lambda self: math.prod(self.shape))

    @property
    def T(self) -> Tensor:  # noqa: N802 - NumPy's name
        return API["transpose"](self)

    def reshape(self, *shape: Any) -> Tensor:
        return API["reshape"](self, shape[0] if len(shape) == 1 else shape)

    def transpose(self, *axes: Any) -> Tensor:
        """NumPy's: no axes reverses them; axes as one tuple or as arguments."""
        return API["transpose"](self, axes[0] if len(axes) == 1 and not isinstance(axes[0], int) else axes or None)

    def swapaxes(self, a: int, b: int) -> Tensor:
        return API["swapaxes"](self, a, b)

    def astype(self, dtype: Any) -> Tensor:
        try:
            name = dtype if dtype in ("f32", "f64") else {"float32": "f32", "float64": "f64"}.get(np.dtype(dtype).name)
        except TypeError:
            name = None
        if name is None:
            raise TypeError(f"astype: expected f32 or f64 (or a NumPy float dtype), got {dtype!r}")
        if name != self.dtype:
            raise TypeError(f"astype({name}) of a {self.dtype} value: lean has no conversion op yet")
        return self

    # the unary math functions as methods (x.exp(), x.tanh(), ...), as NumPy arrays and torch tensors have
    for _name in ("exp", "log", "sin", "cos", "tanh", "sqrt", "abs", "sign", "sigmoid", "relu", "softplus", "square",
                  "erf", "log1p", "expm1"):
        locals()[_name] = (lambda name: lambda self: API[name](self))(_name)
    del _name

    def clip(self, lo: float, hi: float) -> Tensor:
        return API["clamp"](self, lo, hi)

    def sum(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Tensor:
        return API["sum"](self, axis, keepdims)

    def mean(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Tensor:
        return API["mean"](self, axis, keepdims)

    def max(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Tensor:
        return API["max"](self, axis, keepdims)

    def min(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Tensor:
        return API["min"](self, axis, keepdims)

    def var(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False, ddof: int = 0) -> Tensor:
        return API["var"](self, axis, keepdims, ddof)

    def std(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False, ddof: int = 0) -> Tensor:
        return API["std"](self, axis, keepdims, ddof)

    def cumsum(self, axis: int = -1) -> Tensor:
        return API["cumsum"](self, axis)

    def squeeze(self, axis: int | Sequence[int] | None = None) -> Tensor:
        return API["squeeze"](self, axis)


def expect_tensor(x: Any, name: str, i: int = 0) -> Tensor:
    """`x` if it is a traced value, else a TypeError naming the op and the operand."""
    if not isinstance(x, Tensor):
        raise TypeError(f"lean.{name}: operand {i} must be a traced value (lm.Tensor), got {type(x).__name__}; "
                        "ops apply to the traced function's arguments and values computed from them")
    return x


def emit(name: str, operands: Sequence[Tensor], shape: Sequence[int] | None = None, **attrs: Any) -> Tensor:
    """Insert `lean.<name>(operands) {attrs}` at the current insertion point."""
    op = lookup(name)
    for i, o in enumerate(operands):
        expect_tensor(o, name, i)
    specs = [o.spec for o in operands]
    extra = {"shape": tuple(shape)} if op.shape_from_result else {}
    try:
        result = op.infer(*specs, **attrs, **extra)
    except ShapeError as e:
        loc = _user_location()
        where = f" at {_format_loc(loc)}" if loc is not None else ""
        shapes = ", ".join(str(s) for s in specs)
        raise TraceError(f"lean.{name}: {e} (operands: {shapes}){where}") from None
    loc = _user_location() or ir.Location.current
    res = ir.Operation.create(op.full_name, results=[result.mlir_type()], operands=[o.value for o in operands],
                              attributes=op.attrs_to_mlir(attrs), loc=loc)
    return Tensor(res.result)


def _format_loc(loc: ir.Location) -> str:
    return str(loc).removeprefix("loc(").removesuffix(")").replace('"', "")


def constant(value: Any, like: Tensor | Spec) -> Tensor:
    """A constant with the shape and dtype of `like` (scalars are splatted)."""
    spec = like.spec if isinstance(like, Tensor) else like
    arr = np.asarray(value, dtype=spec.np_dtype)
    if arr.shape != spec.shape:
        arr = np.broadcast_to(arr, spec.shape)
    if arr.size and np.all(arr == arr.flat[0]) and not np.isnan(arr.flat[0]):
        attr = ir.DenseElementsAttr.get_splat(spec.mlir_type(), ir.FloatAttr.get(
            spec.mlir_type().element_type, float(arr.flat[0])))
    else:
        attr = ir.DenseElementsAttr.get(np.ascontiguousarray(arr), type=spec.mlir_type())
    loc = _user_location() or ir.Location.current
    res = ir.Operation.create("lean.constant", results=[spec.mlir_type()], attributes={"value": attr}, loc=loc)
    return Tensor(res.result)


def as_tensor(x: Any, like: Tensor) -> Tensor:
    """Python and NumPy scalars/arrays become constants of `like`'s dtype; Tensors pass through."""
    if isinstance(x, Tensor):
        return x
    arr = np.asarray(x)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"cannot use a {type(x).__name__} as a lean value")
    return constant(arr, Spec(arr.shape, like.dtype))


def broadcast_shapes(*shapes: tuple[int, ...]) -> tuple[int, ...]:
    try:
        return tuple(np.broadcast_shapes(*shapes))
    except ValueError:
        raise ShapeError(f"shapes {', '.join(map(str, shapes))} do not broadcast") from None


@contextlib.contextmanager
def user_code() -> Iterator[None]:
    """While tracing a user's function: ops get the location of the user's line."""
    previous = getattr(_state, "user_trace", False)
    _state.user_trace = True
    try:
        yield
    finally:
        _state.user_trace = previous


def trace_error(name: str, e: Exception) -> TraceError:
    """A TraceError for op `name` that names the user's line, when tracing one."""
    loc = _user_location()
    return TraceError(f"lean.{name}: {e}" + (f" at {_format_loc(loc)}" if loc is not None else ""))
