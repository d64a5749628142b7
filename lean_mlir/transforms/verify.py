"""`lm.verify`: what IRDL cannot check (shapes, element types, attribute values), with MLIR-style diagnostics."""

from __future__ import annotations

from mlir import ir

from ..irutils.walk import walk
from ..ops import ShapeError, Spec, lookup


class VerificationError(ValueError):
    """Malformed or ill-typed IR. `diagnostics` holds one `file:line:col: error: ...` string per problem."""

    def __init__(self, diagnostics: list[str]) -> None:
        super().__init__("\n".join(diagnostics))
        self.diagnostics = diagnostics


def format_location(loc: ir.Location) -> str:
    """`loc("f.py":3:1)` -> `f.py:3:1`, as MLIR prints diagnostics."""
    text = str(loc)
    if text.startswith("loc(") and text.endswith(")"):
        text = text[4:-1]
    return text.replace('"', "") if text != "unknown" else "<unknown>"


def check_lean_op(op: ir.Operation) -> None:
    """Raise ShapeError if a lean op's operands, attributes or result type break its rule."""
    opdef = lookup(op.name)
    attrs = opdef.attrs_from_op(op)
    specs = [Spec.of_type(v.type) for v in op.operands]
    if len(op.results) != 1:
        raise ShapeError(f"expects one result, got {len(op.results)}")
    actual = Spec.of_type(op.results[0].type)
    extra = {"shape": actual.shape} if opdef.shape_from_result else {}
    expected = opdef.infer(*specs, **attrs, **extra)
    if expected != actual:
        raise ShapeError(f"result type should be {expected.mlir_type()}, got {op.results[0].type}")


def verify(module: ir.Module | ir.Operation) -> None:
    """Verify upstream/IRDL constraints, then every lean op's shape rule. Raises VerificationError."""
    root = module.operation
    try:
        root.verify()
    except ir.MLIRError as e:
        raise VerificationError([_mlir_error_text(e)]) from None
    diagnostics = []
    for op in walk(root):
        if op.name.startswith("lean."):
            try:
                check_lean_op(op)
            except (ShapeError, KeyError) as e:
                msg = e.args[0] if e.args else str(e)
                diagnostics.append(f"{format_location(op.location)}: error: '{op.name}' op {msg}")
    if diagnostics:
        raise VerificationError(diagnostics)


def _mlir_error_text(e: ir.MLIRError) -> str:
    parts = [f"{format_location(d.location)}: error: {d.message}" for d in e.error_diagnostics]
    return "\n".join(parts) or str(e)
