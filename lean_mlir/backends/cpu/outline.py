"""Outline contractions into one private kernel function per distinct kind (CPU back end).

A forward + JVP + VJP module holds many `linalg.matmul`s of few kinds (big MLP: 19 matmuls, 5 kinds).
Each scheduled matmul becomes a fully unrolled register-tile loop nest that LLVM compiles once per
copy; outlined, it is scheduled and compiled once per kind and called from every use:

    %z = linalg.fill ins(%zero) outs(%e)                        func.func private @__lean_matmul_256x1024x1024_f32(
    %c = linalg.matmul ins(%a, %b) outs(%z)       ==>               %a: tensor<256x1024xf32>, %b: tensor<1024x1024xf32>)
                                                                    -> tensor<256x1024xf32> (no_inline in LLVM)
    %c = func.call @__lean_matmul_256x1024x1024_f32(%a, %b)        (fill + matmul inside)

The kind is (op, operand types, indexing maps, init): a zero-filled init moves into the kernel,
another init becomes a third argument. One-shot bufferization across function boundaries turns the
result into an out-param the caller allocates (no copy); `no_inline` keeps LLVM from inlining the
kernel back into each caller.
"""

from __future__ import annotations

from mlir import ir
from mlir.dialects import func as func_d
from mlir.dialects import tensor

from ...irutils.linalg import dims_map, indexing_maps, matmul_maps
from ...irutils.walk import walk

KERNEL_PREFIX = "__lean_"
OUTLINED_OPS = ("linalg.matmul", "linalg.batch_matmul")


def _op(owner: object) -> ir.Operation | None:
    """The defining operation of a value's owner (None for a block argument)."""
    if isinstance(owner, ir.OpView):
        return owner.operation
    return owner if isinstance(owner, ir.Operation) else None


def _zero_fill(v: ir.Value) -> ir.Operation | None:
    """The `linalg.fill` of a constant 0 that produces `v`, if so."""
    owner = _op(v.owner)
    if owner is None or owner.name != "linalg.fill":
        return None
    c = _op(owner.operands[0].owner)
    if c is None or c.name != "arith.constant":
        return None
    try:
        if ir.FloatAttr(c.attributes["value"]).value != 0.0:
            return None
    except (ValueError, TypeError):
        return None
    return owner


def _kind_name(op: ir.Operation, types: list[ir.RankedTensorType], zero: bool, n: int) -> str:
    a, b = types[0].shape, types[1].shape
    base = op.name.split(".", 1)[1]
    dims = "x".join(str(d) for d in [*a[:-1], a[-1], b[-1]])
    return f"{KERNEL_PREFIX}{base}_{dims}_{types[-1].element_type}" + ("" if zero else "_acc") + (f"_{n}" if n else "")


def _transpose_input(v: ir.Value) -> ir.Value | None:
    """If `v` is produced by a 2-D transpose (a linalg.generic copying its input through the map
    (d0, d1) -> (d1, d0)), the transposed value."""
    op = _op(v.owner)
    if op is None or op.name != "linalg.generic" or len(op.operands) != 2 or len(op.results) != 1:
        return None
    if indexing_maps(op) != [dims_map(2, [1, 0]), dims_map(2, [0, 1])]:
        return None
    body = op.regions[0].blocks[0]
    ops = list(body.operations)
    if len(ops) != 1 or ops[0].name != "linalg.yield" or ops[0].operands[0] != body.arguments[0]:
        return None
    return op.operands[0]


def fold_transposes(module: ir.Module) -> int:
    """`linalg.matmul(transpose(x), b)` (2-D, default maps) -> `linalg.matmul` with A's map
    (d0, d1, d2) -> (d2, d0) reading x directly (the schedule's register tile reads rows of x).
    The transpose disappears when nothing else uses it. Returns the number of folds."""
    ctx = module.context
    done = 0
    with ctx, ir.Location.unknown(ctx):
        for op in walk(module, "linalg.matmul"):
            if indexing_maps(op) != matmul_maps():
                continue
            x = _transpose_input(op.operands[0])
            if x is None:
                continue
            producer = _op(op.operands[0].owner)
            op.operands[0] = x
            op.attributes["indexing_maps"] = ir.ArrayAttr.get(
                [ir.AffineMapAttr.get(m) for m in matmul_maps(transposed_a=True)])
            if not list(producer.results[0].uses):
                producer.erase()
            done += 1
    return done


