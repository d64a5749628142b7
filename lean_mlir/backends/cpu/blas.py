"""Large matmuls as calls into OpenBLAS (the `scipy-openblas32` wheel: kernels chosen per CPU at run
time), where it is faster than the generated kernel on this host.

Which kernels (`Options.gemm`): "generated" none, "blas" every one it can take, "auto" (the default)
those of at least the crossover size measured once per host, element type and thread count
(`crossover`: generated against library kernels, square, through the whole compile and call path;
stored in the user's cache directory). OpenBLAS takes the 2-D zero-initialized forms the
contractions leave (`A B`, `A^T B` read in place, `A B^T` whose pack it does not need) in f32 and
f64; batched, accumulating and fused contractions stay generated.

The library runs single-threaded (one thread budget for the process, ours): a kernel large enough for
the thread split is an `scf.forall` over row blocks, one gemm call each, which `threads.py` hands to
the worker pool like any split loop.

A kernel chosen here is outlined as usual (its matmul is not scheduled) and, after bufferization,
its body is replaced by the calls on the buffers' aligned pointers (identity layouts: offset 0).
"""

from __future__ import annotations

import ctypes
import json
import os
import threading
import time
from collections.abc import Callable
from functools import cache, partial
from typing import Any

import numpy as np
import platformdirs
from mlir import ir
from mlir.dialects import arith, linalg, llvm, memref, scf
from mlir.dialects import func as func_d

from ...irutils import builders as LL
from ...irutils.context import make_context
from ...irutils.linalg import indexing_maps, matmul_maps, zero_fill
from ...irutils.types import element_name, element_type, signatures
from ...irutils.walk import funcs
from ...options import Options
from .outline import LIBRARY_CALL
from .schedules.common import PARALLEL_MIN_MACS
from .target import CpuTarget

ROUTINES = {"f32": "scipy_cblas_sgemm", "f64": "scipy_cblas_dgemm"}
SET_THREADS = "scipy_openblas_set_num_threads"
ROW_MAJOR, NO_TRANS, TRANS = 101, 111, 112
# sizes the crossover is measured at (n x n x n): from the L1-resident to past any L2
CALIBRATION_SIZES = (64, 128, 256, 512, 1024)
ROUNDS = 5


@cache
def library() -> ctypes.CDLL | None:
    """libscipy_openblas loaded once into the process (RTLD_GLOBAL: the JIT resolves the gemm symbols
    from the process), single-threaded; None where the wheel is not installed."""
    try:
        import scipy_openblas32
    except ImportError:
        return None
    path = os.path.join(scipy_openblas32.get_lib_dir(), f"lib{scipy_openblas32.get_library()}.so")
    saved = os.environ.get("OPENBLAS_NUM_THREADS")
    os.environ["OPENBLAS_NUM_THREADS"] = "1"  # read at load: no thread pool of its own is started
    try:
        lib = ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
    except OSError:
        return None
    finally:
        if saved is None:
            del os.environ["OPENBLAS_NUM_THREADS"]
        else:
            os.environ["OPENBLAS_NUM_THREADS"] = saved
    getattr(lib, SET_THREADS)(1)
    lib.scipy_openblas_get_config.restype = ctypes.c_char_p
    return lib


def form(op: ir.Operation, packed: tuple[bool, bool]) -> tuple[str, tuple[int, int, int]] | None:
    """How OpenBLAS takes a matmul about to be outlined whose inputs come `packed` (a transpose the
    kernel would make): its transposes ("NN", "TN", "NT") and (m, n, k); None unless 2-D, statically
    shaped, f32/f64 and zero-initialized, with A not packed."""
    if op.name != "linalg.matmul" or zero_fill(op.operands[2]) is None or packed[0]:
        return None
    types = [v.type for v in op.operands]
    if not all(isinstance(t, ir.RankedTensorType) and ir.RankedTensorType(t).has_static_shape for t in types):
        return None
    a, _, c = (ir.RankedTensorType(t) for t in types)
    if {element_name(ir.RankedTensorType(t).element_type) for t in types} != {element_name(c.element_type)} \
            or element_name(c.element_type) not in ROUTINES:
        return None
    maps = indexing_maps(op)
    ta = maps == matmul_maps(transposed_a=True)
    if not ta and maps != matmul_maps():
        return None
    m, n = c.shape
    k = a.shape[0] if ta else a.shape[1]
    return ("T" if ta else "N") + ("T" if packed[1] else "N"), (m, n, k)


