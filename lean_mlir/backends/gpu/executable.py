"""`GpuExecutable`: a lowered module run through the MLIR CUDA runtime wrappers. It reuses the CPU
back end's packed-call entries (`runtime.packed.Entry`): the out-param calling convention is the same."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
from mlir import ir

from ...irutils.paths import runtime_lib
from ...irutils.types import Signature
from ...options import Options
from ...runtime.packed import Entry
from ...runtime.validate import coerce_inputs
from .driver import require_device
from .target import resolve_target


class GpuExecutable:
    """A linalg-on-tensors module compiled for CUDA, callable on NumPy arrays.

    Built by `compile_module(BACKEND, module, options)` (no device needed, so the IR stages can be
    inspected anywhere). The ExecutionEngine, which loads libmlir_cuda_runtime.so (impossible without
    libcuda), is created on the first call of an entry, after the CUDA driver probe: without a device
    that call raises DeviceUnavailableError instead of failing in native code.

    Options.gpu_chip=None picks the device's chip when a device exists, else GPU_DEFAULTS. The format
    defaults to "isa": the driver JIT-compiles the PTX when the engine starts, so the code runs on any
    GPU at least as new as `chip` (an sm_80 cubin does not load on an sm_90 H100) and needs no ptxas on
    the machine.
    """

    def __init__(self, module: ir.Module, signatures: Mapping[str, Signature], stages: Mapping[str, str],
                 options: Options) -> None:
        self.target = resolve_target(options)
        self.chip, self.features, self.format = self.target.chip, self.target.features, self.target.format
        self.signatures, self.stages = dict(signatures), dict(stages)
        self.module = module
        self._opt_level = options.opt_level
        self._engine = None
        self._entries: dict[str, Callable[..., tuple[np.ndarray, ...]]] = {}

    def ir(self, stage: str) -> str:
        """MLIR text after a stage: "gpu" (kernels outlined), "ptx" (kernel assembly), "llvm" (final)."""
        return self.stages[stage]

    def engine(self):
        """The ExecutionEngine, created (and its kernels loaded) on first use; needs a CUDA device."""
        if self._engine is None:
            require_device()
            from mlir.execution_engine import ExecutionEngine

            libs = [runtime_lib("mlir_cuda_runtime"), runtime_lib("mlir_c_runner_utils")]
            engine = ExecutionEngine(self.module, opt_level=self._opt_level, shared_libs=libs,
                                     enable_object_dump=False)
            engine.initialize()      # runs the global constructors that load the kernel modules
            self._engine = engine
        return self._engine

    def entry(self, name: str) -> Callable[..., tuple[np.ndarray, ...]]:
        """`f(*arrays) -> tuple of fresh output arrays` for public function `name`.

        Inputs are checked (count, dtype, shape) and made C-contiguous before native code runs.
        """
        fn = self._entries.get(name)
        if fn is not None:
            return fn
        if name not in self.signatures:
            raise KeyError(f"unknown entry point @{name}; have {sorted(self.signatures)}")
        specs = self.signatures[name][0]
        native: list[Entry] = []

        def call(*arrays: object) -> tuple[np.ndarray, ...]:
            xs = coerce_inputs(specs, arrays)
            if not native:
                native.append(Entry(self.engine(), name, self.signatures[name]))
            return native[0](*xs)

        self._entries[name] = call
        return call

    def __call__(self, name: str, *arrays: object) -> tuple[np.ndarray, ...]:
        return self.entry(name)(*arrays)
