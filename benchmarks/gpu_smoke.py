#!/usr/bin/env python3
"""GPU smoke test of lean_mlir.backends.gpu: compile linalg modules, run them on CUDA, compare with NumPy.

Three ways to run it (each prints one PASS/FAIL line per case, timings, and a summary; exit code 1 on
any FAIL):

  python benchmarks/gpu_smoke.py build DIR [CASE...]
      here, no GPU needed (MLIR wheels + cc): compiles the cases to DIR/<case>.<variant>.so and
      DIR/manifest.json, and copies the MLIR CUDA runtime wrapper library to DIR/lib/ (with an empty
      stand-in for libLLVM.so, which that library lists as NEEDED but never uses). About 5 s, < 1 MB.
  python3 benchmarks/gpu_smoke.py run DIR
      on the GPU machine; needs only NumPy and the NVIDIA driver (no MLIR); each case runs in its own
      subprocess, so a crash is reported and the others still run. About 10-30 s.
  python benchmarks/gpu_smoke.py
      in-process through lean_mlir.backends.gpu.GpuExecutable (needs MLIR *and* a GPU).

Variants built: "ptx-sm80" (PTX, JIT-compiled by the driver at load: runs on any GPU >= sm_80) and
"cubin-sm90" (ptxas-made cubin for Hopper: H100/H200). The .so files are the final host code (LLVM IR ->
llc -> shared object) exporting `_mlir_ciface_<func>(descriptor*...)`; their static constructors load the
kernels. CUDA driver errors are printed by the runtime wrappers on stderr ("'cuXxx(...)' failed with ...")
and do not stop the process; a wrong result shows up as FAIL with the max error.
"""

from __future__ import annotations

import ctypes
import json
import os
import pathlib
import shutil
import subprocess
import sys
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

# ---------------------------------------------------------------------------------------------------------
# Cases: hand-written linalg-on-tensors modules with NumPy references


@dataclass
class Case:
    name: str
    mlir: str
    func: str
    inputs: list[tuple[tuple[int, ...], str]]
    ref: Callable[..., tuple[np.ndarray, ...]]
    rtol: float = 1e-5
    atol: float = 1e-5
    positive: bool = False            # inputs drawn from (0.5, 1.5) instead of N(0, 1)
    tags: set[str] = field(default_factory=set)

    def make_inputs(self) -> list[np.ndarray]:
        rng = np.random.default_rng(zlib.crc32(self.name.encode()))
        out = []
        for shape, dt in self.inputs:
            x = rng.uniform(0.5, 1.5, shape) if self.positive else rng.standard_normal(shape)
            out.append(np.asarray(x, dtype=DTYPES[dt]))
        return out


def _ew(t: str, shape: str) -> str:
    rank = shape.count("x")
    dims = ", ".join(f"d{i}" for i in range(rank))
    its = ", ".join(['"parallel"'] * rank)
    return f"""
#id = affine_map<({dims}) -> ({dims})>
func.func @ew(%x: tensor<{shape}>, %y: tensor<{shape}>) -> tensor<{shape}> {{
  %e = tensor.empty() : tensor<{shape}>
  %r = linalg.generic {{indexing_maps = [#id, #id, #id], iterator_types = [{its}]}}
      ins(%x, %y : tensor<{shape}>, tensor<{shape}>) outs(%e : tensor<{shape}>) {{
  ^bb0(%a: {t}, %b: {t}, %o: {t}):
    %one = arith.constant 1.0 : {t}
    %0 = math.exp %a : {t}
    %1 = math.sin %b : {t}
    %2 = arith.mulf %0, %1 : {t}
    %3 = math.absf %a : {t}
    %4 = math.sqrt %3 : {t}
    %5 = arith.addf %2, %4 : {t}
    %6 = math.tanh %b : {t}
    %7 = arith.subf %5, %6 : {t}
    %8 = arith.mulf %a, %a : {t}
    %9 = arith.addf %8, %one : {t}
    %10 = math.log %9 : {t}
    %11 = arith.divf %7, %9 : {t}
    %12 = arith.addf %11, %10 : {t}
    %13 = math.cos %a : {t}
    %14 = arith.maximumf %12, %13 : {t}
    linalg.yield %14 : {t}
  }} -> tensor<{shape}>
  return %r : tensor<{shape}>
}}"""


