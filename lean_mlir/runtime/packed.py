"""Packed calls: the native entry points of a module lowered to out-params (the CPU and GPU back
ends' calling convention), called on NumPy arrays with ~1 us of overhead.

Calling convention. After `buffer-results-to-out-params`, a public `f(args) -> (r...)` is
`f(args..., outs...) -> ()` on memrefs with identity layout. The ExecutionEngine exposes the packed
wrapper `_mlir_f(void **slots)` (via `raw_lookup("f")`): each memref of rank r is expanded to
3 + 2r scalars (allocated ptr, aligned ptr, offset, sizes[r], strides[r]), and `slots[i]` points to
the storage of scalar i. Shapes are static, so offset/sizes/strides live in one shared, read-only
int64 table built once; only the two pointer slots per array change per call.

Fast path: a NumPy array object starts with `PyObject_HEAD; char *data; ...` (PyArrayObject_fields),
so on CPython `id(a) + 16` is the address of the array's data pointer. Pointing the two pointer slots
there hands the kernel `a.data` without creating any Python object (~45 ns per array instead of
~1 us for `a.ctypes.data`). The layout is checked once at import; if the check fails we fall back to
writing `a.ctypes.data` into a per-thread value table.

Thread safety: the packed slot table (and the fallback value table) is per thread
(`threading.local`); the ctypes call releases the GIL, so threads run kernels concurrently.
Outputs are fresh `np.empty` arrays per call, owned by Python, never aliased across calls.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading
from collections.abc import Sequence

import numpy as np
from mlir.execution_engine import ExecutionEngine

from ..irutils.types import Signature, TensorSpec

Spec = TensorSpec

_PACKED_FN = ctypes.CFUNCTYPE(None, ctypes.c_void_p)


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")


def _tune_malloc() -> bool:
    """Keep freed heap memory in the process (glibc): the kernels malloc/free their temporaries and
    NumPy its outputs on every call; with glibc's defaults large blocks are mmap'ed or trimmed back
    to the OS after each call, and every call then pays a page fault per 4 KiB it touches (45% of the
    time of a 1e6-element VJP). Opt out with LEAN_MLIR_MALLOC_TUNING=0."""
    if os.environ.get("LEAN_MLIR_MALLOC_TUNING", "1") == "0":
        return False
    try:
        libc = _libc()
        m_trim_threshold, m_mmap_threshold = -1, -3
        return bool(libc.mallopt(m_mmap_threshold, 32 << 20) and libc.mallopt(m_trim_threshold, 512 << 20))
    except (OSError, AttributeError):
        return False


MALLOC_TUNED = _tune_malloc()

def _data_slot_offset() -> int | None:
    """Offset of the data pointer inside a NumPy array object, if `id()` is an address (CPython)."""
    off = 2 * ctypes.sizeof(ctypes.c_void_p)  # PyObject_HEAD: ob_refcnt, ob_type
    for a in (np.arange(3.0), np.empty((2, 0), np.float32), np.ones(5)[1:], np.zeros(())):
        if ctypes.c_void_p.from_address(id(a) + off).value != a.ctypes.data:
            return None
    return off


_DATA_OFFSET = _data_slot_offset()

def _static_table(specs: Sequence[Spec]) -> tuple[ctypes.Array, list[int | None]]:
    """Shared int64 storage of offset/sizes/strides and, per packed slot, its address (None = pointer)."""
    values: list[int] = []
    where: list[int | None] = []
    for shape, _ in specs:
        where += [None, None]  # allocated, aligned: filled per call
        strides = [0] * len(shape)
        acc = 1
        for d in range(len(shape) - 1, -1, -1):
            strides[d] = acc
            acc *= max(shape[d], 1)
        for v in (0, *shape, *strides):
            where.append(len(values))
            values.append(v)
    table = (ctypes.c_int64 * max(len(values), 1))(*values)
    base = ctypes.addressof(table)
    return table, [None if w is None else base + 8 * w for w in where]


_KEY: list[int] = []


def jump_key() -> int:
    """The process's pthread key whose per-thread slot holds the armed jump buffer of the allocation
    guard (`lean_mlir.backends.cpu.allocation`); created once (keys survive fork)."""
    if not _KEY:
        key = ctypes.c_uint32()
        if _libc().pthread_key_create(ctypes.byref(key), None):
            raise OSError("pthread_key_create failed (too many keys in this process)")
        _KEY.append(key.value)
    return _KEY[0]


class Entry:
    """A native entry point: `entry(*arrays) -> tuple of fresh output arrays`.

    Fast path: the caller guarantees inputs of the exact dtype and shape, C-contiguous
    (see `lean_mlir.runtime.validate.coerce_inputs`); only the count is checked here.
    """

    def __init__(self, engine: ExecutionEngine, name: str, signature: Signature, guard: str | None = None) -> None:
        addr = engine.raw_lookup(name)
        if not addr:
            raise KeyError(f"no native function @{name} in the executable")
        self.name = name
        # `guard(fn, slots, key) -> i32` (the CPU back end's allocation guard): calls fn(slots), 1
        # when an allocation in it failed
        self._guard = _PACKED_FN(engine.raw_lookup(guard)) if guard else None
        self._addr = addr
        self.inputs, self.outputs = list(signature[0]), list(signature[1])
        self._engine = engine  # keeps the code alive while this entry exists
        self._fn = _PACKED_FN(addr)
        self._table, self._slots = _static_table(self.inputs + self.outputs)
        # index of the "allocated" slot of array j (the "aligned" slot follows it)
        self._ptr_slots: list[int] = []
        i = 0
        for shape, _ in self.inputs + self.outputs:
            self._ptr_slots.append(i)
            i += 3 + 2 * len(shape)
        self._nin = len(self.inputs)
        self._out_specs = [(shape, dt) for shape, dt in self.outputs]
        self._tls = threading.local()

    def _thread_state(self) -> tuple[ctypes.Array, ctypes.Array | None, tuple | None]:
        packed = (ctypes.c_void_p * max(len(self._slots), 1))(*[s or 0 for s in self._slots])
        values = None
        if _DATA_OFFSET is None:
            values = (ctypes.c_void_p * len(self._ptr_slots))()
            for j, s in enumerate(self._ptr_slots):
                packed[s] = packed[s + 1] = ctypes.addressof(values) + 8 * j
        guarded = None
        if self._guard is not None:
            # guard's packed slots: fn, slots, key, result
            cells = (ctypes.c_void_p(self._addr), ctypes.c_void_p(ctypes.addressof(packed)),
                     ctypes.c_uint32(jump_key()), ctypes.c_int32(0))
            guarded = ((ctypes.c_void_p * 4)(*[ctypes.addressof(c) for c in cells]), cells)
        state = (packed, values, guarded)
        self._tls.state = state
        return state

    def __call__(self, *arrays: np.ndarray) -> tuple[np.ndarray, ...]:
        if len(arrays) != self._nin:
            raise TypeError(f"@{self.name}: expected {self._nin} inputs, got {len(arrays)}")
        try:
            packed, values, guarded = self._tls.state
        except AttributeError:
            packed, values, guarded = self._thread_state()
        outs = tuple([np.empty(shape, dt) for shape, dt in self._out_specs])
        slots = self._ptr_slots
        if values is None:
            off = _DATA_OFFSET
            j = 0
            for a in arrays:
                s = slots[j]
                packed[s] = packed[s + 1] = id(a) + off
                j += 1
            for a in outs:
                s = slots[j]
                packed[s] = packed[s + 1] = id(a) + off
                j += 1
        else:
            for j, a in enumerate(arrays + outs):
                values[j] = a.ctypes.data
        # `arrays`, `outs` and `packed` are referenced until this returns
        if guarded is None:
            self._fn(packed)
        else:
            self._guard(guarded[0])
            if guarded[1][3].value:
                raise MemoryError(f"@{self.name}: a temporary buffer could not be allocated (malloc failed)")
        return outs

    def __repr__(self) -> str:
        return f"Entry(@{self.name}: {self.inputs} -> {self.outputs})"
