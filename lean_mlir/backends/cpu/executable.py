"""The CPU executable: an ExecutionEngine over a module the CPU pipeline lowered, with packed-call
entry points."""

from __future__ import annotations

import ctypes
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from mlir import ir
from mlir.execution_engine import ExecutionEngine

from ...irutils.paths import runtime_lib
from ...irutils.types import Signature
from ...options import Options
from ...runtime import pool
from ...runtime.packed import Entry
from . import blas
from .allocation import GUARD
from .pipeline import TEMPORARY_BYTES, threads_for


def memory_bytes() -> int:
    """RAM + swap of this machine (/proc/meminfo), else RAM from sysconf, else no limit."""
    try:
        with open("/proc/meminfo") as f:
            info = {k: int(v.split()[0]) * 1024 for k, v in (line.split(":", 1) for line in f) if k in
                    ("MemTotal", "SwapTotal")}
        return sum(info.values())
    except (OSError, ValueError):
        try:
            return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, AttributeError):
            return 2**63 - 1


_ASYNC_RUNTIME: list[ctypes.CDLL] = []


def _load_async_runtime() -> None:
    """Load libmlir_async_runtime into the process once, for good (RTLD_GLOBAL: the JIT resolves its
    `mlirAsyncRuntime*` symbols from the process). Not as an ExecutionEngine shared_lib: the engine's
    destructor then calls the library's `__mlir_execution_engine_destroy`, which tears down the
    runtime's thread pool under every other live engine (a later threaded call segfaulted)."""
    if not _ASYNC_RUNTIME:
        _ASYNC_RUNTIME.append(ctypes.CDLL(runtime_lib("mlir_async_runtime"), mode=ctypes.RTLD_GLOBAL))


_ASYNC_SYMBOLS = ("mlirAsyncRuntimeExecute", "mlirAsyncRuntimeCreateGroup", "mlirAsyncRuntimeCreateToken")


class CpuExecutable:
    """An ExecutionEngine (`Options.opt_level`) over a module lowered by the CPU pipeline.

    `signatures` maps each entry point to its tensor-level (inputs, outputs) specs, read before
    lowering (`lean_mlir.irutils.types.signatures`). Dropping the last reference (and those of its entries)
    releases the engine and its code.
    """

    def __init__(self, module: ir.Module, signatures: Mapping[str, Signature], stages: Mapping[str, str],
                 options: Options, shared_libs: Sequence[str] = ()) -> None:
        libs = [runtime_lib("mlir_c_runner_utils"), *shared_libs]
        table = ir.SymbolTable(module.operation)  # a symbol lookup: printing a big module costs ~40 ms
        if any(name in table for name in _ASYNC_SYMBOLS):  # upstream lowering of a thread split
            _load_async_runtime()
        if any(name in table for name in blas.ROUTINES.values()) and blas.library() is None:
            raise RuntimeError("this module calls OpenBLAS, which cannot be loaded (pip install scipy-openblas32)")
        self.engine = ExecutionEngine(module, opt_level=options.opt_level, shared_libs=libs,
                                      enable_object_dump=False)
        if pool.SUBMIT_SYMBOL in table:  # the thread split (lean_mlir.lower.threads)
            pool.register(self.engine, threads_for(options) - 1, options.spin)
        self.signatures = dict(signatures)
        self.stages = dict(stages)
        attrs = module.operation.attributes
        self.temporary_bytes = ({a.name: ir.IntegerAttr(a.attr).value for a in ir.DictAttr(attrs[TEMPORARY_BYTES])}
                                if TEMPORARY_BYTES in attrs else {})
        self._guard = GUARD if GUARD in table else None
        self._entries: dict[str, Entry] = {}

    def entry(self, name: str) -> Entry:
        e = self._entries.get(name)
        if e is None:
            if name not in self.signatures:
                raise KeyError(f"unknown entry point @{name}; have {sorted(self.signatures)}")
            need, have = self.temporary_bytes.get(name, 0), memory_bytes()
            if need > have:
                raise MemoryError(f"@{name} needs {need / 2**30:.1f} GiB of temporary buffers; this machine has "
                                  f"{have / 2**30:.1f} GiB of memory and swap")
            e = Entry(self.engine, name, self.signatures[name], self._guard)
            self._entries[name] = e
        return e

    def __call__(self, name: str, *arrays: Any) -> tuple[np.ndarray, ...]:
        return self.entry(name)(*arrays)
