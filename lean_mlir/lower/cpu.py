"""CPU back end: linalg on tensors -> LLVM dialect, ready for the ExecutionEngine.

Input: a module of `func.func`s whose arguments and results are statically shaped ranked tensors of
f32/f64, with bodies made of linalg (named ops and generics), tensor, arith and math ops.
`lower_to_llvm` rewrites it in place through four steps:

1. tensor level: elementwise named ops are generalized and fused (`linalg-fuse-elementwise-ops`);
2. transform-dialect schedules: matmul/batch_matmul whose shapes divide the register tile are tiled
   (cache tile, then register tile), vectorized to `vector.contract`, lowered to outer products,
   with the C tile hoisted out of the k loop; all-parallel generics whose innermost dimension
   divides the vector width are tiled and vectorized; everything else goes through loops (which
   LLVM -O3 auto-vectorizes about as well for plain arithmetic; transcendental functions are
   scalar libm calls either way);
3. bufferization with out-params: a public `f(args) -> (r1, r2)` becomes `f(args, o1, o2) -> ()`;
4. conversion to the LLVM dialect with C wrappers (`_mlir_ciface_f`) and packed wrappers (`_mlir_f`).

The pass pipelines are module-level constants so tools (lean-mlir-opt) can reuse them.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import math
import os
from dataclasses import dataclass
from functools import cache

from mlir import ir
from mlir.dialects import func as func_d
from mlir.dialects import vector as vector_d
from mlir.dialects.transform import interpreter
from mlir.passmanager import PassManager

from lean_mlir.runtime import pool

from . import threads as _threads
from .fusion import fuse_multi_use, loop_sizes
from .outline import fold_transposes, mark_noinline, outline_contractions

# Named linalg ops turned into linalg.generic before fusion (all implement the LinalgOp interface).
# Contractions (matmul, batch_matmul) stay named so the matmul schedule can find them; fill stays
# named because it is only ever an init (outs) operand, which fusion does not look through.
GENERALIZED_OPS: tuple[str, ...] = tuple(
    "linalg." + n
    for n in (
        "add sub mul div div_unsigned max min powf exp log abs ceil floor negf reciprocal round sqrt "
        "rsqrt square tanh erf select elemwise_unary elemwise_binary elementwise map reduce broadcast "
        "transpose copy"
    ).split()
)

# Step 1: fusion of elementwise producers into their consumers (after generalization).
# `linalg-fold-unit-extent-dims` turns broadcasts from `tensor<1xf32>` (map `(d0) -> (0)`, which the
# vectorizer rejects) into rank-0 operands (`(d0) -> ()`).
FUSION_PIPELINE = (
    "builtin.module(canonicalize,linalg-fold-unit-extent-dims,canonicalize,linalg-fuse-elementwise-ops,"
    "canonicalize,cse)"
)

# Run after the transform schedules, still on tensors.
POST_SCHEDULE_PIPELINE = "builtin.module(canonicalize,cse)"

# Step 3: bufferization, out-params for every public function, deallocation.
# `lower_to_llvm` runs it in two halves with `distinct_results` between them (see there).
_ONE_SHOT = (
    "one-shot-bufferize{bufferize-function-boundaries=1"
    " function-boundary-type-conversion=identity-layout-map},"
    "canonicalize,cse,canonicalize"
)
_OUT_PARAMS = (
    "buffer-results-to-out-params{modify-public-functions=1 hoist-static-allocs=1},"
    "canonicalize,buffer-deallocation-pipeline"
)
BUFFERIZE_PIPELINE = f"builtin.module({_ONE_SHOT},{_OUT_PARAMS})"

# Step 4: loops, vectors, math and everything else to the LLVM dialect. `approximate-log1p=0` leaves
# log1p to libm (the LLVM expansion log(1+x) loses all precision for tiny x); tanh, erf, ... go to
# libm too, whose symbols the ExecutionEngine resolves from the host process. The C wrappers are
# requested first: requested after convert-math-to-libm they would also be asked for the external
# libm declarations (`_mlir_ciface_erff`: "Symbols not found" when the engine is built).
TO_LLVM_PIPELINE = (
    "builtin.module("
    "func.func(llvm-request-c-wrappers),"
    "convert-linalg-to-loops,convert-vector-to-scf{full-unroll=1},lower-affine,convert-scf-to-cf,"
    "expand-strided-metadata,lower-affine,"
    "convert-math-to-llvm{approximate-log1p=0},convert-math-to-libm,"  # libm unrolls vectors: before
    "convert-vector-to-llvm,finalize-memref-to-llvm,convert-arith-to-llvm,"
    "convert-ub-to-llvm,convert-func-to-llvm,convert-cf-to-llvm,"
    "reconcile-unrealized-casts)"
)

# scf.forall (from the thread split) -> scf.parallel -> async tasks on libmlir_async_runtime's pool: the
# upstream (coroutine) lowering, used only where `lean_mlir.lower.threads` does not know an async op.
# The caller runs one block itself and waits for the others. Run after the C wrappers are requested
# (the outlined `parallel_compute_fn`s must not get any).
ASYNC_PIPELINE = (
    "builtin.module(func.func(scf-forall-to-parallel),"
    "async-parallel-for{async-dispatch=0 num-workers=-1 min-task-size=1},"
    "async-to-async-runtime,async-runtime-ref-counting,async-runtime-ref-counting-opt,"
    "convert-async-to-llvm)"
)

_C_WRAPPERS = "builtin.module(func.func(llvm-request-c-wrappers)"
assert TO_LLVM_PIPELINE.startswith(_C_WRAPPERS + ",")
_C_WRAPPERS += ")"

# The whole text pipeline after the transform schedules (for command-line use with mlir-opt).
# It lacks the Python-side `bufferization.writable = false` marking of function arguments
# (`_protect_inputs`): without it, bufferization may write into an input buffer.
# It also lacks `distinct_results`: mlir-opt crashes on a function that returns one buffer twice.
LOWERING_PIPELINE = (
    POST_SCHEDULE_PIPELINE[: -1] + "," + BUFFERIZE_PIPELINE[len("builtin.module(") : -1] + ","
    + TO_LLVM_PIPELINE[len("builtin.module(") :]
)


@dataclass(frozen=True)
class MatmulTiles:
    """Tile sizes per element type: cache tile (m, n, k) then register tile (m, n, k)."""

    outer: tuple[int, int, int]
    inner: tuple[int, int, int]


# The register tile of C is 16 zmm registers (f32 8x32, f64 4x32), kept across the k loop.
# Measured at 1024^3 on AVX-512 (about +-15% noise): f32 ~100 GFLOP/s, f64 ~44 GFLOP/s per core.
# f32 cache tile 128 x 256 x 256 (was 64 x 256 x 128): on a quiet machine, 2 threads, against
# NumPy/OpenBLAS in the same process: 2048^3 149 -> 172 GFLOP/s (NumPy 204), 1024^3 177 -> 189 (190).
# Then 256 x 256 x 256, with the thread split by columns when n > m: B (the weights) is then read once
# per matmul, not once per 128-row block. In the big MLP the B matrices (4 MB each) do not stay in
# this VM's share of L3 from one matmul to the next: (x @ W1) @ W2, 256x1024x1024, one thread,
# 12.9 -> 11.0 ms (2 x one matmul: 10.8); mlp-L JVP 13.1 -> 11.7 ms, value+grad 16.2 -> 15.4 ms
# (jax.jit 12.0 / 15.3, all in one process, interleaved).
MATMUL_TILES: dict[str, MatmulTiles] = {
    "f32": MatmulTiles((256, 256, 256), (8, 32, 1)),
    "f64": MatmulTiles((64, 128, 256), (4, 32, 1)),
}

# Elementwise vectorization: innermost tile length per element type (2 zmm registers per operand:
# as fast as 4 on the benchmarks, and ~15% less LLVM compile time on the big MLP).
ELEMENTWISE_VECTOR: dict[str, int] = {"f32": 32, "f64": 16}
# Full reductions: partial accumulators per element type (4 zmm: independent add chains; a 1e6-element
# sum(exp(...)) ran 15% faster than with 2).
REDUCTION_VECTOR: dict[str, int] = {"f32": 64, "f64": 32}

# Threads: large matmuls (>= PARALLEL_MIN_MACS multiply-adds), elementwise loops and full reductions
# (>= PARALLEL_MIN_ELEMENTS) are split into `threads()` blocks by an scf.forall, which becomes an
# scf.parallel, then calls into the spinning worker pool (`lean_mlir.lower.threads`,
# `lean_mlir.runtime.pool`; a split loop costs ~2 us to start); smaller problems stay on the calling
# thread. Every split loop costs LLVM about 25 ms of compile time (outlined block, spawn, task).
# Measured in one process, interleaved: matmuls from 2^20 (was 2^23 with the async runtime's parked
# threads): mlp-S forward 0.165 -> 0.097 ms. Elementwise loops stay at 2^19: splitting the big MLP's
# 2^18-element layers too gave value+grad 15.28 -> 14.84 ms and JVP 11.72 -> 11.61 ms, but the compile
# (with the first call, where the JIT generates code) 0.70 -> 0.85 s (0.89-1.02 s inside bench.py),
# at the edge of the 1 s budget.
PARALLEL_MIN_MACS = 1 << 20
PARALLEL_MIN_ELEMENTS = 1 << 19

# Each distinct matmul kind (shapes, maps, init) is outlined into one private kernel function that
# every use calls (`lean_mlir.lower.outline`): scheduled and compiled by LLVM once per kind.
OUTLINE_CONTRACTIONS = os.environ.get("LEAN_MLIR_OUTLINE", "1") != "0"


@cache
def threads() -> int:
    """Blocks a large loop is split into: LEAN_MLIR_THREADS, else the CPUs this process may use."""
    env = os.environ.get("LEAN_MLIR_THREADS")
    if not pool.supported():
        return 1  # no worker pool on this platform
    if env:
        return max(1, int(env))
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


_TAG = "__lean_mlir_sched"  # discardable attribute that marks the ops a transform schedule targets


def _run(module: ir.Module, pipeline: str) -> None:
    PassManager.parse(pipeline, context=module.context).run(module.operation)


def _walk(module: ir.Module, names: set[str] | tuple[str, ...]) -> list[ir.Operation]:
    found: list[ir.Operation] = []

    def visit(op: ir.Operation) -> ir.WalkResult:
        if op.name in names:
            found.append(op)
        return ir.WalkResult.ADVANCE

    module.operation.walk(visit)
    return found


def _static_tensor_types(op: ir.Operation) -> list[ir.RankedTensorType] | None:
    types = [v.type for v in list(op.operands) + list(op.results)]
    if not all(isinstance(t, ir.RankedTensorType) and t.has_static_shape for t in types):
        return None
    return types


def _elem_name(t: ir.Type) -> str | None:
    return "f32" if isinstance(t, ir.F32Type) else "f64" if isinstance(t, ir.F64Type) else None


def _vector_length(n: int, preferred: int, blocks: int = 1, min_steps: int = 2) -> int:
    """The longest of preferred, preferred/2, ... down to 8 lanes whose `blocks` x length divides n,
    with at least `min_steps` steps (a loop of 1e5 f32 takes 32 lanes, not scalar code); else 0."""
    v = preferred
    while v >= 8:
        if n % (blocks * v) == 0 and n >= min_steps * v:
            return v
        v //= 2
    return 0


def _best_tile(dim: int, inner: int, limit: int) -> int:
    """Largest multiple of `inner` that divides `dim` and is at most `limit` (dim % inner == 0)."""
    best = inner
    for t in range(inner, min(dim, limit) + 1, inner):
        if dim % t == 0:
            best = t
    return best


def _apply_transform(module: ir.Module, body: str) -> None:
    text = (
        "module attributes {transform.with_named_sequence} {\n"
        "transform.named_sequence @__transform_main(%root: !transform.any_op {transform.readonly}) {\n"
        f"{body}  transform.yield\n}}\n}}"
    )
    sched = ir.Module.parse(text, context=module.context)
    interpreter.apply_named_sequence(module.operation, sched.body.operations[0], sched)


def _generalize(module: ir.Module) -> None:
    names = sorted({op.name for op in _walk(module, GENERALIZED_OPS)})
    if names:
        quoted = ", ".join(f'"{n}"' for n in names)
        _apply_transform(
            module,
            f"  %ops = transform.structured.match ops{{[{quoted}]}} in %root"
            " : (!transform.any_op) -> !transform.any_op\n"
            "  %g = transform.structured.generalize %ops : (!transform.any_op) -> !transform.any_op\n",
        )


def _any4(n: int) -> str:
    return "(!transform.any_op) -> (" + ", ".join(["!transform.any_op"] * n) + ")"


_DEFAULT_MAPS = {
    False: "[affine_map<(d0, d1, d2) -> (d0, d2)>, affine_map<(d0, d1, d2) -> (d2, d1)>, "
    "affine_map<(d0, d1, d2) -> (d0, d1)>]",
    True: "[affine_map<(d0, d1, d2, d3) -> (d0, d1, d3)>, affine_map<(d0, d1, d2, d3) -> (d0, d3, d2)>, "
    "affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>]",
}


# C = A^T B (A stored k x m): the register tile reads A[k, m:m+8] (contiguous) and B[k, n:n+32] per k
# step, as for C = A B; the gradients' `h.T @ g` fold their transpose into these maps.
TRANSPOSED_A_MAPS = (
    "[affine_map<(d0, d1, d2) -> (d2, d0)>, affine_map<(d0, d1, d2) -> (d2, d1)>, "
    "affine_map<(d0, d1, d2) -> (d0, d1)>]"
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
        cands += [d for d in (in_ // 2, in_ // 4) if d and n % d == 0]
        in_ = cands[0] if cands else 0
        if transposed_a and in_ and in_ <= inner[1] // 2 and m % (2 * im) == 0:
            im *= 2
    if m % im:
        im = next((d for d in (im // 2, im // 4, 1) if d and m % d == 0), 0)
    return im, in_, ik


def _matmul_schedules(module: ir.Module) -> tuple[list[str], list[str]]:
    """Tag schedulable contractions; return (tile+vectorize snippets, hoist snippets)."""
    tile_ops: list[str] = []
    hoists: list[str] = []
    for op in _walk(module, ("linalg.matmul", "linalg.batch_matmul")):
        types = _static_tensor_types(op)
        batch = op.name == "linalg.batch_matmul"
        if types is None or len(types) != 4:
            continue  # dynamic shapes: loops
        maps = str(op.attributes["indexing_maps"])
        ta = not batch and maps == TRANSPOSED_A_MAPS
        if maps != _DEFAULT_MAPS[batch] and not ta:
            continue  # transposed-B or broadcast variants: loops
        elems = {_elem_name(t.element_type) for t in types}
        if len(elems) != 1 or None in elems:
            continue
        tiles = MATMUL_TILES[elems.pop()]
        a, b = types[0].shape, types[1].shape
        m, k, n = (a[-1], a[-2], b[-1]) if ta else (a[-2], a[-1], b[-1])
        im, in_, ik = _register_tile(tiles.inner, m, n, ta)
        if not im or not in_ or k % ik or k < 2 or min(m, n, k) == 0:
            continue  # no register tile divides the shape: plain loops
        pre = "1, " if batch else ""
        nl = 4 if batch else 3
        i = len(tile_ops)
        tag = f"{_TAG}_mm{i}"
        op.attributes[tag] = ir.UnitAttr.get(module.context)
        # threads: split C into `nt` blocks (an scf.forall, run by async-parallel-for): by columns when
        # B is the larger operand (n > m: each thread then reads its part of B once, instead of all of
        # it), else by rows
        nt = threads()
        batch_n = a[0] if batch else 1
        big = nt > 1 and batch_n * m * n * k >= PARALLEL_MIN_MACS
        split_n = big and not batch and n > m and n % (nt * in_) == 0
        split = split_n or (big and m % (nt * im) == 0)
        tm = m // nt if split and not split_n else m
        tn = n // nt if split_n else n
        om, on, ok = (_best_tile(tm, im, tiles.outer[0]), _best_tile(tn, in_, tiles.outer[1]),
                      _best_tile(k, ik, tiles.outer[2]))
        snippet = (
            f"  %mm{i} = transform.structured.match attributes{{{tag}}} in %root"
            " : (!transform.any_op) -> !transform.any_op\n"
        )
        src = f"%mm{i}"
        if split:
            snippet += (
                f"  %pt{i}, %pf{i} = transform.structured.tile_using_forall %mm{i}"
                f" tile_sizes [{pre}{'0, ' + str(tn) if split_n else str(tm) + ', 0'}] : {_any4(2)}\n"
            )
            src = f"%pt{i}"
        tile_ops.append(
            snippet
            + f"  %mt{i}, %ml{i}:{nl} = transform.structured.tile_using_for {src}"
            f" tile_sizes [{pre}{om}, {on}, {ok}] : {_any4(nl + 1)}\n"
            f"  %rt{i}, %rl{i}:{nl} = transform.structured.tile_using_for %mt{i}"
            f" tile_sizes [{pre}{im}, {in_}, {ik}] : {_any4(nl + 1)}\n"
            f"  transform.structured.vectorize %rt{i} : !transform.any_op\n"
        )
        hoists.append(f"  transform.loop.hoist_loop_invariant_subsets %rl{i}#{nl - 1} : !transform.any_op\n")
    return tile_ops, hoists


# Elementwise loops that read an operand transposed (the innermost loop walks a strided dimension)
# take square tiles: a tile x tile block read, transposed in registers (vector.transpose lowered to
# shuffles) and written contiguously, instead of a gather of `vec` strided elements per row.
TRANSPOSE_TILE: dict[str, int] = {"f32": 16, "f64": 8}


def _transposes_inner(maps: list[ir.AffineMap], rank: int) -> bool:
    """Some input is indexed by the innermost loop in a non-innermost position (a transposed read)."""
    for m in maps[:-1]:
        dims = [ir.AffineDimExpr(e).position for e in m.results]
        if rank - 1 in dims and dims[-1] != rank - 1:
            return True
    return False


def _elementwise_schedules(module: ir.Module) -> list[str]:
    """Tag all-parallel generics whose innermost dim divides the vector length; tile and vectorize."""
    out: list[str] = []
    for op in _walk(module, ("linalg.generic",)):
        types = _static_tensor_types(op)
        if types is None or not types:
            continue
        iters = ir.ArrayAttr(op.attributes["iterator_types"])
        if any("parallel" not in str(it) for it in iters):
            continue
        res = types[-1]
        elem = _elem_name(res.element_type)
        if elem is None or res.rank == 0 or res.rank != len(iters):
            continue
        maps = [ir.AffineMapAttr(m).value for m in ir.ArrayAttr(op.attributes["indexing_maps"])]
        out_map = maps[-1]
        if out_map != ir.AffineMap.get_identity(out_map.n_dims, module.context):
            continue  # the tile sizes below assume the output is indexed by the loops in order
        if not all(m.is_projected_permutation for m in maps):
            continue
        shape = res.shape
        vec = _vector_length(shape[-1], ELEMENTWISE_VECTOR[elem], min_steps=1)
        masked = not vec and shape[-1] >= ELEMENTWISE_VECTOR[elem]
        if masked:  # no vector length divides the row (1e6 + 1): full vectors, the last one masked
            vec = ELEMENTWISE_VECTOR[elem]
        if not vec or 0 in shape:
            continue
        i = len(out)
        tag = f"{_TAG}_ew{i}"
        op.attributes[tag] = ir.UnitAttr.get(module.context)
        sizes = ", ".join(["1"] * (res.rank - 1) + [str(vec)])
        sq = TRANSPOSE_TILE[elem]
        if (not masked and res.rank >= 2 and shape[-1] % sq == 0 and shape[-2] % sq == 0
                and _transposes_inner(maps, res.rank)):
            sizes = ", ".join(["1"] * (res.rank - 2) + [str(sq), str(sq)])
        # threads: split the outermost dimension into `nt` blocks when the loop is large
        nt = threads()
        total = math.prod(shape)
        lead = shape[0] // nt if res.rank > 1 else 0 if masked else shape[0] // (nt * vec) * vec
        split = nt > 1 and total >= PARALLEL_MIN_ELEMENTS and lead > 0 and lead * nt == shape[0]
        src = f"%ew{i}"
        pre = ""
        if split:
            psizes = ", ".join([str(lead)] + ["0"] * (res.rank - 1))
            pre = (f"  %ep{i}, %ef{i} = transform.structured.tile_using_forall %ew{i}"
                   f" tile_sizes [{psizes}] : {_any4(2)}\n")
            src = f"%ep{i}"
        out.append(
            f"  %ew{i} = transform.structured.match attributes{{{tag}}} in %root"
            " : (!transform.any_op) -> !transform.any_op\n"
            + pre
            + f"  %et{i}, %el{i}:{res.rank} = transform.structured.tile_using_for {src}"
            f" tile_sizes [{sizes}] : {_any4(res.rank + 1)}\n"
            f"  transform.structured.vectorize %et{i}{f' vector_sizes [{sizes}]' if masked else ''}"
            " : !transform.any_op\n"
        )
    return out


def _reduction_schedules(module: ir.Module) -> list[str]:
    """Full reductions (`sum(f(x))` over a tensor of any rank, the body fused in): split the innermost
    dimension into vector-length partial accumulators (`tile_reduction_using_for`, the outer
    dimensions by 1), vectorize the partial step (so the fused elementwise math runs in SIMD) and the
    final combination."""
    out: list[str] = []
    for op in _walk(module, ("linalg.generic",)):
        types = _static_tensor_types(op)
        nres = len(op.results)  # several: sibling sums merged by `fuse_multi_use`
        if types is None or not nres:
            continue
        iters = [str(it) for it in ir.ArrayAttr(op.attributes["iterator_types"])]
        if not iters or any("reduction" not in it for it in iters):
            continue
        elems = {_elem_name(t.element_type) for t in types[-nres:]}
        elem = elems.pop() if len(elems) == 1 else None
        if elem is None or any(t.rank != 0 for t in types[-nres:]):
            continue
        maps = [ir.AffineMapAttr(m).value for m in ir.ArrayAttr(op.attributes["indexing_maps"])]
        if not all(m.is_projected_permutation for m in maps[:-nres]):
            continue
        sizes = loop_sizes(maps[:-nres], types[: len(maps) - nres], len(iters))
        n = sizes[-1] if sizes else 0
        vec = _vector_length(n, REDUCTION_VECTOR[elem])
        if not vec:
            continue
        i = len(out)
        tag = f"{_TAG}_red{i}"
        op.attributes[tag] = ir.UnitAttr.get(module.context)
        nt = threads()
        src = f"%rd{i}"
        pre = ""
        big = nt > 1 and math.prod(sizes or ()) >= PARALLEL_MIN_ELEMENTS
        if big:
            # chunks must hold whole vectors: 1e6 = 2 x 500000 takes 32-lane f32 steps, not 64
            vec = _vector_length(n, REDUCTION_VECTOR[elem], nt) or vec
        if big and n % (nt * vec) == 0:
            # threads: each reduces an n/nt chunk of the innermost dimension into its own partial
            pre = (f"  %rtf{i}:{nres}, %rts{i}, %rtc{i}:{nres}, %rtl{i} ="
                   f" transform.structured.tile_reduction_using_forall %rd{i}"
                   f" by num_threads = [{', '.join(['0'] * (len(iters) - 1) + [str(nt)])}]"
                   f" : {_any4(2 * nres + 2)}\n")
            src = f"%rts{i}"
        out.append(
            f"  %rd{i} = transform.structured.match attributes{{{tag}}} in %root"
            " : (!transform.any_op) -> !transform.any_op\n"
            + pre
            + f"  %rf{i}:{nres}, %rp{i}, %rc{i}:{nres}, %rdo{i} = transform.structured.tile_reduction_using_for {src}"
            f" by tile_sizes = [{', '.join(['1'] * (len(iters) - 1) + [str(vec)])}] : {_any4(2 * nres + 2)}\n"
            # the innermost loop, whose accumulator the hoist keeps in registers
            f"  %rdl{i} = transform.get_parent_op %rp{i} {{op_name = \"scf.for\"}}"
            " : (!transform.any_op) -> !transform.any_op\n"
            f"  transform.structured.vectorize %rp{i} : !transform.any_op\n"
            + "".join(f"  transform.structured.vectorize %rc{i}#{j} : !transform.any_op\n"
                      f"  transform.structured.vectorize %rf{i}#{j} : !transform.any_op\n" for j in range(nres))
        )
    return out


def _reduction_hoists(n: int) -> list[str]:
    """Keep each partial accumulator in registers across its loop (after the vector patterns)."""
    return [f"  transform.loop.hoist_loop_invariant_subsets %rdl{i} : !transform.any_op\n" for i in range(n)]


def _schedule(module: ir.Module) -> None:
    tile_ops, hoists = _matmul_schedules(module)
    red = _reduction_schedules(module)
    ew = _elementwise_schedules(module) + red
    hoists = hoists + _reduction_hoists(len(red))
    if not tile_ops and not ew:
        return
    body = "".join(tile_ops) + "".join(ew)
    body += (
        "  %f = transform.structured.match ops{[\"func.func\"]} in %root"
        " : (!transform.any_op) -> !transform.any_op\n"
        "  transform.apply_patterns to %f {\n"
        "    transform.apply_patterns.vector.cast_away_vector_leading_one_dim\n"
        "    transform.apply_patterns.vector.lower_masked_transfers\n"
        "    transform.apply_patterns.vector.reduction_to_contract\n"
        "    transform.apply_patterns.vector.transfer_permutation_patterns\n"
        "    transform.apply_patterns.canonicalization\n"
        "  } : !transform.any_op\n"
        "  transform.apply_patterns to %f {\n"
        '    transform.apply_patterns.vector.lower_contraction lowering_strategy = "outerproduct"\n'
        "    transform.apply_patterns.vector.lower_outerproduct\n"
        '    transform.apply_patterns.vector.lower_multi_reduction lowering_strategy = "innerreduction"\n'
        '    transform.apply_patterns.vector.lower_transpose lowering_strategy = "shuffle_16x16"\n'
        "    transform.apply_patterns.canonicalization\n"
        "  } : !transform.any_op\n"
    )
    body += "".join(hoists)
    _apply_transform(module, body)


# Vector math: `math.<fn>` on f32/f64 vectors (from the vectorized elementwise/reduction schedules)
# become calls of glibc's libmvec SIMD functions (`_ZGVeN16v_expf`: 16 f32 lanes in one zmm register,
# x86-64 vector function ABI), <= 4 ulp like libm and with libm's inf/nan behaviour. MLIR 22's Python
# wheels expose no pass or transform op for the upstream polynomial approximations (they are only
# reachable from C++ and test passes), and LLVM's loop vectorizer cannot be given a vector library
# through the ExecutionEngine. Without libmvec, AVX-512 or AVX2, the math stays scalar libm calls.
# LEAN_MLIR_VECTOR_MATH=0 turns this off.
VECTOR_MATH_OPS: tuple[str, ...] = (
    "sin", "cos", "tan", "exp", "exp2", "expm1", "log", "log2", "log10", "log1p", "tanh", "sinh", "cosh",
    "erf", "erfc", "atan", "asin", "acos", "cbrt",
)


@dataclass(frozen=True)
class VectorMath:
    """The SIMD math functions available to the JIT: name prefix and lanes per element type."""

    library: str  # path or soname, loaded RTLD_GLOBAL so the ExecutionEngine resolves its symbols
    isa: str  # "e": AVX-512 (zmm), "d": AVX2 (ymm)
    lanes: dict[str, int]
    ops: frozenset[str]

    def symbol(self, op: str, elem: str) -> str:
        return f"_ZGV{self.isa}N{self.lanes[elem]}v_{op}{'f' if elem == 'f32' else ''}"


def _cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


@cache
def vector_math() -> VectorMath | None:
    """The host's libmvec, if it can serve the JIT (x86-64 glibc with AVX-512 or AVX2)."""
    if os.environ.get("LEAN_MLIR_VECTOR_MATH", "1") == "0":
        return None
    flags = _cpu_flags()
    isa = "e" if "avx512f" in flags else "d" if "avx2" in flags else None
    name = ctypes.util.find_library("mvec")
    if isa is None or name is None:
        return None
    try:
        lib = ctypes.CDLL(name, mode=ctypes.RTLD_GLOBAL)
    except OSError:
        return None
    lanes = {"f32": 16, "f64": 8} if isa == "e" else {"f32": 8, "f64": 4}
    vm = VectorMath(name, isa, lanes, frozenset())
    ops = frozenset(op for op in VECTOR_MATH_OPS
                    if all(hasattr(lib, vm.symbol(op, e)) for e in ("f32", "f64")))
    return VectorMath(name, isa, lanes, ops) if ops else None


