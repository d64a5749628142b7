"""Small builders of LLVM-dialect IR (each needs an insertion point, a context and a location), for
the runtime functions the back ends define after conversion to the LLVM dialect."""

from __future__ import annotations

from collections.abc import Sequence

from mlir import ir
from mlir.dialects import llvm


def signature(text: str) -> ir.TypeAttr:
    """`"void (ptr, i64)"` -> the `!llvm.func<...>` type attribute of an llvm.func."""
    return ir.TypeAttr.get(ir.Type.parse(f"!llvm.func<{text}>"))


def _function(name: str, sig: ir.TypeAttr, attributes: Sequence[str], linkage: str | None = None) -> llvm.LLVMFuncOp:
    """An `llvm.func` with LLVM function attributes (`passthrough`, e.g. "returns_twice")."""
    f = llvm.LLVMFuncOp(name, sig, linkage=ir.Attribute.parse(f"#llvm.linkage<{linkage}>") if linkage else None)
    if attributes:
        f.attributes["passthrough"] = ir.ArrayAttr.get([ir.StringAttr.get(a) for a in attributes])
    return f


def declare(name: str, text: str, attributes: Sequence[str] = ()) -> llvm.LLVMFuncOp:
    """An external function `name` of signature `text` (see `signature`)."""
    return _function(name, signature(text), attributes)


def define(name: str, sig: ir.TypeAttr, params: list[ir.Type], blocks: int = 1,
           attributes: Sequence[str] = (), linkage: str = "internal") -> list[ir.Block]:
    """An `llvm.func` (internal unless asked) with `blocks` empty blocks, the entry one taking `params`."""
    f = _function(name, sig, attributes, linkage)
    return [f.body.blocks.append(*params)] + [f.body.blocks.append() for _ in range(blocks - 1)]


def call(callee: str, args: list[ir.Value], result: ir.Type | None = None) -> ir.Value | None:
    op = llvm.CallOp(result, args, [], [], callee=ir.FlatSymbolRefAttr.get(callee))
    return op.result if result is not None else None


def integer(value: int, bits: int = 64) -> ir.Value:
    t = ir.IntegerType.get_signless(bits)
    return llvm.ConstantOp(t, ir.IntegerAttr.get(t, value)).result


def field(struct_ptr: ir.Value, struct: ir.Type, i: int) -> ir.Value:
    """The address of field `i` of the `struct` at `struct_ptr`."""
    return llvm.GEPOp(llvm.PointerType.get(), struct_ptr, [], [0, i], ir.TypeAttr.get(struct), None).result
