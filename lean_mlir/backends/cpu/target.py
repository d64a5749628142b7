"""A description of the CPU the code is compiled for, and the schedule constants derived from it.

Nothing here is tuned to one machine: vector width, register count and cache sizes are read from the
host (or from a named preset, so the paths of other hosts stay testable anywhere), and every tile
size below is a formula of them. The formulas reproduce the sizes measured best on AVX-512 hosts
(Zen 4, Skylake-SP / Sapphire Rapids class; figures in the pipeline's comments).
"""

from __future__ import annotations

import platform
from dataclasses import dataclass
from functools import cache

from ...irutils.types import DTYPES


@dataclass(frozen=True)
class CpuTarget:
    name: str  # "host" or a preset's name
    model: str  # the CPU model, as /proc/cpuinfo names it (printed with every benchmark figure)
    arch: str  # platform.machine(): x86_64, aarch64, ...
    vector_bits: int  # widest SIMD register: 512 (AVX-512), 256 (AVX2), 128 (SSE2, NEON)
    vector_registers: int  # architectural SIMD registers: 32 (AVX-512, NEON) or 16
    l1d_bytes: int
    l2_bytes: int  # per core
    vector_abi: str | None  # x86-64 vector function ABI ISA letter of libmvec: "e" (zmm), "d" (ymm)

    def lanes(self, elem: str) -> int:
        """Elements of type `elem` in one SIMD register."""
        return self.vector_bits // (8 * DTYPES[elem].itemsize)

    # ---- schedule constants
    def elementwise_vector(self, elem: str) -> int:
        """Innermost tile of elementwise loops: 2 registers per operand (as fast as 4 on the
        benchmarks, ~15% less LLVM compile time on the big MLP)."""
        return 2 * self.lanes(elem)

    def reduction_vector(self, elem: str) -> int:
        """Partial accumulators of full reductions: 4 registers, independent add chains (a 1e6-element
        sum(exp(...)) ran 15% faster than with 2)."""
        return 4 * self.lanes(elem)

    def transpose_tile(self, elem: str) -> int:
        """Square tile of an elementwise loop that reads an operand transposed: one register per row."""
        return self.lanes(elem)

    def matmul_register_tile(self, elem: str) -> tuple[int, int, int]:
        """(m, n, k) of the C tile kept in registers across the k loop: half the registers hold C,
        n is two f32 registers wide (f32 8x32 and f64 4x32 on AVX-512: 16 zmm)."""
        n = 2 * self.lanes("f32")
        m = max(1, (self.vector_registers // 2) * self.lanes(elem) // n)
        return m, n, 1

    def matmul_cache_tile(self, elem: str) -> tuple[int, int, int]:
        """(m, n, k) of the cache tile: k = 256, and m, n halved (m first) from 256 until the A and B
        tiles fill at most half of L2 (f32 256x256x256 on a 1 MiB L2: measured best on Zen 4)."""
        b = DTYPES[elem].itemsize
        m, n, k = 256, 256, 256
        rm, rn, _ = self.matmul_register_tile(elem)
        while (m * k + k * n) * b > self.l2_bytes // 2 and (m > rm or n > rn):
            if m >= n and m > rm:
                m //= 2
            else:
                n //= 2
        return m, n, k


def _cpuinfo() -> tuple[str, set[str]]:
    model, flags = "", set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key in ("model name", "Model", "CPU part") and not model:
                    model = value.strip()
                elif key in ("flags", "Features") and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    return model or platform.processor() or "unknown", flags


def _cache_bytes(level: int, default: int) -> int:
    """Size of the level-`level` data or unified cache of cpu0 (sysfs), else `default`."""
    base = "/sys/devices/system/cpu/cpu0/cache"
    for i in range(8):
        try:
            with open(f"{base}/index{i}/level") as f:
                lvl = int(f.read())
            with open(f"{base}/index{i}/type") as f:
                kind = f.read().strip()
            with open(f"{base}/index{i}/size") as f:
                text = f.read().strip()
        except OSError:
            break
        if lvl == level and kind in ("Data", "Unified"):
            mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:], 1)
            return int(text.rstrip("KMG")) * mult
    return default


def _x86(name: str, model: str, flags: set[str], l1: int, l2: int) -> CpuTarget:
    if "avx512f" in flags:
        return CpuTarget(name, model, "x86_64", 512, 32, l1, l2, "e")
    if "avx2" in flags:
        return CpuTarget(name, model, "x86_64", 256, 16, l1, l2, "d")
    return CpuTarget(name, model, "x86_64", 128, 16, l1, l2, None)


# Presets: other hosts' descriptions, to compile (and test) their schedule paths on any machine.
PRESETS: dict[str, CpuTarget] = {
    "avx512": _x86("avx512", "generic AVX-512", {"avx512f"}, 48 << 10, 1 << 20),
    "avx2": _x86("avx2", "generic AVX2", {"avx2"}, 32 << 10, 512 << 10),
    "neon": CpuTarget("neon", "generic AArch64", "aarch64", 128, 32, 64 << 10, 1 << 20, None),
}


@cache
def host() -> CpuTarget:
    model, flags = _cpuinfo()
    l1, l2 = _cache_bytes(1, 32 << 10), _cache_bytes(2, 1 << 20)
    arch = platform.machine()
    if arch in ("x86_64", "AMD64"):
        return _x86("host", model, flags, l1, l2)
    return CpuTarget("host", model, arch, 128, 32 if arch in ("aarch64", "arm64") else 16, l1, l2, None)


def target(name: str) -> CpuTarget:
    """"host" or a preset name."""
    if name == "host":
        return host()
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown CPU target {name!r}: expected 'host' or one of {sorted(PRESETS)}") from None