def _ew_ref(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray]:
    v = (np.exp(x) * np.sin(y) + np.sqrt(np.abs(x)) - np.tanh(y)) / (x * x + 1) + np.log(x * x + 1)
    return (np.maximum(v, np.cos(x)),)


_MATMUL = """
func.func @mm(%a: tensor<{M}x{K}x{t}>, %b: tensor<{K}x{N}x{t}>) -> tensor<{M}x{N}x{t}> {{
  %z = arith.constant 0.0 : {t}
  %e = tensor.empty() : tensor<{M}x{N}x{t}>
  %f = linalg.fill ins(%z : {t}) outs(%e : tensor<{M}x{N}x{t}>) -> tensor<{M}x{N}x{t}>
  %r = linalg.matmul ins(%a, %b : tensor<{M}x{K}x{t}>, tensor<{K}x{N}x{t}>) outs(%f : tensor<{M}x{N}x{t}>)
       -> tensor<{M}x{N}x{t}>
  return %r : tensor<{M}x{N}x{t}>
}}"""

_BATCH_MATMUL = """
func.func @bmm(%a: tensor<3x16x8xf32>, %b: tensor<3x8x12xf32>) -> tensor<3x16x12xf32> {
  %z = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<3x16x12xf32>
  %f = linalg.fill ins(%z : f32) outs(%e : tensor<3x16x12xf32>) -> tensor<3x16x12xf32>
  %r = linalg.batch_matmul ins(%a, %b : tensor<3x16x8xf32>, tensor<3x8x12xf32>) outs(%f : tensor<3x16x12xf32>)
       -> tensor<3x16x12xf32>
  return %r : tensor<3x16x12xf32>
}"""

_REDUCE = """
func.func @red(%x: tensor<100x300xf32>, %y: tensor<300x100xf32>) -> (tensor<100xf32>, tensor<100xf32>) {
  %z = arith.constant 0.0 : f32
  %ninf = arith.constant 0xFF800000 : f32
  %e = tensor.empty() : tensor<100xf32>
  %f0 = linalg.fill ins(%z : f32) outs(%e : tensor<100xf32>) -> tensor<100xf32>
  %s = linalg.reduce ins(%x : tensor<100x300xf32>) outs(%f0 : tensor<100xf32>) dimensions = [1]
    (%in: f32, %acc: f32) { %0 = arith.addf %in, %acc : f32
      linalg.yield %0 : f32 }
  %f1 = linalg.fill ins(%ninf : f32) outs(%e : tensor<100xf32>) -> tensor<100xf32>
  %m = linalg.reduce ins(%y : tensor<300x100xf32>) outs(%f1 : tensor<100xf32>) dimensions = [0]
    (%in: f32, %acc: f32) { %0 = arith.maximumf %in, %acc : f32
      linalg.yield %0 : f32 }
  return %s, %m : tensor<100xf32>, tensor<100xf32>
}"""

