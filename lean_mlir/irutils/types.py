"""Element types and function signatures: the one table of dtypes and the one reader of signatures."""

from __future__ import annotations

import numpy as np
from mlir import ir

from .walk import Module, funcs, symbol_name

# Element type name (as MLIR prints it) -> NumPy dtype.
DTYPES: dict[str, np.dtype] = {"f32": np.dtype(np.float32), "f64": np.dtype(np.float64)}

TensorSpec = tuple[tuple[int, ...], np.dtype]  # shape, dtype of one argument or result
Signature = tuple[list[TensorSpec], list[TensorSpec]]  # inputs, outputs


class SignatureError(TypeError):
    """A function argument or result that is not a statically shaped tensor of a known element type."""


def element_name(t: ir.Type) -> str | None:
    """"f32" / "f64" for those element types, else None."""
    name = str(t)
    return name if name in DTYPES else None


def element_type(name: str) -> ir.Type:
    """The MLIR type of an element type name (needs a Context)."""
    return {"f32": ir.F32Type.get, "f64": ir.F64Type.get}[name]()


def tensor_spec(t: ir.Type, where: str) -> TensorSpec:
    if not (isinstance(t, ir.RankedTensorType) and t.has_static_shape):
        raise SignatureError(f"{where}: expected a statically shaped ranked tensor, got {t}")
    name = element_name(t.element_type)
    if name is None:
        raise SignatureError(f"{where}: element type {t.element_type} is not one of {', '.join(DTYPES)}")
    return tuple(t.shape), DTYPES[name]


def function_type(f: ir.Operation) -> ir.FunctionType:
    return ir.FunctionType(ir.TypeAttr(f.attributes["function_type"]).value)


def signature(f: ir.Operation) -> Signature:
    """(inputs, outputs) of a func.func over tensors."""
    name, ftype = symbol_name(f), function_type(f)
    return ([tensor_spec(t, f"@{name} argument {i}") for i, t in enumerate(ftype.inputs)],
            [tensor_spec(t, f"@{name} result {i}") for i, t in enumerate(ftype.results)])


def signatures(module: Module) -> dict[str, Signature]:
    """Signatures of every public, defined func.func, read from the tensor-level types (before a
    back end rewrites them to out-params)."""
    return {symbol_name(f): signature(f) for f in funcs(module, defined=True, public=True)}
