"""The CPU pipeline: linalg on tensors -> LLVM dialect, ready for the ExecutionEngine, as a sequence
of named steps (upstream passes run through `PassManager.add`, our rewrites as Python functions).

Input: a module of `func.func`s over statically shaped ranked tensors of f32/f64, with bodies made of
linalg (named ops and generics), tensor, arith and math ops. `lower` rewrites it in place:

1. fuse: elementwise named ops are generalized and fused (upstream, then multi-use: `fusion.py`);
2. schedule: every contraction in the forms of the matmul kernels (`contractions.py`), outlined into
   one kernel per kind (`outline.py`; large ones OpenBLAS calls where faster here, `blas.py`),
   then transform-dialect schedules per op family (`schedules/`) tile and vectorize
   contractions, elementwise loops and full reductions, with constants from the target description
   (`target.py`) and a thread split where loops are large;
3. bufferize: out-params, so a public `f(args) -> (r1, r2)` becomes `f(args, o1, o2) -> ()`;
4. to LLVM: C and packed wrappers (`_mlir_ciface_f`, `_mlir_f`), vector math (`vecmath.py`), the
   thread split as calls into the worker pool (`threads.py`), conversion to the LLVM dialect, and
   allocations that fail raise MemoryError instead of crashing (`allocation.py`).

The stages "linalg" (after step 1), "scheduled" (after step 2) and "llvm" are kept as text.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from mlir import ir

from ...irutils.bufferize import bufferize
from ...irutils.passes import Passes, run_passes
from ...irutils.walk import funcs, is_public, symbol_name, walk
from ...options import Options
from ...runtime import pool
from . import blas, threads
from .allocation import check_allocations
from .contractions import canonicalize_contractions
from .fusion import fuse
from .outline import mark_noinline, outline_contractions
from .schedules import Context, schedule
from .target import CpuTarget, target
from .vecmath import fast_tanh_f32, vector_math, vector_math_to_calls

# After the schedules, still on tensors.
POST_SCHEDULE: Passes = ("canonicalize", "cse")
# The C wrappers are requested first: requested after convert-math-to-libm they would also be asked
# for the external libm declarations (`_mlir_ciface_erff`: "Symbols not found" when the engine is built).
C_WRAPPERS: Passes = ("func.func(llvm-request-c-wrappers)",)
# Loops, vectors, math and everything else to the LLVM dialect. `approximate-log1p=0` leaves log1p to
# libm (the LLVM expansion log(1+x) loses all precision for tiny x); tanh, erf, ... go to libm too,
# whose symbols the ExecutionEngine resolves from the host process; libm unrolls vectors, so it runs
# before convert-vector-to-llvm.
TO_LLVM: Passes = (
    "convert-linalg-to-loops", "convert-vector-to-scf{full-unroll=1}", "lower-affine", "convert-scf-to-cf",
    "expand-strided-metadata", "lower-affine", "convert-math-to-llvm{approximate-log1p=0}", "convert-math-to-libm",
    "convert-vector-to-llvm", "finalize-memref-to-llvm", "convert-arith-to-llvm", "convert-ub-to-llvm",
    "convert-func-to-llvm", "convert-cf-to-llvm", "reconcile-unrealized-casts",
)


@dataclass
class Build:
    """One lowering: its options, target, thread count and what the steps leave for later steps."""

    options: Options
    target: CpuTarget
    threads: int
    stages: dict[str, str] = field(default_factory=dict)
    spawned: list[str] = field(default_factory=list)


def _passes(passes: Passes) -> Callable[[ir.Module, Build], None]:
    return lambda module, build: run_passes(module, passes)


def _stage(name: str) -> Callable[[ir.Module, Build], None]:
    def capture(module: ir.Module, build: Build) -> None:
        build.stages[name] = str(module)
    return capture


def _outline(module: ir.Module, build: Build) -> None:
    canonicalize_contractions(module)
    if build.options.outline:
        outline_contractions(module, lambda op, packed: blas.wanted(op, packed, build.options, build.target,
                                                                     build.threads))


def _private_without_c_wrappers(module: ir.Module, build: Build) -> None:
    """Private functions (outlined kernels, library declarations) are only called from the module: no
    C wrapper."""
    for f in funcs(module):
        if not is_public(f) and "llvm.emit_c_interface" in f.attributes:
            del f.attributes["llvm.emit_c_interface"]


def _vector_math(module: ir.Module, build: Build) -> None:
    if build.options.fast_tanh:
        fast_tanh_f32(module)
    if build.options.vector_math:
        vector_math_to_calls(module, vector_math(build.target))


TEMPORARY_BYTES = "lean.temporary_bytes"  # module attribute: public function -> bytes its temporaries may need


def _measure_temporaries(module: ir.Module, build: Build) -> None:
    """An upper bound of the heap each public function allocates (its buffers and every private
    kernel's), recorded on the module so the executable can refuse a call that cannot fit (a failed
    malloc in generated code is a segfault, not an error)."""
    def alloc_bytes(f: ir.Operation) -> int:
        total = 0
        for op in walk(f, ("memref.alloc", "memref.alloca")):
            t = ir.MemRefType(op.results[0].type)
            if t.has_static_shape:
                e = t.element_type
                bits = e.width if isinstance(e, ir.FloatType | ir.IntegerType) else 64  # index, pointers
                total += math.prod(t.shape) * max(1, bits // 8)
        return total

    kernels = sum(alloc_bytes(f) for f in funcs(module, defined=True) if not is_public(f))
    i64 = ir.IntegerType.get_signless(64, module.context)
    module.operation.attributes[TEMPORARY_BYTES] = ir.DictAttr.get(
        {symbol_name(f): ir.IntegerAttr.get(i64, min(alloc_bytes(f) + kernels, 2**63 - 1))
         for f in funcs(module, defined=True, public=True)}, context=module.context)


def _split_threads(module: ir.Module, build: Build) -> None:
    build.spawned = threads.split(module, build.threads)


def _define_spawns(module: ir.Module, build: Build) -> None:
    threads.define_spawns(module, build.spawned)
    mark_noinline(module)


STEPS: tuple[tuple[str, Callable[[ir.Module, Build], None]], ...] = (
    ("fuse", lambda module, build: fuse(module)),
    ("stage linalg", _stage("linalg")),
    ("outline-contractions", _outline),
    ("schedule", lambda module, build: schedule(module, Context(build.target, build.threads))),
    ("post-schedule", _passes(POST_SCHEDULE)),
    ("stage scheduled", _stage("scheduled")),
    ("bufferize", lambda module, build: bufferize(module)),
    ("library-calls", lambda module, build: blas.call_library(module, build.threads)),
    ("measure-temporaries", _measure_temporaries),
    ("c-wrappers", _passes(C_WRAPPERS)),
    ("private-without-c-wrappers", _private_without_c_wrappers),
    ("vector-math", _vector_math),
    ("split-threads", _split_threads),
    ("to-llvm", _passes(TO_LLVM)),
    ("define-spawns", _define_spawns),
    ("check-allocations", lambda module, build: check_allocations(module)),
    ("stage llvm", _stage("llvm")),
)
STAGES = tuple(name.split()[1] for name, _ in STEPS if name.startswith("stage "))


def threads_for(options: Options) -> int:
    """Blocks a large loop is split into: Options.threads, 1 where the worker pool cannot run."""
    return options.threads if pool.supported() else 1


def lower(module: ir.Module, options: Options) -> dict[str, str]:
    """Lower a linalg-on-tensors module to the LLVM dialect, in place; the text of each stage.
    After this, every public `f(args) -> (r...)` is `f(args..., out...) -> ()`."""
    build = Build(options, target(options.cpu_target), threads_for(options))
    for _, step in STEPS:
        step(module, build)
    return build.stages
