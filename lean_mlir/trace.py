"""The front end: a Python function over traced values (`lm.Tensor`, lean_mlir.ops.tensor) becomes a
`func.func` of lean ops."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from mlir import ir
from mlir.dialects import func

from .irutils.context import make_context
from .ops import Spec, Tensor, TraceError, user_code
from .transforms.verify import verify


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
        with user_code(), ir.InsertionPoint(block):
            out = fn(*[Tensor(a) for a in block.arguments])
            outs = list(out) if isinstance(out, tuple | list) else [out]
            if not outs or not all(isinstance(o, Tensor) for o in outs):
                raise TypeError(f"the traced function must return traced values, got {out!r}")
            func.ReturnOp([o.value for o in outs])
        f.attributes["function_type"] = ir.TypeAttr.get(
            ir.FunctionType.get([s.mlir_type() for s in specs], [o.value.type for o in outs]))
    return f


def trace_ir(fn: Callable[..., Any], *specs: Any, name: str | None = None) -> str:
    """The verified lean IR of `fn` traced over `specs`: a module holding `func.func @name`
    (default: the function's own name)."""
    with make_context(), ir.Location.unknown():
        module = ir.Module.create()
        trace(fn, specs, name or getattr(fn, "__name__", "f"), module)
        verify(module)
        return str(module)


__all__ = ["Tensor", "TraceError", "to_spec", "trace", "trace_ir"]
