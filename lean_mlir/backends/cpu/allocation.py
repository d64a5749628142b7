"""Checked heap allocation: a malloc that fails makes the call raise MemoryError instead of crashing.

Generated code gets its temporaries from `malloc` (finalize-memref-to-llvm) and never looks at the
result, so a refused allocation (an address-space limit, `vm.overcommit_memory=2`, a fragmented
32-bit heap) was a write through NULL. After conversion to the LLVM dialect, `check_allocations`
sends every `malloc` call to one of two functions defined here:
- `@__lean_malloc` (code run on the calling thread): on NULL, `longjmp` to the jump buffer that
  `@__lean_guard` put in the calling thread's slot of a pthread key, so the call returns 1;
- `@__lean_malloc_in_task` (thread-split blocks and what they call, and the split's own contexts):
  a jump there would abandon blocks still running on other threads, which write into the caller's
  arrays; on NULL it writes a message to stderr and aborts.
Python calls every entry through `@__lean_guard(fn, slots, key)` (`lean_mlir.runtime.packed`), which
arms the jump buffer, calls the packed entry `fn(slots)` and returns 0, or 1 after a failed
allocation. A failed call leaks the temporaries it allocated before the failure (no unwinding).
The thread split allocates nothing in its blocks today (every schedule's temporaries live on the
calling thread), so the abort is the fallback of a path no program has taken.

The pthread key is an `unsigned int` on Linux (glibc, musl); elsewhere nothing is rewritten.
"""

from __future__ import annotations

import sys

from mlir import ir
from mlir.dialects import llvm

from ...irutils.llvm import call, declare, define, integer, signature
from ...irutils.walk import symbol_name, symbols, walk
from .threads import GROUP_CREATE, SPAWN_PREFIX, TASK_PREFIX

GUARD = "__lean_guard"
MALLOC = "__lean_malloc"
MALLOC_IN_TASK = "__lean_malloc_in_task"
OUT_OF_MEMORY = "__lean_out_of_memory"
JUMP_KEY = "__lean_jump_key"
JUMP_BUFFER_BYTES = 512  # >= sizeof(jmp_buf): glibc 200 (x86-64) / 312 (aarch64), musl 200 / 312
TASK_MARK = "parallel_compute_fn"  # async-parallel-for's outlined blocks (both thread-split lowerings)
MESSAGE = "lean_mlir: out of memory in a thread-split block of generated code\n"
LIBC = (("malloc", "ptr (i64)"), ("abort", "void ()"), ("write", "i64 (i32, ptr, i64)"),
        ("pthread_getspecific", "ptr (i32)"), ("pthread_setspecific", "i32 (i32, ptr)"), ("longjmp", "void (ptr, i32)"))

supported = sys.platform.startswith("linux")


def _in_tasks(module: ir.Module) -> set[str]:
    """The functions thread-split blocks run, with everything they call, and the split's runtime."""
    callees: dict[str, set[str]] = {}
    for f in walk(module, ("llvm.func",)):
        callees[symbol_name(f)] = {ir.FlatSymbolRefAttr(c.attributes["callee"]).value for c in walk(f, ("llvm.call",))
                                   if "callee" in c.attributes}
    todo = [n for n in callees if TASK_MARK in n or n.startswith((SPAWN_PREFIX, TASK_PREFIX)) or n == GROUP_CREATE]
    seen = set(todo)
    while todo:
        for c in callees.get(todo.pop(), ()):
            if c not in seen:
                seen.add(c)
                todo.append(c)
    return seen


def check_allocations(module: ir.Module) -> bool:
    """Send the module's malloc calls to the checked allocators and define them and the guard (in
    place, on the LLVM dialect); False where the platform has no support (nothing changed)."""
    if not supported:
        return False
    in_tasks = _in_tasks(module)
    mallocs = [(c, symbol_name(f) in in_tasks) for f in walk(module, ("llvm.func",)) for c in walk(f, ("llvm.call",))
               if "callee" in c.attributes and ir.FlatSymbolRefAttr(c.attributes["callee"]).value == "malloc"]
    with module.context, ir.Location.unknown():
        for c, task in mallocs:
            c.attributes["callee"] = ir.FlatSymbolRefAttr.get(MALLOC_IN_TASK if task else MALLOC)
        syms = symbols(module)
        with ir.InsertionPoint(module.body):
            for name, text in LIBC:
                if name not in syms:
                    declare(name, text)
            declare("_setjmp", "i32 (ptr)", ["returns_twice"])
            i32, internal = ir.IntegerType.get_signless(32), ir.Attribute.parse("#llvm.linkage<internal>")
            llvm.GlobalOp(i32, JUMP_KEY, internal, value=ir.IntegerAttr.get(i32, 0))
            llvm.GlobalOp(ir.Type.parse(f"!llvm.array<{len(MESSAGE)} x i8>"), "__lean_oom_message", internal,
                          constant=True, value=ir.StringAttr.get(MESSAGE))
            _out_of_memory()
            _malloc(MALLOC, jump=True)
            _malloc(MALLOC_IN_TASK, jump=False)
            _guard()
    return True


