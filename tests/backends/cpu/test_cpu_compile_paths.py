"""The CPU back end's compile-time paths give the same answers as the plain ones: contractions
outlined into one kernel per kind (`lean_mlir.backends.cpu.outline`) against inline ones, and the
coroutine-free thread split (`lean_mlir.backends.cpu.threads`) against one thread. No timing assertions."""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np
import pytest
from support import build, randn

import lean_mlir as lm
from lean_mlir.backends.cpu.schedules.matmul import _register_tile
from lean_mlir.backends.cpu.target import host
from workloads.models import mlp3_mse, mlp3_shapes


def _mlp_case(b: int, w: int) -> tuple[list[lm.Spec], list[np.ndarray]]:
    shapes = mlp3_shapes(b, w)
    return [lm.Spec(s, "f32") for s in shapes], randn(shapes, "f32", seed=5, scale=0.3)


@pytest.mark.parametrize("threads", [1, 2])
def test_outlined_matmuls_equal_inline(set_threads: Callable[[int], None], threads: int) -> None:
    """Forward, VJP and JVP of an MLP: one kernel per matmul kind, bit-identical to inline matmuls."""
    set_threads(threads)
    specs, xs = _mlp_case(64, 256)
    out = {}
    for outline in (False, True):
        c = lm.compile_scalar(mlp3_mse, *specs, wrt=[2, 3, 4, 5, 6, 7], options=lm.Options(outline=outline))
        sched = c.ir("scheduled")
        kernels = re.findall(r"func\.func private @(__lean_\w+)", sched)
        calls = re.findall(r"call @(__lean_\w+)", sched)
        if outline:
            assert kernels and len(kernels) == len(set(kernels))
            assert len(calls) > len(kernels)  # several uses share a kernel
            assert "linalg.matmul" not in sched.split("func.func private")[0]
        else:
            assert not kernels
        out[outline] = (c.forward(*xs), c.value_and_backward(*xs), c.jvp(xs, xs[2:]))
    (f0, (v0, g0), (j0, dj0)), (f1, (v1, g1), (j1, dj1)) = out[False], out[True]
    assert f0 == f1 and v0 == v1 and j0 == j1 and dj0 == dj1
    for a, b in zip(g0, g1, strict=True):
        np.testing.assert_array_equal(a, b)
    # and the compiled gradients are right (eager NumPy interpreter as the oracle)
    e = lm.compile_scalar(mlp3_mse, *specs, wrt=[2, 3, 4, 5, 6, 7], backend="eager")
    ve, ge = e.value_and_backward(*xs)
    assert abs(v1 - ve) <= 1e-5 * abs(ve)
    for a, b in zip(g1, ge, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5)


ACC = """
func.func @f(%a: tensor<{m}x{k}xf32>, %b: tensor<{k}x{n}xf32>, %c: tensor<{m}x{n}xf32>)
    -> (tensor<{m}x{n}xf32>, tensor<{m}x{n}xf32>) {{
  %r = linalg.matmul ins(%a, %b : tensor<{m}x{k}xf32>, tensor<{k}x{n}xf32>)
      outs(%c : tensor<{m}x{n}xf32>) -> tensor<{m}x{n}xf32>
  %z = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<{m}x{n}xf32>
  %f = linalg.fill ins(%z : f32) outs(%e : tensor<{m}x{n}xf32>) -> tensor<{m}x{n}xf32>
  %s = linalg.matmul ins(%a, %b : tensor<{m}x{k}xf32>, tensor<{k}x{n}xf32>)
      outs(%f : tensor<{m}x{n}xf32>) -> tensor<{m}x{n}xf32>
  return %r, %s : tensor<{m}x{n}xf32>, tensor<{m}x{n}xf32>
}}
"""

BATCH = """
func.func @f(%a: tensor<3x{m}x{k}xf64>, %b: tensor<3x{k}x{n}xf64>) -> tensor<3x{m}x{n}xf64> {{
  %z = arith.constant 0.0 : f64
  %e = tensor.empty() : tensor<3x{m}x{n}xf64>
  %f = linalg.fill ins(%z : f64) outs(%e : tensor<3x{m}x{n}xf64>) -> tensor<3x{m}x{n}xf64>
  %s = linalg.batch_matmul ins(%a, %b : tensor<3x{m}x{k}xf64>, tensor<3x{k}x{n}xf64>)
      outs(%f : tensor<3x{m}x{n}xf64>) -> tensor<3x{m}x{n}xf64>
  return %s : tensor<3x{m}x{n}xf64>
}}
"""


