"""Hand-written linalg-on-tensors kernels with NumPy references, for the GPU back end's tests and the
device smoke script (benchmarks/gpu_smoke.py), and the comparisons of device results with references
that those and benchmarks/gpu_lean_smoke.py share. NumPy only: the device scripts import this on a
machine without MLIR."""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

DTYPES = {"f32": np.float32, "f64": np.float64}


@dataclass
class Case:
    """One kernel: its MLIR module, the entry function, input (shape, dtype)s and a NumPy reference."""

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


def compare(case: Case, got: tuple[np.ndarray, ...], want: tuple[np.ndarray, ...]) -> str | None:
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


def max_error(got: np.ndarray, want: np.ndarray) -> float:
    """max |got - want| / max(1, max |want|); NaN/inf must match exactly (else inf)."""
    if got.shape != want.shape or got.dtype != want.dtype:
        return float("inf")
    g, w = got.astype(np.float64), want.astype(np.float64)
    same = (g == w) | (np.isnan(g) & np.isnan(w))
    with np.errstate(invalid="ignore"):
        diff = np.where(same, 0.0, np.abs(g - w))
    if diff.size == 0:
        return 0.0
    err = float(np.max(diff))
    finite = np.abs(w[np.isfinite(w)])
    err /= max(1.0, float(finite.max(initial=0.0)))
    return err if np.isfinite(err) else float("inf")
