"""Reduction schedules: every linalg.generic with reduced loops whose maps are projected permutations
and whose results are indexed by the parallel loops in order. Two kinds, by the innermost loop:

- row reductions (the innermost loop is reduced: full reductions, sums along the last axis):
  vector-length partial accumulators along it, kept in registers, their lanes summed once per row;
- column reductions (the innermost loop is parallel: `sum(x, axis=0)`, sums over a middle axis): a
  vector of columns per step, accumulated across the reduced loops (in registers when the row is
  one vector, else into the accumulated row in L1, each row read contiguously).

The loop the largest input reads contiguously is made innermost first (sum(transpose(x), axis=0)
is a row reduction of x: f32[1024, 4096] 18.8 -> 0.28 ms); parallel loops are outermost in the tiled
nest (tile interchange), whatever their place in the iteration order; large loops are split across
threads (the first parallel loop `threads` divides).

Precision: a reduced loop too long for one accumulator is blocked before scheduling: the op is
rewritten into G1, which reduces blocks of the loop (fresh accumulators per block) into a small
temporary indexed by the block (and by the outer reduced loops, when their product is too long),
and G2, which reduces the temporary into the result and is blocked the same way, recursively. The
input level (G1 on the program's tensors) adds at most TERMS = 128 vectors per lane (a column: 128
rows), LONGEST where that leaves a shorter last chain (`_block`); the levels above (UPPER) add at
most 8 block sums per accumulator, in scalar code along rows. The sums there are the large ones: a
long chain at the top costs the most (1e8 f32: 100 block sums in turn gave 4 ulp), so their
fan-in is small and NumPy-like, and their data, TERMS * MIN_BLOCK times smaller, costs nothing. The
error grows like log n as NumPy's pairwise sum's. Before, chunk sums were added in turn (error
~ n / chunk) and column reductions not blocked at all (2^25 rows of ones summed to 2^24).
Measured against float64 (AMD EPYC, AVX-512; tests/backends/cpu/test_reduction_precision.py): 1e8
uniform f32 0.19 ulp (NumPy 0.19; was 7.8), mean(exp) 0.10 ulp (NumPy 1.1; was 13), mean of
f32[4, 1e7] rows 0.38 ulp (NumPy 0.75; was 5.8), mean(exp(ones(1e8))) 1.2e-7 off (NumPy 1.5e-7; was
3.5e-5); column sums of f32[2^20, 16] 0.78 ulp (NumPy, which adds rows in turn: 310). On sums that
cancel (1e7 normal values) the error is 3.2e-3 * u * sum |x| (NumPy 9e-5): 128-value lanes (NumPy:
16), and each block's 64 lanes added in order (`vector.reduction` lowers to an ordered
`vector.reduce.fadd`; with `convert-vector-to-llvm{reassociate-fp-reductions=1}`, a tree, 4.2e-4).
Only loops with a divisor in [MIN_BLOCK, LONGEST] (after the vector length) are blocked; a
prime-length loop keeps one accumulator."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial

from mlir import ir
from mlir.dialects import linalg, tensor, transform
from mlir.dialects.transform import structured

from ....irutils.builders import full, tensor_type
from ....irutils.linalg import dims_map, indexing_maps, iterator_types, loop_sizes
from ....irutils.types import DTYPES, element_name
from ....irutils.walk import walk
from .common import (
    PARALLEL_MIN_ELEMENTS,
    Context,
    Schedule,
    any_op,
    best_tile,
    match_tagged,
    split_blocks,
    static_tensor_types,
    tag,
    vector_length,
)

TERMS = 128  # precision constant: values one accumulator adds before it is combined (see the doc)
LONGEST = 2 * TERMS  # longest accumulator: a block may stretch to it for a short last chain (`_block`)
MIN_BLOCK = 8  # shortest block (vectors of a row, rows of a column) a loop is cut into
MAX_LEVELS = 64  # blocking depth guard: every level divides a loop by at least 2

# combining op of a reduction -> its neutral element (the fill of G1's temporary)
NEUTRAL = {"arith.addf": -0.0, "arith.mulf": 1.0, "arith.maximumf": -math.inf, "arith.maxnumf": -math.inf,
           "arith.minimumf": math.inf, "arith.minnumf": math.inf}


@dataclass(frozen=True)
class _Fan:
    """Values one accumulator adds: at most `terms`, a loop cut into blocks of at least `least`."""

    terms: int
    least: int


# The input level, vectorized; the levels that reduce block sums: short chains, scalar along rows
# (a 64-lane vector reduction is an ordered chain too). See the module doc.
INPUT = _Fan(TERMS, MIN_BLOCK)
UPPER = _Fan(8, 2)


@dataclass(frozen=True)
class _Red:
    """A reduction generic, read: loop sizes and kinds, and each result's combining op (None where
    a result is not `combine(value, acc)` with its accumulator read only there)."""

    op: ir.Operation
    nres: int
    iters: list[str]
    sizes: list[int]
    elem: str
    combiners: list[ir.Operation] | None

    @property
    def par(self) -> list[int]:
        return [i for i, it in enumerate(self.iters) if it == "parallel"]

    @property
    def red(self) -> list[int]:
        return [i for i, it in enumerate(self.iters) if it != "parallel"]


def _read(op: ir.Operation) -> _Red | None:
    types = static_tensor_types(op)
    nres = len(op.results)  # several: sibling sums merged by `fuse_multi_use`
    if types is None or not nres:
        return None
    iters = iterator_types(op)
    if all(it == "parallel" for it in iters) or any(it not in ("parallel", "reduction") for it in iters):
        return None
    elems = {element_name(t.element_type) for t in types[-nres:]}
    elem = elems.pop() if len(elems) == 1 else None
    maps = indexing_maps(op)
    par = [i for i, it in enumerate(iters) if it == "parallel"]
    if elem is None or any(m != dims_map(len(iters), par) for m in maps[-nres:]):
        return None  # each result indexed by the parallel loops, in order
    if not all(m.is_projected_permutation for m in maps[:-nres]):
        return None
    sizes = loop_sizes(maps[:-nres], types[: len(maps) - nres], len(iters))
    if sizes is None or 0 in sizes:
        return None
    return _Red(op, nres, iters, sizes, elem, _combiners(op, nres))


def _combiners(op: ir.Operation, nres: int) -> list[ir.Operation] | None:
    block = op.regions[0].blocks[0]
    if _has_index(op):
        return None  # the blocked loops would change the indices it reads
    accs = list(block.arguments)[-nres:]
    yields = list(block.operations[len(block.operations) - 1].operands)
    out = []
    for acc, y in zip(accs, yields, strict=True):
        comb = y.owner
        if not isinstance(comb, ir.OpView) or comb.name not in NEUTRAL or len(comb.operands) != 2:
            return None
        comb = comb.operation
        if len(list(acc.uses)) != 1 or acc not in list(comb.operands) or len(list(y.uses)) != 1:
            return None  # the accumulator read elsewhere, or the combined value
        out.append(comb)
    return out


# ---- blocking plans
def _divisors(n: int, lo: int, hi: int) -> list[int]:
    """Divisors of n in [lo, hi], largest first."""
    return [d for d in range(min(hi, n), lo - 1, -1) if n % d == 0]


def _top_chain(m: int) -> int:
    """Values the last accumulator adds once m block results are reduced level by level (UPPER)."""
    while m > UPPER.terms:
        ds = _divisors(m, UPPER.least, UPPER.terms)
        if not ds:
            break
        m //= ds[0]
    return m


def _block(m: int, nt: int, fan: _Fan) -> int:
    """Block of a loop of m (a divisor in [fan.least, 2 fan.terms]; 0 where none): one whose count
    `nt` divides if one does (the thread split), then one whose count reduces to a short last chain
    (a prime count of block sums is added in turn at the total's magnitude: rows of 4097 vectors in
    blocks of 17 left 241 sums, 3.4 ulp; blocks of 241 leave 17, 0.95 ulp), then the largest up to
    fan.terms."""
    def key(d: int) -> tuple[bool, int, bool, int]:
        return (m // d) % nt == 0, -max(_top_chain(m // d), UPPER.terms), d <= fan.terms, d

    return max(_divisors(m, fan.least, 2 * fan.terms), key=key, default=0)


def _row_vector(n: int, preferred: int, nt: int, fan: _Fan) -> tuple[int, int]:
    """(lanes, block) of a reduced innermost loop of n: the longest vector of preferred, preferred/2,
    ... 8 lanes dividing n with at least 2 steps, and the block of the loop (a multiple of it, see
    `_block`; n itself where n fits in fan.terms vectors) whose count `nt` divides if one does (the
    thread split of a full reduction: 1e6 = 250 blocks of 32-lane steps, not 125 of 64). lanes 0: none
    divides, or preferred is 0 (scalar blocks)."""
    fallback = None
    v = preferred
    while v >= 8:
        if n % v == 0 and n >= 2 * v:
            steps = n // v
            if steps <= fan.terms:
                return (v, n) if fallback is None else fallback
            b = _block(steps, nt, fan)
            if b and (steps // b) % nt == 0:
                return v, v * b
            if b and fallback is None:
                fallback = v, v * b
        v //= 2
    if fallback is not None:
        return fallback
    return 0, (_block(n, nt, fan) if n > fan.terms else 0) or n


def _column_vector(c: int, preferred: int) -> int:
    """Lanes along a parallel innermost loop of c columns: the longest power of two up to
    `preferred` dividing c (1, 2 or 4 for narrow or odd rows: f32[2**25, 2] takes 2-lane steps)."""
    v = preferred
    while v > 1 and c % v:
        v //= 2
    return v


def _splittable(sizes: list[int], loops: list[int], nt: int) -> bool:
    return any(sizes[i] % nt == 0 for i in loops)


# ---- entry point
def reduction_schedules(module: ir.Module, ctx: Context) -> list[Schedule]:
    """Reductions (the elementwise producers fused in) blocked for precision (module doc) and
    scheduled: row reductions with partial accumulators along the innermost loop
    (`tile_reduction_using_for`, the other loops by 1), column reductions with a vector of columns
    per step; the steps vectorized (so the fused math runs in SIMD) and the final combinations."""
    out: list[Schedule] = []
    for op in walk(module, ("linalg.generic",)):
        _reduce(op, ctx, out, 0, INPUT)
    return out


def _reduce(op: ir.Operation, ctx: Context, out: list[Schedule], level: int, fan: _Fan) -> None:
    r = _read(op)
    if r is None:
        return
    r = _contiguous_last(r)
    op = r.op
    nt = ctx.threads
    big = nt > 1 and math.prod(r.sizes) >= PARALLEL_MIN_ELEMENTS
    pref = ctx.target.reduction_vector(r.elem)
    last = len(r.iters) - 1
    par, red = r.par, r.red
    peel: list[int] = []
    block: tuple[int, int] | None = None
    if r.iters[last] == "reduction":  # row reduction
        need = nt if big and not _splittable(r.sizes, par, nt) else 1
        vec, b = _row_vector(r.sizes[last], pref if fan is INPUT else 0, need, fan)
        if b < r.sizes[last]:
            block = (last, b)
        if math.prod(r.sizes[i] for i in red[:-1]) > fan.terms:
            peel = red[:-1]
    else:  # column reduction
        vec = _column_vector(r.sizes[last], pref)
        n_red = math.prod(r.sizes[i] for i in red)
        if n_red > fan.terms:
            inner, n = red[-1], r.sizes[red[-1]]
            b = n
            if n > fan.terms:
                need = nt if big and not _splittable(r.sizes, par, nt) else 1
                b = _block(n, need, fan)
                block = (inner, b) if b else None
            if b and n_red // n * b > fan.terms:
                peel = red[:-1]
    if (peel or block) and r.combiners is not None and level < MAX_LEVELS:
        g1, g2 = _split(r, peel, block)
        for fill in {v.owner for v in list(g1.operands)[-r.nres:]}:
            _fill(fill.operation, ctx, out)
        _reduce(g1, ctx, out, level + 1, fan)
        _reduce(g2, ctx, out, level + 1, UPPER)
        return
    if not vec:
        return  # scalar loops (no vector length divides the row)
    name = tag(op, f"red{len(out)}")
    blocks = None
    for i in par:  # threads: the first parallel loop they divide (columns: whole vectors each)
        if big and r.sizes[i] % nt == 0 and (i != last or (r.sizes[i] // nt) % vec == 0):
            blocks = [r.sizes[i] // nt if j == i else 0 for j in range(len(r.iters))]
            break
    order = par + red  # the tiled nest: parallel loops outermost
    interchange = order if order != sorted(order) else None
    # loops one step at a time: none for unit dims (a one-trip loop is folded by the patterns after
    # the schedules, which fails a handle the hoists still hold)
    steps = [1 if n > 1 else 0 for n in r.sizes[:last]]
    if r.iters[last] == "reduction":
        outer = steps + [0] if any(steps) else None
        tiles = [0 if i in par else 1 for i in range(last)] + [vec]
        out.append(partial(_row_schedule, name, r.nres, blocks, outer, interchange, tiles))
    elif vec == r.sizes[last]:  # one vector of columns: kept in registers across the reduced loops
        hoists = sum(1 for i in red if r.sizes[i] > 1)
        out.append(partial(_column_schedule, name, blocks, None, steps + [0], interchange, hoists))
    else:  # wider rows: streamed, into the accumulated row in L1 (see _column_schedule)
        # one register per step: the accumulator is in memory, 4-register steps (independent add
        # chains in registers) ran 1.4x slower on f32[512, 1024] (0.048 vs 0.029 ms)
        vec = _column_vector(vec, ctx.target.lanes(r.elem))
        cols = r.sizes[last] // (nt if blocks is not None and blocks[last] else 1)
        panel = best_tile(cols, vec, ctx.target.l1d_bytes // 2 // DTYPES[r.elem].itemsize)
        panels = [s if i in par else 0 for i, s in enumerate(steps)] + [panel] if panel < cols else None
        sizes = [0 if i in par and panels else s for i, s in enumerate(steps)] + [vec]
        order = [i for i in par if i != last] + red + [last]
        out.append(partial(_column_schedule, name, blocks, panels, sizes, order if order != sorted(order) else None, 0))


# ---- the rewrites: loop order, blocking
def _contiguous_last(r: _Red) -> _Red:
    """The op with its loops reordered so that the one the largest input walks contiguously (its
    last dim) is innermost, the others in order: sum(transpose(x), axis=0) is x's row sums, a row
    reduction, not a column one read across rows. As is where that loop is innermost already, or
    where moving it would reorder the parallel loops the results are indexed by."""
    op = r.op
    n_in = len(op.operands) - r.nres
    maps = indexing_maps(op)
    ins = [(math.prod(ir.RankedTensorType(v.type).shape), -i, m) for i, (v, m) in
           enumerate(zip(list(op.operands)[:n_in], maps[:n_in], strict=True)) if len(m.results)]
    if not ins or _has_index(op):
        return r
    k = ir.AffineDimExpr(max(ins, key=lambda t: t[:2])[2].results[-1]).position
    last = len(r.iters) - 1
    if k == last or (r.iters[k] == "parallel" and any(i > k for i in r.par)):
        return r
    order = [i for i in range(last + 1) if i != k] + [k]
    pos = {old: new for new, old in enumerate(order)}
    new_maps = [dims_map(last + 1, [pos[ir.AffineDimExpr(e).position] for e in m.results]) for m in maps]
    with ir.InsertionPoint(op), op.location:
        new = linalg.GenericOp([v.type for v in op.results], list(op.operands)[:n_in], list(op.operands)[n_in:],
                               _maps_attr(new_maps), _iters_attr([r.iters[i] for i in order], op.context)).operation
    op.regions[0].blocks[0].append_to(new.regions[0])
    for old, v in zip(op.results, new.results, strict=True):
        old.replace_all_uses_with(v)
    op.erase()
    moved = _read(new)
    assert moved is not None  # the same op, its loops renamed
    return moved


def _has_index(op: ir.Operation) -> bool:
    return any(o.name == "linalg.index" for o in op.regions[0].blocks[0].operations)


def _iters_attr(kinds: list[str], ctx: ir.Context) -> ir.ArrayAttr:
    return ir.ArrayAttr.get([ir.Attribute.parse(f"#linalg.iterator_type<{k}>", ctx) for k in kinds])


def _maps_attr(maps: list[ir.AffineMap]) -> ir.ArrayAttr:
    return ir.ArrayAttr.get([ir.AffineMapAttr.get(m) for m in maps])


def _fill(op: ir.Operation, ctx: Context, out: list[Schedule]) -> None:
    """A temporary's fill, vectorized a row at a time: left to the default lowering, LLVM unrolls
    a -inf fill of f32[32, 1024] into one block its scheduler takes 6 s over (0.0: a memset)."""
    t = ir.RankedTensorType(op.results[0].type)
    elem = element_name(t.element_type)
    n = t.shape[-1] if t.rank else 1
    vec = vector_length(n, ctx.target.elementwise_vector(elem), min_steps=1) if elem else 0
    if not vec and n > ctx.target.elementwise_vector(elem or "f32"):
        return
    sizes = [1] * (t.rank - 1) + [vec or n] if t.rank else []
    out.append(partial(_fill_schedule, tag(op, f"red{len(out)}"), sizes))


def _fill_schedule(tag: str, sizes: list[int], root: ir.Value) -> list[ir.Value]:
    target = match_tagged(root, tag)
    if sizes:
        target = structured.TileUsingForOp(target, sizes=sizes).tiled_linalg_op
    structured.VectorizeOp(target)
    return []


def _split(r: _Red, peel: list[int], block: tuple[int, int] | None) -> tuple[ir.Operation, ir.Operation]:
    """G1 (loop `block[0]` cut into (blocks, block[1]) with the block index parallel, the `peel`
    loops parallel, results into a neutral-filled temporary indexed by every parallel loop) and G2
    (the temporary reduced into the op's results, from its inits); the op is replaced and erased."""
    op = r.op
    n_in = len(op.operands) - r.nres
    new: list[list[int]] = []  # old loop -> its new loops
    iters1: list[str] = []
    sizes1: list[int] = []
    reduced_by_g2: list[bool] = []  # per new loop: a parallel loop of G1 that G2 reduces
    for i, (it, n) in enumerate(zip(r.iters, r.sizes, strict=True)):
        if block is not None and i == block[0]:
            new.append([len(iters1), len(iters1) + 1])
            iters1 += ["parallel", "reduction"]
            sizes1 += [n // block[1], block[1]]
            reduced_by_g2 += [True, False]
        else:
            new.append([len(iters1)])
            iters1.append("parallel" if i in peel else it)
            sizes1.append(n)
            reduced_by_g2.append(i in peel)
    n1 = len(iters1)
    maps = indexing_maps(op)
    with ir.InsertionPoint(op), op.location:
        ins, in_maps = [], []
        for v, m in zip(list(op.operands)[:n_in], maps[:n_in], strict=True):
            dims = [ir.AffineDimExpr(e).position for e in m.results]
            res = [k for d in dims for k in new[d]]
            in_maps.append(dims_map(n1, res))
            if len(res) != len(dims):  # this operand reads the blocked loop: expand that dim
                t = ir.RankedTensorType(v.type)
                groups, pos = [], 0
                for d in dims:
                    groups.append(list(range(pos, pos + len(new[d]))))
                    pos += len(new[d])
                shape = [sizes1[k] for k in res]
                v = tensor.expand_shape(tensor_type(shape, t.element_type), v, groups, [], shape)
            ins.append(v)
        out_loops = [k for k in range(n1) if iters1[k] == "parallel"]
        shape1 = [sizes1[k] for k in out_loops]
        inits1 = [full(tensor_type(shape1, res.type.element_type), NEUTRAL[c.name])
                  for res, c in zip(op.results, r.combiners, strict=True)]
        g1 = linalg.GenericOp([v.type for v in inits1], ins, inits1,
                              _maps_attr(in_maps + [dims_map(n1, out_loops)] * r.nres),
                              _iters_attr(iters1, op.context)).operation
        op.regions[0].blocks[0].append_to(g1.regions[0])
        n2 = len(out_loops)
        iters2 = ["reduction" if reduced_by_g2[k] else "parallel" for k in out_loops]
        keep = [j for j, it in enumerate(iters2) if it == "parallel"]
        g2 = linalg.GenericOp([v.type for v in op.results], list(g1.results), list(op.operands)[n_in:],
                              _maps_attr([dims_map(n2, range(n2))] * r.nres + [dims_map(n2, keep)] * r.nres),
                              _iters_attr(iters2, op.context)).operation
        elems = [v.type.element_type for v in op.results]
        body = g2.regions[0].blocks.append(*elems, *elems)
        with ir.InsertionPoint(body):
            args = list(body.arguments)
            combined = [ir.Operation.create(c.name, results=[e], operands=[args[j], args[r.nres + j]],
                                            attributes={k: c.attributes[k] for k in c.attributes}).result
                        for j, (c, e) in enumerate(zip(r.combiners, elems, strict=True))]
            linalg.YieldOp(combined)
    for old, v in zip(op.results, g2.results, strict=True):
        old.replace_all_uses_with(v)
    op.erase()
    return g1, g2


# ---- schedules
def _row_schedule(tag: str, nres: int, blocks: list[int] | None, outer: list[int] | None,
                  interchange: list[int] | None, tiles: list[int], root: ir.Value) -> list[ir.Value]:
    """Thread blocks (when split), the parallel and outer reduced loops one step at a time (parallel
    outermost), vector-length partials along the innermost loop, each step vectorized; returns the
    loop of the partial step, whose accumulator the hoist keeps in registers."""
    target = split_blocks(match_tagged(root, tag), blocks)
    if outer is not None:
        target = structured.TileUsingForOp(target, sizes=outer, interchange=interchange).tiled_linalg_op
    fills, step, combines, _ = _tile_reduction(structured.TileReductionUsingForOp, target, nres, tile_sizes=tiles)
    loop = transform.GetParentOp(any_op(), step, op_name="scf.for").result
    structured.VectorizeOp(step)
    for combine, fill in zip(combines, fills, strict=True):
        structured.VectorizeOp(combine)
        structured.VectorizeOp(fill)
    return [loop]


def _column_schedule(tag: str, blocks: list[int] | None, panels: list[int] | None, sizes: list[int],
                     interchange: list[int] | None, n_hoist: int, root: ir.Value) -> list[ir.Value]:
    """Thread blocks (when split), panels of columns (when the accumulated row would not fit half
    of L1), then a vector of columns per step. One vector of columns (`n_hoist` reduced loops
    innermost): the accumulator stays in registers across the reduced loops (the hoists, innermost
    loop first). Wider rows: the reduced loops outside the columns, so each row is read
    contiguously; a vector per row per step jumps a row's length (4 KiB in f32[N, 1024]: a new page
    every read, which the prefetchers do not follow: f32[8192, 1024] took 2.8 ms instead of 1.3).
    The step's unit reduced dims are folded at once (the canonicalization here): left to the
    patterns applied after every schedule, its multi-reduction of a product would become a
    contraction, lowered to scalar code."""
    target = split_blocks(match_tagged(root, tag), blocks)
    if panels is not None:
        target = structured.TileUsingForOp(target, sizes=panels).tiled_linalg_op
    loops: list[ir.Value] = []
    if any(sizes):
        tiled = structured.TileUsingForOp(target, sizes=sizes, interchange=interchange)
        target, loops = tiled.tiled_linalg_op, list(tiled.loops)[::-1]
    structured.VectorizeOp(target)
    if loops:
        with ir.InsertionPoint(transform.ApplyPatternsOp(loops[0]).patterns):
            transform.ApplyCanonicalizationPatternsOp()
    return loops[:n_hoist]


def _tile_reduction(op: type[ir.OpView], target: ir.Value, nres: int,
                    **sizes: list[int]) -> tuple[list[ir.Value], ir.Value, list[ir.Value], ir.Value]:
    """(fills, partial step, combining ops, loop): one fill and one combining op per result. The ODS
    declares one combining handle after the variadic fills, so the handles are taken by position."""
    handles = list(op([any_op()] * (2 * nres - 1), any_op(), any_op(), any_op(), target, **sizes).results)
    return handles[:nres], handles[nres], handles[nres + 1 : 2 * nres + 1], handles[-1]
