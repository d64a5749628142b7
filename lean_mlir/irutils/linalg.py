"""Reading linalg ops: their indexing maps and iterator types (decoded in this one place), and the
contraction maps the back ends match, built as AffineMaps rather than compared as text."""

from __future__ import annotations

from collections.abc import Sequence

from mlir import ir


def indexing_maps(op: ir.Operation) -> list[ir.AffineMap]:
    return [ir.AffineMapAttr(m).value for m in ir.ArrayAttr(op.attributes["indexing_maps"])]


def iterator_types(op: ir.Operation) -> list[str]:
    """"parallel" / "reduction" per loop (`#linalg.iterator_type<parallel>` has no Python class)."""
    return [str(a).rsplit("<", 1)[-1].rstrip(">") for a in ir.ArrayAttr(op.attributes["iterator_types"])]


def dims_map(n_loops: int, dims: Sequence[int]) -> ir.AffineMap:
    """(d0, ..., d{n-1}) -> (d{dims[0]}, ...)."""
    return ir.AffineMap.get(n_loops, 0, [ir.AffineDimExpr.get(d) for d in dims])


def matmul_maps(batch: bool = False, transposed_a: bool = False, broadcast: str = "") -> list[ir.AffineMap]:
    """Maps of C[b, m, n] += A[b, m, k] * B[b, k, n] (loops (b,) m, n, k); `transposed_a`: A stored
    k x m (C = A^T B, the form the gradients' `h.T @ g` fold into); `broadcast` "a" or "b" (batched
    only): that operand has no batch dim, the same matrix for every batch element (W @ x[b])."""
    b = [0] if batch else []
    n = len(b) + 3
    m, j, k = n - 3, n - 2, n - 1
    a = [k, m] if transposed_a else [m, k]
    ba, bb = ([] if broadcast == "a" else b), ([] if broadcast == "b" else b)
    return [dims_map(n, [*ba, *a]), dims_map(n, [*bb, k, j]), dims_map(n, [*b, m, j])]


def static_shapes(op: ir.Operation) -> bool:
    return all(isinstance(v.type, ir.RankedTensorType) and v.type.has_static_shape
               for v in [*op.operands, *op.results])


def loop_sizes(maps: Sequence[ir.AffineMap], types: Sequence[ir.Type], n: int,
               skip_compound: bool = False) -> list[int] | None:
    """Static loop ranges of a linalg op from operand maps and types; None unless every loop is read
    by some operand dimension and every map result is a loop index (`skip_compound`: results that
    are not, such as a window's i*s + p, are passed over instead)."""
    sizes: list[int | None] = [None] * n
    for m, t in zip(maps, types, strict=True):
        shape = ir.RankedTensorType(t).shape
        for p, e in enumerate(m.results):
            if not isinstance(e, ir.AffineDimExpr):
                if skip_compound:
                    continue
                return None
            sizes[e.position] = shape[p]
    return None if None in sizes else sizes  # type: ignore[return-value]


def defining_op(v: ir.Value) -> ir.Operation | None:
    """The operation that produces `v` (None for a block argument)."""
    owner = v.owner
    if isinstance(owner, ir.OpView):
        return owner.operation
    return owner if isinstance(owner, ir.Operation) else None


def zero_fill(v: ir.Value) -> ir.Operation | None:
    """The `linalg.fill` of a constant 0 that produces `v`, if so."""
    owner = defining_op(v)
    if owner is None or owner.name != "linalg.fill":
        return None
    c = defining_op(owner.operands[0])
    if c is None or c.name != "arith.constant":
        return None
    try:
        if ir.FloatAttr(c.attributes["value"]).value != 0.0:
            return None
    except (ValueError, TypeError):
        return None
    return owner