def _vector_math_to_calls(module: ir.Module, vm: VectorMath | None = None) -> int:
    """Rewrite `math.<fn>` on vectors into libmvec calls, chunked to the SIMD width; returns the count.

    Run it after `llvm-request-c-wrappers` (the declarations added here must not get C wrappers).
    """
    vm = vm if vm is not None else vector_math()
    if vm is None:
        return 0
    names = {f"math.{op}" for op in vm.ops}
    todo = [op for op in _walk(module, names)
            if isinstance(op.results[0].type, ir.VectorType) and len(op.operands) == 1]
    declared: set[str] = set()
    ctx = module.context
    with ctx, ir.Location.unknown(ctx):
        for op in todo:
            vt = ir.VectorType(op.results[0].type)
            elem = _elem_name(vt.element_type)
            if elem is None or vt.scalable:
                continue
            lanes = vm.lanes[elem]
            n = 1
            for d in vt.shape:
                n *= d
            if n % lanes:
                continue  # a ragged tail: leave it to the scalar path
            sym = vm.symbol(op.name.split(".", 1)[1], elem)
            chunk_t = ir.VectorType.get([lanes], vt.element_type)
            if sym not in declared:
                declared.add(sym)
                with ir.InsertionPoint.at_block_begin(module.body):
                    func_d.FuncOp(sym, ir.FunctionType.get([chunk_t], [chunk_t]), visibility="private")
            with ir.InsertionPoint(op):
                flat_t = ir.VectorType.get([n], vt.element_type)
                x = op.operands[0]
                if vt.rank != 1:
                    x = vector_d.ShapeCastOp(flat_t, x).result
                if n == lanes:
                    y = func_d.CallOp([chunk_t], sym, [x]).result
                else:
                    y = None
                    for i in range(0, n, lanes):
                        c = vector_d.ExtractStridedSliceOp(chunk_t, x, [i], [lanes], [1]).result
                        r = func_d.CallOp([chunk_t], sym, [c]).result
                        if y is None:
                            y = vector_d.BroadcastOp(flat_t, _zero(vt.element_type)).result
                        y = vector_d.InsertStridedSliceOp(r, y, [i], [1]).result
                if vt.rank != 1:
                    y = vector_d.ShapeCastOp(vt, y).result
            op.results[0].replace_all_uses_with(y)
            op.erase()
    return len(todo)