_MULTI = """
func.func @multi(%x: tensor<1000xf64>) -> (tensor<1000xf64>, tensor<f64>, tensor<f64>) {
  %z = arith.constant 0.0 : f64
  %two = arith.constant 2.0 : f64
  %ninf = arith.constant 0xFFF0000000000000 : f64
  %e = tensor.empty() : tensor<1000xf64>
  %d = linalg.map ins(%x : tensor<1000xf64>) outs(%e : tensor<1000xf64>)
    (%a: f64, %o: f64) { %0 = arith.mulf %a, %two : f64
      linalg.yield %0 : f64 }
  %e0 = tensor.empty() : tensor<f64>
  %f0 = linalg.fill ins(%z : f64) outs(%e0 : tensor<f64>) -> tensor<f64>
  %s = linalg.reduce ins(%x : tensor<1000xf64>) outs(%f0 : tensor<f64>) dimensions = [0]
    (%in: f64, %acc: f64) { %0 = arith.addf %in, %acc : f64
      linalg.yield %0 : f64 }
  %f1 = linalg.fill ins(%ninf : f64) outs(%e0 : tensor<f64>) -> tensor<f64>
  %m = linalg.reduce ins(%x : tensor<1000xf64>) outs(%f1 : tensor<f64>) dimensions = [0]
    (%in: f64, %acc: f64) { %0 = arith.maximumf %in, %acc : f64
      linalg.yield %0 : f64 }
  return %d, %s, %m : tensor<1000xf64>, tensor<f64>, tensor<f64>
}"""

_TRANSPOSE_BROADCAST = """
#mn = affine_map<(m, n) -> (m, n)>
#n = affine_map<(m, n) -> (n)>
#m = affine_map<(m, n) -> (m)>
func.func @tb(%x: tensor<2x3x4xf32>, %a: tensor<5x7xf32>, %r: tensor<7xf32>, %c: tensor<5xf32>)
    -> (tensor<4x2x3xf32>, tensor<5x7xf32>, tensor<6x7xf32>) {
  %e = tensor.empty() : tensor<4x2x3xf32>
  %t = linalg.transpose ins(%x : tensor<2x3x4xf32>) outs(%e : tensor<4x2x3xf32>) permutation = [2, 0, 1]
  %e2 = tensor.empty() : tensor<5x7xf32>
  %g = linalg.generic {indexing_maps = [#mn, #n, #m, #mn], iterator_types = ["parallel", "parallel"]}
      ins(%a, %r, %c : tensor<5x7xf32>, tensor<7xf32>, tensor<5xf32>) outs(%e2 : tensor<5x7xf32>) {
  ^bb0(%p: f32, %q: f32, %s: f32, %o: f32):
    %0 = arith.addf %p, %q : f32
    %1 = arith.mulf %0, %s : f32
    linalg.yield %1 : f32
  } -> tensor<5x7xf32>
  %e3 = tensor.empty() : tensor<6x7xf32>
  %b = linalg.broadcast ins(%r : tensor<7xf32>) outs(%e3 : tensor<6x7xf32>) dimensions = [0]
  return %t, %g, %b : tensor<4x2x3xf32>, tensor<5x7xf32>, tensor<6x7xf32>
}"""

_SLICES = """
func.func @slices(%a: tensor<4x6xf64>, %b: tensor<2x3xf64>)
    -> (tensor<6x10xf64>, tensor<4x6xf64>, tensor<3xf64>, tensor<24xf64>, tensor<2x2x6xf64>) {
  %z = arith.constant 1.5 : f64
  %p = tensor.pad %a low[1, 2] high[1, 2] {
  ^bb0(%i: index, %j: index):
    tensor.yield %z : f64
  } : tensor<4x6xf64> to tensor<6x10xf64>
  %s = tensor.insert_slice %b into %a[1, 2] [2, 3] [1, 1] : tensor<2x3xf64> into tensor<4x6xf64>
  %cst = arith.constant dense<[1.0, 2.0, 3.0]> : tensor<3xf64>
  %x = tensor.extract_slice %a[2, 1] [1, 3] [1, 2] : tensor<4x6xf64> to tensor<3xf64>
  %e = tensor.empty() : tensor<3xf64>
  %y = linalg.add ins(%x, %cst : tensor<3xf64>, tensor<3xf64>) outs(%e : tensor<3xf64>) -> tensor<3xf64>
  %c = tensor.collapse_shape %s [[0, 1]] : tensor<4x6xf64> into tensor<24xf64>
  %e24 = tensor.empty() : tensor<24xf64>
  %c2 = linalg.mul ins(%c, %c : tensor<24xf64>, tensor<24xf64>) outs(%e24 : tensor<24xf64>) -> tensor<24xf64>
  %x2 = tensor.expand_shape %a [[0, 1], [2]] output_shape [2, 2, 6] : tensor<4x6xf64> into tensor<2x2x6xf64>
  return %p, %s, %y, %c2, %x2
    : tensor<6x10xf64>, tensor<4x6xf64>, tensor<3xf64>, tensor<24xf64>, tensor<2x2x6xf64>
}"""


