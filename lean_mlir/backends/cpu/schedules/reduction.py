"""Reduction schedules: full reductions (to rank 0) and row reductions (parallel loops, then the
reduced ones), with vector-length partial accumulators kept in registers, split across threads
when large.

Precision: a partial accumulator that adds up millions of f32 values loses them (sum(ones(1e8)) was
99999920; a row of 2^25 ones summed to 2^24). The reduced loop is cut into chunks of at most
CHUNK_VECTORS vectors; each chunk starts its own partials, and the chunk sums are added to the
result, so an f32 sum's error grows with the chunk length plus the number of chunks instead of with
n (NumPy's pairwise sum grows like log n)."""

from __future__ import annotations

import math
from functools import partial

from mlir import ir
from mlir.dialects import transform
from mlir.dialects.transform import structured

from ....irutils.linalg import dims_map, indexing_maps, iterator_types, loop_sizes
from ....irutils.types import element_name
from ....irutils.walk import walk
from .common import (
    PARALLEL_MIN_ELEMENTS,
    Context,
    Schedule,
    any_op,
    match_tagged,
    split_blocks,
    static_tensor_types,
    tag,
    vector_length,
)

CHUNK_VECTORS = 256  # vectors per chunk: 16k f32 with 64-lane partials, ~1 us of work per chunk


def _chunk(length: int, vec: int) -> int:
    """Elements per chunk of a reduced loop of `length`: a multiple of `vec` dividing it, at most
    CHUNK_VECTORS vectors; `length` itself where it is short or has no such divisor above 8 vectors."""
    steps = length // vec
    if steps <= CHUNK_VECTORS:
        return length
    d = max((d for d in range(8, CHUNK_VECTORS + 1) if steps % d == 0), default=0)
    return vec * d if d else length


def reduction_schedules(module: ir.Module, ctx: Context) -> list[Schedule]:
    """Full and row reductions (the elementwise producers fused in) whose innermost reduced loop
    divides into vectors: partial accumulators along it (`tile_reduction_using_for`, the other
    loops by 1), chunked (see the module doc), the partial step vectorized (so the fused math runs
    in SIMD) and the final combination."""
    out: list[Schedule] = []
    for op in walk(module, ("linalg.generic",)):
        types = static_tensor_types(op)
        nres = len(op.results)  # several: sibling sums merged by `fuse_multi_use`
        if types is None or not nres:
            continue
        iters = iterator_types(op)
        n_par = next((i for i, it in enumerate(iters) if it != "parallel"), len(iters))
        if n_par == len(iters) or any(it != "reduction" for it in iters[n_par:]):
            continue  # not parallel loops then reduced ones
        elems = {element_name(t.element_type) for t in types[-nres:]}
        elem = elems.pop() if len(elems) == 1 else None
        maps = indexing_maps(op)
        if elem is None or any(m != dims_map(len(iters), range(n_par)) for m in maps[-nres:]):
            continue  # each result indexed by the parallel loops, in order
        if not all(m.is_projected_permutation for m in maps[:-nres]):
            continue
        sizes = loop_sizes(maps[:-nres], types[: len(maps) - nres], len(iters))
        n = sizes[-1] if sizes else 0
        vec = vector_length(n, ctx.target.reduction_vector(elem))
        if not vec:
            continue
        nt = ctx.threads
        big = nt > 1 and math.prod(sizes) >= PARALLEL_MIN_ELEMENTS
        ones = [1] * (len(iters) - n_par - 1)  # the outer reduced loops, one step at a time
        if n_par:  # row reductions: threads take blocks of rows; one row at a time
            rows = sizes[0] // nt if big and sizes[0] % nt == 0 else 0
            blocks = [rows] + [0] * (len(iters) - 1) if rows else None
            per_row = [1] * n_par + [0] * (len(iters) - n_par)
            length = n
        else:
            if big:
                # chunks must hold whole vectors: 1e6 = 2 x 500000 takes 32-lane f32 steps, not 64
                vec = vector_length(n, ctx.target.reduction_vector(elem), nt) or vec
            # threads: each reduces an n/nt chunk of the innermost dimension into its own partial
            blocks = [0] * (len(iters) - 1) + [nt] if big and n % (nt * vec) == 0 else None
            per_row = None
            length = n // nt if blocks else n
        chunk = _chunk(length, vec)
        chunks = [0] * n_par + ones + [chunk] if chunk < length or (ones and math.prod(sizes[n_par:-1]) > 1) else None
        tiles = [0] * n_par + ones + [vec]
        out.append(partial(_schedule, tag(op, f"red{len(out)}"), nres, n_par, blocks, per_row, chunks, tiles))
    return out


def _schedule(tag: str, nres: int, n_par: int, blocks: list[int] | None, per_row: list[int] | None,
              chunks: list[int] | None, tiles: list[int], root: ir.Value) -> list[ir.Value]:
    """Thread blocks (when split), rows one at a time, chunks, vector-length partials, each step
    vectorized; returns the loop of the partial step, whose accumulator the hoist keeps in registers."""
    target = match_tagged(root, tag)
    if blocks is not None and n_par:
        target = split_blocks(target, blocks)
    elif blocks is not None:
        _, target, _, _ = _tile_reduction(structured.TileReductionUsingForallOp, target, nres, num_threads=blocks)
    if per_row is not None:
        target = structured.TileUsingForOp(target, sizes=per_row).tiled_linalg_op
    if chunks is not None:
        target = structured.TileUsingForOp(target, sizes=chunks).tiled_linalg_op
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