# f32 tanh on vectors: a rational approximation inlined as arith ops (Eigen's / XLA's CPU tanh:
# odd degree-13 numerator over even degree-6 denominator on x clamped to [-c, c], x itself for
# |x| < 4e-4) instead of the libmvec call, about 4x faster (a 256x1024 bias+tanh layer: 0.126 ->
# ~0.03 ms CPU). Max error against float64 tanh: see `tests/test_cpu_fast_paths.py` (<= 3e-7 absolute,
# <= 5 ulp away from 0). NaN propagates (minimumf/maximumf); +-inf give +-1. f64 keeps libmvec/libm.
# LEAN_MLIR_FAST_TANH=0 turns it off.
FAST_TANH = os.environ.get("LEAN_MLIR_FAST_TANH", "1") != "0"
_TANH_CLAMP = 7.99881172180175781
_TANH_ALPHA = (-2.76076847742355e-16, 2.00018790482477e-13, -8.60467152213735e-11, 5.12229709037114e-08,
               1.48572235717979e-05, 6.37261928875436e-04, 4.89352455891786e-03)  # x^13 .. x^1
_TANH_BETA = (1.19825839466702e-06, 1.18534705686654e-04, 2.26843463243900e-03, 4.89352518554385e-03)  # x^6 .. 1