def _slices_ref(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, ...]:
    p = np.pad(a, ((1, 1), (2, 2)), constant_values=1.5)
    s = a.copy()
    s[1:3, 2:5] = b
    y = a[2, 1:6:2] + np.array([1.0, 2.0, 3.0])
    c = s.reshape(24)
    return p, s, y, c * c, a.reshape(2, 2, 6)


_RANK5 = """
#i5 = affine_map<(a, b, c, d, e) -> (a, b, c, d, e)>
#i3 = affine_map<(a, b, c, d, e) -> (c, d, e)>
func.func @r5(%x: tensor<2x3x4x5x6xf32>, %y: tensor<4x5x6xf32>) -> tensor<2x3x4x5x6xf32> {
  %e = tensor.empty() : tensor<2x3x4x5x6xf32>
  %r = linalg.generic {indexing_maps = [#i5, #i3, #i5],
                       iterator_types = ["parallel", "parallel", "parallel", "parallel", "parallel"]}
      ins(%x, %y : tensor<2x3x4x5x6xf32>, tensor<4x5x6xf32>) outs(%e : tensor<2x3x4x5x6xf32>) {
  ^bb0(%p: f32, %q: f32, %o: f32):
    %0 = arith.mulf %p, %q : f32
    %1 = math.exp %0 : f32
    linalg.yield %1 : f32
  } -> tensor<2x3x4x5x6xf32>
  return %r : tensor<2x3x4x5x6xf32>
}"""

_SOFTMAX = """
#mn = affine_map<(m, n) -> (m, n)>
#m = affine_map<(m, n) -> (m)>
func.func @softmax(%x: tensor<64x129xf32>) -> tensor<64x129xf32> {
  %z = arith.constant 0.0 : f32
  %ninf = arith.constant 0xFF800000 : f32
  %e1 = tensor.empty() : tensor<64xf32>
  %f1 = linalg.fill ins(%ninf : f32) outs(%e1 : tensor<64xf32>) -> tensor<64xf32>
  %mx = linalg.generic {indexing_maps = [#mn, #m], iterator_types = ["parallel", "reduction"]}
      ins(%x : tensor<64x129xf32>) outs(%f1 : tensor<64xf32>) {
  ^bb0(%a: f32, %acc: f32):
    %0 = arith.maximumf %a, %acc : f32
    linalg.yield %0 : f32
  } -> tensor<64xf32>
  %e = tensor.empty() : tensor<64x129xf32>
  %ex = linalg.generic {indexing_maps = [#mn, #m, #mn], iterator_types = ["parallel", "parallel"]}
      ins(%x, %mx : tensor<64x129xf32>, tensor<64xf32>) outs(%e : tensor<64x129xf32>) {
  ^bb0(%a: f32, %b: f32, %o: f32):
    %0 = arith.subf %a, %b : f32
    %1 = math.exp %0 : f32
    linalg.yield %1 : f32
  } -> tensor<64x129xf32>
  %f0 = linalg.fill ins(%z : f32) outs(%e1 : tensor<64xf32>) -> tensor<64xf32>
  %s = linalg.generic {indexing_maps = [#mn, #m], iterator_types = ["parallel", "reduction"]}
      ins(%ex : tensor<64x129xf32>) outs(%f0 : tensor<64xf32>) {
  ^bb0(%a: f32, %acc: f32):
    %0 = arith.addf %a, %acc : f32
    linalg.yield %0 : f32
  } -> tensor<64xf32>
  %r = linalg.generic {indexing_maps = [#mn, #m, #mn], iterator_types = ["parallel", "parallel"]}
      ins(%ex, %s : tensor<64x129xf32>, tensor<64xf32>) outs(%e : tensor<64x129xf32>) {
  ^bb0(%a: f32, %b: f32, %o: f32):
    %0 = arith.divf %a, %b : f32
    linalg.yield %0 : f32
  } -> tensor<64x129xf32>
  return %r : tensor<64x129xf32>
}"""

