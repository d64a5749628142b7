"""Tracing: Python functions over traced values become `func.func` bodies of lean ops.

`Tensor` wraps an SSA value; its operators and the named functions of the ops modules call `emit`,
which runs the op's shape rule, inserts the op at the current insertion point and returns a new
Tensor. The derivative rules use the same API, so a rule is ordinary lean-building Python code.
"""

from __future__ import annotations

import inspect
import os
import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from mlir import ir
from mlir.dialects import func

from .ops.core import DTYPES, ShapeError, Spec, lookup

_PKG_DIR = os.path.dirname(os.path.abspath(__file__))
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

    # operators: implemented in the ops modules, bound in lean_mlir/ops/__init__.py
    def __bool__(self) -> bool:
        raise TypeError("a traced Tensor has no truth value; use lm.maximum/lm.greater etc. instead of `if`")


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


def to_spec(s: Any) -> Spec:
    """A Spec from a Spec, a NumPy array, or a (shape, dtype) pair."""
    if isinstance(s, Spec):
        return s
    if isinstance(s, np.ndarray):
        return Spec.of_array(s)
    if isinstance(s, tuple) and len(s) == 2 and isinstance(s[1], str):
        return Spec(s[0], s[1])
    raise TypeError(f"expected an lm.Spec, a NumPy array or (shape, dtype), got {s!r}")


def trace(fn: Callable[..., Any], specs: Sequence[Any], name: str = "f",
          module: ir.Module | None = None) -> func.FuncOp:
    """Trace `fn` over inputs of `specs` into `func.func @name` appended to `module`.

    Must be called inside a lean Context. Returns the FuncOp. `fn` may return one value or a tuple.
    """
    specs = [to_spec(s) for s in specs]
    module = module or ir.Module.create()
    with ir.InsertionPoint(module.body), ir.Location.unknown():
        f = func.FuncOp(name, ([s.mlir_type() for s in specs], []))
        f.add_entry_block()
        block = f.entry_block
        previous = getattr(_state, "user_trace", False)
        _state.user_trace = True
        try:
            with ir.InsertionPoint(block):
                out = fn(*[Tensor(a) for a in block.arguments])
                outs = list(out) if isinstance(out, tuple | list) else [out]
                if not outs or not all(isinstance(o, Tensor) for o in outs):
                    raise TypeError(f"the traced function must return traced values, got {out!r}")
                func.ReturnOp([o.value for o in outs])
        finally:
            _state.user_trace = previous
        f.attributes["function_type"] = ir.TypeAttr.get(
            ir.FunctionType.get([s.mlir_type() for s in specs], [o.value.type for o in outs]))
    return f


def trace_ir(fn: Callable[..., Any], *specs: Any, name: str | None = None) -> str:
    """The verified lean IR of `fn` traced over `specs`: a module holding `func.func @name`
    (default: the function's own name)."""
    from .context import make_context
    from .verify import verify

    with make_context(), ir.Location.unknown():
        module = ir.Module.create()
        trace(fn, specs, name or getattr(fn, "__name__", "f"), module)
        verify(module)
        return str(module)


def broadcast_shapes(*shapes: tuple[int, ...]) -> tuple[int, ...]:
    try:
        return tuple(np.broadcast_shapes(*shapes))
    except ValueError:
        raise ShapeError(f"shapes {', '.join(map(str, shapes))} do not broadcast") from None


__all__ = ["DTYPES", "Tensor", "TraceError", "as_tensor", "broadcast_shapes", "constant", "emit", "expect_tensor",
           "trace"]
