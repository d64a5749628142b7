"""GPU back end: linalg on tensors -> gpu.launch kernels -> NVVM -> PTX/cubin, and a CUDA executable.

Independent of the `lean` dialect. Input: a module of public func.func functions over statically shaped
ranked tensors (f32/f64, rank 0..5) with linalg/tensor/arith/math bodies.

Pipeline (`lower_to_gpu`):
  1. one-shot-bufferize + buffer-results-to-out-params: `f(args) -> (r...)` becomes `f(args..., outs...)`.
  2. Python: memref.copy -> linalg.copy (copies become kernels, never host loops).
  3. linalg-generalize-named-ops; Python: reorder each generic's loops parallel-first, and wrap ops without
     parallel loops (full reductions, rank-0 results) in a one-iteration scf.parallel, so that no loop nest
     ever runs on the host and reduction loops stay sequential inside one thread.
  4. convert-linalg-to-parallel-loops; Python tiling of each scf.parallel into grid x block loops (the
     innermost, contiguous dimension goes to thread x for coalescing), gpu-map-parallel-loops,
     convert-parallel-loops-to-gpu.
  5. Python host rewrite: every public function copies its memref inputs to fresh device buffers
     (gpu.alloc + gpu.memcpy), runs the kernels on device buffers, copies the out-params back and frees
     everything; memref.alloc -> gpu.alloc (+ gpu.dealloc before return); memref.get_global constants
     are copied to device buffers.
  6. gpu-kernel-outlining, gpu-async-region (all copies/launches of one call go on one stream, in order,
     with one host synchronization at the end), then gpu-lower-to-nvvm-pipeline.

Why explicit copies and not gpu.host_register: registered host memory is read over PCIe by every kernel
access (a matmul rereads each input many times), and cuMemHostRegister of fresh NumPy buffers costs more per
call than copying them. One stream per call keeps the copies and kernels ordered without extra syncs.
"""

from __future__ import annotations

import ctypes
import re
from collections.abc import Callable, Mapping, Sequence
from functools import cache

import numpy as np
from mlir import ir
from mlir.dialects import arith, gpu, linalg, scf

from ...irutils.bufferize import bufferize
from ...irutils.linalg import indexing_maps, iterator_types
from ...irutils.passes import run_passes
from ...irutils.paths import runtime_lib
from ...irutils.types import Signature, signatures
from ...irutils.walk import funcs, walk
from ...options import Options
from ...runtime.packed import Entry
from ...runtime.validate import coerce_inputs

GPU_DEFAULTS: dict[str, str] = {"chip": "sm_80", "features": "+ptx80", "format": "bin"}

FORMATS = ("isa", "bin", "fatbin")

# Minimum PTX ISA version (x10) that the LLVM NVPTX backend accepts for each chip; LLVM *aborts the
# process* (no exception) when the version is too low, so these are checked in Python first.
# CUDA 13 ptxas supports sm_75 and newer only.
_MIN_PTX: dict[str, int] = {
    "sm_75": 63, "sm_80": 70, "sm_86": 71, "sm_87": 74, "sm_88": 90, "sm_89": 78, "sm_90": 78, "sm_90a": 80,
    "sm_100": 86, "sm_100a": 86, "sm_100f": 88, "sm_101": 86, "sm_101a": 86, "sm_101f": 88,
    "sm_103": 88, "sm_103a": 88, "sm_103f": 88, "sm_110": 90, "sm_110a": 90, "sm_110f": 90,
    "sm_120": 87, "sm_120a": 87, "sm_120f": 88, "sm_121": 88, "sm_121a": 88, "sm_121f": 88,
}
# PTX versions that the bundled LLVM knows (llc -mattr=help).
_KNOWN_PTX = {70, 71, 72, 73, 74, 75, 76, 77, 78, 80, 81, 82, 83, 84, 85, 86, 87, 88, 90}

_THREADS_PER_BLOCK = 256
_MAX_GRID_YZ = 65535


class DeviceUnavailableError(RuntimeError):
    """No usable CUDA driver or device (libcuda.so.1 missing, cuInit failed, or zero devices)."""


# ---------------------------------------------------------------------------------------------------------
# Target validation


