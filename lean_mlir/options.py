"""Compile options: one frozen dataclass, hashed into the compile cache. Environment variables only
supply the defaults (read when an `Options` is made, not at import), so a test or a user passes
`Options(threads=1)` instead of patching module globals."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from typing import Any

GPU_FORMATS = ("isa", "bin", "fatbin")
GEMMS = ("auto", "generated", "blas")


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "1") != "0"


def _env_int(name: str, default: int, what: str) -> int:
    text = os.environ.get(name)
    if text is None:
        return default
    if not text.strip().isdigit():
        raise ValueError(f"{name} must be a non-negative integer ({what}), got {text!r}")
    return int(text)


def _cpu_count() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def _env_threads() -> int:
    return max(1, _env_int("LEAN_MLIR_THREADS", 0, "threads") or _cpu_count())


@dataclass(frozen=True)
class Options:
    """How a back end compiles. Each field's default comes from its environment variable."""

    threads: int = field(default_factory=_env_threads)  # LEAN_MLIR_THREADS; else the CPUs this process may use
    fast_tanh: bool = field(default_factory=lambda: _env_flag("LEAN_MLIR_FAST_TANH"))  # f32 tanh inlined
    outline: bool = field(default_factory=lambda: _env_flag("LEAN_MLIR_OUTLINE"))  # one kernel per matmul kind
    vector_math: bool = field(default_factory=lambda: _env_flag("LEAN_MLIR_VECTOR_MATH"))  # libmvec calls
    # pause instructions an idle pool worker spins before it sleeps (the pool is per process: the
    # first compile that starts it sets it)
    spin: int = field(default_factory=lambda: _env_int("LEAN_MLIR_SPIN", 100_000, "pause instructions"))
    # large matmuls: "generated" kernels, "blas" (OpenBLAS calls where it takes the form) or "auto" (OpenBLAS
    # from the size it wins at on this host, measured once; lean_mlir.backends.cpu.blas)
    gemm: str = field(default_factory=lambda: os.environ.get("LEAN_MLIR_GEMM", "auto"))
    opt_level: int = 3  # LLVM's, in the ExecutionEngine
    # "host", or a preset of lean_mlir.backends.cpu.target (schedules for another CPU, e.g. "avx2")
    cpu_target: str = field(default_factory=lambda: os.environ.get("LEAN_MLIR_CPU_TARGET", "host"))
    gpu_chip: str | None = None  # None: the device's sm_XY when one is present, else sm_80
    gpu_features: str | None = None  # None: the lowest PTX version that works for the chip
    gpu_format: str = "isa"

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if f.type in ("bool",) and not isinstance(v, bool):
                raise TypeError(f"Options.{f.name} must be a bool, got {v!r}")
            if f.type == "int" and (not isinstance(v, int) or isinstance(v, bool)):
                raise TypeError(f"Options.{f.name} must be an int, got {v!r}")
        if self.threads < 1:
            raise ValueError(f"Options.threads must be >= 1, got {self.threads}")
        if self.spin < 0:
            raise ValueError(f"Options.spin must be >= 0, got {self.spin}")
        if not 0 <= self.opt_level <= 3:
            raise ValueError(f"Options.opt_level must be 0..3, got {self.opt_level}")
        if self.gemm not in GEMMS:
            raise ValueError(f"Options.gemm (LEAN_MLIR_GEMM) must be one of {GEMMS}, got {self.gemm!r}")
        if self.gpu_format not in GPU_FORMATS:
            raise ValueError(f"Options.gpu_format must be one of {GPU_FORMATS}, got {self.gpu_format!r}")

    def with_(self, **changes: Any) -> Options:
        return replace(self, **changes)


def resolve(options: Options | None, gpu_options: dict[str, str] | None = None) -> Options:
    """`options` (default: from the environment), with the older `gpu_options={"chip", "features",
    "format"}` dict folded in."""
    opts = options if options is not None else Options()
    if not isinstance(opts, Options):
        raise TypeError(f"options must be an lm.Options, got {type(opts).__name__}")
    if gpu_options:
        unknown = sorted(set(gpu_options) - {"chip", "features", "format"})
        if unknown:
            raise TypeError(f"gpu_options: unknown key(s) {unknown}; expected chip, features, format")
        opts = replace(opts, **{f"gpu_{k}": v for k, v in gpu_options.items()})
    return opts
