"""The CPU executable (backends/cpu) and packed calls (runtime/packed.py, runtime/validate.py) on hand-written
linalg-on-tensors modules, against NumPy: values, entry points, threads, memory, input coercion."""

from __future__ import annotations

import gc
import math

import numpy as np
import pytest
from support import build, rss_mb, run_threads

from lean_mlir.backends.cpu import CpuExecutable
from lean_mlir.runtime import packed
from lean_mlir.runtime.validate import coerce_inputs
from workloads.linalg_modules import MATMUL, UNARY

CHAIN = """
#m = affine_map<(d0, d1) -> (d0, d1)>
func.func @chain(%a: tensor<{s}x{t}>, %b: tensor<{s}x{t}>) -> tensor<{s}x{t}> {{
  %e = tensor.empty() : tensor<{s}x{t}>
  %0 = linalg.add ins(%a, %b : tensor<{s}x{t}>, tensor<{s}x{t}>) outs(%e : tensor<{s}x{t}>) -> tensor<{s}x{t}>
  %1 = linalg.exp ins(%0 : tensor<{s}x{t}>) outs(%e : tensor<{s}x{t}>) -> tensor<{s}x{t}>
  %2 = linalg.generic {{indexing_maps = [#m, #m, #m], iterator_types = ["parallel", "parallel"]}}
      ins(%1, %a : tensor<{s}x{t}>, tensor<{s}x{t}>) outs(%e : tensor<{s}x{t}>) {{
  ^bb0(%x: {t}, %y: {t}, %o: {t}):
    %th = math.tanh %x : {t}
    %l = math.log1p %y : {t}
    %p = math.powf %th, %y : {t}
    %er = math.erf %l : {t}
    %sn = math.sin %y : {t}
    %cs = math.cos %y : {t}
    %sq = math.sqrt %x : {t}
    %lg = math.log %x : {t}
    %r0 = arith.addf %p, %er : {t}
    %r1 = arith.mulf %sn, %cs : {t}
    %r2 = arith.divf %sq, %lg : {t}
    %r3 = arith.addf %r0, %r1 : {t}
    %r4 = arith.subf %r3, %r2 : {t}
    linalg.yield %r4 : {t}
  }} -> tensor<{s}x{t}>
  return %2 : tensor<{s}x{t}>
}}
"""