# Sum over the leading (reduction-first) dimension, written as a generic with iterators [reduction, parallel].
_COLSUM = """
#kn = affine_map<(k, n) -> (k, n)>
#n = affine_map<(k, n) -> (n)>
func.func @colsum(%x: tensor<257x33xf32>) -> tensor<33xf32> {
  %z = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<33xf32>
  %f = linalg.fill ins(%z : f32) outs(%e : tensor<33xf32>) -> tensor<33xf32>
  %s = linalg.generic {indexing_maps = [#kn, #n], iterator_types = ["reduction", "parallel"]}
      ins(%x : tensor<257x33xf32>) outs(%f : tensor<33xf32>) {
  ^bb0(%a: f32, %acc: f32):
    %0 = arith.addf %a, %acc : f32
    linalg.yield %0 : f32
  } -> tensor<33xf32>
  return %s : tensor<33xf32>
}"""


def _softmax_ref(x: np.ndarray) -> tuple[np.ndarray]:
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return (e / e.sum(axis=1, keepdims=True),)


CASES: list[Case] = [
    Case("ew_f32", _ew("f32", "37x53xf32"), "ew", [((37, 53), "f32")] * 2, _ew_ref, rtol=2e-5, atol=2e-5),
    Case("ew_f64", _ew("f64", "37x53xf64"), "ew", [((37, 53), "f64")] * 2, _ew_ref, rtol=1e-12, atol=1e-12),
    Case("matmul_f32", _MATMUL.format(M=67, K=45, N=33, t="f32"), "mm",
         [((67, 45), "f32"), ((45, 33), "f32")],
         lambda a, b: (a @ b,), rtol=1e-4, atol=1e-4),
    Case("matmul_f64", _MATMUL.format(M=16, K=64, N=40, t="f64"), "mm",
         [((16, 64), "f64"), ((64, 40), "f64")],
         lambda a, b: (a @ b,), rtol=1e-12, atol=1e-12),
    Case("batch_matmul", _BATCH_MATMUL, "bmm", [((3, 16, 8), "f32"), ((3, 8, 12), "f32")],
         lambda a, b: (a @ b,), rtol=1e-4, atol=1e-4),
    Case("reduce_sum_max", _REDUCE, "red", [((100, 300), "f32"), ((300, 100), "f32")],
         lambda x, y: (x.sum(axis=1), y.max(axis=0)), rtol=1e-4, atol=1e-4),
    Case("colsum_reduction_first", _COLSUM, "colsum", [((257, 33), "f32")],
         lambda x: (x.sum(axis=0),), rtol=1e-4, atol=1e-4),
    Case("multi_rank0", _MULTI, "multi", [((1000,), "f64")],
         lambda x: (2 * x, np.array(x.sum()), np.array(x.max())), rtol=1e-12, atol=1e-12),
    Case("transpose_broadcast", _TRANSPOSE_BROADCAST, "tb",
         [((2, 3, 4), "f32"), ((5, 7), "f32"), ((7,), "f32"), ((5,), "f32")],
         lambda x, a, r, c: (x.transpose(2, 0, 1), (a + r) * c[:, None], np.broadcast_to(r, (6, 7)))),
    Case("slices_pad", _SLICES, "slices", [((4, 6), "f64"), ((2, 3), "f64")], _slices_ref,
         rtol=1e-15, atol=1e-15),
    Case("rank5_broadcast", _RANK5, "r5", [((2, 3, 4, 5, 6), "f32"), ((4, 5, 6), "f32")],
         lambda x, y: (np.exp(x * y),), rtol=2e-5, atol=1e-5),
    Case("softmax", _SOFTMAX, "softmax", [((64, 129), "f32")], _softmax_ref, rtol=1e-5, atol=1e-6),
    # larger ones, for timings
    Case("big_ew_f32", _ew("f32", "2048x2048xf32"), "ew", [((2048, 2048), "f32")] * 2, _ew_ref,
         rtol=2e-5, atol=2e-5, tags={"timing"}),
    Case("big_matmul_f32", _MATMUL.format(M=1024, K=1024, N=1024, t="f32"), "mm",
         [((1024, 1024), "f32"), ((1024, 1024), "f32")], lambda a, b: (a @ b,), rtol=1e-3, atol=1e-3,
         tags={"timing"}),
]

