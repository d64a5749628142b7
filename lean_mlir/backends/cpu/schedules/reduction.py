"""Full-reduction schedules: vector-length partial accumulators kept in registers, split across
threads by chunks of whole vectors when the reduction is large."""

from __future__ import annotations

import math

from mlir import ir

from ....irutils.linalg import indexing_maps, iterator_types, loop_sizes
from ....irutils.types import element_name
from ....irutils.walk import walk
from .common import PARALLEL_MIN_ELEMENTS, TAG, Context, any_ops, static_tensor_types, vector_length


def reduction_schedules(module: ir.Module, ctx: Context) -> list[str]:
    """Full reductions (`sum(f(x))` over a tensor of any rank, the body fused in): split the innermost
    dimension into vector-length partial accumulators (`tile_reduction_using_for`, the outer
    dimensions by 1), vectorize the partial step (so the fused elementwise math runs in SIMD) and the
    final combination."""
    out: list[str] = []
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
        i = len(out)
        tag = f"{TAG}_red{i}"
        op.attributes[tag] = ir.UnitAttr.get(module.context)
        nt = ctx.threads
        src = f"%rd{i}"
        pre = ""
        big = nt > 1 and math.prod(sizes or ()) >= PARALLEL_MIN_ELEMENTS
        if big:
            # chunks must hold whole vectors: 1e6 = 2 x 500000 takes 32-lane f32 steps, not 64
            vec = vector_length(n, ctx.target.reduction_vector(elem), nt) or vec
        if big and n % (nt * vec) == 0:
            # threads: each reduces an n/nt chunk of the innermost dimension into its own partial
            pre = (f"  %rtf{i}:{nres}, %rts{i}, %rtc{i}:{nres}, %rtl{i} ="
                   f" transform.structured.tile_reduction_using_forall %rd{i}"
                   f" by num_threads = [{', '.join(['0'] * (len(iters) - 1) + [str(nt)])}]"
                   f" : {any_ops(2 * nres + 2)}\n")
            src = f"%rts{i}"
        out.append(
            f"  %rd{i} = transform.structured.match attributes{{{tag}}} in %root"
            " : (!transform.any_op) -> !transform.any_op\n"
            + pre
            + f"  %rf{i}:{nres}, %rp{i}, %rc{i}:{nres}, %rdo{i} = transform.structured.tile_reduction_using_for {src}"
            f" by tile_sizes = [{', '.join(['1'] * (len(iters) - 1) + [str(vec)])}] : {any_ops(2 * nres + 2)}\n"
            # the innermost loop, whose accumulator the hoist keeps in registers
            f"  %rdl{i} = transform.get_parent_op %rp{i} {{op_name = \"scf.for\"}}"
            " : (!transform.any_op) -> !transform.any_op\n"
            f"  transform.structured.vectorize %rp{i} : !transform.any_op\n"
            + "".join(f"  transform.structured.vectorize %rc{i}#{j} : !transform.any_op\n"
                      f"  transform.structured.vectorize %rf{i}#{j} : !transform.any_op\n" for j in range(nres))
        )
    return out


def reduction_hoists(n: int) -> list[str]:
    """Keep each partial accumulator in registers across its loop (after the vector patterns)."""
    return [f"  transform.loop.hoist_loop_invariant_subsets %rdl{i} : !transform.any_op\n" for i in range(n)]