def wanted(op: ir.Operation, packed: tuple[bool, bool], options: Options, target: CpuTarget,
           threads: int) -> str | None:
    """The transposes of `op`'s library call, if it is to be one."""
    f = form(op, packed)
    if f is None or options.gemm == "generated" or library() is None:
        return None
    m, n, k = f[1]
    elem = element_name(ir.RankedTensorType(op.operands[2].type).element_type)
    if options.gemm == "auto" and m * n * k < crossover(target, elem, threads, options):
        return None
    return f[0]


# ---- after bufferization: the kernel bodies

def _pointer(buffer: ir.Value, offset_bytes: ir.Value | None) -> ir.Value:
    i64 = ir.IntegerType.get_signless(64)
    address = memref.ExtractAlignedPointerAsIndexOp(buffer).result
    if offset_bytes is not None:
        address = arith.AddIOp(address, offset_bytes).result
    return llvm.IntToPtrOp(llvm.PointerType.get(), arith.IndexCastOp(i64, address).result).result


def _declare(module: ir.Module, name: str, elem: ir.Type) -> None:
    if any(f.attributes["sym_name"].value == name for f in funcs(module)):
        return
    i32, ptr = ir.IntegerType.get_signless(32), llvm.PointerType.get()
    params = [i32] * 6 + [elem, ptr, i32, ptr, i32, elem, ptr, i32]
    with ir.InsertionPoint(module.body):
        func_d.FuncOp(name, ir.FunctionType.get(params, []), visibility="private")


def _gemm(routine: str, trans: str, a: ir.Value, b: ir.Value, c: ir.Value, rows: ir.Value, first_row: ir.Value | None,
          shapes: list[list[int]], elem: ir.Type) -> None:
    """C[rows from first_row] = op(A)[those rows] op(B): one call; lda etc. are the stored row lengths."""
    i32, index = ir.IntegerType.get_signless(32), ir.IndexType.get()
    const = lambda v: arith.ConstantOp(i32, v).result
    size = elem.width // 8
    (ra, ca), (_, cb), (_, n) = shapes
    k = ra if trans[0] == "T" else ca
    offset = lambda stride: None if first_row is None else arith.MulIOp(
        first_row, arith.ConstantOp(index, stride * size).result).result
    a_ptr = _pointer(a, offset(1 if trans[0] == "T" else ca))  # A^T: rows of op(A) are columns of A
    c_ptr = _pointer(c, offset(n))
    one, zero = (arith.ConstantOp(elem, v).result for v in (1.0, 0.0))
    func_d.CallOp([], routine, [
        const(ROW_MAJOR), const(TRANS if trans[0] == "T" else NO_TRANS), const(TRANS if trans[1] == "T" else NO_TRANS),
        arith.IndexCastOp(i32, rows).result, const(n), const(k), one, a_ptr, const(ca), _pointer(b, None), const(cb),
        zero, c_ptr, const(n)])