VARIANTS = {"ptx-sm80": ("sm_80", "+ptx80", "isa"), "cubin-sm90": ("sm_90", "+ptx80", "bin")}
DTYPES = {"f32": np.float32, "f64": np.float64}


def _compare(case: Case, got: tuple[np.ndarray, ...], want: tuple[np.ndarray, ...]) -> str | None:
    """None when equal within tolerance, else a description of the first mismatch."""
    if len(got) != len(want):
        return f"{len(got)} results, expected {len(want)}"
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        w = np.asarray(w)
        if g.shape != w.shape:
            return f"result {i}: shape {g.shape}, expected {w.shape}"
        if not np.allclose(g, w, rtol=case.rtol, atol=case.atol):
            err = np.abs(g.astype(np.float64) - w)
            k = np.unravel_index(np.nanargmax(err), err.shape) if err.size else ()
            return (f"result {i}: max abs err {np.nanmax(err):.3g} at {tuple(int(j) for j in k)} "
                    f"(got {g[k]!r}, want {w[k]!r}); nan count {int(np.isnan(g).sum())}")
    return None


def _time(fn: Callable[[], object], budget_s: float = 1.0, max_iters: int = 50) -> float:
    """Median seconds per call over up to max_iters calls within about budget_s."""
    ts: list[float] = []
    start = time.perf_counter()
    while len(ts) < max_iters and (time.perf_counter() - start < budget_s or len(ts) < 3):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts))


def _report(tag: str, case: Case, err: str | None, t_gpu: float | None, t_np: float | None) -> None:
    times = ""
    if t_gpu is not None:
        times = f"  gpu {t_gpu * 1e3:.3f} ms/call (incl. copies)"
        if t_np is not None:
            times += f", numpy {t_np * 1e3:.3f} ms"
    print(f"{'PASS' if err is None else 'FAIL'} {tag:28s}{times}" + ("" if err is None else f"\n     {err}"),
          flush=True)


# ---------------------------------------------------------------------------------------------------------
# build: compile every case x variant to a shared object (needs MLIR + gcc, no GPU)

_STUB_LLVM_C = "/* empty: libmlir_cuda_runtime.so NEEDs libLLVM.so but uses none of its symbols */\n"


def prepare_lib(out: pathlib.Path) -> None:
    """DIR/lib: the MLIR CUDA runtime wrappers and an empty libLLVM.so stand-in (found via its $ORIGIN)."""
    from lean_mlir.irutils.paths import runtime_lib

    (out / "lib").mkdir(parents=True, exist_ok=True)
    shutil.copy(runtime_lib("mlir_cuda_runtime"), out / "lib" / "libmlir_cuda_runtime.so")
    (out / "lib" / "stub_llvm.c").write_text(_STUB_LLVM_C)
    subprocess.run(["cc", "-shared", "-fPIC", "-Wl,-soname,libLLVM.so", "-o", str(out / "lib" / "libLLVM.so"),
                    str(out / "lib" / "stub_llvm.c")], check=True)


