"""What the GPU back end compiles for: the chip / PTX version / binary format tables, and `GpuTarget`,
the description of the device that the launch configuration (`mapping.py`) is derived from."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ...options import GPU_FORMATS, Options
from .driver import device_capability

GPU_DEFAULTS: dict[str, str] = {"chip": "sm_80", "features": "+ptx80", "format": "bin"}

FORMATS = GPU_FORMATS

# Minimum PTX ISA version (x10) that the LLVM NVPTX backend accepts for each chip; LLVM *aborts the
# process* (no exception) when the version is too low, so these are checked in Python first.
# CUDA 13 ptxas supports sm_75 and newer only.
MIN_PTX: dict[str, int] = {
    "sm_75": 63, "sm_80": 70, "sm_86": 71, "sm_87": 74, "sm_88": 90, "sm_89": 78, "sm_90": 78, "sm_90a": 80,
    "sm_100": 86, "sm_100a": 86, "sm_100f": 88, "sm_101": 86, "sm_101a": 86, "sm_101f": 88,
    "sm_103": 88, "sm_103a": 88, "sm_103f": 88, "sm_110": 90, "sm_110a": 90, "sm_110f": 90,
    "sm_120": 87, "sm_120a": 87, "sm_120f": 88, "sm_121": 88, "sm_121a": 88, "sm_121f": 88,
}
# PTX versions that the bundled LLVM knows (llc -mattr=help).
KNOWN_PTX = {70, 71, 72, 73, 74, 75, 76, 77, 78, 80, 81, 82, 83, 84, 85, 86, 87, 88, 90}

# Launch limits of every chip in MIN_PTX (sm_75 and newer): threads per block, blockDim.z, gridDim.y/z.
_HW_LIMITS = {"max_threads_per_block": 1024, "max_block_z": 64, "max_grid_yz": 65535}


def validate_target(chip: str, features: str, format: str = "bin") -> None:
    """Raise ValueError for a chip/features/format that would make LLVM or ptxas fail (or abort)."""
    if chip not in MIN_PTX:
        raise ValueError(f"unsupported GPU chip {chip!r}: expected one of {sorted(MIN_PTX)} "
                         "(CUDA 13 ptxas supports sm_75 and newer)")
    if format not in FORMATS:
        raise ValueError(f"unknown binary format {format!r}: expected one of {FORMATS}")
    ptx = []
    for tok in features.split(","):
        tok = tok.strip()
        m = re.fullmatch(r"\+ptx(\d+)", tok)
        if not m:
            raise ValueError(f"unsupported feature {tok!r} in {features!r}: expected '+ptxNN', e.g. +ptx80")
        ptx.append(int(m.group(1)))
    if len(ptx) != 1:
        raise ValueError(f"features {features!r} must name exactly one PTX version, e.g. '+ptx80'")
    need = max(70, MIN_PTX[chip])
    if ptx[0] not in KNOWN_PTX or ptx[0] < need:
        raise ValueError(f"PTX version {ptx[0] / 10:.1f} (features {features!r}) cannot target {chip}: "
                         f"need +ptx{need} or newer, one of {sorted(KNOWN_PTX)}")


def default_features(chip: str) -> str:
    """The lowest PTX version that works for `chip` (at least +ptx80 on sm_8x/sm_90)."""
    if chip not in MIN_PTX:
        raise ValueError(f"unsupported GPU chip {chip!r}")
    return f"+ptx{max(80, MIN_PTX[chip])}"


@dataclass(frozen=True)
class GpuTarget:
    """The device the code is compiled for: what LLVM emits (chip, PTX version, binary format) and the
    launch limits that the grid x block tiling respects. Validated on construction, so an unusable
    target is rejected before any native code can abort the process."""

    chip: str = GPU_DEFAULTS["chip"]
    features: str = GPU_DEFAULTS["features"]
    format: str = GPU_DEFAULTS["format"]
    # Threads the tiling gives one block: 256, not the hardware's 1024, so that a kernel using up to
    # 255 registers per thread still fits the 64K registers of a block and launches.
    max_threads_per_block: int = 256
    max_block_z: int = _HW_LIMITS["max_block_z"]
    max_grid_yz: int = _HW_LIMITS["max_grid_yz"]  # grid x allows 2^31 - 1 blocks: never the limit here

    def __post_init__(self) -> None:
        validate_target(self.chip, self.features, self.format)
        for name, most in _HW_LIMITS.items():
            value = getattr(self, name)
            if not 1 <= value <= most:
                raise ValueError(f"GpuTarget.{name} must be in 1..{most}, got {value}")


def device_chip() -> str | None:
    """The sm_XY chip of device 0 when this toolchain supports it, else None."""
    cc = device_capability()
    if cc is None:
        return None
    chip = f"sm_{cc[0]}{cc[1]}"
    return chip if chip in MIN_PTX else None


def resolve_target(options: Options) -> GpuTarget:
    """The target the options ask for: the device's chip, else GPU_DEFAULTS'; the lowest PTX version
    that works for the chip unless gpu_features names one."""
    chip = options.gpu_chip or device_chip() or GPU_DEFAULTS["chip"]
    return GpuTarget(chip, options.gpu_features or default_features(chip), options.gpu_format)
