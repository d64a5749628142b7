"""Thread split without coroutines: `async-parallel-for` outlines each parallel loop body into a
`parallel_compute_fn_K(block, ..., captures)` and launches blocks 1.. with `async.execute`. The
upstream lowering of `async.execute` (async-to-async-runtime) makes every launch an LLVM coroutine,
and coroutines are expensive to compile: on the big MLP (25 split loops) they doubled the LLVM time.

Here the async ops become plain calls of functions this module defines after conversion to the
LLVM dialect (`define_spawns`):
- `async.create_group` -> `@__lean_group_create()`: a malloc'ed counter of pending blocks;
- `async.execute` + its `async.add_to_group` -> `@__lean_spawn_K(args..., group)`: copy the
  arguments into a malloc'ed context, count the block in, and hand `@__lean_task_K(ctx)` to the
  process's worker pool (`__lean_pool_submit`, `lean_mlir.runtime.pool`), which runs it on a spinning
  worker or, with none free, right away on the calling thread; the task calls
  `@parallel_compute_fn_K`, frees the context and counts the block out (release);
- `async.await_all` -> `@__lean_group_wait(group)`: spin until the counter is 0 (acquire), free it.
"""

from __future__ import annotations

from mlir import ir
from mlir.dialects import arith, llvm
from mlir.dialects import func as func_d

from ...irutils.llvm import call, declare, define, field, integer, signature
from ...irutils.passes import run_passes
from ...irutils.walk import symbols, walk
from ...runtime.pool import SUBMIT_SYMBOL, pause_instruction

SPAWN_PREFIX = "__lean_spawn_"
TASK_PREFIX = "__lean_task_"
GROUP_CREATE = "__lean_group_create"
GROUP_WAIT = "__lean_group_wait"
# what the definitions below call, declared where the module does not declare it yet
RUNTIME_FUNCTIONS = (("malloc", "ptr (i64)"), ("free", "void (ptr)"), (SUBMIT_SYMBOL, "void (ptr, ptr)"))


def _parallel_for(workers: int) -> str:
    return f"async-parallel-for{{async-dispatch=0 num-workers={workers} min-task-size=1}}"


# The upstream (coroutine) lowering of what async-parallel-for leaves, for a module whose async ops
# the rewrite below does not know: async tasks on libmlir_async_runtime's thread pool.
COROUTINE_LOWERING = ("async-to-async-runtime", "async-runtime-ref-counting", "async-runtime-ref-counting-opt",
                      "convert-async-to-llvm")


def split(module: ir.Module, workers: int) -> list[str]:
    """scf.forall (the thread split of the schedules) -> outlined blocks run by the worker pool,
    without coroutines; returns the outlined functions that need spawns (`define_spawns`, after the
    conversion to LLVM). Run after the C wrappers are requested (the outlined `parallel_compute_fn`s
    must not get any)."""
    if not walk(module, "scf.forall"):
        return []
    run_passes(module, ("func.func(scf-forall-to-parallel)", _parallel_for(workers)))
    if not supported(module):
        run_passes(module, COROUTINE_LOWERING)
        return []
    run_passes(module, ("canonicalize",))  # fold the block counts (the workers are a constant)
    spawned = async_to_runtime_calls(module)
    if propagate_constants(module, spawned):
        run_passes(module, ("canonicalize",))
    return spawned


def supported(module: ir.Module) -> bool:
    """Every async op is one this rewrite knows, and every `async.execute` body is one call."""
    known = {"async.create_group", "async.execute", "async.add_to_group", "async.await_all", "async.yield"}
    bad: list[str] = []

    def visit(op: ir.Operation) -> ir.WalkResult:
        if op.name.startswith("async.") and op.name not in known:
            bad.append(op.name)
        if op.name == "async.execute":
            body = list(op.regions[0].blocks[0].operations)
            uses = list(op.results[0].uses) if len(op.results) == 1 else []
            if (len(op.operands) or len(op.results) != 1 or len(body) != 2 or body[0].name != "func.call"
                    or body[1].name != "async.yield" or len(body[0].results) or len(uses) != 1
                    or uses[0].owner.name != "async.add_to_group" or len(list(uses[0].owner.results[0].uses))):
                bad.append("async.execute")
        return ir.WalkResult.ADVANCE

    module.operation.walk(visit)
    return not bad


