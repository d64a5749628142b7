"""Matmul and batch_matmul schedules: a cache tile, then a register tile vectorized to
`vector.contract` and lowered to outer products, with the C tile kept in registers across k.

Every contraction reaches one of the forms of `FORMS` (`contractions.py`); a B stored n x k comes as a
pack (a `linalg.transpose` producing B), fused into the cache tile loops: each B tile is transposed in
registers right before the register tiles read it. Against a transposed copy of all of B ahead of
the kernel, f32 256x1024 @ (1024x1024)^T, one thread (AMD EPYC, medians of 10 runs, best in
parentheses, +-15% noise): the plain `g @ w` 6.2 ms (5.5), a whole copy first 7.2 (6.3), the fused
pack 6.4 (5.9).

The register and cache tiles come from the target description (`CpuTarget.matmul_register_tile`,
`matmul_cache_tile`). The figures that chose them, on AVX-512:
The register tile of C is 16 zmm registers (f32 8x32, f64 4x32), kept across the k loop.
Measured at 1024^3 on AVX-512 (about +-15% noise): f32 ~100 GFLOP/s, f64 ~44 GFLOP/s per core.
f32 cache tile 128 x 256 x 256 (was 64 x 256 x 128): on a quiet machine, 2 threads, against
NumPy/OpenBLAS in the same process: 2048^3 149 -> 172 GFLOP/s (NumPy 204), 1024^3 177 -> 189 (190).
Then 256 x 256 x 256, with the thread split by columns when n > m: B (the weights) is then read once
per matmul, not once per 128-row block. In the big MLP the B matrices (4 MB each) do not stay in
this VM's share of L3 from one matmul to the next: (x @ W1) @ W2, 256x1024x1024, one thread,
12.9 -> 11.0 ms (2 x one matmul: 10.8); mlp-L JVP 13.1 -> 11.7 ms, value+grad 16.2 -> 15.4 ms
(jax.jit 12.0 / 15.3, all in one process, interleaved).
"""

from __future__ import annotations

from functools import partial

from mlir import ir
from mlir.dialects.transform import structured

from ....irutils.linalg import defining_op, indexing_maps, matmul_maps
from ....irutils.types import element_name
from ....irutils.walk import walk
from ..outline import LIBRARY_CALL
from .common import (
    PARALLEL_MIN_MACS,
    Context,
    Schedule,
    best_tile,
    match_tagged,
    static_tensor_types,
    tag,
)