def validate_target(chip: str, features: str, format: str = "bin") -> None:
    """Raise ValueError for a chip/features/format that would make LLVM or ptxas fail (or abort)."""
    if chip not in _MIN_PTX:
        raise ValueError(f"unsupported GPU chip {chip!r}: expected one of {sorted(_MIN_PTX)} "
                         "(CUDA 13 ptxas supports sm_75 and newer)")
    if format not in FORMATS:
        raise ValueError(f"unknown binary format {format!r}: expected one of {FORMATS}")
    ptx = []
    for tok in features.split(","):
        tok = tok.strip()
        m = re.fullmatch(r"\+ptx(\d+)", tok)
        if not m:
            raise ValueError(f"unsupported feature {tok!r} in {features!r}: expected '+ptxNN', e.g. +ptx80")
        ptx.append(int(m.group(1)))
    if len(ptx) != 1:
        raise ValueError(f"features {features!r} must name exactly one PTX version, e.g. '+ptx80'")
    need = max(70, _MIN_PTX[chip])
    if ptx[0] not in _KNOWN_PTX or ptx[0] < need:
        raise ValueError(f"PTX version {ptx[0] / 10:.1f} (features {features!r}) cannot target {chip}: "
                         f"need +ptx{need} or newer, one of {sorted(_KNOWN_PTX)}")


def default_features(chip: str) -> str:
    """The lowest PTX version that works for `chip` (at least +ptx80 on sm_8x/sm_90)."""
    if chip not in _MIN_PTX:
        raise ValueError(f"unsupported GPU chip {chip!r}")
    return f"+ptx{max(80, _MIN_PTX[chip])}"


# ---------------------------------------------------------------------------------------------------------
# Small IR helpers


def _index_const(v: int) -> ir.Value:
    return arith.constant(ir.IndexType.get(), v)


def _const_int(v: ir.Value) -> int | None:
    op = v.owner
    if isinstance(op, ir.OpView) and op.operation.name == "arith.constant":
        return ir.IntegerAttr(op.operation.attributes["value"]).value
    return None


# ---------------------------------------------------------------------------------------------------------
# Rewrites between the upstream passes


def _copies_to_linalg(module: ir.Module) -> None:
    """memref.copy -> linalg.copy, so that copies become GPU kernels instead of host memcpy calls."""
    for op in walk(module, "memref.copy"):
        src, dst = op.operands
        with ir.InsertionPoint(op), op.location:
            linalg.copy(src, outs=[dst])
        op.erase()


def _parallel_first(module: ir.Module) -> None:
    """Reorder every linalg.generic's loops so that parallel dims come first (in their old order).

    convert-linalg-to-parallel-loops nests loops in iterator order; a leading reduction loop would become
    a host loop around a kernel launch. Parallel-first puts one scf.parallel outside sequential scf.for.
    """
    for op in walk(module, "linalg.generic"):
        its = iterator_types(op)
        par = [i for i, t in enumerate(its) if t == "parallel"]
        order = par + [i for i in range(len(its)) if i not in par]   # new dim j = old dim order[j]
        if order == list(range(len(its))):
            continue
        new_pos = {old: new for new, old in enumerate(order)}
        subst = ir.AffineMap.get(len(its), 0, [ir.AffineExpr.get_dim(new_pos[i]) for i in range(len(its))])
        maps = []
        for amap in indexing_maps(op):
            maps.append(ir.AffineMapAttr.get(
                ir.AffineMap.get(len(its), amap.n_symbols, [e.compose(subst) for e in amap.results])))
        op.attributes["indexing_maps"] = ir.ArrayAttr.get(maps)
        op.attributes["iterator_types"] = ir.ArrayAttr.get(
            [ir.ArrayAttr(op.attributes["iterator_types"])[i] for i in order])
        for idx in walk(op, "linalg.index"):
            old = ir.IntegerAttr(idx.attributes["dim"]).value
            idx.attributes["dim"] = ir.IntegerAttr.get(ir.IntegerType.get_signless(64), new_pos[old])


def _wrap_sequential(module: ir.Module) -> None:
    """Put linalg ops without parallel loops inside a one-iteration scf.parallel (one GPU thread)."""
    for op in walk(module, "linalg.generic"):
        if "parallel" in iterator_types(op):
            continue
        with ir.InsertionPoint(op), op.location:
            c0, c1 = _index_const(0), _index_const(1)
            par = scf.ParallelOp([], [c0], [c1], [c1], [])
            body = par.regions[0].blocks.append(ir.IndexType.get())
            with ir.InsertionPoint(body):
                term = scf.ReduceOp([], 0)
        op.move_before(term.operation)