def async_to_runtime_calls(module: ir.Module) -> list[str]:
    """Rewrite the async ops left by `async-parallel-for{async-dispatch=0}` into calls (see module doc).
    Returns the names of the outlined functions that get a spawn. Check `supported` first."""
    ctx = module.context
    with ctx, ir.Location.unknown(ctx):
        ptr = ir.Type.parse("!llvm.ptr")
        syms = symbols(module)
        declared: set[str] = set()

        def call(name: str, ins: list[ir.Value], outs: list[ir.Type]) -> ir.Operation:
            if name not in declared and name not in syms:
                declared.add(name)
                with ir.InsertionPoint.at_block_begin(module.body):
                    func_d.FuncOp(name, ir.FunctionType.get([v.type for v in ins], outs), visibility="private")
            return func_d.CallOp(outs, name, ins).operation

        for op in walk(module, "async.create_group"):
            with ir.InsertionPoint(op):
                g = call(GROUP_CREATE, [], [ptr]).result
            op.results[0].replace_all_uses_with(g)
            op.erase()
        spawned: list[str] = []
        for op in walk(module, "async.execute"):
            inner = op.regions[0].blocks[0].operations[0]
            callee = ir.FlatSymbolRefAttr(inner.attributes["callee"]).value
            if callee not in spawned:
                spawned.append(callee)
            add = next(iter(op.results[0].uses)).owner  # `supported`: the token's one use
            with ir.InsertionPoint(add):
                call(SPAWN_PREFIX + callee, [*inner.operands, add.operands[1]], [])
            add.erase()
            op.erase()
        for op in walk(module, "async.await_all"):
            with ir.InsertionPoint(op):
                call(GROUP_WAIT, [op.operands[0]], [])
            op.erase()
    return spawned


def propagate_constants(module: ir.Module, callees: list[str]) -> int:
    """Arguments that every call of an outlined function (direct or through its spawn) passes as the
    same `arith.constant` become that constant inside the function, so its loops get static bounds
    again (async-parallel-for passes block size and trip counts as arguments). Returns the count."""
    calls: dict[str, list[ir.Operation]] = {c: [] for c in callees}
    for op in walk(module, "func.call"):
        name = ir.FlatSymbolRefAttr(op.attributes["callee"]).value
        name = name[len(SPAWN_PREFIX):] if name.startswith(SPAWN_PREFIX) else name
        if name in calls:
            calls[name].append(op)
    syms = symbols(module)
    done = 0
    for callee, sites in calls.items():
        f = syms.get(callee)
        if f is None or not sites or len(f.regions[0].blocks) == 0:
            continue
        entry = f.regions[0].blocks[0]
        for i, arg in enumerate(entry.arguments):
            consts = []
            for c in sites:
                owner = c.operands[i].owner
                if not isinstance(owner, ir.Operation) or owner.name != "arith.constant":
                    break
                consts.append(owner)
            else:
                if len({str(c.attributes["value"]) for c in consts}) == 1 and len(list(arg.uses)):
                    with ir.InsertionPoint.at_block_begin(entry), ir.Location.unknown(module.context):
                        v = arith.ConstantOp(arg.type, consts[0].attributes["value"]).result
                    arg.replace_all_uses_with(v)
                    done += 1
    return done