def link_shared(llvm_dialect: str, so: pathlib.Path) -> None:
    """LLVM-dialect module text -> LLVM IR -> object (llc -O3, PIC) -> shared object `so`."""
    from lean_mlir.irutils.paths import tool

    ll, obj = so.with_suffix(".ll"), so.with_suffix(".o")
    ll.write_text(subprocess.run([str(tool("mlir-translate")), "--mlir-to-llvmir"], input=llvm_dialect,
                                 capture_output=True, text=True, check=True).stdout)
    try:
        subprocess.run([str(tool("llc")), "-O3", "-filetype=obj", "-relocation-model=pic", str(ll), "-o", str(obj)],
                       check=True)
        subprocess.run(["cc", "-shared", "-o", str(so), str(obj)], check=True)
    finally:
        ll.unlink()
        obj.unlink(missing_ok=True)


def build(out: pathlib.Path, names: list[str] | None = None) -> int:
    from mlir import ir

    from lean_mlir.backends.gpu import lower_to_gpu

    out.mkdir(parents=True, exist_ok=True)
    prepare_lib(out)
    manifest, failures = [], 0
    for case in CASES:
        if names and case.name not in names:
            continue
        for variant, (chip, features, fmt) in VARIANTS.items():
            tag = f"{case.name}.{variant}"
            t0 = time.perf_counter()
            try:
                with ir.Context():
                    m = ir.Module.parse(case.mlir)
                    stages = lower_to_gpu(m, chip=chip, features=features, format=fmt)
                link_shared(stages["llvm"], out / f"{tag}.so")
            except Exception as e:          # report and go on with the other cases
                failures += 1
                print(f"FAIL build {tag}: {type(e).__name__}: {e}", flush=True)
                continue
            manifest.append({"case": case.name, "variant": variant, "so": f"{tag}.so", "func": case.func})
            print(f"built {tag} in {time.perf_counter() - t0:.2f} s", flush=True)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    print(f"{len(manifest)} built, {failures} failed -> {out}")
    return 1 if failures else 0


# ---------------------------------------------------------------------------------------------------------
# run: load the shared objects with ctypes on the GPU machine (NumPy + driver only)


