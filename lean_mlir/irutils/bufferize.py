"""The bufferization steps both back ends need: linalg on tensors -> memrefs, where every public
`f(args) -> (r...)` becomes `f(args..., outs...) -> ()` writing caller-owned out-params."""

from __future__ import annotations

from mlir import ir
from mlir.dialects import memref

from .passes import run_passes
from .walk import Module, funcs

ONE_SHOT: tuple[str, ...] = (
    "one-shot-bufferize{bufferize-function-boundaries=1 function-boundary-type-conversion=identity-layout-map}",
    "canonicalize", "cse", "canonicalize",
)
OUT_PARAMS: tuple[str, ...] = (
    "buffer-results-to-out-params{modify-public-functions=1 hoist-static-allocs=1}", "canonicalize",
)
# The CPU frees temporaries with upstream's deallocation; the GPU back end frees its device buffers itself.
DEALLOCATION: tuple[str, ...] = ("buffer-deallocation-pipeline",)


def protect_inputs(module: Module) -> None:
    """Mark every function argument `bufferization.writable = false`.

    One-shot bufferization otherwise treats arguments as writable and may compute in place in the
    caller's input buffer (e.g. `linalg.add ... outs(%arg0)`); with the mark it copies first.
    """
    for f in funcs(module, defined=True):
        ctx = f.context
        false = ir.BoolAttr.get(False, context=ctx)
        attrs = f.attributes
        n = len(f.regions[0].blocks[0].arguments)
        old = list(ir.ArrayAttr(attrs["arg_attrs"])) if "arg_attrs" in attrs else [None] * n
        new = []
        for d in old:
            entries = {} if d is None else {a.name: a.attr for a in ir.DictAttr(d)}
            entries["bufferization.writable"] = false
            new.append(ir.DictAttr.get(entries, context=ctx))
        attrs["arg_attrs"] = ir.ArrayAttr.get(new, context=ctx)


def distinct_results(module: Module) -> None:
    """After one-shot bufferization: where a function returns the same buffer twice (`return %a,
    %a`), return a fresh copy for the second use.

    buffer-results-to-out-params{hoist-static-allocs=1} replaces a returned alloc by its out-param
    and erases it; a second use of the same alloc in the return then reads the erased op and crashes
    (e.g. the VJP of exp(a + b), whose two cotangents CSE to one buffer, or two zero-size results).
    """
    for f in funcs(module, defined=True):
        block = f.regions[0].blocks[0]
        ret = block.operations[len(block.operations) - 1]
        seen: set[ir.Value] = set()
        for k, v in enumerate(list(ret.operands)):
            if v in seen and isinstance(v.type, ir.MemRefType):
                with ir.InsertionPoint(ret), ret.location:
                    copy = memref.AllocOp(v.type, [], [], alignment=64).result
                    memref.CopyOp(v, copy)
                ret.operands[k] = copy
            seen.add(v)


def bufferize(module: Module, *, protect: bool = True, deallocate: bool = True) -> None:
    """Tensors -> memrefs with out-params for every public function (in place)."""
    if protect:
        protect_inputs(module)
    run_passes(module, ONE_SHOT)
    distinct_results(module)
    run_passes(module, OUT_PARAMS + (DEALLOCATION if deallocate else ()))
