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
from mlir.dialects import arith
from mlir.dialects import func as func_d

from ...irutils.passes import run_passes
from ...irutils.walk import symbols, walk
from ...runtime.pool import SUBMIT_SYMBOL, pause_instruction

SPAWN_PREFIX = "__lean_spawn_"
TASK_PREFIX = "__lean_task_"
GROUP_CREATE = "__lean_group_create"
GROUP_WAIT = "__lean_group_wait"



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
    `@__lean_task_K` (see the module doc)."""
    if not callees:
        return
    syms = symbols(module)
    pause = pause_instruction()
    decls = {
        "malloc": "llvm.func @malloc(i64) -> !llvm.ptr",
        "free": "llvm.func @free(!llvm.ptr)",
        SUBMIT_SYMBOL: f"llvm.func @{SUBMIT_SYMBOL}(!llvm.ptr, !llvm.ptr)",
    }
    text = [f"llvm.func internal @{GROUP_CREATE}() -> !llvm.ptr {{",
            "  %size = llvm.mlir.constant(64 : i64) : i64",
            "  %zero = llvm.mlir.constant(0 : i64) : i64",
            "  %g = llvm.call @malloc(%size) : (i64) -> !llvm.ptr",
            "  llvm.store %zero, %g : i64, !llvm.ptr",
            "  llvm.return %g : !llvm.ptr", "}",
            f"llvm.func internal @{GROUP_WAIT}(%g: !llvm.ptr) {{",
            "  %zero = llvm.mlir.constant(0 : i64) : i64",
            "  llvm.br ^check",
            "^check:",
            "  %n = llvm.load %g atomic acquire {alignment = 8 : i64} : !llvm.ptr -> i64",
            '  %done = llvm.icmp "eq" %n, %zero : i64',
            "  llvm.cond_br %done, ^free, ^pause",
            "^pause:",
            f'  llvm.inline_asm has_side_effects "{pause}", "" : () -> ()',
            "  llvm.br ^check",
            "^free:",
            "  llvm.call @free(%g) : (!llvm.ptr) -> ()",
            "  llvm.return", "}"]
    for callee in callees:
        f = syms[callee]
        ftype = ir.TypeAttr(f.attributes["function_type"]).value
        # !llvm.func<void (i64, ptr, ...)>: the parameter types from the printed form
        s = str(ftype)
        params = s[s.index("(") + 1 : s.rindex(")")].strip()
        types = [_full_type(t.strip()) for t in _split_types(params)] if params else []
        struct = "!llvm.struct<(" + ", ".join(types + ["ptr"]) + ")>"
        n = len(types)
        args = ", ".join([f"%a{i}: {t}" for i, t in enumerate(types)] + ["%g: !llvm.ptr"])
        lines = [f"llvm.func internal @{SPAWN_PREFIX}{callee}({args}) {{",
                 "  %null = llvm.mlir.zero : !llvm.ptr",
                 "  %one = llvm.mlir.constant(1 : i64) : i64",
                 f"  %end = llvm.getelementptr %null[1] : (!llvm.ptr) -> !llvm.ptr, {struct}",
                 "  %size = llvm.ptrtoint %end : !llvm.ptr to i64",
                 "  %ctx = llvm.call @malloc(%size) : (i64) -> !llvm.ptr"]
        for i, t in enumerate([*types, "!llvm.ptr"]):
            v = f"%a{i}" if i < n else "%g"
            lines += [f"  %p{i} = llvm.getelementptr %ctx[0, {i}] : (!llvm.ptr) -> !llvm.ptr, {struct}",
                      f"  llvm.store {v}, %p{i} : {t}, !llvm.ptr"]
        lines += ["  %old = llvm.atomicrmw add %g, %one acq_rel : !llvm.ptr, i64",
                  f"  %fn = llvm.mlir.addressof @{TASK_PREFIX}{callee} : !llvm.ptr",
                  f"  llvm.call @{SUBMIT_SYMBOL}(%fn, %ctx) : (!llvm.ptr, !llvm.ptr) -> ()",
                  "  llvm.return", "}",
                  f"llvm.func internal @{TASK_PREFIX}{callee}(%ctx: !llvm.ptr) {{",
                  "  %one = llvm.mlir.constant(1 : i64) : i64"]
        for i, t in enumerate([*types, "!llvm.ptr"]):
            lines += [f"  %p{i} = llvm.getelementptr %ctx[0, {i}] : (!llvm.ptr) -> !llvm.ptr, {struct}",
                      f"  %v{i} = llvm.load %p{i} : !llvm.ptr -> {t}"]
        vals = ", ".join(f"%v{i}" for i in range(n))
        lines += [f"  llvm.call @{callee}({vals}) : ({', '.join(types)}) -> ()",
                  "  llvm.call @free(%ctx) : (!llvm.ptr) -> ()",
                  f"  %old = llvm.atomicrmw sub %v{n}, %one release : !llvm.ptr, i64",
                  "  llvm.return", "}"]
        text += lines
        decls[callee] = f"llvm.func @{callee}({', '.join(types)})"
    src = "module {\n" + "\n".join(list(decls.values()) + text) + "\n}"
    new = ir.Module.parse(src, context=module.context)
    # replace the declarations of the functions defined here, add the declarations the module lacks
    for name in [GROUP_CREATE, GROUP_WAIT, *(SPAWN_PREFIX + c for c in callees)]:
        old = syms.get(name)
        if old is not None:
            old.erase()
    anchor = module.body.operations[0]
    for op in list(new.body.operations):
        name = ir.StringAttr(op.operation.attributes["sym_name"]).value
        is_def = len(op.operation.regions[0].blocks) > 0
        if is_def or name not in syms:
            op.operation.move_before(anchor)


def _split_types(s: str) -> list[str]:
    """Split a comma-separated type list at depth 0 (types may nest: !llvm.struct<(ptr, i64)>)."""
    out, depth, cur = [], 0, ""
    for ch in s:
        if ch in "<([{":
            depth += 1
        elif ch in ">)]}":
            depth -= 1
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    out.append(cur)
    return out


def _full_type(t: str) -> str:
    """An LLVM-dialect type as printed inside `!llvm.func<...>` (`ptr`) in its standalone form."""
    return "!llvm." + t if t.split("<", 1)[0] in ("ptr", "struct", "array") else t