def _fast_tanh_f32(module: ir.Module) -> int:
    """Replace `math.tanh` on f32 vectors by the rational approximation above; returns the count."""
    from mlir.dialects import arith
    from mlir.dialects import math as math_d

    todo = [op for op in _walk(module, ("math.tanh",))
            if isinstance(op.results[0].type, ir.VectorType)
            and isinstance(ir.VectorType(op.results[0].type).element_type, ir.F32Type)]
    ctx = module.context
    with ctx, ir.Location.unknown(ctx):
        for op in todo:
            vt = ir.VectorType(op.results[0].type)
            f32 = vt.element_type
            with ir.InsertionPoint(op):
                def splat(v: float, vt: ir.VectorType = vt, f32: ir.Type = f32) -> ir.Value:
                    return arith.ConstantOp(vt, ir.DenseElementsAttr.get_splat(vt, ir.FloatAttr.get(f32, v))).result

                a = op.operands[0]
                x = arith.MaximumFOp(arith.MinimumFOp(a, splat(_TANH_CLAMP)).result, splat(-_TANH_CLAMP)).result
                x2 = arith.MulFOp(x, x).result
                p = splat(_TANH_ALPHA[0])
                for c in _TANH_ALPHA[1:]:
                    p = math_d.FmaOp(x2, p, splat(c)).result
                p = arith.MulFOp(x, p).result
                q = splat(_TANH_BETA[0])
                for c in _TANH_BETA[1:]:
                    q = math_d.FmaOp(x2, q, splat(c)).result
                r = arith.DivFOp(p, q).result
                tiny = arith.CmpFOp(arith.CmpFPredicate.OLT, math_d.AbsFOp(a).result, splat(0.0004)).result
                y = arith.SelectOp(tiny, a, r).result
            op.results[0].replace_all_uses_with(y)
            op.erase()
    return len(todo)