def chain_ref(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    x = np.exp(a64 + b64)
    erf = np.vectorize(math.erf)
    return (np.tanh(x) ** a64 + erf(np.log1p(a64)) + np.sin(a64) * np.cos(a64) - np.sqrt(x) / np.log(x))


@pytest.mark.parametrize("t,np_t,tol", [("f32", np.float32, 2e-6), ("f64", np.float64, 1e-14)])
@pytest.mark.parametrize("shape", ["8x16", "4x128"])  # 4x128: innermost divides the vector tile
def test_elementwise_chain_math(t: str, np_t: type, tol: float, shape: str, rng: np.random.Generator) -> None:
    exe, stages = build(CHAIN.format(t=t, s=shape))
    # fusion happened: one generic with all the math, no separate linalg.exp/add
    assert stages["linalg"].count("linalg.generic") == 1 and "linalg.exp" not in stages["linalg"]
    if shape == "4x128":
        assert "vector.transfer_read" in stages["scheduled"]  # the elementwise vector schedule ran
    dims = tuple(int(d) for d in shape.split("x"))
    a = rng.uniform(0.1, 1.0, dims).astype(np_t)
    b = rng.uniform(0.1, 1.0, dims).astype(np_t)
    (r,) = exe.entry("chain")(a, b)
    assert r.dtype == np_t and r.shape == dims
    np.testing.assert_allclose(r, chain_ref(a, b), rtol=tol, atol=tol)


def test_log1p_precise_for_tiny_inputs() -> None:
    for t, np_t in (("f32", np.float32), ("f64", np.float64)):
        exe, _ = build(UNARY.format(n=4, t=t, op="log1p"))
        x = np.array([1e-12, -3e-9, 2e-20, 0.5], np_t)
        np.testing.assert_allclose(exe.entry("f")(x)[0], np.log1p(x), rtol=1e-6)


@pytest.mark.parametrize(
    "m,k,n,t,scheduled",
    # narrow or odd shapes get a smaller register tile (whole rows of C); k = 1 or an n that no
    # tile width divides stays plain loops
    [(64, 64, 64, "f32", True), (256, 128, 512, "f32", True), (7, 3, 5, "f32", True),
     (64, 64, 64, "f64", True), (96, 64, 160, "f64", True), (7, 3, 5, "f64", True),
     (16, 1, 32, "f32", False), (24, 40, 30, "f32", True), (256, 64, 10, "f32", True),
     (6, 9, 48, "f32", True), (5, 3, 37, "f32", False), (12, 7, 37, "f64", False)],
)
def test_matmul(m: int, k: int, n: int, t: str, scheduled: bool, rng: np.random.Generator) -> None:
    exe, stages = build(MATMUL.format(m=m, k=k, n=n, t=t))
    assert ("vector.fma" in stages["scheduled"]) == scheduled
    np_t = np.float32 if t == "f32" else np.float64
    a = rng.standard_normal((m, k)).astype(np_t)
    b = rng.standard_normal((k, n)).astype(np_t)
    (c,) = exe.entry("mm")(a, b)
    ref = a.astype(np.float64) @ b.astype(np.float64)
    np.testing.assert_allclose(c, ref, rtol=1e-4 if t == "f32" else 1e-12, atol=1e-4 if t == "f32" else 1e-12)


def test_batch_matmul(rng: np.random.Generator) -> None:
    text = """
    func.func @bmm(%a: tensor<3x16x8xf32>, %b: tensor<3x8x64xf32>) -> tensor<3x16x64xf32> {
      %z = arith.constant 0.0 : f32
      %e = tensor.empty() : tensor<3x16x64xf32>
      %f = linalg.fill ins(%z : f32) outs(%e : tensor<3x16x64xf32>) -> tensor<3x16x64xf32>
      %r = linalg.batch_matmul ins(%a, %b : tensor<3x16x8xf32>, tensor<3x8x64xf32>)
                               outs(%f : tensor<3x16x64xf32>) -> tensor<3x16x64xf32>
      return %r : tensor<3x16x64xf32>
    }
    """
    exe, stages = build(text)
    assert "vector.fma" in stages["scheduled"]
    a = rng.standard_normal((3, 16, 8)).astype(np.float32)
    b = rng.standard_normal((3, 8, 64)).astype(np.float32)
    np.testing.assert_allclose(exe.entry("bmm")(a, b)[0], a @ b, rtol=1e-5, atol=1e-5)


MISC = """
func.func @rowsum_and_total(%a: tensor<5x7xf64>) -> (tensor<5xf64>, tensor<f64>) {
  %z = arith.constant 0.0 : f64
  %e1 = tensor.empty() : tensor<5xf64>
  %f1 = linalg.fill ins(%z : f64) outs(%e1 : tensor<5xf64>) -> tensor<5xf64>
  %rows = linalg.reduce ins(%a : tensor<5x7xf64>) outs(%f1 : tensor<5xf64>) dimensions = [1]
    (%x: f64, %acc: f64) { %s = arith.addf %x, %acc : f64  linalg.yield %s : f64 }
  %e0 = tensor.empty() : tensor<f64>
  %f0 = linalg.fill ins(%z : f64) outs(%e0 : tensor<f64>) -> tensor<f64>
  %tot = linalg.reduce ins(%a : tensor<5x7xf64>) outs(%f0 : tensor<f64>) dimensions = [0, 1]
    (%x: f64, %acc: f64) { %s = arith.addf %x, %acc : f64  linalg.yield %s : f64 }
  return %rows, %tot : tensor<5xf64>, tensor<f64>
}
func.func @max_cols(%a: tensor<4x6xf32>) -> tensor<6xf32> {
  %ninf = arith.constant 0xFF800000 : f32
  %e = tensor.empty() : tensor<6xf32>
  %f = linalg.fill ins(%ninf : f32) outs(%e : tensor<6xf32>) -> tensor<6xf32>
  %r = linalg.reduce ins(%a : tensor<4x6xf32>) outs(%f : tensor<6xf32>) dimensions = [0]
    (%x: f32, %acc: f32) { %m = arith.maximumf %x, %acc : f32  linalg.yield %m : f32 }
  return %r : tensor<6xf32>
}
func.func @zero(%a: tensor<0x4xf32>, %b: tensor<4x3xf32>) -> (tensor<0x3xf32>, tensor<3xf32>) {
  %z = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<0x3xf32>
  %f = linalg.fill ins(%z : f32) outs(%e : tensor<0x3xf32>) -> tensor<0x3xf32>
  %r = linalg.matmul ins(%a, %b : tensor<0x4xf32>, tensor<4x3xf32>)
                     outs(%f : tensor<0x3xf32>) -> tensor<0x3xf32>
  %e3 = tensor.empty() : tensor<3xf32>
  %f3 = linalg.fill ins(%z : f32) outs(%e3 : tensor<3xf32>) -> tensor<3xf32>
  %s = linalg.reduce ins(%r : tensor<0x3xf32>) outs(%f3 : tensor<3xf32>) dimensions = [0]
    (%x: f32, %acc: f32) { %t = arith.addf %x, %acc : f32  linalg.yield %t : f32 }
  return %r, %s : tensor<0x3xf32>, tensor<3xf32>
}
func.func @scalar(%a: tensor<f32>, %b: tensor<f32>) -> tensor<f32> {
  %e = tensor.empty() : tensor<f32>
  %r = linalg.mul ins(%a, %b : tensor<f32>, tensor<f32>) outs(%e : tensor<f32>) -> tensor<f32>
  return %r : tensor<f32>
}
#id = affine_map<(d0) -> (d0)>
func.func @accumulate(%a: tensor<4xf32>, %b: tensor<4xf32>) -> (tensor<4xf32>, tensor<4xf32>) {
  %r = linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel"]}
      ins(%b : tensor<4xf32>) outs(%a : tensor<4xf32>) {
  ^bb0(%x: f32, %o: f32):
    %s = arith.addf %x, %o : f32
    linalg.yield %s : f32
  } -> tensor<4xf32>
  return %r, %a : tensor<4xf32>, tensor<4xf32>
}
func.func @rank5(%a: tensor<2x1x3x2x64xf64>) -> tensor<2x1x3x2x64xf64> {
  %e = tensor.empty() : tensor<2x1x3x2x64xf64>
  %r = linalg.mul ins(%a, %a : tensor<2x1x3x2x64xf64>, tensor<2x1x3x2x64xf64>)
                  outs(%e : tensor<2x1x3x2x64xf64>) -> tensor<2x1x3x2x64xf64>
  return %r : tensor<2x1x3x2x64xf64>
}
"""


@pytest.fixture(scope="module")
def misc() -> CpuExecutable:
    return build(MISC)[0]


def test_reductions_multiple_results_rank0(misc: CpuExecutable, rng: np.random.Generator) -> None:
    a = rng.standard_normal((5, 7))
    rows, tot = misc.entry("rowsum_and_total")(a)
    assert rows.shape == (5,) and tot.shape == () and tot.dtype == np.float64
    np.testing.assert_allclose(rows, a.sum(1), rtol=1e-13)
    np.testing.assert_allclose(tot, a.sum(), rtol=1e-13)
    b = rng.standard_normal((4, 6)).astype(np.float32)
    np.testing.assert_array_equal(misc.entry("max_cols")(b)[0], b.max(0))
    (s,) = misc.entry("scalar")(np.array(3.0, np.float32), np.array(-2.5, np.float32))
    assert s.shape == () and float(s) == -7.5


def test_zero_size_dims(misc: CpuExecutable) -> None:
    r, s = misc.entry("zero")(np.empty((0, 4), np.float32), np.ones((4, 3), np.float32))
    assert r.shape == (0, 3)
    np.testing.assert_array_equal(s, np.zeros(3, np.float32))


def test_inputs_never_mutated_and_outputs_fresh(misc: CpuExecutable) -> None:
    a, b = np.arange(4, dtype=np.float32), np.full(4, 10, np.float32)
    keep = a.copy()
    acc = misc.entry("accumulate")
    r1, r2 = acc(a, b)
    np.testing.assert_array_equal(a, keep)  # `outs(%arg0)` must not write into the caller's array
    np.testing.assert_array_equal(r1, keep + b)
    np.testing.assert_array_equal(r2, keep)
    s1, s2 = acc(a, b)
    assert not np.shares_memory(s1, r1) and not np.shares_memory(r2, s2) and not np.shares_memory(r2, a)


def test_rank5(misc: CpuExecutable, rng: np.random.Generator) -> None:
    a = rng.standard_normal((2, 1, 3, 2, 64))
    np.testing.assert_array_equal(misc.entry("rank5")(a)[0], a * a)


def test_signatures_and_entry_errors(misc: CpuExecutable) -> None:
    ins, outs = misc.signatures["zero"]
    assert ins == [((0, 4), np.dtype(np.float32)), ((4, 3), np.dtype(np.float32))]
    assert outs == [((0, 3), np.dtype(np.float32)), ((3,), np.dtype(np.float32))]
    with pytest.raises(KeyError, match="nosuch"):
        misc.entry("nosuch")
    with pytest.raises(TypeError, match="expected 1 inputs, got 2"):
        misc.entry("rank5")(np.zeros(1), np.zeros(1))


def test_thread_safety(rng: np.random.Generator) -> None:
    exe, _ = build(CHAIN.format(t="f64", s="16x64"))
    chain = exe.entry("chain")
    n_threads, n_calls = 8, 200
    inputs = [(rng.uniform(0.1, 1, (16, 64)), rng.uniform(0.1, 1, (16, 64))) for _ in range(n_threads)]
    expected = [chain(a, b)[0] for a, b in inputs]  # single-threaded results

    def work(i: int) -> None:
        a, b = inputs[i]
        for k in range(n_calls):
            (r,) = chain(a, b)
            assert np.array_equal(r, expected[i]), f"thread {i} call {k}"

    run_threads(work, n_threads)
    assert not np.array_equal(expected[0], expected[1])  # the threads really computed different things


def test_no_memory_growth_over_many_calls(misc: CpuExecutable, rng: np.random.Generator) -> None:
    f = misc.entry("rowsum_and_total")
    a = rng.standard_normal((5, 7))
    for _ in range(2000):
        f(a)
    gc.collect()
    before = rss_mb()
    for _ in range(20_000):
        f(a)
    gc.collect()
    assert rss_mb() - before < 4.0


def test_compiles_are_released() -> None:
    text = CHAIN.format(t="f32", s="8x16")

    def compile_and_run() -> None:
        exe, _ = build(text)
        a = np.full((8, 16), 0.5, np.float32)
        exe.entry("chain")(a, a)

    for _ in range(5):
        compile_and_run()
    gc.collect()
    before = rss_mb()
    for _ in range(50):
        compile_and_run()
    gc.collect()
    grown = rss_mb() - before
    assert grown < 20.0, f"RSS grew {grown:.1f} MB over 50 compiles"


# ----- validate.coerce_inputs -----

SPECS = [((8, 4), np.dtype(np.float32)), ((3,), np.dtype(np.float64)), ((), np.dtype(np.float32))]


def good() -> list[object]:
    return [np.ones((8, 4), np.float32), np.zeros(3), np.array(1.5, np.float32)]


def test_coerce_fast_path_returns_same_objects() -> None:
    vals = good()
    out = coerce_inputs(SPECS, vals)
    assert all(o is v for o, v in zip(out, vals, strict=True))


@pytest.mark.parametrize(
    "index,value,exc,message",
    [
        (0, np.ones((8, 4), np.float64), TypeError, "input 0: expected dtype float32, got float64"),
        (1, np.ones(3, np.float32), TypeError, "input 1: expected dtype float64, got float32"),
        (0, np.ones((4, 8), np.float32), ValueError, r"input 0: expected shape \(8, 4\), got \(4, 8\)"),
        (1, np.ones(3, np.int64), TypeError, "input 1: expected dtype float64, got int64"),
        (1, np.ones(3, bool), TypeError, "input 1: expected dtype float64, got bool"),
        (1, np.ones(3, complex), TypeError, "input 1: expected dtype float64, got complex128"),
        (1, np.array([1.0, None, 2.0], object), TypeError, "input 1: expected dtype float64, got object"),
        (2, np.float64(2.0), TypeError, "input 2: expected dtype float32, got float64"),
        (2, True, TypeError, "input 2"),
        (1, [1.0, 2.0, 3j], TypeError, "input 1: expected float64 values, got complex128"),
        (1, [1.0, 2.0], ValueError, r"input 1: expected shape \(3,\), got \(2,\)"),
        (1, "abc", TypeError, "input 1"),
    ],
)
def test_coerce_errors(index: int, value: object, exc: type, message: str) -> None:
    vals = good()
    vals[index] = value
    with pytest.raises(exc, match=message):
        coerce_inputs(SPECS, vals)


def test_coerce_count() -> None:
    with pytest.raises(TypeError, match="expected 3 inputs, got 2"):
        coerce_inputs(SPECS, good()[:2])
    with pytest.raises(TypeError, match="expected 1 seed, got 0"):
        coerce_inputs(SPECS[:1], [], what="seed")


def test_coerce_conversions_give_correct_results(rng: np.random.Generator) -> None:
    exe, _ = build(MATMUL.format(m=8, k=4, n=3, t="f32"))
    mm = exe.entry("mm")
    a = rng.standard_normal((8, 4)).astype(np.float32)
    b = rng.standard_normal((4, 3)).astype(np.float32)
    ref = mm(a, b)[0]
    fortran = np.asfortranarray(a)
    strided = np.ascontiguousarray(np.repeat(b, 2, axis=1))[:, ::2]
    swapped = a.astype(a.dtype.newbyteorder())
    assert not fortran.flags.c_contiguous and not strided.flags.c_contiguous
    for x, y in [(fortran, b), (a, strided), (a.tolist(), b.tolist()), (swapped, b), (fortran, strided)]:
        xs = coerce_inputs(mm.inputs, [x, y])
        assert all(v.flags.c_contiguous and v.dtype == np.float32 for v in xs)
        np.testing.assert_allclose(mm(*xs)[0], ref, rtol=1e-6, atol=1e-6)
    # Python scalars and ints convert; rank-0 specs accept them
    (s,) = coerce_inputs([((), np.dtype(np.float64))], [3])
    assert s.dtype == np.float64 and s.shape == () and float(s) == 3.0


def test_fallback_pointer_path(monkeypatch: pytest.MonkeyPatch, rng: np.random.Generator) -> None:
    """Without the PyArrayObject layout shortcut, `a.ctypes.data` is used; same results."""
    monkeypatch.setattr(packed, "_DATA_OFFSET", None)
    exe, _ = build(MATMUL.format(m=7, k=3, n=5, t="f64"))
    a, b = rng.standard_normal((7, 3)), rng.standard_normal((3, 5))
    np.testing.assert_allclose(exe.entry("mm")(a, b)[0], a @ b, rtol=1e-13)
