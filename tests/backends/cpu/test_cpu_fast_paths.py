"""The CPU back end's fast paths give the same answers as the plain ones: SIMD math (libmvec) against
NumPy incl. large |x|, inf and nan; vectorized 1-D reductions; matmuls split across threads against
the single-threaded schedule. No timing assertions here (see benchmarks/bench.py)."""

from __future__ import annotations

import re

import numpy as np
import pytest
from support import build

import lean_mlir as lm
from lean_mlir.backends.cpu.schedules.common import PARALLEL_MIN_MACS
from lean_mlir.backends.cpu.target import host
from lean_mlir.backends.cpu.vecmath import vector_math
from workloads.linalg_modules import MATMUL, UNARY

SUM = """
#m = affine_map<(d0) -> (d0)>
#s = affine_map<(d0) -> ()>
func.func @f(%a: tensor<{n}x{t}>) -> tensor<{t}> {{
  %z = arith.constant 0.0 : {t}
  %e = tensor.empty() : tensor<{t}>
  %f = linalg.fill ins(%z : {t}) outs(%e : tensor<{t}>) -> tensor<{t}>
  %r = linalg.generic {{indexing_maps = [#m, #s], iterator_types = ["reduction"]}}
      ins(%a : tensor<{n}x{t}>) outs(%f : tensor<{t}>) {{
  ^bb0(%x: {t}, %acc: {t}):
    %y = math.exp %x : {t}
    %s = arith.addf %y, %acc : {t}
    linalg.yield %s : {t}
  }} -> tensor<{t}>
  return %r : tensor<{t}>
}}
"""

NP = {"f32": np.float32, "f64": np.float64}
REF = {"exp": np.exp, "tanh": np.tanh, "sin": np.sin, "cos": np.cos, "log": np.log, "log1p": np.log1p,
       "expm1": np.expm1}


def inputs(op: str, n: int, dt: type, rng: np.random.Generator) -> np.ndarray:
    special = [0.0, -0.0, 1e-30, -1e-30, 1e-7, np.inf, -np.inf, np.nan, 88.0, 88.8, -87.0, -104.0, 20.0, -20.0,
               9.5, -9.5, 1e4, -1e4, 3e5, 1e-45 if dt is np.float32 else 1e-320]
    x = rng.uniform(-10, 10, n).astype(dt)
    x[: len(special)] = np.asarray(special, dt)
    if op in ("log", "log1p"):
        x[len(special):] = np.abs(x[len(special):]) * rng.choice([1e-6, 1.0, 1e6], n - len(special))
    return x


@pytest.mark.parametrize("t", ["f32", "f64"])
@pytest.mark.parametrize("op", sorted(REF))
def test_simd_math_matches_numpy(op: str, t: str, rng: np.random.Generator) -> None:
    n = 1024
    exe, stages = build(UNARY.format(n=n, t=t, op=op))
    vm = vector_math(host())
    if op == "tanh" and t == "f32" and lm.Options().fast_tanh:
        assert vm is None or vm.symbol(op, t) not in stages["llvm"]  # inlined rational approximation
    elif vm is not None and op in vm.ops:
        assert vm.symbol(op, t) in stages["llvm"]  # the SIMD path was taken
    dt = NP[t]
    x = inputs(op, n, dt, rng)
    with np.errstate(all="ignore"):
        want = REF[op](x.astype(np.float64)).astype(dt)
        got = exe("f", x)[0]
    assert np.array_equal(np.isnan(got), np.isnan(want)), op  # nan where NumPy has nan, nowhere else
    fin = np.isfinite(want)
    assert np.array_equal(got[~fin & ~np.isnan(want)], want[~fin & ~np.isnan(want)])  # same infinities
    rtol = 1e-5 if t == "f32" else 1e-13
    tiny = np.finfo(dt).tiny
    np.testing.assert_allclose(got[fin], want[fin], rtol=rtol, atol=tiny * 16)


