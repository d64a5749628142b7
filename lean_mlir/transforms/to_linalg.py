"""lean-to-linalg: rewrite every `lean.*` op into linalg / tensor / arith / math on tensors.

The walker is generic over the rule table: for each lean op it looks up the OpDef and calls its
`lower(operands, result_type, **attrs)` (built next to the op's stanza in lean_mlir/ops with the
builders of `lean_mlir.irutils.builders`) or, for an elementwise op, `lower_elementwise` driven by
`OpDef.elementwise`.
"""

from __future__ import annotations

from typing import Any

from mlir import ir

from ..irutils.builders import lower_elementwise
from ..irutils.walk import walk
from ..ops import lookup  # the package: every stanza registered
from .verify import verify


class LoweringError(NotImplementedError):
    """A lean op has no lowering to linalg."""


def lower_op(op: ir.Operation) -> ir.Value:
    """Build the linalg form of one lean op before it and return the value that replaces it."""
    d = lookup(op.name)
    attrs = d.attrs_from_op(op)
    result_type = ir.RankedTensorType(op.results[0].type)
    with ir.InsertionPoint(op), op.location:
        if d.lower is not None:
            return d.lower(list(op.operands), result_type, **attrs)
        if d.elementwise is not None:
            return lower_elementwise(d.elementwise, list(op.operands), result_type, **attrs)
    raise LoweringError(f"op '{op.name}' has no lowering to linalg (neither `lower` nor `elementwise`)")


def _rewrite(root: ir.Operation, verified: bool = False) -> None:
    # Never on unverified lean IR (`lean-mlir-opt --no-verify`): a lowering trusts its op's rule, and
    # an out-of-range axis reached an LLVM assertion (abort) instead of an error.
    if not verified:
        verify(root)
    # Program order: an op's operands are already replaced by their lowered values when it is reached.
    for op in walk(root, where=lambda o: o.name.startswith("lean.")):
        new = lower_op(op)
        if not isinstance(new, ir.Value):
            raise LoweringError(f"lowering of '{op.name}' returned {type(new).__name__}, not an ir.Value")
        if new.type != op.results[0].type:
            raise LoweringError(f"lowering of '{op.name}' produced {new.type}, expected {op.results[0].type}")
        op.results[0].replace_all_uses_with(new)
        op.erase()


def lower_lean_to_linalg(module: ir.Module, *, verified: bool = False) -> None:
    """Rewrite every lean op in `module` in place into linalg / tensor / arith / math; it is verified
    first unless the caller has just done so (`verified=True`)."""
    _rewrite(module.operation, verified)


def lean_to_linalg_pass(op: ir.Operation, pass_: Any) -> None:
    """PassManager entry: `pm.add(lean_to_linalg_pass, name="lean-to-linalg")` (builtin.module)."""
    _rewrite(op.operation if hasattr(op, "operation") else op)
