"""The GPU back end: linalg on tensors -> gpu.launch kernels -> NVVM -> PTX/cubin, run through the
CUDA runtime (`lower.py`)."""

from __future__ import annotations

from collections.abc import Mapping

from mlir import ir

from ...irutils.types import Signature
from ...options import Options
from .lower import (
    GPU_DEFAULTS,
    DeviceUnavailableError,
    GpuExecutable,
    cuda_available,
    default_features,
    device_capability,
    device_chip,
    kernel_binaries,
    lower_to_gpu,
    require_device,
    resolve_target,
    split_ptx,
    validate_target,
)


class GpuBackend:
    name = "gpu"
    consumes = "linalg"
    stage_names = ("gpu", "ptx", "llvm")

    def lower(self, module: ir.Module, options: Options) -> dict[str, str]:
        chip, features, fmt = resolve_target(options)
        return lower_to_gpu(module, chip=chip, features=features, format=fmt)

    def load(self, module: ir.Module, signatures: Mapping[str, Signature], stages: Mapping[str, str],
             options: Options) -> GpuExecutable:
        return GpuExecutable(module, signatures, stages, options)


BACKEND = GpuBackend()

__all__ = [
    "BACKEND", "GPU_DEFAULTS", "DeviceUnavailableError", "GpuBackend", "GpuExecutable", "cuda_available",
    "default_features", "device_capability", "device_chip", "kernel_binaries", "lower_to_gpu", "require_device",
    "resolve_target", "split_ptx", "validate_target",
]
