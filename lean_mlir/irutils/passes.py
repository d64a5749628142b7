"""Upstream pass pipelines as sequences of pass names, run through `PassManager.add` (no string
surgery: a pipeline is a tuple, and pipelines compose by concatenation)."""

from __future__ import annotations

from collections.abc import Sequence

from mlir import ir
from mlir.passmanager import PassManager

from .walk import Module, operation

Passes = Sequence[str]  # each element one pass (with options) or one nested pipeline, e.g. "func.func(cse)"


def pass_manager(passes: Passes, context: ir.Context | None = None) -> PassManager:
    pm = PassManager("builtin.module", context=context)
    for p in passes:
        pm.add(p)
    return pm


def run_passes(module: Module, passes: Passes) -> None:
    """Run upstream passes on a module in place."""
    op = operation(module)
    pass_manager(passes, op.context).run(op)
