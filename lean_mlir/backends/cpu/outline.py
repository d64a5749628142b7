"""Outline contractions into one private kernel function per distinct kind (CPU back end).

A forward + JVP + VJP module holds many `linalg.matmul`s of few kinds (big MLP: 19 matmuls, 5 kinds).
Each scheduled matmul becomes a fully unrolled register-tile loop nest that LLVM compiles once per
copy; outlined, it is scheduled and compiled once per kind and called from every use:

    %z = linalg.fill ins(%zero) outs(%e)                        func.func private @__lean_matmul_256x1024x1024_f32(
    %c = linalg.matmul ins(%a, %b) outs(%z)       ==>               %a: tensor<256x1024xf32>, %b: tensor<1024x1024xf32>)
                                                                    -> tensor<256x1024xf32> (no_inline in LLVM)
    %c = func.call @__lean_matmul_256x1024x1024_f32(%a, %b)        (fill + matmul inside)

The kind is (op, operand types, indexing maps, init, packs): a zero-filled init moves into the kernel,
another init becomes a third argument; the pack of an input (a `linalg.transpose` only the matmul
reads, made by `contractions.py`) moves in too, for the schedule to fuse it into the kernel's tile
loops. One-shot bufferization across function boundaries turns the result into an out-param the
caller allocates (no copy); `no_inline` keeps LLVM from inlining the kernel back into each caller.
"""

from __future__ import annotations

from collections.abc import Callable

from mlir import ir
from mlir.dialects import func as func_d
from mlir.dialects import tensor

from ...irutils.linalg import defining_op, zero_fill
from ...irutils.walk import walk

KERNEL_PREFIX = "__lean_"
# on a kernel that is to be a library call and its matmul: the call's transposes, e.g. "NT"
LIBRARY_CALL = "lean.library_call"
Library = Callable[[ir.Operation, tuple[bool, bool]], str | None]
OUTLINED_OPS = ("linalg.matmul", "linalg.batch_matmul")


def _kind_name(op: ir.Operation, types: list[ir.RankedTensorType], zero: bool, n: int) -> str:
    a, b = types[0].shape, types[1].shape
    base = op.name.split(".", 1)[1]
    dims = "x".join(str(d) for d in [*a[:-1], a[-1], b[-1]])
    return f"{KERNEL_PREFIX}{base}_{dims}_{types[-1].element_type}" + ("" if zero else "_acc") + (f"_{n}" if n else "")


def _pack(v: ir.Value) -> ir.Operation | None:
    """The `linalg.transpose` that packs a contraction's input, if only the contraction reads it."""
    op = defining_op(v)
    return op if op is not None and op.name == "linalg.transpose" and len(list(v.uses)) == 1 else None


def outline_contractions(module: ir.Module, library: Library | None = None) -> int:
    """Replace each statically shaped matmul / batch_matmul by a call of its kind's kernel (its
    inputs' packs move in with it). `library(op, packed)`: the transposes of a library call that is
    to be the kernel (`blas.py`), else None. Returns the number of kernels created."""
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
            fill = zero_fill(op.operands[2])
            packs = [_pack(v) for v in op.operands[:2]]
            args = [v if p is None else p.operands[0] for v, p in zip(op.operands[:2], packs, strict=True)]
            args += [] if fill is not None else [op.operands[2]]
            attrs = {a: str(op.attributes[a]) for a in op.attributes}
            perms = tuple(None if p is None else str(p.attributes["permutation"]) for p in packs)
            call = library(op, (packs[0] is not None, packs[1] is not None)) if library is not None else None
            key = (op.name, tuple(str(v.type) for v in args), tuple(sorted(attrs.items())), fill is not None, perms,
                   call)
            name = kernels.get(str(key))
            if name is None:
                n = 0
                name = _kind_name(op, types, fill is not None, n)
                while name in names:
                    n += 1
                    name = _kind_name(op, types, fill is not None, n)
                names.add(name)
                kernels[str(key)] = name
                _make_kernel(module, op, name, [ir.RankedTensorType(v.type) for v in args], types[2], fill, packs, call)
            with ir.InsertionPoint(op):
                call = func_d.CallOp([types[2]], name, args)
            op.results[0].replace_all_uses_with(call.result)
            op.erase()
            for p in [fill, *packs]:
                if p is not None and not list(p.results[0].uses):
                    p.erase()
    return len(kernels)


def _make_kernel(module: ir.Module, op: ir.Operation, name: str, ins: list[ir.RankedTensorType],
                 result: ir.RankedTensorType, fill: ir.Operation | None, packs: list[ir.Operation | None],
                 call: str | None) -> None:
    with ir.InsertionPoint(module.body):
        f = func_d.FuncOp(name, ir.FunctionType.get(ins, [result]), visibility="private")
    entry = f.add_entry_block()
    with ir.InsertionPoint(entry):
        if fill is not None:
            empty = tensor.EmptyOp(list(result.shape), result.element_type).result
            cst = fill.operands[0].owner.clone()
            new_fill = fill.clone()
            new_fill.operands[0] = cst.results[0]
            new_fill.operands[1] = empty
            init = new_fill.results[0]
        else:
            init = entry.arguments[2]
        operands = []
        for i, p in enumerate(packs):
            v = entry.arguments[i]
            if p is not None:
                t = ir.RankedTensorType(p.results[0].type)
                empty = tensor.EmptyOp(list(t.shape), t.element_type).result
                pack = p.clone()
                pack.operands[0], pack.operands[1] = v, empty
                v = pack.results[0]
            operands.append(v)
        mm = op.clone()
        mm.operands[0], mm.operands[1] = operands
        mm.operands[2] = init
        if call is not None:  # made a library call after bufferization (`blas.py`); not scheduled till then
            f.attributes[LIBRARY_CALL] = mm.attributes[LIBRARY_CALL] = ir.StringAttr.get(call)
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