def _zero(t: ir.Type) -> ir.Value:
    from mlir.dialects import arith
    return arith.ConstantOp(t, ir.FloatAttr.get(t, 0.0)).result


def _strip_tags(module: ir.Module) -> None:
    def visit(op: ir.Operation) -> ir.WalkResult:
        for a in [a for a in op.attributes if a.startswith(_TAG)]:
            del op.attributes[a]
        return ir.WalkResult.ADVANCE

    module.operation.walk(visit)


def _protect_inputs(module: ir.Module) -> None:
    """Mark every function argument `bufferization.writable = false`.

    One-shot bufferization otherwise treats arguments as writable and may compute in place in the
    caller's input buffer (e.g. `linalg.add ... outs(%arg0)`); with the mark it copies first.
    """
    ctx = module.context
    false = ir.BoolAttr.get(False, context=ctx)
    for op in module.body.operations:
        if op.operation.name != "func.func" or len(op.regions[0].blocks) == 0:
            continue
        attrs = op.operation.attributes
        n = len(op.regions[0].blocks[0].arguments)
        old = list(ir.ArrayAttr(attrs["arg_attrs"])) if "arg_attrs" in attrs else [None] * n
        new = []
        for d in old:
            entries = {} if d is None else {a.name: a.attr for a in ir.DictAttr(d)}
            entries["bufferization.writable"] = false
            new.append(ir.DictAttr.get(entries, context=ctx))
        attrs["arg_attrs"] = ir.ArrayAttr.get(new, context=ctx)


