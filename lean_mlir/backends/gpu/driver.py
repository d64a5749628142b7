"""The CUDA driver probe, in pure ctypes: libmlir_cuda_runtime.so cannot even be loaded without
libcuda, so the probe runs first and turns a missing driver or device into DeviceUnavailableError."""

from __future__ import annotations

import ctypes
from functools import cache

_CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75
_CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR = 76


class DeviceUnavailableError(RuntimeError):
    """No usable CUDA driver or device (libcuda.so.1 missing, cuInit failed, or zero devices)."""


@cache
def _cuda_probe() -> tuple[str | None, tuple[int, int] | None]:
    """(reason the device is unusable or None, compute capability of device 0)."""
    try:
        lib = ctypes.CDLL("libcuda.so.1")
    except OSError as e:
        return f"libcuda.so.1 cannot be loaded ({e}); no NVIDIA driver on this machine", None
    rc = lib.cuInit(0)
    if rc != 0:
        return f"cuInit(0) failed with CUresult {rc}", None
    n = ctypes.c_int(0)
    rc = lib.cuDeviceGetCount(ctypes.byref(n))
    if rc != 0 or n.value == 0:
        return f"no CUDA device (cuDeviceGetCount -> rc {rc}, count {n.value})", None
    dev, major, minor = ctypes.c_int(0), ctypes.c_int(0), ctypes.c_int(0)
    if lib.cuDeviceGet(ctypes.byref(dev), 0) != 0:
        return "cuDeviceGet(0) failed", None
    lib.cuDeviceGetAttribute(ctypes.byref(major), _CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, dev)
    lib.cuDeviceGetAttribute(ctypes.byref(minor), _CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, dev)
    return None, (major.value, minor.value)


def cuda_available() -> bool:
    """True when libcuda.so.1 loads, cuInit succeeds and at least one device exists."""
    return _cuda_probe()[0] is None


def device_capability() -> tuple[int, int] | None:
    """Compute capability (major, minor) of device 0, or None without a device."""
    return _cuda_probe()[1]


def require_device() -> None:
    reason = _cuda_probe()[0]
    if reason is not None:
        raise DeviceUnavailableError(f"GPU backend unavailable: {reason}")
