"""The CPU back end: linalg on tensors -> LLVM (`pipeline.py`), run by the MLIR ExecutionEngine
(`executable.py`)."""

from __future__ import annotations

from collections.abc import Mapping

from mlir import ir

from ...irutils.types import Signature
from ...options import Options
from . import pipeline
from .executable import CpuExecutable


class CpuBackend:
    name = "cpu"
    consumes = "linalg"
    stage_names = pipeline.STAGES

    def lower(self, module: ir.Module, options: Options) -> dict[str, str]:
        return pipeline.lower(module, options)

    def load(self, module: ir.Module, signatures: Mapping[str, Signature], stages: Mapping[str, str],
             options: Options) -> CpuExecutable:
        return CpuExecutable(module, signatures, stages, options)


BACKEND = CpuBackend()

__all__ = ["BACKEND", "CpuBackend", "CpuExecutable"]