def define_spawns(module: ir.Module, callees: list[str]) -> None:
    """After conversion to the LLVM dialect: bodies for the group functions, `@__lean_spawn_K` and
    `@__lean_task_K` (see the module doc), replacing the declarations the calls were made with."""
    if not callees:
        return
    syms = symbols(module)
    with module.context, ir.Location.unknown():
        # a spawn's signature is the one its declaration got from the conversion; the outlined
        # function's parameters are its entry block's arguments
        spawns = [(c, syms[SPAWN_PREFIX + c].attributes["function_type"],
                   [a.type for a in syms[c].regions[0].blocks[0].arguments]) for c in callees]
        for name in [GROUP_CREATE, GROUP_WAIT, *(SPAWN_PREFIX + c for c in callees)]:
            if name in syms:
                syms[name].erase()
        with ir.InsertionPoint(module.body.operations[0]):
            for name, text in RUNTIME_FUNCTIONS:
                if name not in syms:
                    declare(name, text)
            _group_create()
            _group_wait(pause_instruction())
            for callee, spawn_type, params in spawns:
                _spawn(callee, spawn_type, params)
                _task(callee, params)


def _group_create() -> None:
    """A malloc'ed counter of pending blocks, 0."""
    (entry,) = define(GROUP_CREATE, signature("ptr ()"), [])
    with ir.InsertionPoint(entry):
        size, zero = integer(64), integer(0)
        group = call("malloc", [size], llvm.PointerType.get())
        llvm.StoreOp(zero, group)
        llvm.ReturnOp(arg=group)


def _group_wait(pause: str) -> None:
    """Spin (with the CPU's pause hint) until the counter is 0, then free it."""
    entry, check, spin, done = define(GROUP_WAIT, signature("void (ptr)"), [llvm.PointerType.get()], blocks=4)
    group = entry.arguments[0]
    with ir.InsertionPoint(entry):
        zero = integer(0)
        llvm.BrOp([], check)
    with ir.InsertionPoint(check):
        pending = llvm.LoadOp(ir.IntegerType.get_signless(64), group, alignment=8,
                              ordering=llvm.AtomicOrdering.acquire).result
        llvm.CondBrOp(llvm.ICmpOp(llvm.ICmpPredicate.eq, pending, zero).result, [], [], done, spin)
    with ir.InsertionPoint(spin):
        llvm.InlineAsmOp(None, [], pause, "", has_side_effects=True)
        llvm.BrOp([], check)
    with ir.InsertionPoint(done):
        call("free", [group])
        llvm.ReturnOp()


def _spawn(callee: str, spawn_type: ir.TypeAttr, params: list[ir.Type]) -> None:
    """Copy the arguments and the group into a malloc'ed context, count the block in, submit the task."""
    ptr = llvm.PointerType.get()
    struct = llvm.StructType.get_literal([*params, ptr])
    (entry,) = define(SPAWN_PREFIX + callee, spawn_type, [*params, ptr])
    with ir.InsertionPoint(entry):
        null, one = llvm.ZeroOp(ptr).result, integer(1)
        end = llvm.GEPOp(ptr, null, [], [1], ir.TypeAttr.get(struct), None).result  # sizeof(struct)
        size = llvm.PtrToIntOp(ir.IntegerType.get_signless(64), end).result
        ctx = call("malloc", [size], ptr)
        for i, arg in enumerate(entry.arguments):
            llvm.StoreOp(arg, field(ctx, struct, i))
        llvm.AtomicRMWOp(llvm.AtomicBinOp.add, entry.arguments[-1], one, llvm.AtomicOrdering.acq_rel)
        call(SUBMIT_SYMBOL, [llvm.AddressOfOp(ptr, TASK_PREFIX + callee).result, ctx])
        llvm.ReturnOp()


def _task(callee: str, params: list[ir.Type]) -> None:
    """Load the arguments from the context, call the outlined block, free the context, count out."""
    ptr = llvm.PointerType.get()
    struct = llvm.StructType.get_literal([*params, ptr])
    (entry,) = define(TASK_PREFIX + callee, signature("void (ptr)"), [ptr])
    ctx = entry.arguments[0]
    with ir.InsertionPoint(entry):
        one = integer(1)
        *args, group = [llvm.LoadOp(t, field(ctx, struct, i)).result for i, t in enumerate([*params, ptr])]
        call(callee, args)
        call("free", [ctx])
        llvm.AtomicRMWOp(llvm.AtomicBinOp.sub, group, one, llvm.AtomicOrdering.release)
        llvm.ReturnOp()