def _descriptor(a: np.ndarray) -> ctypes.Structure:
    rank = a.ndim
    fields = [("allocated", ctypes.c_void_p), ("aligned", ctypes.c_void_p), ("offset", ctypes.c_int64)]
    if rank:
        fields += [("sizes", ctypes.c_int64 * rank), ("strides", ctypes.c_int64 * rank)]
    d = type(f"MemRef{rank}", (ctypes.Structure,), {"_fields_": fields})()
    d.allocated = d.aligned = a.ctypes.data
    if rank:
        d.sizes[:] = a.shape
        d.strides[:] = [s // a.itemsize for s in a.strides]
    return d


def _driver_info() -> str:
    try:
        cu = ctypes.CDLL("libcuda.so.1")
    except OSError as e:
        return f"libcuda.so.1 not loadable: {e}"
    v, n = ctypes.c_int(), ctypes.c_int()
    rc = cu.cuInit(0)
    cu.cuDriverGetVersion(ctypes.byref(v))
    cu.cuDeviceGetCount(ctypes.byref(n))
    info = f"cuInit rc={rc}, driver API {v.value}, {n.value} device(s)"
    if n.value:
        name = ctypes.create_string_buffer(256)
        dev, ma, mi = ctypes.c_int(), ctypes.c_int(), ctypes.c_int()
        cu.cuDeviceGet(ctypes.byref(dev), 0)
        cu.cuDeviceGetName(name, 256, dev)
        cu.cuDeviceGetAttribute(ctypes.byref(ma), 75, dev)
        cu.cuDeviceGetAttribute(ctypes.byref(mi), 76, dev)
        info += f"; device 0: {name.value.decode()} (sm_{ma.value}{mi.value})"
    return info


def run_one(out: pathlib.Path, so: str, case_name: str, func: str) -> int:
    case = next(c for c in CASES if c.name == case_name)
    ctypes.CDLL(str(out / "lib" / "libmlir_cuda_runtime.so"), mode=ctypes.RTLD_GLOBAL)
    t0 = time.perf_counter()
    lib = ctypes.CDLL(str(out / so))           # static constructors load the kernels here
    t_load = time.perf_counter() - t0
    fn = getattr(lib, f"_mlir_ciface_{func}")
    fn.restype = None
    xs = case.make_inputs()
    want = case.ref(*xs)
    outs = [np.empty(np.shape(w), np.asarray(w).dtype) for w in want]
    descs = [_descriptor(a) for a in (*xs, *outs)]
    args = [ctypes.c_void_p(ctypes.addressof(d)) for d in descs]
    fn.argtypes = [ctypes.c_void_p] * len(args)
    fn(*args)
    err = _compare(case, tuple(outs), want)
    t_gpu = _time(lambda: fn(*args)) if err is None else None
    t_np = _time(lambda: case.ref(*xs)) if err is None else None
    _report(f"{case.name}.{so.split('.')[1]}", case, err, t_gpu, t_np)
    print(f"     module load {t_load * 1e3:.1f} ms", flush=True)
    return 0 if err is None else 1


def run(out: pathlib.Path) -> int:
    print(f"driver: {_driver_info()}", flush=True)
    manifest = json.loads((out / "manifest.json").read_text())
    fails = 0
    t_all = time.perf_counter()
    for item in manifest:
        tag = item["so"][:-3]
        try:
            cmd = [sys.executable, __file__, "run-one", str(out), item["so"], item["case"], item["func"]]
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
            sys.stdout.write(p.stdout)
            if p.stderr.strip():
                print("     stderr: " + p.stderr.strip().replace("\n", "\n     stderr: ")[:3000])
            if p.returncode != 0:
                fails += 1
                if not p.stdout.strip():
                    print(f"FAIL {tag}: subprocess exited with {p.returncode} (negative = signal)")
        except subprocess.TimeoutExpired:
            fails += 1
            print(f"FAIL {tag}: timed out after 60 s")
        sys.stdout.flush()
    print(f"SUMMARY: {len(manifest) - fails}/{len(manifest)} passed in {time.perf_counter() - t_all:.1f} s")
    return 1 if fails else 0


# ---------------------------------------------------------------------------------------------------------
# in-process: GpuExecutable (needs MLIR and a device)


def in_process() -> int:
    from mlir import ir

    from lean_mlir.backends.gpu import GpuExecutable, cuda_available

    print(f"driver: {_driver_info()}", flush=True)
    if not cuda_available():
        print("SKIP: no CUDA device; use `build DIR` here and `run DIR` on the GPU machine")
        return 0
    fails = 0
    for case in CASES:
        try:
            with ir.Context():
                t0 = time.perf_counter()
                ex = GpuExecutable(ir.Module.parse(case.mlir))
                fn = ex.entry(case.func)
                xs = case.make_inputs()
                got = fn(*xs)
                t_first = time.perf_counter() - t0
                want = case.ref(*xs)
                err = _compare(case, got, want)
                t_gpu = _time(lambda fn=fn, xs=xs: fn(*xs)) if err is None else None
                t_np = _time(lambda case=case, xs=xs: case.ref(*xs)) if err is None else None
        except Exception as e:
            err, t_gpu, t_np, t_first = f"{type(e).__name__}: {e}", None, None, 0.0
        fails += err is not None
        _report(f"{case.name}.{ex.chip if err is None else ''}", case, err, t_gpu, t_np)
        print(f"     compile + load + first call {t_first:.2f} s", flush=True)
    print(f"SUMMARY: {len(CASES) - fails}/{len(CASES)} passed")
    return 1 if fails else 0


def main(argv: list[str]) -> int:
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    if len(argv) >= 2 and argv[0] == "build":
        return build(pathlib.Path(argv[1]), argv[2:] or None)
    if len(argv) >= 2 and argv[0] == "run":
        return run(pathlib.Path(argv[1]))
    if len(argv) == 5 and argv[0] == "run-one":
        return run_one(pathlib.Path(argv[1]), argv[2], argv[3], argv[4])
    if not argv:
        return in_process()
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