def _out_of_memory() -> None:
    """`(i1 jump)`: jump to the calling thread's armed buffer if asked and armed, else report and abort."""
    ptr = llvm.PointerType.get()
    entry, armed, jumping, report = define(OUT_OF_MEMORY, signature("void (i1)"), [ir.IntegerType.get_signless(1)],
                                           blocks=4, attributes=["noinline", "cold"])
    with ir.InsertionPoint(entry):
        llvm.CondBrOp(entry.arguments[0], [], [], armed, report)
    with ir.InsertionPoint(armed):
        key = llvm.LoadOp(ir.IntegerType.get_signless(32), llvm.AddressOfOp(ptr, JUMP_KEY).result, alignment=4,
                          ordering=llvm.AtomicOrdering.monotonic).result  # stored by every guard
        buf = call("pthread_getspecific", [key], ptr)
        is_armed = llvm.ICmpOp(llvm.ICmpPredicate.ne, buf, llvm.ZeroOp(ptr).result).result
        llvm.CondBrOp(is_armed, [], [], jumping, report)
    with ir.InsertionPoint(jumping):
        call("longjmp", [buf, integer(1, 32)])
        llvm.UnreachableOp()
    with ir.InsertionPoint(report):
        call("write", [integer(2, 32), llvm.AddressOfOp(ptr, "__lean_oom_message").result, integer(len(MESSAGE))],
             ir.IntegerType.get_signless(64))
        call("abort", [])
        llvm.UnreachableOp()


def _malloc(name: str, jump: bool) -> None:
    """`malloc(n)`, with a refused allocation of n > 0 bytes sent to `@__lean_out_of_memory`."""
    ptr = llvm.PointerType.get()
    i64 = ir.IntegerType.get_signless(64)
    entry, failed, done = define(name, signature("ptr (i64)"), [i64], blocks=3)
    size = entry.arguments[0]
    with ir.InsertionPoint(entry):
        p = call("malloc", [size], ptr)
        null = llvm.ICmpOp(llvm.ICmpPredicate.eq, p, llvm.ZeroOp(ptr).result).result
        some = llvm.ICmpOp(llvm.ICmpPredicate.ne, size, integer(0)).result
        llvm.CondBrOp(llvm.AndOp(null, some).result, [], [], failed, done)
    with ir.InsertionPoint(failed):
        call(OUT_OF_MEMORY, [integer(int(jump), 1)])
        llvm.UnreachableOp()
    with ir.InsertionPoint(done):
        llvm.ReturnOp(arg=p)


def _guard() -> None:
    """`i32 (ptr fn, ptr slots, i32 key)`: arm a jump buffer in the thread's slot of `key`, call
    `fn(slots)`; 0 when it returned, 1 when an allocation failed; the slot's old value is restored."""
    ptr, i32 = llvm.PointerType.get(), ir.IntegerType.get_signless(32)
    entry, run, failed = define(GUARD, signature("i32 (ptr, ptr, i32)"), [ptr, ptr, i32], blocks=3,
                                linkage="external")  # Python calls it
    fn, slots, key = entry.arguments
    with ir.InsertionPoint(entry):
        llvm.StoreOp(key, llvm.AddressOfOp(ptr, JUMP_KEY).result, ordering=llvm.AtomicOrdering.monotonic, alignment=4)
        buf = llvm.AllocaOp(ptr, integer(JUMP_BUFFER_BYTES), ir.IntegerType.get_signless(8), alignment=16).result
        old = call("pthread_getspecific", [key], ptr)
        call("pthread_setspecific", [key, buf], i32)
        jumped = call("_setjmp", [buf], i32)
        llvm.CondBrOp(llvm.ICmpOp(llvm.ICmpPredicate.eq, jumped, integer(0, 32)).result, [], [], run, failed)
    with ir.InsertionPoint(run):
        llvm.CallOp(None, [fn, slots], [], [])
        call("pthread_setspecific", [key, old], i32)
        llvm.ReturnOp(arg=integer(0, 32))
    with ir.InsertionPoint(failed):
        call("pthread_setspecific", [key, old], i32)
        llvm.ReturnOp(arg=integer(1, 32))
