"""Forward mode: `@f(x...) -> (y...)` gives `@f_jvp(x..., dx[wrt]...) -> (y..., dy...)`.

A generic walker: each op is replayed, and its tangent is the sum of the JVP rules of its operands
that carry a tangent (rules from the op table; the pass never names an op).
"""

from __future__ import annotations

from collections.abc import Sequence

from mlir import ir
from mlir.dialects import func

from ..ops.core import lookup
from ..trace import Tensor
from .common import (
    Module,
    accumulate,
    body_ops,
    cleanup,
    find,
    func_name,
    funcs,
    new_function,
    normalize_wrt,
    or_zeros,
    replay,
)


def derive_jvp(module: Module, name: str, wrt: Sequence[int] | None = None,
               new_name: str | None = None) -> ir.Operation:
    """Add `@{name}_jvp` to `module` and return it. Tangent inputs follow the primal inputs, one per
    `wrt` index in that order; the results are the primal results, then one tangent per result."""
    f = find(module, name)
    ops, returned = body_ops(f)
    args = list(f.regions[0].blocks[0].arguments)
    wrt = normalize_wrt(wrt, len(args), f"jvp of @{name}")
    res_types = [v.type for v in returned]
    g = new_function(module, f, new_name or f"{name}_jvp", [a.type for a in args] + [args[i].type for i in wrt],
                     res_types + res_types)
    new_args = list(g.entry_block.arguments)
    env: dict[ir.Value, Tensor] = {a: Tensor(b) for a, b in zip(args, new_args, strict=False)}
    tangent: dict[ir.Value, Tensor] = {args[i]: Tensor(new_args[len(args) + k]) for k, i in enumerate(wrt)}
    with ir.InsertionPoint(g.entry_block):
        for op in ops:
            xs = [env[v] for v in op.operands]
            with op.location:
                y = replay(op, xs)
                env[op.results[0]] = y
                opdef = lookup(op.name)
                attrs = opdef.attrs_from_op(op)
                dy = None
                for v, rule in zip(op.operands, opdef.jvp, strict=True):
                    if rule is not None and v in tangent:
                        dy = accumulate(dy, rule(tangent[v], *xs, y, attrs))
                if dy is not None:
                    tangent[op.results[0]] = dy
        with f.location:
            outs = [env[v] for v in returned] + [or_zeros(tangent.get(v), v.type) for v in returned]
            func.ReturnOp([o.value for o in outs])
    cleanup(g.operation)
    return g.operation


def jvp_pass(module_op: Module, pass_: object = None) -> None:
    """`lean-derive-jvp`: derive `@f_jvp` (all inputs) for every function present."""
    for f in funcs(module_op):
        derive_jvp(module_op, func_name(f))
