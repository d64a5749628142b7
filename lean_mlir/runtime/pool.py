"""The worker threads of the CPU thread split: a process-wide pool of spinning workers.

A parallel loop (`lean_mlir.lower.threads`) runs its block 0 on the calling thread and hands the
others to `__lean_pool_submit(task, ctx)`. libmlir_async_runtime's pool parks idle workers on a
condition variable; in a VM a parked vCPU halts, and waking it took ~30-60 us per parallel loop here
(a 2^19-element `2x+1` took 90 us on two threads, 57 us on one). These workers spin for a while
after each task (`Options.spin` pause instructions, 100k by default: 2.7 ms of CPU time after a call)
so back-to-back loops find them awake, then sleep on a futex. The caller spins on the group's
counter until its blocks are done.

The pool is an LLVM-dialect module compiled once per process by its own ExecutionEngine, which is
never released: compiled modules get the address of `lean_pool_submit` as the symbol
`__lean_pool_submit` (`register`). Per worker, one 64-byte slot holds a state word:
IDLE (spinning) -> CLAIMED (a submitter won the compare-and-swap) -> READY (task and context
written, release) -> IDLE (task done); IDLE -> SLEEPING (futex wait) -> CLAIMED (+ futex wake).
A submitter that finds no IDLE or SLEEPING worker runs the task itself, so concurrent callers,
nested calls and a forked child (whose pool is switched off by an atfork handler) stay
correct. At interpreter exit the workers are stopped and joined (`atexit`) before the code goes.
"""

from __future__ import annotations

import atexit
import ctypes
import platform
import sys
import threading

from mlir import ir
from mlir.execution_engine import ExecutionEngine

from ..irutils.context import make_context

SUBMIT_SYMBOL = "__lean_pool_submit"
MAX_WORKERS = 64
_SLOT = "!llvm.struct<(i32, i32, ptr, ptr, array<40 x i8>)>"  # state, pad, task, ctx: 64 bytes
_SLOTS = f"!llvm.array<{MAX_WORKERS} x {_SLOT}>"
_FUTEX_SYSCALL = {"x86_64": 202, "aarch64": 98}
_PAUSE = {"x86_64": "pause", "aarch64": "yield"}


def pause_instruction() -> str:
    """The spin-wait hint of this machine, as inline assembly text ("" where unknown)."""
    return _PAUSE.get(platform.machine(), "")


