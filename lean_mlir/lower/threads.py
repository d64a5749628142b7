"""Thread split without coroutines: `async-parallel-for` outlines each parallel loop body into a
`parallel_compute_fn_K(block, ..., captures)` and launches blocks 1.. with `async.execute`. The
upstream lowering of `async.execute` (async-to-async-runtime) makes every launch an LLVM coroutine,
and coroutines are expensive to compile: on the big MLP (25 split loops) they doubled the LLVM time.

Here each `async.execute { func.call @parallel_compute_fn_K(args) }` becomes a plain call of
`@__lean_spawn_K(args) -> !llvm.ptr` (a token), and the group ops become calls of the async runtime's
C API (`mlirAsyncRuntimeCreateGroup`, `...AddTokenToGroup`, `...AwaitAllInGroup`, `...DropRef`).
After conversion to the LLVM dialect, `define_spawns` gives each `@__lean_spawn_K` a body: copy the
arguments into a malloc'ed context, create a token, and hand `@__lean_task_K(ctx)` to the runtime's
thread pool (`mlirAsyncRuntimeExecute(ctx, fn)`, which calls `fn(ctx)` on a worker); the task loads
the arguments, calls `@parallel_compute_fn_K`, frees the context and emplaces the token.

Token references: a token is created with 2 (one for the caller, one for the task); the task's
`EmplaceToken` drops one, the caller drops its own after adding the token to the group. A group is
created with 1 reference, dropped by the caller after `AwaitAllInGroup`.
"""

from __future__ import annotations

from mlir import ir
from mlir.dialects import arith
from mlir.dialects import func as func_d

SPAWN_PREFIX = "__lean_spawn_"
TASK_PREFIX = "__lean_task_"

PARALLEL_FOR = "async-parallel-for{{async-dispatch=0 num-workers={workers} min-task-size=1}}"


def _walk(root: ir.Operation, name: str) -> list[ir.Operation]:
    found: list[ir.Operation] = []

    def visit(op: ir.Operation) -> ir.WalkResult:
        if op.name == name:
            found.append(op)
        return ir.WalkResult.ADVANCE

    root.walk(visit)
    return found


def _symbols(module: ir.Module) -> dict[str, ir.Operation]:
    out = {}
    for op in module.body.operations:
        if "sym_name" in op.operation.attributes:
            out[ir.StringAttr(op.operation.attributes["sym_name"]).value] = op.operation
    return out


def supported(module: ir.Module) -> bool:
    """Every async op is one this rewrite knows, and every `async.execute` body is one call."""
    known = {"async.create_group", "async.execute", "async.add_to_group", "async.await_all", "async.yield"}
    bad: list[str] = []

    def visit(op: ir.Operation) -> ir.WalkResult:
        if op.name.startswith("async.") and op.name not in known:
            bad.append(op.name)
        if op.name == "async.execute":
            body = list(op.regions[0].blocks[0].operations)
            if (len(op.operands) or len(op.results) != 1 or len(body) != 2 or body[0].name != "func.call"
                    or body[1].name != "async.yield" or len(body[0].results)):
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
        i64 = ir.IntegerType.get_signless(64)
        syms = _symbols(module)
        declared: set[str] = set()

        def declare(name: str, ins: list[ir.Type], outs: list[ir.Type]) -> None:
            if name in declared or name in syms:
                return
            declared.add(name)
            with ir.InsertionPoint.at_block_begin(module.body):
                func_d.FuncOp(name, ir.FunctionType.get(ins, outs), visibility="private")

        def call(name: str, ins: list[ir.Value], outs: list[ir.Type]) -> ir.Operation:
            declare(name, [v.type for v in ins], outs)
            return func_d.CallOp(outs, name, ins).operation

        def one() -> ir.Value:
            return arith.ConstantOp(i64, 1).result

        spawned: list[str] = []
        for op in _walk(module.operation, "async.execute"):
            inner = op.regions[0].blocks[0].operations[0]
            callee = ir.FlatSymbolRefAttr(inner.attributes["callee"]).value
            if callee not in spawned:
                spawned.append(callee)
            with ir.InsertionPoint(op):
                tok = call(SPAWN_PREFIX + callee, list(inner.operands), [ptr]).result
            op.results[0].replace_all_uses_with(tok)
            op.erase()
        for op in _walk(module.operation, "async.create_group"):
            with ir.InsertionPoint(op):
                n = arith.IndexCastOp(i64, op.operands[0]).result
                g = call("mlirAsyncRuntimeCreateGroup", [n], [ptr]).result
            op.results[0].replace_all_uses_with(g)
            op.erase()
        for op in _walk(module.operation, "async.add_to_group"):
            tok, g = op.operands[0], op.operands[1]
            with ir.InsertionPoint(op):
                rank = call("mlirAsyncRuntimeAddTokenToGroup", [tok, g], [i64]).result
                call("mlirAsyncRuntimeDropRef", [tok, one()], [])
                if len(op.results) and len(list(op.results[0].uses)):
                    op.results[0].replace_all_uses_with(arith.IndexCastOp(ir.IndexType.get(), rank).result)
            op.erase()
        for op in _walk(module.operation, "async.await_all"):
            g = op.operands[0]
            with ir.InsertionPoint(op):
                call("mlirAsyncRuntimeAwaitAllInGroup", [g], [])
                call("mlirAsyncRuntimeDropRef", [g, one()], [])
            op.erase()
    return spawned


