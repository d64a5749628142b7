"""The in-memory compile cache: least recently used, bounded, safe across fork.

Each entry holds a compiled object (its ExecutionEngine and code: a few MB), so the cache is bounded
(`LEAN_MLIR_CACHE_SIZE`, default 64 entries); an evicted entry's engine is freed when nothing else
holds it. Keys hold the user's function through a weak reference where it can have one, so a
function that is gone frees its entries at the next insertion instead of pinning them."""

from __future__ import annotations

import os
import threading
import weakref
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any

DEFAULT_SIZE = 64


def size_from_env() -> int:
    text = os.environ.get("LEAN_MLIR_CACHE_SIZE")
    if text is None:
        return DEFAULT_SIZE
    if not text.strip().isdigit():
        raise ValueError(f"LEAN_MLIR_CACHE_SIZE must be a non-negative integer (entries), got {text!r}")
    return int(text)


def function_key(fn: Any) -> Hashable:
    """A weak reference to `fn` where possible (equal and hashing alike while `fn` lives), else `fn`."""
    try:
        return weakref.ref(fn)
    except TypeError:
        return fn


class CompileCache:
    def __init__(self, max_size: int | None = None) -> None:
        self.max_size = size_from_env() if max_size is None else max_size
        self._entries: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()
        # a child forked while another thread held the lock would wait for it forever
        os.register_at_fork(after_in_child=self._reset_lock)

    def _reset_lock(self) -> None:
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Any | None:
        with self._lock:
            value = self._entries.get(key)
            if value is not None:
                self._entries.move_to_end(key)
            return value

    def put(self, key: Hashable, value: Any) -> None:
        with self._lock:
            self._entries[key] = value
            self._entries.move_to_end(key)
            dead = [k for k in self._entries if _dead(k)]
            for k in dead:
                del self._entries[k]
            while len(self._entries) > self.max_size:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


def _dead(key: Hashable) -> bool:
    return isinstance(key, tuple) and any(isinstance(k, weakref.ref) and k() is None for k in key)
