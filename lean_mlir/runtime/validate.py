"""Checks and conversions of user values before they reach native code."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

_ndarray = np.ndarray
_C_ALIGNED = 0x0001 | 0x0100  # NPY_ARRAY_C_CONTIGUOUS | NPY_ARRAY_ALIGNED


def _plural(n: int, what: str) -> str:
    return f"{n} {what}" + ("" if n == 1 else "s")


def _coerce_one(i: int, spec: tuple[tuple[int, ...], np.dtype], v: object, what: str | Sequence[str]) -> np.ndarray:
    shape, dt = spec
    what = f"{what} {i}" if isinstance(what, str) else what[i]  # the argument's name in messages
    dt = np.dtype(dt)
    try:
        v = from_dlpack(v)
    except TypeError as e:
        raise TypeError(f"{what}: {e}") from None
    typed = hasattr(v, "dtype")  # NumPy arrays and scalars, and other array libraries
    if isinstance(v, bool) or (not typed and isinstance(v, str | bytes)):
        raise TypeError(f"{what}: expected a {dt.name} value, got {type(v).__name__}")
    try:
        a = np.asarray(v)
    except Exception as e:  # ragged lists and the like
        raise TypeError(f"{what}: cannot convert {type(v).__name__} to a {dt.name} array: {e}") from e
    kind = a.dtype.kind
    if typed:
        if a.dtype != dt:
            if kind == "f" and a.dtype.itemsize == dt.itemsize:  # same precision, other byte order
                a = a.astype(dt)
            else:
                raise TypeError(
                    f"{what}: expected dtype {dt.name}, got {a.dtype.name} "
                    f"(arrays are never cast implicitly; use .astype(np.{dt.name}))"
                )
    elif kind in "fiu":
        with np.errstate(over="ignore"):
            converted = a.astype(dt, copy=False)
        overflow = np.isinf(converted) & ~np.isinf(a)  # 1e300 in an f32 input: no silent inf
        if overflow.any():
            raise ValueError(f"{what}: {float(a[overflow].flat[0])!r} does not fit in {dt.name} (largest finite value "
                             f"{np.finfo(dt).max:.6g})")
        a = converted
    else:
        raise TypeError(f"{what}: expected {dt.name} values, got {a.dtype.name} ({type(v).__name__})")
    if a.shape != shape:
        raise ValueError(f"{what}: expected shape {shape}, got {a.shape}")
    if not (a.flags.c_contiguous and a.flags.aligned):
        a = np.ascontiguousarray(a)  # Fortran order, strided views, unaligned buffers: copy
        if not a.flags.aligned:
            a = a.copy()
    return a


def from_dlpack(v: object) -> object:
    """A NumPy view of a DLPack producer on the host (torch tensors, also with requires_grad, jax
    arrays), without a copy; anything else as it is."""
    if type(v) is _ndarray or not hasattr(v, "__dlpack__"):
        return v
    device = getattr(v, "__dlpack_device__", None)
    if device is not None:
        try:
            kind = int(device()[0])
        except Exception:  # a producer that cannot say: let NumPy try
            kind = 1
        if kind not in (1, 3):  # kDLCPU, kDLCUDAHost: host memory
            raise TypeError(f"a {type(v).__name__} in device memory (DLPack device type {kind}): inputs are read "
                            "from host memory; copy it to the host first (device-resident inputs are not "
                            "supported yet)")
    if getattr(v, "requires_grad", False):
        v = v.detach()  # a torch.nn.Parameter: its values, not its graph
    try:
        return np.from_dlpack(v)
    except (BufferError, RuntimeError, TypeError, ValueError):  # on a device, or a dtype NumPy lacks
        return v


def coerce_inputs(
    specs: Sequence[tuple[tuple[int, ...], np.dtype]], values: Sequence, what: str | Sequence[str] = "input"
) -> list[np.ndarray]:
    """Check `values` against `specs` ((shape, dtype) per argument); return C-contiguous arrays.

    - The count must match: `TypeError("expected 3 inputs, got 2")`.
    - Messages name the argument `f"{what} {i}"`, or `what[i]` when `what` is a sequence of names
      (e.g. "seed", "dxs[0] (tangent of input 1)").
    - Python scalars, lists and tuples are converted with `np.asarray(v, dtype=spec dtype)`;
      bool, complex, string and object values are rejected (`TypeError`).
    - Values that carry a dtype (NumPy arrays and scalars, other array libraries) must have exactly
      the spec's dtype: an f64 array passed to an f32 argument is a `TypeError` naming the argument,
      the expected and the received dtype -- never a silent cast (and never a silent loss of
      precision). Integer, bool, complex and object arrays are rejected the same way. Only a
      non-native byte order of the same float type is converted.
    - The shape must match exactly (no broadcasting): `ValueError("input 1: expected shape (8, 4),
      got (4, 8)")`.
    - Non-contiguous (strided views, Fortran order) or unaligned arrays are copied to C order.
    - DLPack producers on the host (torch tensors, also with requires_grad; jax arrays) are read
      through `np.from_dlpack`, without a copy where the layout allows.
    The common case (correct, contiguous ndarrays) returns the same objects without copying.
    """
    if len(values) != len(specs):
        raise TypeError(f"expected {_plural(len(specs), what if isinstance(what, str) else 'argument')}, "
                        f"got {len(values)}")
    out = list(values)
    for i in range(len(out)):
        v = out[i]
        spec = specs[i]
        # Fast path: exact shape, exact dtype (builtin dtype objects are singletons), C-contiguous
        # and aligned. Anything else, including equal-but-not-identical dtypes, takes the slow path.
        if not (
            type(v) is _ndarray
            and v.shape == spec[0]
            and v.dtype is spec[1]
            and v.flags.num & _C_ALIGNED == _C_ALIGNED
        ):
            out[i] = _coerce_one(i, spec, v, what)
    return out