def propagate_constants(module: ir.Module, callees: list[str]) -> int:
    """Arguments that every call of an outlined function (direct or through its spawn) passes as the
    same `arith.constant` become that constant inside the function, so its loops get static bounds
    again (async-parallel-for passes block size and trip counts as arguments). Returns the count."""
    calls: dict[str, list[ir.Operation]] = {c: [] for c in callees}
    for op in _walk(module.operation, "func.call"):
        name = ir.FlatSymbolRefAttr(op.attributes["callee"]).value
        name = name[len(SPAWN_PREFIX):] if name.startswith(SPAWN_PREFIX) else name
        if name in calls:
            calls[name].append(op)
    syms = _symbols(module)
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
    """After conversion to the LLVM dialect: bodies for `@__lean_spawn_K` and `@__lean_task_K`."""
    if not callees:
        return
    syms = _symbols(module)
    text: list[str] = []
    needed_decls = {
        "malloc": "llvm.func @malloc(i64) -> !llvm.ptr",
        "free": "llvm.func @free(!llvm.ptr)",
        "mlirAsyncRuntimeCreateToken": "llvm.func @mlirAsyncRuntimeCreateToken() -> !llvm.ptr",
        "mlirAsyncRuntimeEmplaceToken": "llvm.func @mlirAsyncRuntimeEmplaceToken(!llvm.ptr)",
        "mlirAsyncRuntimeExecute": "llvm.func @mlirAsyncRuntimeExecute(!llvm.ptr, !llvm.ptr)",
    }
    for callee in callees:
        f = syms[callee]
        ftype = ir.TypeAttr(f.attributes["function_type"]).value
        # !llvm.func<void (i64, ptr, ...)>: the parameter types from the printed form
        s = str(ftype)
        params = s[s.index("(") + 1 : s.rindex(")")].strip()
        types = [_full_type(t.strip()) for t in _split_types(params)] if params else []
        struct = "!llvm.struct<(" + ", ".join(types + ["ptr"]) + ")>"
        n = len(types)
        args = ", ".join(f"%a{i}: {t}" for i, t in enumerate(types))
        lines = [f"llvm.func internal @{SPAWN_PREFIX}{callee}({args}) -> !llvm.ptr {{",
                 "  %null = llvm.mlir.zero : !llvm.ptr",
                 f"  %end = llvm.getelementptr %null[1] : (!llvm.ptr) -> !llvm.ptr, {struct}",
                 "  %size = llvm.ptrtoint %end : !llvm.ptr to i64",
                 "  %ctx = llvm.call @malloc(%size) : (i64) -> !llvm.ptr"]
        for i, t in enumerate(types):
            lines += [f"  %p{i} = llvm.getelementptr %ctx[0, {i}] : (!llvm.ptr) -> !llvm.ptr, {struct}",
                      f"  llvm.store %a{i}, %p{i} : {t}, !llvm.ptr"]
        lines += ["  %tok = llvm.call @mlirAsyncRuntimeCreateToken() : () -> !llvm.ptr",
                  f"  %pt = llvm.getelementptr %ctx[0, {n}] : (!llvm.ptr) -> !llvm.ptr, {struct}",
                  "  llvm.store %tok, %pt : !llvm.ptr, !llvm.ptr",
                  f"  %fn = llvm.mlir.addressof @{TASK_PREFIX}{callee} : !llvm.ptr",
                  "  llvm.call @mlirAsyncRuntimeExecute(%ctx, %fn) : (!llvm.ptr, !llvm.ptr) -> ()",
                  "  llvm.return %tok : !llvm.ptr", "}",
                  f"llvm.func internal @{TASK_PREFIX}{callee}(%ctx: !llvm.ptr) {{"]
        for i, t in enumerate(types):
            lines += [f"  %p{i} = llvm.getelementptr %ctx[0, {i}] : (!llvm.ptr) -> !llvm.ptr, {struct}",
                      f"  %v{i} = llvm.load %p{i} : !llvm.ptr -> {t}"]
        vals = ", ".join(f"%v{i}" for i in range(n))
        lines += [f"  llvm.call @{callee}({vals}) : ({', '.join(types)}) -> ()",
                  f"  %pt = llvm.getelementptr %ctx[0, {n}] : (!llvm.ptr) -> !llvm.ptr, {struct}",
                  "  %tok = llvm.load %pt : !llvm.ptr -> !llvm.ptr",
                  "  llvm.call @free(%ctx) : (!llvm.ptr) -> ()",
                  "  llvm.call @mlirAsyncRuntimeEmplaceToken(%tok) : (!llvm.ptr) -> ()",
                  "  llvm.return", "}"]
        text += lines
        needed_decls[callee] = f"llvm.func @{callee}({', '.join(types)})"
    src = "module {\n" + "\n".join(list(needed_decls.values()) + text) + "\n}"
    new = ir.Module.parse(src, context=module.context)
    # replace the spawn declarations, add the runtime declarations the module lacks
    for callee in callees:
        old = syms.get(SPAWN_PREFIX + callee)
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
