"""What the schedules of every op family share: the tag that marks a targeted op, the context a
schedule is built for, small tile-size helpers, and the transform script they are built into."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from mlir import ir
from mlir.dialects import transform
from mlir.dialects.transform import interpreter, structured

from ....irutils.walk import walk
from ..target import CpuTarget

TAG = "__lean_mlir_sched"  # discardable attribute that marks the ops a transform schedule targets

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


@dataclass(frozen=True)
class Context:
    """What a schedule is built for: the CPU and the number of blocks a large loop is split into."""

    target: CpuTarget
    threads: int


def static_tensor_types(op: ir.Operation) -> list[ir.RankedTensorType] | None:
    types = [v.type for v in list(op.operands) + list(op.results)]
    if not all(isinstance(t, ir.RankedTensorType) and t.has_static_shape for t in types):
        return None
    return types


def vector_length(n: int, preferred: int, blocks: int = 1, min_steps: int = 2) -> int:
    """The longest of preferred, preferred/2, ... down to 8 lanes whose `blocks` x length divides n,
    with at least `min_steps` steps (a loop of 1e5 f32 takes 32 lanes, not scalar code); else 0."""
    v = preferred
    while v >= 8:
        if n % (blocks * v) == 0 and n >= min_steps * v:
            return v
        v //= 2
    return 0


def best_tile(dim: int, inner: int, limit: int) -> int:
    """Largest multiple of `inner` that divides `dim` and is at most `limit` (dim % inner == 0)."""
    best = inner
    for t in range(inner, min(dim, limit) + 1, inner):
        if dim % t == 0:
            best = t
    return best


# One op's schedule: builds its transform ops under the root handle; returns the loops whose
# invariant subsets are hoisted once the vector patterns have run.
Schedule = Callable[[ir.Value], list[ir.Value]]


def any_op() -> ir.Type:
    return transform.AnyOpType.get()


def tag(op: ir.Operation, name: str) -> str:
    """Mark `op` for `match_tagged` with the discardable attribute `TAG_name`; returns the tag."""
    attr = f"{TAG}_{name}"
    op.attributes[attr] = ir.UnitAttr.get(op.context)
    return attr


def match_tagged(root: ir.Value, tag: str) -> ir.Value:
    return structured.MatchOp(any_op(), root, op_attrs=ir.DictAttr.get({tag: ir.UnitAttr.get()})).result


def split_blocks(target: ir.Value, blocks: list[int] | None) -> ir.Value:
    """The thread split: `target` tiled by an scf.forall into blocks of these sizes (None: as is)."""
    return target if blocks is None else structured.TileUsingForallOp(target, tile_sizes=blocks).tiled_op


def apply_transform(module: ir.Module, build: Callable[[ir.Value], object]) -> None:
    """Apply `@__transform_main`, whose body `build` writes given the (read-only) root handle."""
    with module.context, ir.Location.unknown():
        sched = ir.Module.create()
        sched.operation.attributes["transform.with_named_sequence"] = ir.UnitAttr.get()
        with ir.InsertionPoint(sched.body):
            main = transform.NamedSequenceOp("__transform_main", [any_op()], [],
                                             arg_attrs=[{"transform.readonly": ir.UnitAttr.get()}])
        with ir.InsertionPoint(main.body):
            build(main.bodyTarget)
            transform.YieldOp()
        interpreter.apply_named_sequence(module.operation, main, sched)


def strip_tags(module: ir.Module) -> None:
    for op in walk(module):
        for a in [a for a in op.attributes if a.startswith(TAG)]:
            del op.attributes[a]
