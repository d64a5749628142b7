"""What the derivative passes share: function creation, op replay, zeros, and lean-level CSE/DCE."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from mlir import ir
from mlir.dialects import func

from ...irutils.walk import Module, body, find_func, funcs, symbol_name
from ...ops import Spec, Tensor, constant


def body_ops(f: ir.Operation) -> tuple[list[ir.Operation], list[ir.Value]]:
    """The ops of a single-block function and the values it returns."""
    ops = [o.operation for o in f.regions[0].blocks[0].operations]
    ret = ops[-1]
    if ret.name != "func.return":
        raise ValueError(f"@{symbol_name(f)} does not end with func.return")
    for op in ops[:-1]:
        if not op.name.startswith("lean."):
            raise ValueError(f"@{symbol_name(f)}: derivatives need lean ops only, found '{op.name}'")
    return ops[:-1], list(ret.operands)


def new_function(module: Module, after: ir.Operation, name: str, inputs: Sequence[ir.Type],
                 results: Sequence[ir.Type]) -> func.FuncOp:
    """A new public function `@name` at the end of the module (replacing one of the same name)."""
    for existing in funcs(module):
        if symbol_name(existing) == name:
            existing.erase()
    with ir.InsertionPoint(body(module)), after.location:
        f = func.FuncOp(name, (list(inputs), list(results)))
    f.add_entry_block()
    return f


def replay(op: ir.Operation, operands: Sequence[Tensor]) -> Tensor:
    """A copy of `op` on new operands at the current insertion point."""
    new = ir.Operation.create(op.name, results=[op.results[0].type], operands=[o.value for o in operands],
                              attributes={k: op.attributes[k] for k in op.attributes}, loc=op.location)
    return Tensor(new.result)


def or_zeros(t: Tensor | None, type_: ir.Type) -> Tensor:
    """`t`, or a zero constant of `type_` where no derivative flows."""
    return t if t is not None else constant(0.0, Spec.of_type(type_))


def accumulate(a: Tensor | None, b: Tensor) -> Tensor:
    return b if a is None else a + b


def normalize_wrt(wrt: Sequence[int] | None, n: int, what: str) -> list[int]:
    if wrt is None:
        return list(range(n))
    if not isinstance(wrt, list | tuple) or not all(isinstance(i, int | np.integer) and not isinstance(i, bool)
                                                      for i in wrt):
        raise TypeError(f"{what}: wrt must be a list of input indices (ints), got {wrt!r}")
    out = [int(i) for i in wrt]
    bad = [i for i in out if not 0 <= i < n]
    if bad or len(set(out)) != len(out):
        raise ValueError(f"{what}: wrt must list distinct input indices in [0, {n}), got {list(wrt)}")
    return out


def cleanup(f: ir.Operation) -> None:
    """Lean ops carry no traits, so upstream cse/canonicalize leave them alone: CSE and DCE them here."""
    block = f.regions[0].blocks[0]
    seen: dict[tuple, ir.Value] = {}
    for op in [o.operation for o in block.operations]:
        if not op.name.startswith("lean."):
            continue
        key = (op.name, tuple(op.operands), tuple(sorted((k, str(op.attributes[k])) for k in op.attributes)),
               str(op.results[0].type))
        if key in seen:
            op.results[0].replace_all_uses_with(seen[key])
            op.erase()
        else:
            seen[key] = op.results[0]
    used: set[ir.Value] = set()
    for op in reversed([o.operation for o in block.operations]):
        if op.name.startswith("lean.") and op.results[0] not in used:
            op.erase()
            continue
        used.update(op.operands)


@dataclass
class Derivation:
    """A function being derived from `source`: its ops, and the new function with primal args mapped."""

    source: ir.Operation
    ops: list[ir.Operation]
    returned: list[ir.Value]
    args: list[ir.Value]
    wrt: list[int]
    target: func.FuncOp
    env: dict[ir.Value, Tensor]  # source value -> its copy in the target

    @property
    def extra_args(self) -> list[ir.Value]:
        """The target's arguments after the primal ones (tangents or seeds)."""
        return list(self.target.entry_block.arguments)[len(self.args):]


Signature = Callable[[list[ir.Type], list[ir.Type], list[int]], tuple[list[ir.Type], list[ir.Type]]]


def begin(module: Module, name: str, wrt: Sequence[int] | None, new_name: str, what: str,
          signature: Signature) -> Derivation:
    """Create `@new_name` from `@name`; `signature(arg_types, result_types, wrt)` gives its extra
    inputs (after the primal ones) and its results."""
    f = find_func(module, name)
    ops, returned = body_ops(f)
    args = list(f.regions[0].blocks[0].arguments)
    wrt = normalize_wrt(wrt, len(args), f"{what} of @{name}")
    arg_types = [a.type for a in args]
    extra, results = signature(arg_types, [v.type for v in returned], wrt)
    g = new_function(module, f, new_name, arg_types + extra, results)
    env = {a: Tensor(b) for a, b in zip(args, g.entry_block.arguments, strict=False)}
    return Derivation(f, ops, returned, args, wrt, g, env)
