"""Reverse mode: `@f(x...) -> (y...)` gives `@f_vjp(x..., dy...) -> (dx[wrt]...)`.

A generic walker: the primal ops that the cotangents need are replayed, then the ops are visited in
reverse and each active operand receives its VJP rule's cotangent (rules from the op table; the
pass never names an op). Cotangents that fan in are summed. Unused primal ops are removed after.
"""

from __future__ import annotations

from collections.abc import Sequence

from mlir import ir
from mlir.dialects import func

from ...irutils.walk import Module
from ...ops import Tensor
from ...ops.core import lookup
from .common import accumulate, begin, cleanup, or_zeros, replay


def derive_vjp(module: Module, name: str, wrt: Sequence[int] | None = None, new_name: str | None = None,
               with_primal: bool = False, seeded: int | None = None) -> ir.Operation:
    """Add `@{name}_vjp` to `module` and return it. Its inputs are the primal inputs, then one
    cotangent (seed) per primal result (per the first `seeded` results: the others, such as auxiliary
    outputs, are not differentiated); its results are one cotangent per `wrt` input, in that order,
    preceded by all primal results when `with_primal`."""
    d = begin(module, name, wrt, new_name or f"{name}_vjp", "vjp",
              lambda args, results, wrt: (results[:seeded], (results if with_primal else []) + [args[i] for i in wrt]))
    f, ops, returned, args, wrt, env, g = d.source, d.ops, d.returned, d.args, d.wrt, d.env, d.target

    active = {args[i] for i in wrt}  # values that depend differentiably on a wrt input
    for op in ops:
        rules = lookup(op.name).vjp
        if any(rule is not None and v in active for v, rule in zip(op.operands, rules, strict=True)):
            active.add(op.results[0])

    with ir.InsertionPoint(g.entry_block):
        for op in ops:
            with op.location:
                env[op.results[0]] = replay(op, [env[v] for v in op.operands])
        cotangent: dict[ir.Value, Tensor] = {}
        for v, seed in zip(returned[:seeded], d.extra_args, strict=True):
            if v in active:
                cotangent[v] = accumulate(cotangent.get(v), Tensor(seed))
        for op in reversed(ops):
            ct = cotangent.pop(op.results[0], None)
            if ct is None:
                continue
            opdef = lookup(op.name)
            attrs = opdef.attrs_from_op(op)
            xs = [env[v] for v in op.operands]
            with op.location:
                for v, rule in zip(op.operands, opdef.vjp, strict=True):
                    if rule is not None and v in active:
                        cotangent[v] = accumulate(cotangent.get(v), rule(ct, *xs, env[op.results[0]], attrs))
        with f.location:
            grads = [or_zeros(cotangent.get(args[i]), args[i].type) for i in wrt]
            outs = ([env[v] for v in returned] if with_primal else []) + grads
            func.ReturnOp([o.value for o in outs])
    cleanup(g.operation)
    return g.operation
