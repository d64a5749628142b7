"""Full-reduction schedules: vector-length partial accumulators kept in registers, split across
threads by chunks of whole vectors when the reduction is large."""

from __future__ import annotations

import math
from functools import partial

from mlir import ir
from mlir.dialects import transform
from mlir.dialects.transform import structured

from ....irutils.linalg import indexing_maps, iterator_types, loop_sizes
from ....irutils.types import element_name
from ....irutils.walk import walk
from .common import (
    PARALLEL_MIN_ELEMENTS,
    Context,
    Schedule,
    any_op,
    match_tagged,
    static_tensor_types,
    tag,
    vector_length,
)


def reduction_schedules(module: ir.Module, ctx: Context) -> list[Schedule]:
    """Full reductions (`sum(f(x))` over a tensor of any rank, the body fused in): split the innermost
    dimension into vector-length partial accumulators (`tile_reduction_using_for`, the outer
    dimensions by 1), vectorize the partial step (so the fused elementwise math runs in SIMD) and the
    final combination."""
    out: list[Schedule] = []
    for op in walk(module, ("linalg.generic",)):
        types = static_tensor_types(op)
        nres = len(op.results)  # several: sibling sums merged by `fuse_multi_use`
        if types is None or not nres:
            continue
        iters = iterator_types(op)
        if not iters or any(it != "reduction" for it in iters):
            continue
        elems = {element_name(t.element_type) for t in types[-nres:]}
        elem = elems.pop() if len(elems) == 1 else None
        if elem is None or any(t.rank != 0 for t in types[-nres:]):
            continue
        maps = indexing_maps(op)
        if not all(m.is_projected_permutation for m in maps[:-nres]):
            continue
        sizes = loop_sizes(maps[:-nres], types[: len(maps) - nres], len(iters))
        n = sizes[-1] if sizes else 0
        vec = vector_length(n, ctx.target.reduction_vector(elem))
        if not vec:
            continue
        nt = ctx.threads
        big = nt > 1 and math.prod(sizes or ()) >= PARALLEL_MIN_ELEMENTS
        if big:
            # chunks must hold whole vectors: 1e6 = 2 x 500000 takes 32-lane f32 steps, not 64
            vec = vector_length(n, ctx.target.reduction_vector(elem), nt) or vec
        # threads: each reduces an n/nt chunk of the innermost dimension into its own partial
        blocks = [0] * (len(iters) - 1) + [nt] if big and n % (nt * vec) == 0 else None
        tiles = [1] * (len(iters) - 1) + [vec]
        out.append(partial(_schedule, tag(op, f"red{len(out)}"), nres, blocks, tiles))
    return out


def _schedule(tag: str, nres: int, blocks: list[int] | None, tiles: list[int],
              root: ir.Value) -> list[ir.Value]:
    """Thread chunks (when split), vector-length partials, each step vectorized; returns the loop of
    the partial step, whose accumulator the hoist keeps in registers."""
    target = match_tagged(root, tag)
    if blocks is not None:
        _, target, _, _ = _tile_reduction(structured.TileReductionUsingForallOp, target, nres, num_threads=blocks)
    fills, step, combines, _ = _tile_reduction(structured.TileReductionUsingForOp, target, nres, tile_sizes=tiles)
    loop = transform.GetParentOp(any_op(), step, op_name="scf.for").result
    structured.VectorizeOp(step)
    for combine, fill in zip(combines, fills, strict=True):
        structured.VectorizeOp(combine)
        structured.VectorizeOp(fill)
    return [loop]


def _tile_reduction(op: type[ir.OpView], target: ir.Value, nres: int,
                    **sizes: list[int]) -> tuple[list[ir.Value], ir.Value, list[ir.Value], ir.Value]:
    """(fills, partial step, combining ops, loop): one fill and one combining op per result. The ODS
    declares one combining handle after the variadic fills, so the handles are taken by position."""
    handles = list(op([any_op()] * (2 * nres - 1), any_op(), any_op(), any_op(), target, **sizes).results)
    return handles[:nres], handles[nres], handles[nres + 1 : 2 * nres + 1], handles[-1]
