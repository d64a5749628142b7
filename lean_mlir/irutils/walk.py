"""Walking and function lookup: the one copy of each helper the passes and back ends share."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from mlir import ir

Module = ir.Module | ir.Operation  # a module, or the builtin.module op a pass receives


def operation(op: ir.Module | ir.Operation | ir.OpView) -> ir.Operation:
    return op.operation if not isinstance(op, ir.Operation) else op


def walk(root: ir.Module | ir.Operation | ir.OpView, names: str | Iterable[str] | None = None,
         where: Callable[[ir.Operation], bool] | None = None) -> list[ir.Operation]:
    """The ops nested in `root` (and `root` itself) in pre-order, optionally only those named in
    `names` or satisfying `where`. MLIR's own walker: no Python recursion, however deep the IR."""
    wanted = {names} if isinstance(names, str) else None if names is None else set(names)
    found: list[ir.Operation] = []

    def visit(op: ir.Operation) -> ir.WalkResult:
        if (wanted is None or op.name in wanted) and (where is None or where(op)):
            found.append(op)
        return ir.WalkResult.ADVANCE

    operation(root).walk(visit, ir.WalkOrder.PRE_ORDER)
    return found


def body(module: Module) -> ir.Block:
    return module.body if isinstance(module, ir.Module) else module.regions[0].blocks[0]


def symbol_name(op: ir.Operation | ir.OpView) -> str:
    return ir.StringAttr(operation(op).attributes["sym_name"]).value


def is_public(op: ir.Operation | ir.OpView) -> bool:
    attrs = operation(op).attributes
    return "sym_visibility" not in attrs or ir.StringAttr(attrs["sym_visibility"]).value == "public"


def has_body(op: ir.Operation | ir.OpView) -> bool:
    return len(operation(op).regions[0].blocks) > 0


def funcs(module: Module, *, defined: bool = False, public: bool = False) -> list[ir.Operation]:
    """The top-level `func.func`s (only those with a body / only public ones when asked)."""
    return [op.operation for op in body(module).operations
            if op.operation.name == "func.func" and (not defined or has_body(op))
            and (not public or is_public(op))]


def find_func(module: Module, name: str) -> ir.Operation:
    """`func.func @name`; a KeyError naming the functions the module has."""
    fs = funcs(module)
    for f in fs:
        if symbol_name(f) == name:
            return f
    have = ", ".join("@" + symbol_name(f) for f in fs) or "none"
    raise KeyError(f"no function @{name} in the module (have {have})")


def symbols(module: Module) -> dict[str, ir.Operation]:
    """Top-level symbol name -> op."""
    return {symbol_name(op): op.operation for op in body(module).operations
            if "sym_name" in op.operation.attributes}
