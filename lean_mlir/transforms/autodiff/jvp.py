"""Forward mode: `@f(x...) -> (y...)` gives `@f_jvp(x..., dx[wrt]...) -> (y..., dy...)`.

A generic walker: each op is replayed, and its tangent is the sum of the JVP rules of its operands
that carry a tangent (rules from the op table; the pass never names an op).
"""

from __future__ import annotations

from collections.abc import Sequence

from mlir import ir
from mlir.dialects import func

from ...irutils.walk import Module
from ...ops import Tensor
from ...ops.core import lookup
from .common import accumulate, begin, cleanup, or_zeros, replay


def derive_jvp(module: Module, name: str, wrt: Sequence[int] | None = None,
               new_name: str | None = None) -> ir.Operation:
    """Add `@{name}_jvp` to `module` and return it. Tangent inputs follow the primal inputs, one per
    `wrt` index in that order; the results are the primal results, then one tangent per result."""
    d = begin(module, name, wrt, new_name or f"{name}_jvp", "jvp",
              lambda args, results, wrt: ([args[i] for i in wrt], results + results))
    f, ops, returned, env, g = d.source, d.ops, d.returned, d.env, d.target
    tangent: dict[ir.Value, Tensor] = {d.args[i]: Tensor(t) for i, t in zip(d.wrt, d.extra_args, strict=True)}
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
