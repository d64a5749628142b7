"""Loop mapping: every linalg op becomes loops that run in GPU threads, never on the host.

Copies become linalg.copy kernels; each generic's loops are reordered parallel-first, ops without
parallel loops get a one-iteration scf.parallel (one thread), and after convert-linalg-to-parallel-loops
each outermost scf.parallel is tiled into grid x block loops within the `GpuTarget`'s launch limits.
"""

from __future__ import annotations

from mlir import ir
from mlir.dialects import arith, linalg, scf

from ...irutils.linalg import indexing_maps, iterator_types
from ...irutils.walk import walk
from .target import GpuTarget


def _index_const(v: int) -> ir.Value:
    return arith.constant(ir.IndexType.get(), v)


def _const_int(v: ir.Value) -> int | None:
    op = v.owner
    if isinstance(op, ir.OpView) and op.operation.name == "arith.constant":
        return ir.IntegerAttr(op.operation.attributes["value"]).value
    return None


def copies_to_linalg(module: ir.Module) -> None:
    """memref.copy -> linalg.copy, so that copies become GPU kernels instead of host memcpy calls."""
    for op in walk(module, "memref.copy"):
        src, dst = op.operands
        with ir.InsertionPoint(op), op.location:
            linalg.copy(src, outs=[dst])
        op.erase()


def parallel_first(module: ir.Module) -> None:
    """Reorder every linalg.generic's loops so that parallel dims come first (in their old order).

    convert-linalg-to-parallel-loops nests loops in iterator order; a leading reduction loop would become
    a host loop around a kernel launch. Parallel-first puts one scf.parallel outside sequential scf.for.
    """
    for op in walk(module, "linalg.generic"):
        its = iterator_types(op)
        par = [i for i, t in enumerate(its) if t == "parallel"]
        order = par + [i for i in range(len(its)) if i not in par]   # new dim j = old dim order[j]
        if order == list(range(len(its))):
            continue
        new_pos = {old: new for new, old in enumerate(order)}
        subst = ir.AffineMap.get(len(its), 0, [ir.AffineExpr.get_dim(new_pos[i]) for i in range(len(its))])
        maps = []
        for amap in indexing_maps(op):
            maps.append(ir.AffineMapAttr.get(
                ir.AffineMap.get(len(its), amap.n_symbols, [e.compose(subst) for e in amap.results])))
        op.attributes["indexing_maps"] = ir.ArrayAttr.get(maps)
        op.attributes["iterator_types"] = ir.ArrayAttr.get(
            [ir.ArrayAttr(op.attributes["iterator_types"])[i] for i in order])
        for idx in walk(op, "linalg.index"):
            old = ir.IntegerAttr(idx.attributes["dim"]).value
            idx.attributes["dim"] = ir.IntegerAttr.get(ir.IntegerType.get_signless(64), new_pos[old])


def wrap_sequential(module: ir.Module) -> None:
    """Put linalg ops without parallel loops inside a one-iteration scf.parallel (one GPU thread)."""
    for op in walk(module, "linalg.generic"):
        if "parallel" in iterator_types(op):
            continue
        with ir.InsertionPoint(op), op.location:
            c0, c1 = _index_const(0), _index_const(1)
            par = scf.ParallelOp([], [c0], [c1], [c1], [])
            body = par.regions[0].blocks.append(ir.IndexType.get())
            with ir.InsertionPoint(body):
                term = scf.ReduceOp([], 0)
        op.move_before(term.operation)


def tile_sizes(ubs: list[int], target: GpuTarget) -> list[int]:
    """Threads per block for loop dims ordered (x, y, z, sequential...): powers of two, at most
    `target.max_threads_per_block` in all and `target.max_block_z` along z."""
    tiles, budget = [], target.max_threads_per_block
    for k, u in enumerate(ubs):
        if k >= 3:
            tiles.append(1)
            continue
        cap = min(budget, target.max_block_z) if k == 2 else budget
        t = 1
        while t < u and t * 2 <= cap:
            t *= 2
        tiles.append(t)
        budget //= t
    return tiles


def tile_parallel_loops(func: ir.Operation, target: GpuTarget) -> None:
    """Tile each outermost scf.parallel into grid loop x block loop, innermost original dim first.

    gpu-map-parallel-loops maps loop dim 0/1/2 of the outer loop to block x/y/z and of the inner loop to
    thread x/y/z; further dims run sequentially inside the thread. Reversing the dims puts the contiguous
    (last) dimension on thread x, so neighbouring threads touch neighbouring elements.
    """
    index = ir.IndexType.get()
    for op in list(walk(func, "scf.parallel")):
        parent = op.parent
        if parent is not None and parent.name != "func.func":
            continue        # nested: left for the mapper (sequential)
        n = len(op.operands) // 3
        lbs, ubs, steps = op.operands[:n], op.operands[n:2 * n], op.operands[2 * n:3 * n]
        lb_c, ub_c, st_c = ([_const_int(v) for v in vs] for vs in (lbs, ubs, steps))
        if any(v != 0 for v in lb_c) or any(v != 1 for v in st_c) or any(v is None for v in ub_c):
            raise NotImplementedError(f"GPU tiling expects static loops from 0 step 1, got {op}")
        order = list(reversed(range(n)))            # new dim k = old dim order[k]
        u = [ub_c[i] for i in order]
        t = tile_sizes(u, target)
        for k in (1, 2):
            if k < n and -(-u[k] // t[k]) > target.max_grid_yz:
                raise NotImplementedError(f"grid dimension {k} of {u} exceeds {target.max_grid_yz} blocks")
        with ir.InsertionPoint(op), op.location:
            c0, c1 = _index_const(0), _index_const(1)
            ub_v, t_v = [_index_const(x) for x in u], [_index_const(x) for x in t]
            outer = scf.ParallelOp([], [c0] * n, ub_v, t_v, [])
            ob = outer.regions[0].blocks.append(*[index] * n)
            with ir.InsertionPoint(ob):
                inner = scf.ParallelOp([], [c0] * n, t_v, [c1] * n, [])
                ib = inner.regions[0].blocks.append(*[index] * n)
                scf.ReduceOp([], 0)
            with ir.InsertionPoint(ib):
                ivs = [arith.addi(ob.arguments[k], ib.arguments[k]) if t[k] > 1 else ob.arguments[k]
                       for k in range(n)]
                conds = [arith.cmpi(arith.CmpIPredicate.ult, ivs[k], _index_const(u[k]))
                         for k in range(n) if u[k] % t[k]]
                inner_term = scf.ReduceOp([], 0)
            target_op = inner_term.operation
            if conds:
                with ir.InsertionPoint(inner_term.operation):
                    cond = conds[0]
                    for c in conds[1:]:
                        cond = arith.andi(cond, c)
                    ifop = scf.IfOp(cond)
                    with ir.InsertionPoint(ifop.then_block):
                        target_op = scf.YieldOp([]).operation
        old_body = op.regions[0].blocks[0]
        for k in range(n):
            old_body.arguments[order[k]].replace_all_uses_with(ivs[k])
        for child in list(old_body.operations)[:-1]:       # all but the scf.reduce terminator
            child.operation.move_before(target_op)
        op.erase()