def call_library(module: ir.Module, threads: int) -> int:
    """Replace the body of every kernel the outliner marked as a library call with its gemm calls (bufferized:
    the kernel is `(A, B, C out)`); returns the number of kernels."""
    done = 0
    with module.context, ir.Location.unknown(module.context):
        for f in funcs(module, defined=True):
            if LIBRARY_CALL not in f.attributes:
                continue
            trans = ir.StringAttr(f.attributes[LIBRARY_CALL]).value
            block = f.regions[0].blocks[0]
            args = list(block.arguments)
            types = [ir.MemRefType(v.type) for v in args]
            identity = [ir.AffineMapAttr(t.layout).value == ir.AffineMap.get_identity(t.rank) for t in types]
            if len(args) != 3 or not all(identity):
                raise AssertionError(f"{f.attributes['sym_name']}: a library kernel takes (A, B, C), identity layouts")
            elem = types[2].element_type
            routine = ROUTINES[element_name(elem)]
            _declare(module, routine, elem)
            for op in reversed(list(block.operations)):
                op.erase()
            shapes = [list(t.shape) for t in types]
            m, n = shapes[2]
            k = shapes[0][0] if trans[0] == "T" else shapes[0][1]
            blocks = min(threads, m) if m * n * k >= PARALLEL_MIN_MACS else 1
            with ir.InsertionPoint(block):
                index = ir.IndexType.get()
                if blocks == 1:
                    _gemm(routine, trans, *args, arith.ConstantOp(index, m).result, None, shapes, elem)
                else:
                    rows = -(-m // blocks)
                    loop = scf.ForallOp([0], [blocks], [1])
                    with ir.InsertionPoint(loop.body):
                        first = arith.MulIOp(loop.induction_variables[0], arith.ConstantOp(index, rows).result).result
                        left = arith.SubIOp(arith.ConstantOp(index, m).result, first).result
                        count = arith.MinSIOp(left, arith.ConstantOp(index, rows).result).result
                        _gemm(routine, trans, *args, count, first, shapes, elem)
                        scf.InParallelOp()
                func_d.ReturnOp([])
            done += 1
    return done


# ---- the crossover: from which size the library kernel is faster here

_CROSSOVERS: dict[str, dict[str, Any]] = {}
_LOCK = threading.Lock()


def _reset_lock() -> None:  # a child forked during a measurement would wait for the lock forever
    global _LOCK
    _LOCK = threading.Lock()


os.register_at_fork(after_in_child=_reset_lock)


def cache_file() -> str:
    """Where the crossovers measured on this host are kept (the user's cache directory)."""
    return os.path.join(platformdirs.user_cache_dir("lean_mlir"), "gemm-crossover.json")


def crossover(target: CpuTarget, elem: str, threads: int, options: Options) -> float:
    """Multiply-adds from which OpenBLAS beats the generated kernel on this host (inf: never), read
    from the cache file or measured now (seconds, once per host, element type and thread count)."""
    lib = library()
    version = lib.scipy_openblas_get_config().decode() if lib is not None else ""
    key = f"{target.model}|{target.name}|{elem}|{threads}|{version}"
    with _LOCK:
        if key not in _CROSSOVERS:
            path = cache_file()
            try:
                with open(path) as f:
                    _CROSSOVERS.update(json.load(f))
            except (OSError, ValueError):
                pass
            if key not in _CROSSOVERS:
                _CROSSOVERS[key] = _measure(elem, options.with_(threads=threads))
                try:
                    os.makedirs(os.path.dirname(path), exist_ok=True)
                    with open(path + ".tmp", "w") as f:
                        json.dump(_CROSSOVERS, f, indent=1)
                    os.replace(path + ".tmp", path)
                except OSError:
                    pass  # a read-only home: measured again by the next process
        macs = _CROSSOVERS[key]["macs"]
    return float("inf") if macs is None else macs


def _seconds(run: Callable[[], object], budget: float = 0.01) -> float:
    """The best of repeated calls of `run` within about `budget` seconds (at least 3)."""
    best, spent, calls = float("inf"), 0.0, 0
    while calls < 3 or (spent < budget and calls < 50):
        t = time.perf_counter()
        run()
        dt = time.perf_counter() - t
        best, spent, calls = min(best, dt), spent + dt, calls + 1
    return best


def _measure(elem: str, options: Options) -> dict[str, Any]:
    """Both kernels timed at each calibration size n (square, best of several calls); the crossover
    is the smallest n from which the library kernel is faster at every size, as n^3 multiply-adds
    (None: it never is)."""
    # the pipeline and the executable import this module (a kernel's choice, the library's loading)
    from .executable import CpuExecutable
    from .pipeline import lower

    rng = np.random.default_rng(0)
    seconds: dict[str, list[float]] = {"generated": [], "blas": []}
    for n in CALIBRATION_SIZES:
        a, b = (rng.standard_normal((n, n)).astype(elem.replace("f", "float")) for _ in range(2))
        runs: dict[str, Callable[[], object]] = {}
        for gemm in seconds:
            with make_context() as ctx, ir.Location.unknown(ctx):
                module = ir.Module.create()
                t = LL.tensor_type([n, n], element_type(elem))
                with ir.InsertionPoint(module.body):
                    f = func_d.FuncOp("mm", ir.FunctionType.get([t, t], [t]))
                with ir.InsertionPoint(f.add_entry_block()):
                    func_d.ReturnOp([linalg.matmul(*f.arguments, outs=[LL.zeros(t)], indexing_maps=matmul_maps())])
                sigs = signatures(module)
                o = options.with_(gemm=gemm)
                exe = CpuExecutable(module, sigs, lower(module, o), o)
                runs[gemm] = partial(exe.entry("mm"), a, b)
                runs[gemm]()
        # rounds taking turns, best of each: a shared machine's load drifts between the two otherwise
        best = dict.fromkeys(runs, float("inf"))
        for _ in range(ROUNDS):
            for gemm, run in runs.items():
                best[gemm] = min(best[gemm], _seconds(run))
        for gemm, times in seconds.items():
            times.append(best[gemm])
    wins = [b < g for g, b in zip(seconds["generated"], seconds["blas"], strict=True)]
    first = next((i for i in range(len(wins)) if all(wins[i:])), None)
    return {"macs": None if first is None else CALIBRATION_SIZES[first] ** 3, "sizes": list(CALIBRATION_SIZES),
            **{f"{k}_s": v for k, v in seconds.items()}}