def _register_tile(inner: tuple[int, int, int], m: int, n: int,
                   transposed_a: bool = False) -> tuple[int, int, int]:
    """The register tile (m, n, k) for an m x n result: the type's default (16 zmm of C) where it
    divides; a narrower C (n < the default, e.g. the 10 outputs of a classifier layer) takes its whole
    width as one (LLVM-widened) vector per row, with twice the rows when a row fits one register and
    A is read transposed (A^T B: the tile's A column is one contiguous load); 0 where nothing divides
    (plain loops). With A read by rows, twice the rows means 16 A rows in flight, which at a row
    stride of 4 KiB (k = 1024 f32) all map to one L1 set: 256x1024 @ 1024x10 took 0.162 ms with 16
    rows, 0.077 with 8 (n = 8, 12, 16 alike); 1024x256^T @ 256x10 0.078 with 16, 0.099 with 8."""
    im, in_, ik = inner
    if n % in_:
        cands = [n] if n < in_ else []
        # narrower power-of-two widths down to 4 (100 columns: 4 a row, 16x150 @ 150x100 x64 batches
        # 7.3 ms in plain loops -> 0.59 ms; widths that are no power of two vectorize badly: 20, 3.9 ms)
        cands += [d for d in (in_ // 2, in_ // 4, in_ // 8) if d >= 4 and n % d == 0]
        in_ = cands[0] if cands else 0
        if transposed_a and in_ and in_ <= inner[1] // 2 and m % (2 * im) == 0:
            im *= 2
    if m % im:
        im = next((d for d in (im // 2, im // 4, 1) if d and m % d == 0), 0)
    return im, in_, ik


# The forms the schedule takes: (batch, A stored k x m, the input without batch dim: "a", "b" or "").
# (linalg.batch_matmul takes no transposed A without batch dim: contractions.py packs that A)
FORMS = ([(False, ta, "") for ta in (False, True)] + [(True, False, bc) for bc in ("", "a", "b")]
         + [(True, True, bc) for bc in ("", "b")])


def _form(op: ir.Operation) -> tuple[bool, bool, str] | None:
    maps = indexing_maps(op)
    return next((f for f in FORMS if op.name == ("linalg.batch_matmul" if f[0] else "linalg.matmul")
                 and maps == matmul_maps(*f)), None)


def _pack(v: ir.Value) -> ir.Operation | None:
    """The `linalg.transpose` producing an input (its pack), fused into the cache tile loops."""
    op = defining_op(v)
    return op if op is not None and op.name == "linalg.transpose" else None


def matmul_schedules(module: ir.Module, ctx: Context) -> list[Schedule]:
    """Tag schedulable contractions; return their schedules (the k loop of each register tile is
    hoisted, keeping the C tile in registers)."""
    out: list[Schedule] = []
    for op in walk(module, ("linalg.matmul", "linalg.batch_matmul")):
        types = static_tensor_types(op)
        form = _form(op)
        if types is None or len(types) != 4 or form is None or LIBRARY_CALL in op.attributes:
            continue  # dynamic shapes or another form: loops; a library call (`blas.py`)
        batch, ta, _ = form
        elems = {element_name(t.element_type) for t in types}
        if len(elems) != 1 or None in elems:
            continue
        elem = elems.pop()
        inner, outer = ctx.target.matmul_register_tile(elem), ctx.target.matmul_cache_tile(elem)
        # C = A^T B (A stored k x m): the register tile reads A[k, m:m+8] (contiguous) and B[k, n:n+32]
        # per k step, as for C = A B
        a, b, c = types[0].shape, types[1].shape, types[2].shape
        m, k, n = (a[-1], a[-2], b[-1]) if ta else (a[-2], a[-1], b[-1])
        im, in_, ik = _register_tile(inner, m, n, ta)
        if not im or not in_ or k % ik or k < 2 or min(m, n, k) == 0:
            continue  # no register tile divides the shape: plain loops
        # threads: split C into `nt` blocks (an scf.forall, run by async-parallel-for): by columns when
        # B is the larger operand (n > m: each thread then reads its part of B once, instead of all of
        # it), else by rows
        nt = ctx.threads
        batch_n = c[0] if batch else 1
        big = nt > 1 and batch_n * m * n * k >= PARALLEL_MIN_MACS
        split_n = big and not batch and n > m and n % (nt * in_) == 0
        split = split_n or (big and m % (nt * im) == 0)
        tm = m // nt if split and not split_n else m
        tn = n // nt if split_n else n
        pre = [1] if batch else []
        blocks = (pre + [0, tn] if split_n else pre + [tm, 0]) if split else None
        ck = best_tile(k, ik, outer[2])
        # a k with no divisor up to the cache tile but the register tile's (a prime k above 256) is not
        # cache-tiled: tiling k twice by the same size leaves a one-trip k loop, which folds away
        # under the hoist's handle ("tracking listener failed to find replacement op")
        cache = pre + [best_tile(tm, im, outer[0]), best_tile(tn, in_, outer[1]), 0 if ck == ik else ck]
        # an input's pack (a transpose, B stored n x k) is fused into the cache tile loops: each tile of
        # the packed B is written just before the register tiles read it, from L2, instead of a
        # transposed copy of all of B written to memory and read back; square tiles transposed in
        # registers where they divide the tile
        tile = dict(zip("mnk", cache[len(pre):], strict=True))
        size = dict(zip("mnk", (m, n, k), strict=True))
        sq = ctx.target.transpose_tile(elem)
        packs = []
        for v, dims in zip(op.operands[:2], ("km" if ta else "mk", "kn"), strict=True):
            pack = _pack(v)
            if pack is not None:
                rows, cols = (tile[d] or size[d] for d in dims)
                square = rows % sq == 0 and cols % sq == 0
                sizes = [1] * (ir.RankedTensorType(v.type).rank - 2) + ([sq, sq] if square else [1, 1])
                packs.append((tag(pack, f"mm{len(out)}p{len(packs)}"), sizes))
        out.append(partial(_schedule, tag(op, f"mm{len(out)}"), blocks, cache, pre + [im, in_, ik], packs))
    return out


def _schedule(tag: str, blocks: list[int] | None, cache: list[int], register: list[int],
              packs: list[tuple[str, list[int]]], root: ir.Value) -> list[ir.Value]:
    """Thread blocks (when split), cache tile with the packs fused in, register tile vectorized;
    returns the k loop."""
    target = match_tagged(root, tag)
    fused = [match_tagged(root, t) for t, _ in packs]

    def fuse_into(loop: ir.Value) -> None:  # each fusion replaces the loop's handle
        for i, p in enumerate(fused):
            step = structured.FuseIntoContainingOp(p, loop)
            fused[i], loop = step.fused_op, step.new_containing_op

    if blocks is not None:
        forall = structured.TileUsingForallOp(target, tile_sizes=blocks)
        target = forall.tiled_op
        fuse_into(forall.forall_op)
    cache_tiled = structured.TileUsingForOp(target, sizes=cache)
    target = cache_tiled.tiled_linalg_op
    fuse_into(cache_tiled.loops[-1])
    for p, (_, sizes) in zip(fused, packs, strict=True):
        structured.VectorizeOp(structured.TileUsingForOp(p, sizes=sizes).tiled_linalg_op)
    tiled = structured.TileUsingForOp(target, sizes=register)
    structured.VectorizeOp(tiled.tiled_linalg_op)
    return [tiled.loops[-1]]