@pytest.mark.parametrize("m,k,n", [(16, 8, 64), (7, 5, 3), (1, 1, 1)])
def test_outlined_accumulating_matmul(m: int, k: int, n: int, rng: np.random.Generator) -> None:
    """A matmul into a non-zero init takes the init as an argument (the caller's buffer stays intact);
    a zero-filled one gets the fill inside its kernel."""
    exe, stages = build(ACC.format(m=m, k=k, n=n))
    assert re.search(r"func\.func private @__lean_matmul_\w+_acc\(", stages["scheduled"])
    assert re.search(r"func\.func private @__lean_matmul_\w+_f32\(", stages["scheduled"])
    a, b, c = (rng.standard_normal(s).astype(np.float32) for s in ((m, k), (k, n), (m, n)))
    c0 = c.copy()
    r, s = exe("f", a, b, c)
    np.testing.assert_array_equal(c, c0)
    np.testing.assert_allclose(r, c0 + a @ b, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(s, a @ b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("m,k,n", [(8, 16, 32), (5, 3, 7)])
def test_outlined_batch_matmul(m: int, k: int, n: int, rng: np.random.Generator) -> None:
    exe, stages = build(BATCH.format(m=m, k=k, n=n))
    assert "func.func private @__lean_batch_matmul_3x" in stages["scheduled"]
    a, b = rng.standard_normal((3, m, k)), rng.standard_normal((3, k, n))
    np.testing.assert_allclose(exe("f", a, b)[0], a @ b, rtol=1e-12, atol=1e-12)


def test_thread_split_without_coroutines(set_threads: Callable[[int], None]) -> None:
    """Large matmuls and elementwise loops split across 2 threads: runtime calls, no coroutines, and
    the same values as one thread (repeated calls: the pool and the tokens are reused safely)."""
    specs, xs = _mlp_case(256, 512)
    res = {}
    for k in (1, 2):
        set_threads(k)
        c = lm.compile_scalar(mlp3_mse, *specs, wrt=[2, 3, 4, 5, 6, 7])
        llvm = c.ir("llvm")
        assert ("__lean_pool_submit" in llvm) == (k == 2)
        assert "llvm.intr.coro" not in llvm and "async_execute_fn" not in llvm
        res[k] = [c.value_and_backward(*xs) for _ in range(20)]
    v1, g1 = res[1][0]
    for v, g in res[2]:
        assert abs(v - v1) <= 1e-6 * abs(v1)
        for a, b in zip(g, g1, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("m,k,n", [(1024, 256, 1024), (64, 32, 10), (16, 24, 40), (7, 5, 3), (40, 9, 37)])
@pytest.mark.parametrize("t", ["f32", "f64"])
def test_transpose_folded_into_matmul(m: int, k: int, n: int, t: str, rng: np.random.Generator) -> None:
    """`transpose(x) @ b` (a gradient's `h.T @ g`) reads x through the matmul's A map; no transpose
    is left; values as NumPy's, for tiled and odd shapes. `a @ transpose(w)` packs w inside its kernel
    (tests/backends/cpu/test_contractions.py)."""
    dt = np.float32 if t == "f32" else np.float64
    o = lm.compile_out(lambda x, b: lm.transpose(x, (1, 0)) @ b, lm.Spec((k, m), t), lm.Spec((k, n), t))
    sched = o.ir("scheduled")
    assert re.search(rf"func\.func private @__lean_matmul\w*\(%arg0: tensor<{k}x{m}x{t}>", sched)
    f_body = sched[sched.index("func.func @f("):]
    f_body = f_body[: f_body.index("\n  }\n")]
    assert "permutation_map" not in f_body and "scf.for" not in f_body  # no transposed copy in @f
    x, b = rng.standard_normal((k, m)).astype(dt), rng.standard_normal((k, n)).astype(dt)
    tol = 1e-4 if t == "f32" else 1e-12
    np.testing.assert_allclose(o.forward(x, b), x.T.astype(np.float64) @ b, rtol=tol, atol=tol * 10)
    o2 = lm.compile_out(lambda a, w: a @ lm.transpose(w, (1, 0)), lm.Spec((m, k), t), lm.Spec((n, k), t))
    a, w = rng.standard_normal((m, k)).astype(dt), rng.standard_normal((n, k)).astype(dt)
    np.testing.assert_allclose(o2.forward(a, w), a.astype(np.float64) @ w.T, rtol=tol, atol=tol * 10)


@pytest.mark.parametrize("shape", [(256, 1024), (3, 4, 128), (5, 64), (256, 10), (2, 3, 4, 256)])
def test_full_reduction_any_rank(shape: tuple[int, ...], rng: np.random.Generator) -> None:
    """sum(tanh(x + b)) over a whole 2-D / 3-D tensor (bias broadcast along the last axis): SIMD
    partial sums where the last axis is a multiple of the vector length; the same module also holds
    a scheduled matmul (the schedules' transform handles must not clash)."""
    b_shape = shape[-1:]

    def fn(x, b, p, q):  # noqa: ANN001, ANN202
        return lm.sum(lm.tanh(x + b)) + lm.sum(p @ q)

    x = rng.standard_normal(shape).astype(np.float32)
    b = rng.standard_normal(b_shape).astype(np.float32)
    p, q = rng.standard_normal((16, 8)).astype(np.float32), rng.standard_normal((8, 32)).astype(np.float32)
    c = lm.compile_scalar(fn, *[lm.Spec(v.shape, "f32") for v in (x, b, p, q)])
    vec = host().reduction_vector("f32")
    if shape[-1] % vec == 0 and shape[-1] >= 2 * vec:
        sched = c.ir("scheduled")
        assert re.search(rf"math\.tanh %\w+ : vector<{vec}xf32>", sched)
    want = np.tanh(x.astype(np.float64) + b).sum() + (p.astype(np.float64) @ q).sum()
    assert abs(c.forward(x, b, p, q) - want) <= 1e-5 * max(1.0, abs(want)) * np.sqrt(x.size)
    g = c.backward(x, b, p, q)
    np.testing.assert_allclose(g[0], 1 - np.tanh(x.astype(np.float64) + b) ** 2, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("t", ["f32", "f64"])
@pytest.mark.parametrize("shape", [(1024, 1024), (64, 48), (3, 32, 64), (48, 16), (10, 1024)])
def test_square_tiled_transpose(shape: tuple[int, ...], t: str, rng: np.random.Generator) -> None:
    """Transposes of the last two axes (fused with a scale) in square tiles transposed in registers:
    exact values, for tile-divisible shapes and ones that fall back to row vectors."""
    dt = np.float32 if t == "f32" else np.float64
    perm = (*range(len(shape) - 2), len(shape) - 1, len(shape) - 2)
    o = lm.compile_out(lambda a: lm.transpose(a, perm) * 2.0, lm.Spec(shape, t))
    w = rng.standard_normal(shape).astype(dt)
    np.testing.assert_array_equal(o.forward(w), np.transpose(w, perm) * 2)
    sq = host().transpose_tile(t)
    if shape[-1] % sq == 0 and shape[-2] % sq == 0 and shape[-2] % host().elementwise_vector(t) == 0:
        assert "vector.transpose" not in o.ir("scheduled") and "permutation_map" not in o.ir("scheduled")


def test_thread_split_coroutine_fallback(monkeypatch: pytest.MonkeyPatch, two_threads: None,
                                         rng: np.random.Generator) -> None:
    """Async ops the coroutine-free rewrite does not know fall back to the upstream lowering."""
    from lean_mlir.backends.cpu import threads

    monkeypatch.setattr(threads, "supported", lambda module: False)
    n = 256
    a, b = rng.standard_normal((n, n), dtype=np.float32), rng.standard_normal((n, n), dtype=np.float32)
    o = lm.compile_out(lambda x, y: x @ y, lm.Spec((n, n), "f32"), lm.Spec((n, n), "f32"))
    assert "__lean_spawn_" not in o.ir("llvm") and "mlirAsyncRuntimeExecute" in o.ir("llvm")
    for _ in range(5):
        np.testing.assert_allclose(o.forward(a, b), a.astype(np.float64) @ b, rtol=1e-4, atol=1e-3)


def test_narrow_register_tile_rows() -> None:
    """A narrow C (n below the register tile's width, e.g. a 10-class layer) doubles the tile's rows
    only when A is read transposed (contiguous A column); with A read by rows it keeps the default."""
    inner = host().matmul_register_tile("f32")
    assert _register_tile(inner, 256, 10) == (inner[0], 10, 1)
    assert _register_tile(inner, 256, 10, transposed_a=True) == (2 * inner[0], 10, 1)
    assert _register_tile(inner, 256, 16) == (inner[0], 16, 1)
    assert _register_tile(inner, 256, 64) == inner
    assert _register_tile(inner, 12, 10, transposed_a=True) == (4, 10, 1)  # 16 does not divide 12


@pytest.mark.parametrize("m,k,n", [(256, 1024, 10), (64, 256, 10), (48, 7, 12), (24, 33, 8), (40, 9, 16)])
@pytest.mark.parametrize("t", ["f32", "f64"])
def test_narrow_matmul_matches_numpy(m: int, k: int, n: int, t: str, rng: np.random.Generator) -> None:
    """`a @ w` and `x.T @ g` with a narrow result (n <= 16) against NumPy, f32 and f64."""
    dt = np.float32 if t == "f32" else np.float64
    tol = 1e-4 if t == "f32" else 1e-12
    o = lm.compile_out(lambda a, w: a @ w, lm.Spec((m, k), t), lm.Spec((k, n), t))
    a, w = rng.standard_normal((m, k)).astype(dt), rng.standard_normal((k, n)).astype(dt)
    np.testing.assert_allclose(o.forward(a, w), a.astype(np.float64) @ w, rtol=tol, atol=tol * 10)
    o2 = lm.compile_out(lambda x, g: lm.transpose(x, (1, 0)) @ g, lm.Spec((k, m), t), lm.Spec((k, n), t))
    x, g = rng.standard_normal((k, m)).astype(dt), rng.standard_normal((k, n)).astype(dt)
    np.testing.assert_allclose(o2.forward(x, g), x.T.astype(np.float64) @ g, rtol=tol, atol=tol * 10)