def distinct_results(module: ir.Module) -> None:
    """After one-shot bufferization (CPU and GPU): where a function returns the same buffer twice
    (`return %a, %a`), return a fresh copy for the second use.

    buffer-results-to-out-params{hoist-static-allocs=1} replaces a returned alloc by its out-param
    and erases it; a second use of the same alloc in the return then reads the erased op and crashes
    (e.g. the VJP of exp(a + b), whose two cotangents CSE to one buffer, or two zero-size results).
    """
    from mlir.dialects import memref

    for f in module.body.operations:
        if f.operation.name != "func.func" or len(f.regions[0].blocks) == 0:
            continue
        ret = f.regions[0].blocks[0].operations[len(f.regions[0].blocks[0].operations) - 1]
        seen: set[ir.Value] = set()
        for k, v in enumerate(list(ret.operands)):
            if v in seen and isinstance(v.type, ir.MemRefType):
                with ir.InsertionPoint(ret), ret.location:
                    copy = memref.AllocOp(v.type, [], [], alignment=64).result
                    memref.CopyOp(v, copy)
                ret.operands[k] = copy
            seen.add(v)


def _private_without_c_wrappers(module: ir.Module) -> None:
    """Private functions (outlined kernels) are only called from the module: no C wrapper."""
    for op in module.body.operations:
        attrs = op.operation.attributes
        if (op.operation.name == "func.func" and "llvm.emit_c_interface" in attrs
                and "sym_visibility" in attrs and ir.StringAttr(attrs["sym_visibility"]).value == "private"):
            del attrs["llvm.emit_c_interface"]


