"""The host side of a lowered function: device buffers for everything the kernels touch, the copies
in and out, and the safety net that no loop or memory access is left to run on the host.

Explicit copies, not gpu.host_register: registered host memory is read over PCIe by every kernel
access (a matmul rereads each input many times), and cuMemHostRegister of fresh NumPy buffers costs
more per call than copying them.
"""

from __future__ import annotations

from mlir import ir
from mlir.dialects import gpu

from ...irutils.walk import walk


def host_rewrite(func: ir.Operation, n_outputs: int | None) -> None:
    """Device memory for everything the kernels touch.

    memref.alloc -> gpu.alloc, memref.get_global -> device copy, and for public functions (n_outputs given)
    every memref argument is mirrored by a device buffer: inputs copied in at entry, outputs copied back
    before the return. All device buffers are freed before the return.
    """
    block = func.regions[0].blocks[0]
    ret = list(block.operations)[-1].operation
    first = list(block.operations)[0].operation
    device: list[ir.Value] = []
    for op in walk(func, "memref.alloc"):
        if op.operands:
            raise NotImplementedError("dynamic memref.alloc is not supported on the GPU path")
        with ir.InsertionPoint(op), op.location:
            d = gpu.AllocOp(op.result.type, None, [], [], []).result
        op.result.replace_all_uses_with(d)
        op.erase()
        device.append(d)
    explicit_frees = set()
    for op in walk(func, "memref.dealloc"):
        with ir.InsertionPoint(op), op.location:
            gpu.DeallocOp(None, [], op.operands[0])
        explicit_frees.add(op.operands[0])
        op.erase()
    for op in walk(func, "memref.get_global"):
        with ir.InsertionPoint.after(op), op.location:
            d = gpu.AllocOp(op.result.type, None, [], [], []).result
            cp = gpu.MemcpyOp(None, [], d, op.result)
        op.result.replace_all_uses_except(d, [cp.operation])
        device.append(d)
    copy_back: list[tuple[ir.Value, ir.Value]] = []
    if n_outputs is not None:
        args = list(block.arguments)
        n_in = len(args) - n_outputs
        for i, a in enumerate(args):
            if not isinstance(a.type, ir.MemRefType):
                continue
            with ir.InsertionPoint(first), func.location:
                d = gpu.AllocOp(a.type, None, [], [], []).result
            a.replace_all_uses_with(d)
            if i < n_in:
                with ir.InsertionPoint(first), func.location:
                    gpu.MemcpyOp(None, [], d, a)
            else:
                copy_back.append((a, d))
            device.append(d)
    with ir.InsertionPoint(ret), ret.location:
        for host, d in copy_back:
            gpu.MemcpyOp(None, [], host, d)
        for d in device:
            if d not in explicit_frees:
                gpu.DeallocOp(None, [], d)


_HOST_MEMORY_OPS = {"memref.load", "memref.store", "memref.copy", "scf.for", "scf.while", "scf.parallel",
                    "linalg.generic", "affine.for", "affine.load", "affine.store"}


def check_no_host_compute(func: ir.Operation) -> None:
    """Safety net: after mapping, no loop or memory access may remain outside gpu.launch on the host."""
    def visit(op: ir.Operation) -> None:
        for region in op.regions:
            for block in region.blocks:
                for child in block.operations:
                    child = child.operation
                    if child.name == "gpu.launch":
                        continue
                    if child.name in _HOST_MEMORY_OPS or child.name.startswith("linalg."):
                        raise NotImplementedError(
                            f"GPU lowering left host code that touches device memory: {child.name} "
                            f"in {ir.StringAttr(func.attributes['sym_name']).value}")
                    visit(child)
    visit(func)