def outline_contractions(module: ir.Module) -> int:
    """Replace each statically shaped matmul / batch_matmul by a call of its kind's kernel.
    Returns the number of kernels created."""
    ctx = module.context
    kernels: dict[str, str] = {}  # kind key -> function name
    names: set[str] = set()
    with ctx, ir.Location.unknown(ctx):
        for op in walk(module, OUTLINED_OPS):
            if len(op.results) != 1 or len(op.operands) != 3:
                continue
            types = [v.type for v in op.operands]
            if not all(isinstance(t, ir.RankedTensorType) and t.has_static_shape for t in types):
                continue
            types = [ir.RankedTensorType(t) for t in types]
            fill = _zero_fill(op.operands[2])
            attrs = {a: str(op.attributes[a]) for a in op.attributes}
            key = (op.name, tuple(str(t) for t in types), tuple(sorted(attrs.items())), fill is not None)
            name = kernels.get(str(key))
            if name is None:
                n = 0
                name = _kind_name(op, types, fill is not None, n)
                while name in names:
                    n += 1
                    name = _kind_name(op, types, fill is not None, n)
                names.add(name)
                kernels[str(key)] = name
                _make_kernel(module, op, name, types, fill)
            args = list(op.operands[:2]) if fill is not None else list(op.operands)
            with ir.InsertionPoint(op):
                call = func_d.CallOp([types[2]], name, args)
            op.results[0].replace_all_uses_with(call.result)
            op.erase()
            if fill is not None and not list(fill.results[0].uses):
                fill.erase()
    return len(kernels)


def _make_kernel(module: ir.Module, op: ir.Operation, name: str, types: list[ir.RankedTensorType],
                 fill: ir.Operation | None) -> None:
    ins = types[:2] if fill is not None else types
    with ir.InsertionPoint(module.body):
        f = func_d.FuncOp(name, ir.FunctionType.get(ins, [types[2]]), visibility="private")
    entry = f.add_entry_block()
    with ir.InsertionPoint(entry):
        if fill is not None:
            empty = tensor.EmptyOp(list(types[2].shape), types[2].element_type).result
            cst = fill.operands[0].owner.clone()
            new_fill = fill.clone()
            new_fill.operands[0] = cst.results[0]
            new_fill.operands[1] = empty
            init = new_fill.results[0]
        else:
            init = entry.arguments[2]
        mm = op.clone()
        mm.operands[0] = entry.arguments[0]
        mm.operands[1] = entry.arguments[1]
        mm.operands[2] = init
        func_d.ReturnOp([mm.results[0]])


# Functions LLVM must not inline: the matmul kernels (shared by their calls) and the blocks of the
# thread split (`parallel_compute_fn*`, called for block 0 by the caller and through a task for the
# others: inlined into the caller, the loop body was compiled twice).
NOINLINE_PREFIXES = (KERNEL_PREFIX + "matmul", KERNEL_PREFIX + "batch_matmul", "parallel_compute_fn")


def mark_noinline(module: ir.Module) -> None:
    """After conversion to the LLVM dialect: `no_inline` on the functions above (convert-func-to-llvm
    drops discardable attributes of func.func)."""
    for op in module.body.operations:
        attrs = op.operation.attributes
        if op.operation.name == "llvm.func" and len(op.operation.regions[0].blocks):
            if ir.StringAttr(attrs["sym_name"]).value.startswith(NOINLINE_PREFIXES):
                attrs["no_inline"] = ir.UnitAttr.get(module.context)
