"""GPU back end: linalg on tensors -> gpu.launch kernels -> NVVM -> PTX/cubin, and a CUDA executable.

Independent of the `lean` dialect. Input: a module of public func.func functions over statically shaped
ranked tensors with linalg/tensor/arith/math bodies.

Pipeline (`pipeline.lower_to_gpu`):
  1. one-shot-bufferize + buffer-results-to-out-params: `f(args) -> (r...)` becomes `f(args..., outs...)`.
  2. `mapping`: memref.copy -> linalg.copy (copies become kernels, never host loops); after
     linalg-generalize-named-ops, each generic's loops are reordered parallel-first and ops without
     parallel loops are wrapped in a one-iteration scf.parallel, so that no loop nest ever runs on the
     host and reduction loops stay sequential inside one thread.
  3. convert-linalg-to-parallel-loops; `mapping` tiles each scf.parallel into grid x block loops within
     the launch limits of the `target.GpuTarget` (the innermost, contiguous dimension goes to thread x
     for coalescing); gpu-map-parallel-loops, convert-parallel-loops-to-gpu.
  4. `host`: every public function copies its memref inputs to fresh device buffers (gpu.alloc +
     gpu.memcpy), runs the kernels on device buffers, copies the out-params back and frees everything;
     memref.alloc -> gpu.alloc (+ gpu.dealloc before return); memref.get_global constants are copied
     to device buffers.
  5. gpu-kernel-outlining, gpu-async-region (all copies/launches of one call go on one stream, in order,
     with one host synchronization at the end), then gpu-lower-to-nvvm-pipeline.

`executable.GpuExecutable` runs the result through the MLIR CUDA runtime wrappers once `driver` has
found a device; `target` validates chip / PTX version / format before any native code could abort.
"""

from __future__ import annotations

from collections.abc import Mapping

from mlir import ir

from ...irutils.types import Signature
from ...options import Options
from .driver import DeviceUnavailableError, cuda_available, device_capability, require_device
from .executable import GpuExecutable
from .pipeline import kernel_binaries, lower_to_gpu, split_ptx
from .target import GPU_DEFAULTS, GpuTarget, default_features, device_chip, resolve_target, validate_target


class GpuBackend:
    name = "gpu"
    consumes = "linalg"
    stage_names = ("gpu", "ptx", "llvm")

    def lower(self, module: ir.Module, options: Options) -> dict[str, str]:
        return lower_to_gpu(module, resolve_target(options))

    def load(self, module: ir.Module, signatures: Mapping[str, Signature], stages: Mapping[str, str],
             options: Options) -> GpuExecutable:
        return GpuExecutable(module, signatures, stages, options)


BACKEND = GpuBackend()

__all__ = [
    "BACKEND", "GPU_DEFAULTS", "DeviceUnavailableError", "GpuBackend", "GpuExecutable", "GpuTarget",
    "cuda_available", "default_features", "device_capability", "device_chip", "kernel_binaries", "lower_to_gpu",
    "require_device", "resolve_target", "split_ptx", "validate_target",
]