@pytest.mark.parametrize("fast", [True, False])
def test_fast_tanh_f32_error_bound(fast: bool, rng: np.random.Generator) -> None:
    """The inlined f32 tanh (Eigen's / XLA's rational approximation): <= 5 ulp and <= 3e-7 absolute
    against float64 tanh on a dense sweep and tiny |x|; exact signs, +-1 at +-inf, nan kept.
    LEAN_MLIR_FAST_TANH=0 (FAST_TANH False) keeps libmvec."""
    sweep = np.linspace(-12, 12, 1 << 16)
    logs = np.sign(rng.standard_normal(1 << 15)) * np.logspace(-9, 1.3, 1 << 15)
    special = [0.0, -0.0, 1e-30, -1e-30, 4e-4, -4e-4, 3.999e-4, 7.9988, 8.0, -8.0, np.inf, -np.inf, np.nan]
    x = np.concatenate([sweep, logs, special, np.zeros(32 - len(special))]).astype(np.float32)
    exe, stages = build(UNARY.format(n=x.size, t="f32", op="tanh"), lm.Options(fast_tanh=fast))
    assert ("vector.fma" in stages["llvm"] or "llvm.intr.fma" in stages["llvm"]) == fast
    got = exe("f", x)[0]
    want = np.tanh(x.astype(np.float64))
    fin = np.isfinite(x)
    err = np.abs(got[fin].astype(np.float64) - want[fin])
    ulp = np.spacing(np.abs(want[fin]).astype(np.float32)).astype(np.float64)
    assert err.max() <= 3e-7
    assert (err / ulp).max() <= 5.0
    assert np.array_equal(np.signbit(got[fin]), np.signbit(x[fin]))
    assert got[x == np.inf].tolist() == [1.0] and got[x == -np.inf].tolist() == [-1.0]
    assert np.isnan(got[np.isnan(x)]).all()
    assert np.abs(got[~np.isnan(x)]).max() <= 1.0


@pytest.mark.parametrize("t", ["f32", "f64"])
@pytest.mark.parametrize("n", [128, 4096, 64 * 3 + 1])  # 193: not a multiple of the vector tile
def test_vectorized_sum_reduction(t: str, n: int, rng: np.random.Generator) -> None:
    exe, stages = build(SUM.format(n=n, t=t))
    if n % host().elementwise_vector(t) == 0:
        assert "vector.reduction" in stages["scheduled"]
    x = rng.uniform(-2, 2, n).astype(NP[t])
    got = float(exe("f", x)[0])
    want = float(np.exp(x.astype(np.float64)).sum())
    assert abs(got - want) <= (1e-5 if t == "f32" else 1e-12) * abs(want)


def test_threaded_matmul_equals_single_thread(rng: np.random.Generator) -> None:
    n = 256  # 2^24 multiply-adds: above PARALLEL_MIN_MACS
    assert n**3 >= PARALLEL_MIN_MACS
    a, b = rng.standard_normal((n, n), dtype=np.float32), rng.standard_normal((n, n), dtype=np.float32)
    results = {}
    for k in ("1", "2"):
        exe, stages = build(MATMUL.format(m=n, k=n, n=n, t="f32"), lm.Options(threads=int(k)))
        assert ("scf.forall" in stages["scheduled"]) == (k == "2")
        assert ("__lean_pool_submit" in stages["llvm"]) == (k == "2")
        results[k] = [exe("mm", a, b)[0] for _ in range(3)]
    ref = a.astype(np.float64) @ b.astype(np.float64)
    for r in results["1"] + results["2"]:
        np.testing.assert_allclose(r, ref, rtol=1e-4, atol=1e-3)
    # same tiles, same k order: the thread split does not change a single rounding
    for r in results["2"]:
        np.testing.assert_array_equal(r, results["1"][0])