def _module_text(machine: str, spin: int) -> str:
    nr = _FUTEX_SYSCALL[machine]
    pause = _PAUSE[machine]
    futex = ("llvm.call @syscall(%nr, {addr}, %{op}, {val}, %null) vararg(!llvm.func<i64 (i64, ...)>)"
             " : (i64, !llvm.ptr, i64, i64, !llvm.ptr) -> i64")
    consts = f"""
  %nr = llvm.mlir.constant({nr} : i64) : i64
  %wait_op = llvm.mlir.constant(128 : i64) : i64
  %wake_op = llvm.mlir.constant(129 : i64) : i64
  %null = llvm.mlir.zero : !llvm.ptr
  %i0 = llvm.mlir.constant(0 : i32) : i32
  %i1 = llvm.mlir.constant(1 : i32) : i32
  %i2 = llvm.mlir.constant(2 : i32) : i32
  %i3 = llvm.mlir.constant(3 : i32) : i32
  %i4 = llvm.mlir.constant(4 : i32) : i32
  %z = llvm.mlir.constant(0 : i64) : i64
  %one = llvm.mlir.constant(1 : i64) : i64
  %all = llvm.mlir.constant(2147483647 : i64) : i64
  %slots = llvm.mlir.addressof @slots : !llvm.ptr
  %enabled = llvm.mlir.addressof @enabled : !llvm.ptr
  %shutdown = llvm.mlir.addressof @shutdown : !llvm.ptr
  %nworkers = llvm.mlir.addressof @nworkers : !llvm.ptr
  %tids = llvm.mlir.addressof @tids : !llvm.ptr"""
    return f"""
module {{
  llvm.mlir.global internal @slots() {{alignment = 64 : i64}} : {_SLOTS} {{
    %0 = llvm.mlir.zero : {_SLOTS}
    llvm.return %0 : {_SLOTS}
  }}
  llvm.mlir.global internal @tids(dense<0> : tensor<{MAX_WORKERS}xi64>) : !llvm.array<{MAX_WORKERS} x i64>
  llvm.mlir.global internal @nworkers(0 : i64) : i64
  llvm.mlir.global internal @enabled(0 : i32) : i32
  llvm.mlir.global internal @shutdown(0 : i32) : i32
  llvm.func @pthread_create(!llvm.ptr, !llvm.ptr, !llvm.ptr, !llvm.ptr) -> i32
  llvm.func @pthread_join(i64, !llvm.ptr) -> i32
  llvm.func @__register_atfork(!llvm.ptr, !llvm.ptr, !llvm.ptr, !llvm.ptr) -> i32
  llvm.func @syscall(i64, ...) -> i64

  // a worker: run READY tasks; spin while idle, then sleep on the slot's state word
  llvm.func internal @worker(%s: !llvm.ptr) -> !llvm.ptr {{{consts}
  %limit = llvm.mlir.constant({spin} : i64) : i64
  %taskp = llvm.getelementptr %s[0, 2] : (!llvm.ptr) -> !llvm.ptr, {_SLOT}
  %ctxp = llvm.getelementptr %s[0, 3] : (!llvm.ptr) -> !llvm.ptr, {_SLOT}
  llvm.br ^loop(%z : i64)
^loop(%n: i64):
  %st = llvm.load %s atomic acquire {{alignment = 4 : i64}} : !llvm.ptr -> i32
  %ready = llvm.icmp "eq" %st, %i3 : i32
  llvm.cond_br %ready, ^run, ^idle
^run:
  %task = llvm.load %taskp : !llvm.ptr -> !llvm.ptr
  %ctx = llvm.load %ctxp : !llvm.ptr -> !llvm.ptr
  llvm.call %task(%ctx) : !llvm.ptr, (!llvm.ptr) -> ()
  llvm.store %i0, %s atomic release {{alignment = 4 : i64}} : i32, !llvm.ptr
  llvm.br ^loop(%z : i64)
^idle:
  %sd = llvm.load %shutdown atomic acquire {{alignment = 4 : i64}} : !llvm.ptr -> i32
  %stop = llvm.icmp "ne" %sd, %i0 : i32
  llvm.cond_br %stop, ^exit, ^spin
^spin:
  %more = llvm.icmp "ult" %n, %limit : i64
  llvm.cond_br %more, ^pause, ^sleep
^pause:
  llvm.inline_asm has_side_effects "{pause}", "" : () -> ()
  %n1 = llvm.add %n, %one : i64
  llvm.br ^loop(%n1 : i64)
^sleep:
  %r = llvm.cmpxchg %s, %i0, %i1 acq_rel acquire : !llvm.ptr, i32
  %ok = llvm.extractvalue %r[1] : !llvm.struct<(i32, i1)>
  %old = llvm.extractvalue %r[0] : !llvm.struct<(i32, i1)>
  %asleep = llvm.icmp "eq" %old, %i1 : i32
  %wait = llvm.or %ok, %asleep : i1
  llvm.cond_br %wait, ^futex, ^loop(%z : i64)
^futex:
  %w = {futex.format(addr="%s", op="wait_op", val="%one")}
  llvm.br ^loop(%z : i64)
^exit:
  llvm.return %null : !llvm.ptr
  }}

  // hand task(ctx) to an idle or sleeping worker, or run it here
  llvm.func @lean_pool_submit(%task: !llvm.ptr, %ctx: !llvm.ptr) {{{consts}
  %en = llvm.load %enabled atomic acquire {{alignment = 4 : i64}} : !llvm.ptr -> i32
  %on = llvm.icmp "ne" %en, %i0 : i32
  %n = llvm.load %nworkers atomic acquire {{alignment = 8 : i64}} : !llvm.ptr -> i64
  llvm.cond_br %on, ^try(%z : i64), ^inline
^try(%i: i64):
  %more = llvm.icmp "ult" %i, %n : i64
  llvm.cond_br %more, ^claim, ^inline
^claim:
  %s = llvm.getelementptr %slots[0, %i] : (!llvm.ptr, i64) -> !llvm.ptr, {_SLOTS}
  %r = llvm.cmpxchg %s, %i0, %i2 acq_rel acquire : !llvm.ptr, i32
  %ok = llvm.extractvalue %r[1] : !llvm.struct<(i32, i1)>
  llvm.cond_br %ok, ^give(%s, %i0 : !llvm.ptr, i32), ^sleeping
^sleeping:
  %r2 = llvm.cmpxchg %s, %i1, %i2 acq_rel acquire : !llvm.ptr, i32
  %ok2 = llvm.extractvalue %r2[1] : !llvm.struct<(i32, i1)>
  %next = llvm.add %i, %one : i64
  llvm.cond_br %ok2, ^give(%s, %i1 : !llvm.ptr, i32), ^try(%next : i64)
^give(%g: !llvm.ptr, %was: i32):
  %taskp = llvm.getelementptr %g[0, 2] : (!llvm.ptr) -> !llvm.ptr, {_SLOT}
  %ctxp = llvm.getelementptr %g[0, 3] : (!llvm.ptr) -> !llvm.ptr, {_SLOT}
  llvm.store %task, %taskp : !llvm.ptr, !llvm.ptr
  llvm.store %ctx, %ctxp : !llvm.ptr, !llvm.ptr
  llvm.store %i3, %g atomic release {{alignment = 4 : i64}} : i32, !llvm.ptr
  %wake = llvm.icmp "eq" %was, %i1 : i32
  llvm.cond_br %wake, ^wakeup, ^done
^wakeup:
  %w = {futex.format(addr="%g", op="wake_op", val="%one")}
  llvm.br ^done
^done:
  llvm.return
^inline:
  llvm.call %task(%ctx) : !llvm.ptr, (!llvm.ptr) -> ()
  llvm.return
  }}

  llvm.func internal @forked_child() {{{consts}
  llvm.store %i0, %enabled atomic release {{alignment = 4 : i64}} : i32, !llvm.ptr
  llvm.store %z, %nworkers atomic release {{alignment = 8 : i64}} : i64, !llvm.ptr
  llvm.return
  }}

  // start up to n workers; returns how many started
  llvm.func @lean_pool_start(%n: i64) -> i64 {{{consts}
  %worker = llvm.mlir.addressof @worker : !llvm.ptr
  llvm.br ^loop(%z : i64)
^loop(%i: i64):
  %more = llvm.icmp "ult" %i, %n : i64
  llvm.cond_br %more, ^create, ^started(%i : i64)
^create:
  %s = llvm.getelementptr %slots[0, %i] : (!llvm.ptr, i64) -> !llvm.ptr, {_SLOTS}
  %t = llvm.getelementptr %tids[0, %i] : (!llvm.ptr, i64) -> !llvm.ptr, !llvm.array<{MAX_WORKERS} x i64>
  %rc = llvm.call @pthread_create(%t, %null, %worker, %s) : (!llvm.ptr, !llvm.ptr, !llvm.ptr, !llvm.ptr) -> i32
  %ok = llvm.icmp "eq" %rc, %i0 : i32
  %next = llvm.add %i, %one : i64
  llvm.cond_br %ok, ^loop(%next : i64), ^started(%i : i64)
^started(%count: i64):
  %child = llvm.mlir.addressof @forked_child : !llvm.ptr
  %a = llvm.call @__register_atfork(%null, %null, %child, %null)
    : (!llvm.ptr, !llvm.ptr, !llvm.ptr, !llvm.ptr) -> i32
  llvm.store %count, %nworkers atomic release {{alignment = 8 : i64}} : i64, !llvm.ptr
  llvm.store %i1, %enabled atomic release {{alignment = 4 : i64}} : i32, !llvm.ptr
  llvm.return %count : i64
  }}

  // stop and join the workers (no task may be running)
  llvm.func @lean_pool_stop() {{{consts}
  llvm.store %i0, %enabled atomic release {{alignment = 4 : i64}} : i32, !llvm.ptr
  llvm.store %i1, %shutdown atomic release {{alignment = 4 : i64}} : i32, !llvm.ptr
  %n = llvm.load %nworkers atomic acquire {{alignment = 8 : i64}} : !llvm.ptr -> i64
  llvm.br ^loop(%z : i64)
^loop(%i: i64):
  %more = llvm.icmp "ult" %i, %n : i64
  llvm.cond_br %more, ^join, ^done
^join:
  %s = llvm.getelementptr %slots[0, %i] : (!llvm.ptr, i64) -> !llvm.ptr, {_SLOTS}
  %old = llvm.atomicrmw xchg %s, %i4 acq_rel : !llvm.ptr, i32
  %w = {futex.format(addr="%s", op="wake_op", val="%all")}
  %t = llvm.getelementptr %tids[0, %i] : (!llvm.ptr, i64) -> !llvm.ptr, !llvm.array<{MAX_WORKERS} x i64>
  %tid = llvm.load %t : !llvm.ptr -> i64
  %rc = llvm.call @pthread_join(%tid, %null) : (i64, !llvm.ptr) -> i32
  %next = llvm.add %i, %one : i64
  llvm.br ^loop(%next : i64)
^done:
  llvm.store %z, %nworkers atomic release {{alignment = 8 : i64}} : i64, !llvm.ptr
  llvm.return
  }}

  llvm.func @lean_pool_submit_address() -> !llvm.ptr {{
  %f = llvm.mlir.addressof @lean_pool_submit : !llvm.ptr
  llvm.return %f : !llvm.ptr
  }}
}}
"""


