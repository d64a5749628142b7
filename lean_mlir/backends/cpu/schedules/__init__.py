"""Transform-dialect schedules of the CPU back end, one module per op family; `schedule` tags the
ops each family can schedule and applies all of them in one transform script."""

from __future__ import annotations

from mlir import ir

from .common import Context, apply_transform, strip_tags
from .elementwise import elementwise_schedules
from .matmul import matmul_schedules
from .reduction import reduction_hoists, reduction_schedules

__all__ = ["Context", "schedule"]


def schedule(module: ir.Module, ctx: Context) -> None:
    """Tag, build and apply the schedules of every op family (in place); the tags are removed after."""
    try:
        _apply(module, ctx)
    finally:
        strip_tags(module)


def _apply(module: ir.Module, ctx: Context) -> None:
    tile_ops, hoists = matmul_schedules(module, ctx)
    red = reduction_schedules(module, ctx)
    ew = elementwise_schedules(module, ctx) + red
    hoists = hoists + reduction_hoists(len(red))
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
    apply_transform(module, body)