def _split_threads(module: ir.Module) -> list[str]:
    """scf.forall (the thread split) -> outlined blocks launched on the async runtime's thread pool,
    without coroutines (`lean_mlir.lower.threads`); returns the outlined functions that need spawns.
    An async op the rewrite does not know falls back to the upstream coroutine lowering."""
    if not _walk(module, ("scf.forall",)):
        return []
    _run(module, "builtin.module(func.func(scf-forall-to-parallel),"
         + _threads.PARALLEL_FOR.format(workers=threads()) + ")")
    if not _threads.supported(module):
        _run(module, "builtin.module(" + ASYNC_PIPELINE.split("min-task-size=1},", 1)[1])
        return []
    _run(module, "builtin.module(canonicalize)")  # fold the block counts (the workers are a constant)
    spawned = _threads.async_to_runtime_calls(module)
    if _threads.propagate_constants(module, spawned):
        _run(module, "builtin.module(canonicalize)")
    return spawned


def fuse(module: ir.Module) -> None:
    """Named elementwise ops to generics, upstream elementwise fusion, then multi-use fusion
    (`lean_mlir.lower.fusion`): the tensor-level fusion of the CPU pipeline (pass `lean-fuse-linalg`)."""
    _generalize(module)
    _run(module, FUSION_PIPELINE)
    fuse_multi_use(module)