def _tile_sizes(ubs: list[int]) -> list[int]:
    """Threads per block for loop dims ordered (x, y, z, sequential...): at most 256 threads."""
    tiles, budget = [], _THREADS_PER_BLOCK
    for k, u in enumerate(ubs):
        if k >= 3:
            tiles.append(1)
            continue
        t = 1
        while t < u and t * 2 <= min(budget, 64 if k == 2 else budget):
            t *= 2
        tiles.append(t)
        budget //= t
    return tiles


def _tile_parallel_loops(func: ir.Operation) -> None:
    """Tile each outermost scf.parallel into grid loop x block loop, innermost original dim first.

    gpu-map-parallel-loops maps loop dim 0/1/2 of the outer loop to block x/y/z and of the inner loop to
    thread x/y/z; further dims run sequentially inside the thread. Reversing the dims puts the contiguous
    (last) dimension on thread x, so neighbouring threads touch neighbouring elements.
    """
    index = ir.IndexType.get()
    for op in [o for o in walk(func, "scf.parallel")]:
        parent = op.parent
        if parent is not None and parent.name != "func.func":
            continue        # nested: left for the mapper (sequential)
        n = (len(op.operands)) // 3
        lbs, ubs, steps = op.operands[:n], op.operands[n:2 * n], op.operands[2 * n:3 * n]
        lb_c, ub_c, st_c = ([_const_int(v) for v in vs] for vs in (lbs, ubs, steps))
        if any(v != 0 for v in lb_c) or any(v != 1 for v in st_c) or any(v is None for v in ub_c):
            raise NotImplementedError(f"GPU tiling expects static loops from 0 step 1, got {op}")
        order = list(reversed(range(n)))            # new dim k = old dim order[k]
        u = [ub_c[i] for i in order]
        t = _tile_sizes(u)
        for k in (1, 2):
            if k < n and -(-u[k] // t[k]) > _MAX_GRID_YZ:
                raise NotImplementedError(f"grid dimension {k} of {u} exceeds {_MAX_GRID_YZ} blocks")
        with ir.InsertionPoint(op), op.location:
            c0, c1 = _index_const(0), _index_const(1)
            ub_v, t_v = [_index_const(x) for x in u], [_index_const(x) for x in t]
            outer = scf.ParallelOp([], [c0] * n, ub_v, t_v, [])
            ob = outer.regions[0].blocks.append(*[index] * n)
            with ir.InsertionPoint(ob):
                inner = scf.ParallelOp([], [c0] * n, t_v, [c1] * n, [])
                ib = inner.regions[0].blocks.append(*[index] * n)
                scf.ReduceOp([], 0)
            with ir.InsertionPoint(ib):
                ivs = [arith.addi(ob.arguments[k], ib.arguments[k]) if t[k] > 1 else ob.arguments[k]
                       for k in range(n)]
                conds = [arith.cmpi(arith.CmpIPredicate.ult, ivs[k], _index_const(u[k]))
                         for k in range(n) if u[k] % t[k]]
                inner_term = scf.ReduceOp([], 0)
            target = inner_term.operation
            if conds:
                with ir.InsertionPoint(inner_term.operation):
                    cond = conds[0]
                    for c in conds[1:]:
                        cond = arith.andi(cond, c)
                    ifop = scf.IfOp(cond)
                    with ir.InsertionPoint(ifop.then_block):
                        target = scf.YieldOp([]).operation
        old_body = op.regions[0].blocks[0]
        for k in range(n):
            old_body.arguments[order[k]].replace_all_uses_with(ivs[k])
        for child in list(old_body.operations)[:-1]:       # all but the scf.reduce terminator
            child.operation.move_before(target)
        op.erase()


def _host_rewrite(func: ir.Operation, n_outputs: int | None) -> None:
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


def _check_no_host_compute(func: ir.Operation) -> None:
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


# ---------------------------------------------------------------------------------------------------------
# The pipeline

def _extract_objects(module: ir.Module) -> list[tuple[str, bytes]]:
    """(gpu.binary symbol name, object bytes) for every embedded kernel object."""
    objs = []
    for b in walk(module, "gpu.binary"):
        name = ir.StringAttr(b.attributes["sym_name"]).value
        for a in ir.ArrayAttr(b.attributes["objects"]):
            objs.append((name, gpu.ObjectAttr(a).object))
    return objs


PTX_SEPARATOR = "// ----- gpu.module @"


def split_ptx(ptx: str) -> dict[str, str]:
    """Split the "ptx" stage text into {gpu.module name: PTX text of that module}."""
    out = {}
    for chunk in ptx.split(PTX_SEPARATOR)[1:]:
        header, _, body = chunk.partition("\n")
        out[header.split()[0]] = body
    return out


def _nvvm_pipeline(chip: str, features: str, format: str) -> str:
    return (f"gpu-lower-to-nvvm-pipeline{{cubin-chip={chip} cubin-features={features} "
            f"cubin-format={format} opt-level=3}}")


def lower_to_gpu(
    module: ir.Module,
    chip: str = GPU_DEFAULTS["chip"],
    features: str = GPU_DEFAULTS["features"],
    format: str = GPU_DEFAULTS["format"],
) -> dict[str, str]:
    """Lower a linalg-on-tensors module in place to LLVM dialect with embedded GPU kernels.

    Public functions `f(args) -> (r...)` become `f(args..., outs...)` on host memrefs; they copy data to
    the device and back themselves. Returns stage texts {"gpu", "ptx", "llvm"}.
    Raises ValueError for an unusable target before any native code runs.
    """
    validate_target(chip, features, format)
    with module.context, ir.Location.unknown():
        sigs = signatures(module)
        bufferize(module, deallocate=False)  # device buffers are freed by `_host_rewrite`
        _copies_to_linalg(module)
        run_passes(module, ("func.func(linalg-generalize-named-ops)",))
        _parallel_first(module)
        _wrap_sequential(module)
        run_passes(module, ("func.func(convert-linalg-to-parallel-loops)",))  # no canonicalize: it drops 1-trip loops
        for f in funcs(module, defined=True):
            _tile_parallel_loops(f)
        run_passes(module, ("func.func(gpu-map-parallel-loops)", "func.func(convert-parallel-loops-to-gpu)",
                            "lower-affine", "canonicalize", "cse"))
        for f in funcs(module, defined=True):
            _check_no_host_compute(f)
            name = ir.StringAttr(f.attributes["sym_name"]).value
            _host_rewrite(f, len(sigs[name][1]) if name in sigs else None)
            if name in sigs:
                f.attributes["llvm.emit_c_interface"] = ir.UnitAttr.get()
        run_passes(module, ("gpu-kernel-outlining", "func.func(gpu-async-region)", "canonicalize", "cse"))
        stages = {"gpu": str(module)}
        isa = module if format == "isa" else ir.Module.parse(stages["gpu"])   # PTX: compile once more
        run_passes(isa, (_nvvm_pipeline(chip, features, "isa"),))
        stages["ptx"] = "".join(f"{PTX_SEPARATOR}{n} -----\n{o.decode().rstrip(chr(0))}\n"
                                for n, o in _extract_objects(isa))
        if format != "isa":
            run_passes(module, (_nvvm_pipeline(chip, features, format),))
        stages["llvm"] = str(module)
    return stages


def kernel_binaries(module: ir.Module) -> dict[str, bytes]:
    """{gpu.module name: embedded kernel object (PTX text, cubin or fatbin bytes)} of a lowered module."""
    return dict(_extract_objects(module))


# ---------------------------------------------------------------------------------------------------------
# CUDA driver probe (pure ctypes: libmlir_cuda_runtime.so cannot even be loaded without libcuda)

_CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75
_CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR = 76


@cache
def _cuda_probe() -> tuple[str | None, tuple[int, int] | None]:
    """(reason the device is unusable or None, compute capability of device 0)."""
    try:
        lib = ctypes.CDLL("libcuda.so.1")
    except OSError as e:
        return f"libcuda.so.1 cannot be loaded ({e}); no NVIDIA driver on this machine", None
    rc = lib.cuInit(0)
    if rc != 0:
        return f"cuInit(0) failed with CUresult {rc}", None
    n = ctypes.c_int(0)
    rc = lib.cuDeviceGetCount(ctypes.byref(n))
    if rc != 0 or n.value == 0:
        return f"no CUDA device (cuDeviceGetCount -> rc {rc}, count {n.value})", None
    dev, major, minor = ctypes.c_int(0), ctypes.c_int(0), ctypes.c_int(0)
    if lib.cuDeviceGet(ctypes.byref(dev), 0) != 0:
        return "cuDeviceGet(0) failed", None
    lib.cuDeviceGetAttribute(ctypes.byref(major), _CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, dev)
    lib.cuDeviceGetAttribute(ctypes.byref(minor), _CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, dev)
    return None, (major.value, minor.value)


def cuda_available() -> bool:
    """True when libcuda.so.1 loads, cuInit succeeds and at least one device exists."""
    return _cuda_probe()[0] is None


def device_capability() -> tuple[int, int] | None:
    """Compute capability (major, minor) of device 0, or None without a device."""
    return _cuda_probe()[1]


def require_device() -> None:
    reason = _cuda_probe()[0]
    if reason is not None:
        raise DeviceUnavailableError(f"GPU backend unavailable: {reason}")


def device_chip() -> str | None:
    """The sm_XY chip of device 0 when this toolchain supports it, else None."""
    cc = device_capability()
    if cc is None:
        return None
    chip = f"sm_{cc[0]}{cc[1]}"
    return chip if chip in _MIN_PTX else None


def resolve_target(options: Options) -> tuple[str, str, str]:
    """(chip, features, format) from the options: the device's chip, else GPU_DEFAULTS'."""
    chip = options.gpu_chip or device_chip() or GPU_DEFAULTS["chip"]
    return chip, options.gpu_features or default_features(chip), options.gpu_format


# ---------------------------------------------------------------------------------------------------------
# The executable (reuses the CPU back end's packed-call entries: same out-param calling convention)


class GpuExecutable:
    """A linalg-on-tensors module compiled for CUDA, callable on NumPy arrays.

    Compiles at construction (no device needed, so the IR stages can be inspected anywhere). The
    ExecutionEngine, which loads libmlir_cuda_runtime.so (impossible without libcuda), is created on the
    first call of an entry, after the CUDA driver probe: without a device that call raises
    DeviceUnavailableError instead of failing in native code.

    Options.gpu_chip=None picks the device's chip when a device exists, else GPU_DEFAULTS. The format
    defaults to "isa":
    the driver JIT-compiles the PTX when the engine starts, so the code runs on any GPU at least as new as
    `chip` (an sm_80 cubin does not load on an sm_90 H100) and needs no ptxas on the machine.
    """

    def __init__(self, module: ir.Module, signatures: Mapping[str, Signature], stages: Mapping[str, str],
                 options: Options) -> None:
        self.chip, self.features, self.format = resolve_target(options)
        self.signatures, self.stages = dict(signatures), dict(stages)
        self.module = module
        self._opt_level = options.opt_level
        self._engine = None
        self._entries: dict[str, Callable[..., tuple[np.ndarray, ...]]] = {}

    def ir(self, stage: str) -> str:
        """MLIR text after a stage: "gpu" (kernels outlined), "ptx" (kernel assembly), "llvm" (final)."""
        return self.stages[stage]

    def engine(self):
        """The ExecutionEngine, created (and its kernels loaded) on first use; needs a CUDA device."""
        if self._engine is None:
            require_device()
            from mlir.execution_engine import ExecutionEngine

            libs = [runtime_lib("mlir_cuda_runtime"), runtime_lib("mlir_c_runner_utils")]
            engine = ExecutionEngine(self.module, opt_level=self._opt_level, shared_libs=libs,
                                     enable_object_dump=False)
            engine.initialize()      # runs the global constructors that load the kernel modules
            self._engine = engine
        return self._engine

    def entry(self, name: str) -> Callable[..., tuple[np.ndarray, ...]]:
        """`f(*arrays) -> tuple of fresh output arrays` for public function `name`.

        Inputs are checked (count, dtype, shape) and made C-contiguous before native code runs.
        """
        fn = self._entries.get(name)
        if fn is not None:
            return fn
        if name not in self.signatures:
            raise KeyError(f"unknown entry point @{name}; have {sorted(self.signatures)}")
        specs = self.signatures[name][0]
        native: list[Entry] = []

        def call(*arrays: object) -> tuple[np.ndarray, ...]:
            xs = coerce_inputs(specs, arrays)
            if not native:
                native.append(Entry(self.engine(), name, self.signatures[name]))
            return native[0](*xs)

        self._entries[name] = call
        return call

    def __call__(self, name: str, *arrays: object) -> tuple[np.ndarray, ...]:
        return self.entry(name)(*arrays)


__all__: Sequence[str] = [
    "GPU_DEFAULTS", "DeviceUnavailableError", "GpuExecutable", "cuda_available", "default_features",
    "device_capability", "device_chip", "kernel_binaries", "lower_to_gpu", "require_device", "resolve_target",
    "split_ptx", "validate_target",
]