class _Pool:
    """The compiled pool: its engine (kept for the life of the process) and the submit address."""

    def __init__(self, workers: int, spin: int) -> None:
        ctx = make_context()
        with ctx:
            module = ir.Module.parse(_module_text(platform.machine(), spin))
        self._engine = ExecutionEngine(module, opt_level=3)
        self._start, self._stop, address = (self._packed(n) for n in
                                            ("lean_pool_start", "lean_pool_stop", "lean_pool_submit_address"))
        out = ctypes.c_void_p()
        address((ctypes.c_void_p * 1)(ctypes.addressof(out)))
        self.submit_address = int(out.value or 0)
        n, started = ctypes.c_int64(min(workers, MAX_WORKERS)), ctypes.c_int64()
        self._start((ctypes.c_void_p * 2)(ctypes.addressof(n), ctypes.addressof(started)))
        self.workers = started.value
        atexit.register(self.stop)

    def _packed(self, name: str) -> ctypes._CFuncPtr:
        addr = self._engine.raw_lookup(name)
        if not addr:
            raise RuntimeError(f"the thread pool module has no @{name} (JIT symbol resolution failed)")
        return ctypes.CFUNCTYPE(None, ctypes.c_void_p)(addr)

    def stop(self) -> None:
        self._stop((ctypes.c_void_p * 1)())


_POOL: list[_Pool] = []
_LOCK = threading.Lock()


def supported() -> bool:
    return sys.platform.startswith("linux") and platform.machine() in _FUTEX_SYSCALL


def pool(workers: int = 1, spin: int = 100_000) -> _Pool:
    """The process's pool, started with `workers` threads spinning `spin` pause instructions when
    idle, on first use (later calls get the same pool)."""
    with _LOCK:
        if not _POOL:
            _POOL.append(_Pool(workers, spin))
        return _POOL[0]


def register(engine: ExecutionEngine, workers: int, spin: int) -> None:
    """Resolve `__lean_pool_submit` in a module's engine to the pool (started on first use)."""
    engine.raw_register_runtime(SUBMIT_SYMBOL, ctypes.c_void_p(pool(workers, spin).submit_address))