@pytest.mark.parametrize("m, k, n", [(64, 256, 512), (256, 128, 64)])
def test_thread_split_by_columns_or_rows(m: int, k: int, n: int, rng: np.random.Generator) -> None:
    """n > m splits C by columns (each thread reads half of B), else by rows; both equal one thread
    bit for bit (same tiles, same k order) and NumPy to rounding."""
    assert m * n * k >= PARALLEL_MIN_MACS
    a, b = rng.standard_normal((m, k), dtype=np.float32), rng.standard_normal((k, n), dtype=np.float32)
    results = {}
    for t in ("1", "2"):
        o = lm.compile_out(lambda x, y: x @ y, lm.f32[m, k], lm.f32[k, n], options=lm.Options(threads=int(t)))
        sched = o.ir("scheduled")
        if t == "2":
            split = re.search(r"tensor.extract_slice %arg1\[0, %\w+\] \[" + str(k) + ", " + str(n // 2), sched)
            assert ("scf.forall" in sched) and bool(split) == (n > m), sched[:2000]
        results[t] = o.forward(a, b)
    np.testing.assert_array_equal(results["2"], results["1"])
    np.testing.assert_allclose(results["1"], a.astype(np.float64) @ b, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("shape", [(1001,), (3, 77), (100_001,)])
@pytest.mark.parametrize("t", ["f32", "f64"])
def test_rows_no_vector_length_divides_are_masked(shape: tuple[int, ...], t: str, rng: np.random.Generator) -> None:
    """An innermost dimension no vector length divides (odd) is vectorized with a masked last vector
    instead of falling back to scalar code; values as NumPy."""
    o = lm.compile_out(lambda a: lm.exp(lm.sin(a) * a + lm.tanh(a)), lm.Spec(shape, t))
    assert "vector.create_mask" in o.ir("scheduled")
    x = rng.uniform(-3, 3, shape).astype(t.replace("f", "float"))
    x64 = x.astype(np.float64)
    tol = 3e-6 if t == "f32" else 1e-13
    np.testing.assert_allclose(o.forward(x), np.exp(np.sin(x64) * x64 + np.tanh(x64)), rtol=tol, atol=tol)


@pytest.mark.parametrize("shape", [(3, 1024), (256, 1000), (2, 3, 128), (600, 2048)])
@pytest.mark.parametrize("t", ["f32", "f64"])
def test_row_reductions_are_vectorized_and_exact(shape: tuple[int, ...], t: str) -> None:
    """sum / max / logsumexp along the last axis (softmax's, layer norm's): vector partials per row,
    rows split across threads when large; values as NumPy's."""
    dt = np.float32 if t == "f32" else np.float64
    x = np.random.default_rng(12).standard_normal(shape).astype(dt)
    fns = {"sum": (lambda v: lm.sum(v, axis=-1), lambda v: v.sum(-1)),
           "max": (lambda v: lm.max(v, axis=-1), lambda v: v.max(-1)),
           "logsumexp": (lambda v: lm.logsumexp(v, axis=-1), lambda v: np.log(np.exp(v).sum(-1)))}
    for name, (fn, ref) in fns.items():
        o = lm.compile_out(fn, lm.Spec(shape, t))
        vec = host().reduction_vector(t)
        if shape[-1] % vec == 0:
            assert re.search(rf"vector<{vec}x{t}>", o.ir("scheduled")), name
        tol = 2e-6 if t == "f32" else 1e-13
        np.testing.assert_allclose(o.forward(x), ref(x.astype(np.float64)), rtol=tol, atol=tol * np.sqrt(shape[-1]))


@pytest.mark.parametrize("t", ["f32", "f64"])
def test_exp_of_large_negatives_is_zero_without_the_slow_path(t: str) -> None:
    """libmvec's exp has a slow path near its underflow bound (a softmax after a -1e9 mask): lanes below
    exp's bound (-87 f32, -708 f64) give exactly 0, NaN stays NaN, the rest is libmvec's exp."""
    from lean_mlir.backends.cpu.vecmath import _EXP_LOW

    dt = NP[t]
    low = _EXP_LOW[t]
    x = np.array([-1e9, -np.inf, np.nan, low - 1, low - 1e-3, low, low + 1, -20.0, 0.0, 1.0, 50.0, np.inf] * 8, dt)
    exe, stages = build(UNARY.format(n=x.size, t=t, op="exp"))
    vm = vector_math(host())
    if vm is None or "exp" not in vm.ops:
        pytest.skip("no libmvec exp on this host")
    got = exe("f", x)[0]
    with np.errstate(all="ignore"):
        want = np.exp(x.astype(np.float64)).astype(dt)
    below = x < low
    assert np.all(got[below] == 0) and np.isnan(got[np.isnan(x)]).all()
    keep = ~below & ~np.isnan(x)
    np.testing.assert_allclose(got[keep], want[keep], rtol=1e-5 if t == "f32" else 1e-13)
