"""Transform-dialect schedules of the CPU back end, one module per op family; `schedule` tags the
ops each family can schedule and applies all of them in one transform script."""

from __future__ import annotations

from mlir import ir
from mlir.dialects import arith, transform
from mlir.dialects import vector as vector_d
from mlir.dialects.transform import loop, structured, vector

from ....irutils.walk import walk
from .common import Context, Schedule, apply_transform, strip_tags
from .elementwise import elementwise_schedules
from .matmul import matmul_schedules
from .reduction import reduction_schedules

__all__ = ["Context", "schedule"]


def schedule(module: ir.Module, ctx: Context) -> None:
    """Tag, build and apply the schedules of every op family (in place); the tags are removed after."""
    try:
        _apply(module, ctx)
    finally:
        strip_tags(module)
    _sum_lanes_first(module)


def _sum_lanes_first(module: ir.Module) -> None:
    """`vector.reduction <add>, %lanes, %acc` -> `%acc + vector.reduction <add>, %lanes`.

    The reduction is ordered: acc + l0 + l1 + ..., so with a large running sum (a chunk's partials
    added to the result so far) every lane was rounded to the sum's ulp. Summing the lanes first
    rounds once per chunk."""
    add = ir.Attribute.parse("#vector.kind<add>", module.context)
    for op in walk(module, "vector.reduction"):
        if len(op.operands) != 2 or op.attributes["kind"] != add or not isinstance(op.results[0].type, ir.FloatType):
            continue
        with ir.InsertionPoint(op), op.location:
            lanes = vector_d.ReductionOp(op.results[0].type, op.attributes["kind"], op.operands[0]).result
            total = arith.addf(op.operands[1], lanes)
        op.results[0].replace_all_uses_with(total)
        op.erase()


def _apply(module: ir.Module, ctx: Context) -> None:
    schedules = matmul_schedules(module, ctx) + elementwise_schedules(module, ctx) + reduction_schedules(module, ctx)
    if schedules:
        apply_transform(module, lambda root: _build(root, schedules))


def _build(root: ir.Value, schedules: list[Schedule]) -> None:
    hoists = [h for build in schedules for h in build(root)]
    funcs = structured.MatchOp.match_op_names(root, ["func.func"]).result
    # first the vectorized ops brought into the forms the lowerings match, then lowered: contractions
    # to outer products, multi-reductions to inner reductions, transposes to shuffles
    with ir.InsertionPoint(transform.ApplyPatternsOp(funcs).patterns):
        vector.ApplyCastAwayVectorLeadingOneDimPatternsOp()
        vector.ApplyLowerMaskedTransfersPatternsOp()
        vector.ApplyVectorReductionToContractPatternsOp()
        vector.ApplyTransferPermutationPatternsOp()
        transform.ApplyCanonicalizationPatternsOp()
    with ir.InsertionPoint(transform.ApplyPatternsOp(funcs).patterns):
        vector.ApplyLowerContractionPatternsOp(lowering_strategy=vector.VectorContractLowering.OuterProduct)
        vector.ApplyLowerOuterProductPatternsOp()
        vector.ApplyLowerMultiReductionPatternsOp(lowering_strategy=vector.VectorMultiReductionLowering.InnerReduction)
        vector.ApplyLowerTransposePatternsOp(lowering_strategy=vector.VectorTransposeLowering.Shuffle16x16)
        transform.ApplyCanonicalizationPatternsOp()
    for h in hoists:
        loop.HoistLoopInvariantSubsetsOp(h)
