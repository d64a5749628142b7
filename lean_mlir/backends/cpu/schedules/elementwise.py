"""Elementwise schedules: all-parallel generics tiled to vectors along the innermost dimension
(a masked last vector where no vector length divides it), square tiles where an operand is read
transposed, the outermost dimension split across threads when the loop is large."""

from __future__ import annotations

import math
from functools import partial

from mlir import ir
from mlir.dialects.transform import structured

from ....irutils.linalg import indexing_maps, iterator_types
from ....irutils.types import element_name
from ....irutils.walk import walk
from .common import (
    PARALLEL_MIN_ELEMENTS,
    Context,
    Schedule,
    match_tagged,
    split_blocks,
    static_tensor_types,
    tag,
    vector_length,
)

# Elementwise loops that read an operand transposed (the innermost loop walks a strided dimension)
# take square tiles: a tile x tile block read, transposed in registers (vector.transpose lowered to
# shuffles) and written contiguously, instead of a gather of `vec` strided elements per row.


def _transposes_inner(maps: list[ir.AffineMap], rank: int) -> bool:
    """Some input is indexed by the innermost loop in a non-innermost position (a transposed read)."""
    for m in maps[:-1]:
        dims = [ir.AffineDimExpr(e).position for e in m.results]
        if rank - 1 in dims and dims[-1] != rank - 1:
            return True
    return False


def elementwise_schedules(module: ir.Module, ctx: Context) -> list[Schedule]:
    """Tag all-parallel generics whose innermost dim divides the vector length; tile and vectorize."""
    out: list[Schedule] = []
    for op in walk(module, ("linalg.generic",)):
        types = static_tensor_types(op)
        if types is None or not types:
            continue
        iters = iterator_types(op)
        if any(it != "parallel" for it in iters):
            continue
        res = types[-1]
        elem = element_name(res.element_type)
        if elem is None or res.rank == 0 or res.rank != len(iters):
            continue
        maps = indexing_maps(op)
        out_map = maps[-1]
        if out_map != ir.AffineMap.get_identity(out_map.n_dims, module.context):
            continue  # the tile sizes below assume the output is indexed by the loops in order
        if not all(m.is_projected_permutation for m in maps):
            continue
        shape = res.shape
        vec = vector_length(shape[-1], ctx.target.elementwise_vector(elem), min_steps=1)
        masked = not vec and shape[-1] >= 4
        if masked:  # no vector length divides the row (1e6 + 1): full vectors, the last one masked; a
            # short row (28: a conv's output width) one masked vector (conv 64x6x28x28 + bias + tanh: 5.6 -> 0.4 ms)
            vec = min(ctx.target.elementwise_vector(elem), 1 << (shape[-1] - 1).bit_length())
        if not vec or 0 in shape:
            continue
        sizes = [1] * (res.rank - 1) + [vec]
        sq = ctx.target.transpose_tile(elem)
        if (not masked and res.rank >= 2 and shape[-1] % sq == 0 and shape[-2] % sq == 0
                and _transposes_inner(maps, res.rank)):
            sizes = [1] * (res.rank - 2) + [sq, sq]
        # threads: split the outermost dimension into `nt` blocks when the loop is large
        nt = ctx.threads
        total = math.prod(shape)
        lead = shape[0] // nt if res.rank > 1 else 0 if masked else shape[0] // (nt * vec) * vec
        split = nt > 1 and total >= PARALLEL_MIN_ELEMENTS and lead > 0 and lead * nt == shape[0]
        blocks = [lead] + [0] * (res.rank - 1) if split else None
        out.append(partial(_schedule, tag(op, f"ew{len(out)}"), blocks, sizes, masked))
    return out


def _schedule(tag: str, blocks: list[int] | None, sizes: list[int], masked: bool,
              root: ir.Value) -> list[ir.Value]:
    """Thread blocks (when split), then vector tiles vectorized (masked: at the tile's sizes)."""
    target = split_blocks(match_tagged(root, tag), blocks)
    tiled = structured.TileUsingForOp(target, sizes=sizes).tiled_linalg_op
    structured.VectorizeOp(tiled, sizes if masked else None)
    return []