def lower_to_llvm(module: ir.Module) -> dict[str, str]:
    """Lower a linalg-on-tensors module to the LLVM dialect, in place.

    Returns the IR text of the stages: "linalg" (after fusion, before the schedules),
    "scheduled" (tiled/vectorized, still on tensors) and "llvm" (final LLVM dialect).
    After this, every public `f(args) -> (r...)` is `f(args..., out...) -> ()`.
    """
    stages: dict[str, str] = {}
    fuse(module)  # steps 1-2: tensor level
    stages["linalg"] = str(module)
    fold_transposes(module)
    if OUTLINE_CONTRACTIONS:
        outline_contractions(module)
    try:
        _schedule(module)
    finally:
        _strip_tags(module)
    _run(module, POST_SCHEDULE_PIPELINE)
    stages["scheduled"] = str(module)
    _protect_inputs(module)
    _run(module, f"builtin.module({_ONE_SHOT})")
    distinct_results(module)
    _run(module, f"builtin.module({_OUT_PARAMS})")
    _run(module, _C_WRAPPERS)
    _private_without_c_wrappers(module)
    if FAST_TANH:
        _fast_tanh_f32(module)
    _vector_math_to_calls(module)
    spawned = _split_threads(module)
    _run(module, "builtin.module(" + TO_LLVM_PIPELINE[len(_C_WRAPPERS) :])
    _threads.define_spawns(module, spawned)
    mark_noinline(module)
    stages["llvm"] = str(module)
    return stages
