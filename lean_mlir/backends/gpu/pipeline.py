"""`lower_to_gpu`: the pass sequence from linalg on tensors to the LLVM dialect with embedded kernels,
and reading the kernel objects (PTX text, cubin or fatbin) back out of the lowered module."""

from __future__ import annotations

from dataclasses import replace

from mlir import ir
from mlir.dialects import gpu

from ...irutils.bufferize import bufferize
from ...irutils.passes import run_passes
from ...irutils.types import signatures
from ...irutils.walk import funcs, walk
from .host import check_no_host_compute, host_rewrite
from .mapping import copies_to_linalg, parallel_first, tile_parallel_loops, wrap_sequential
from .target import GpuTarget

PTX_SEPARATOR = "// ----- gpu.module @"


def _extract_objects(module: ir.Module) -> list[tuple[str, bytes]]:
    """(gpu.binary symbol name, object bytes) for every embedded kernel object."""
    objs = []
    for b in walk(module, "gpu.binary"):
        name = ir.StringAttr(b.attributes["sym_name"]).value
        for a in ir.ArrayAttr(b.attributes["objects"]):
            objs.append((name, gpu.ObjectAttr(a).object))
    return objs


def split_ptx(ptx: str) -> dict[str, str]:
    """Split the "ptx" stage text into {gpu.module name: PTX text of that module}."""
    out = {}
    for chunk in ptx.split(PTX_SEPARATOR)[1:]:
        header, _, body = chunk.partition("\n")
        out[header.split()[0]] = body
    return out


def kernel_binaries(module: ir.Module) -> dict[str, bytes]:
    """{gpu.module name: embedded kernel object (PTX text, cubin or fatbin bytes)} of a lowered module."""
    return dict(_extract_objects(module))


def _nvvm_pipeline(target: GpuTarget, format: str) -> str:
    return (f"gpu-lower-to-nvvm-pipeline{{cubin-chip={target.chip} cubin-features={target.features} "
            f"cubin-format={format} opt-level=3}}")


def lower_to_gpu(module: ir.Module, target: GpuTarget | None = None, *, chip: str | None = None,
                 features: str | None = None, format: str | None = None) -> dict[str, str]:
    """Lower a linalg-on-tensors module in place to LLVM dialect with embedded GPU kernels.

    `target` defaults to GpuTarget() (GPU_DEFAULTS, default launch limits); `chip`, `features` and
    `format` replace those fields of it. Public functions `f(args) -> (r...)` become
    `f(args..., outs...)` on host memrefs; they copy data to the device and back themselves. Returns
    stage texts {"gpu", "ptx", "llvm"}. Raises ValueError for an unusable target before any pass runs.
    """
    given = {"chip": chip, "features": features, "format": format}
    target = replace(target or GpuTarget(), **{k: v for k, v in given.items() if v is not None})
    with module.context, ir.Location.unknown():
        sigs = signatures(module)
        bufferize(module, deallocate=False)  # device buffers are freed by `host_rewrite`
        copies_to_linalg(module)
        run_passes(module, ("func.func(linalg-generalize-named-ops)",))
        parallel_first(module)
        wrap_sequential(module)
        run_passes(module, ("func.func(convert-linalg-to-parallel-loops)",))  # no canonicalize: it drops 1-trip loops
        for f in funcs(module, defined=True):
            tile_parallel_loops(f, target)
        run_passes(module, ("func.func(gpu-map-parallel-loops)", "func.func(convert-parallel-loops-to-gpu)",
                            "lower-affine", "canonicalize", "cse"))
        for f in funcs(module, defined=True):
            check_no_host_compute(f)
            name = ir.StringAttr(f.attributes["sym_name"]).value
            host_rewrite(f, len(sigs[name][1]) if name in sigs else None)
            if name in sigs:
                f.attributes["llvm.emit_c_interface"] = ir.UnitAttr.get()
        # one stream per call: copies and launches stay in order, with one host synchronization at the end
        run_passes(module, ("gpu-kernel-outlining", "func.func(gpu-async-region)", "canonicalize", "cse"))
        stages = {"gpu": str(module)}
        isa = module if target.format == "isa" else ir.Module.parse(stages["gpu"])   # PTX: compile once more
        run_passes(isa, (_nvvm_pipeline(target, "isa"),))
        stages["ptx"] = "".join(f"{PTX_SEPARATOR}{n} -----\n{o.decode().rstrip(chr(0))}\n"
                                for n, o in _extract_objects(isa))
        if target.format != "isa":
            run_passes(module, (_nvvm_pipeline(target, target.format),))
        stages["llvm"] = str(module)
    return stages
