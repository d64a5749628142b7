"""Matmul kernels as OpenBLAS calls (`lean_mlir.backends.cpu.blas`): every form it takes (A B, A^T B,
A B^T) against NumPy in f32 and f64 at odd shapes, one thread and split into row blocks, the forms it
does not take left generated, the derivatives through it, and `gemm="auto"` choosing by the crossover
kept in the cache file. No timing assertions (the crossover's own timings decide nothing here)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import lean_mlir as lm
from lean_mlir.backends.cpu import blas
from lean_mlir.backends.cpu.target import target

pytestmark = pytest.mark.skipif(blas.library() is None, reason="scipy-openblas32 is not installed")


def _t(x: Any) -> Any:
    return lm.transpose(x, (1, 0)) if isinstance(x, lm.Tensor) else x.T


FORMS: dict[str, tuple[Callable[..., Any], list[tuple[int, int]]]] = {
    "NN": (lambda a, b: a @ b, [(67, 131), (131, 29)]),
    "TN": (lambda a, b: _t(a) @ b, [(131, 67), (131, 29)]),
    "NT": (lambda a, b: a @ _t(b), [(67, 131), (29, 131)]),
    "one row": (lambda a, b: a @ b, [(1, 300), (300, 7)]),
    "k = 1": (lambda a, b: a @ b, [(9, 1), (1, 5)]),
    "rows split": (lambda a, b: a @ _t(b), [(257, 129), (97, 129)]),  # >= 2^20 MACs: row blocks
}


def _compile(name: str, dtype: str, threads: int) -> tuple[lm.CompiledOut, Callable[..., Any], list[tuple[int, int]]]:
    fn, shapes = FORMS[name]
    c = lm.compile_out(fn, *[lm.Spec(s, dtype) for s in shapes], options=lm.Options(gemm="blas", threads=threads))
    return c, fn, shapes


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", ["f32", "f64"])
@pytest.mark.parametrize("name", list(FORMS))
def test_library_call_matches_numpy(name: str, dtype: str, threads: int, rng: np.random.Generator) -> None:
    c, fn, shapes = _compile(name, dtype, threads)
    routine = blas.ROUTINES[dtype]
    assert f"call @{routine}" in c.ir("llvm")
    np_t = lm.Spec((), dtype).np_dtype
    xs = [rng.standard_normal(s).astype(np_t) for s in shapes]
    want = fn(*[x.astype(np.float64) for x in xs])
    tol = 1e-5 if dtype == "f32" else 1e-13
    for _ in range(3):  # the same answer call after call (the row blocks on the worker pool)
        got = c.forward(*xs)
        assert got.dtype == np_t
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol * np.abs(want).max())
    if name == "rows split" and threads == 2:
        assert "__lean_spawn_" in c.ir("llvm")  # the row blocks went to the worker pool


@pytest.mark.parametrize("dtype", ["f32", "f64"])
def test_derivatives_through_library_calls(dtype: str, rng: np.random.Generator) -> None:
    """A two-layer MLP: its JVP and VJP (g @ W^T, x^T g) go through the library too; in f64 finite
    differences and the adjoint identity hold, in f32 every derivative is the generated kernels'."""
    def mlp(x: Any, w1: Any, w2: Any) -> Any:
        return lm.tanh(x @ w1) @ w2

    specs = [lm.Spec((33, 65), dtype), lm.Spec((65, 47), dtype), lm.Spec((47, 9), dtype)]
    c = lm.compile_out(mlp, *specs, options=lm.Options(gemm="blas", threads=1))
    assert c.ir("llvm").count(f"llvm.call @{blas.ROUTINES[dtype]}") >= 6
    xs = [rng.standard_normal(s.shape).astype(s.np_dtype) for s in specs]
    want = np.tanh(xs[0].astype(np.float64) @ xs[1]) @ xs[2]
    np.testing.assert_allclose(c.forward(*xs), want, rtol=1e-4 if dtype == "f32" else 1e-12, atol=1e-5)
    if dtype == "f64":
        report = lm.check_grads(c, xs, order=1)
        assert max(report.values()) < 1e-6, report
        return
    ref = lm.compile_out(mlp, *specs, options=lm.Options(gemm="generated", threads=1))
    dxs = [rng.standard_normal(s.shape).astype(s.np_dtype) for s in specs]
    seed = rng.standard_normal(want.shape).astype(np.float32)
    for got, expected in [(c.jvp(xs, dxs)[1], ref.jvp(xs, dxs)[1]),
                          *zip(c.vjp_with_seed(xs, seed), ref.vjp_with_seed(xs, seed), strict=True)]:
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


def test_batched_matmul_stays_generated(rng: np.random.Generator) -> None:
    shapes = [(3, 7, 5), (3, 5, 11)]
    c = lm.compile_out(lambda a, b: a @ b, *[lm.Spec(s, "f64") for s in shapes],
                       options=lm.Options(gemm="blas", threads=1))
    assert "scipy_cblas" not in c.ir("llvm") and "__lean_batch_matmul" in c.ir("scheduled")
    a, b = (rng.standard_normal(s) for s in shapes)
    np.testing.assert_allclose(c.forward(a, b), a @ b, rtol=1e-12)


def test_generated_option_never_calls_the_library() -> None:
    c = lm.compile_out(lambda a, b: a @ b, lm.Spec((256, 256), "f32"), lm.Spec((256, 256), "f32"),
                       options=lm.Options(gemm="generated"))
    assert "scipy_cblas" not in c.ir("llvm")


def test_auto_uses_the_crossover_from_the_cache_file(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """`gemm="auto"` reads the crossover for this host, element type and thread count from the cache
    file: kernels of at least that many multiply-adds call the library, smaller ones stay generated."""
    path = tmp_path / "gemm-crossover.json"
    monkeypatch.setattr(blas, "cache_file", lambda: str(path))
    monkeypatch.setattr(blas, "_CROSSOVERS", {})
    lib = blas.library()
    assert lib is not None
    key = f"{target('host').model}|host|f32|1|{lib.scipy_openblas_get_config().decode()}"
    path.write_text(json.dumps({key: {"macs": 32**3}}))
    opts = lm.Options(gemm="auto", threads=1, cpu_target="host")
    small = lm.compile_out(lambda a, b: a @ b, lm.Spec((16, 16), "f32"), lm.Spec((16, 16), "f32"), options=opts)
    large = lm.compile_out(lambda a, b: a @ b, lm.Spec((32, 32), "f32"), lm.Spec((32, 32), "f32"), options=opts)
    assert "scipy_cblas" not in small.ir("llvm")
    assert "scipy_cblas_sgemm" in large.ir("llvm")


def test_crossover_is_measured_once_and_stored(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "sub" / "gemm-crossover.json"
    monkeypatch.setattr(blas, "cache_file", lambda: str(path))
    monkeypatch.setattr(blas, "_CROSSOVERS", {})
    monkeypatch.setattr(blas, "CALIBRATION_SIZES", (16, 32))
    x = blas.crossover(target("host"), "f64", 1, lm.Options())
    stored = json.loads(path.read_text())
    (entry,) = stored.values()
    assert entry["sizes"] == [16, 32] and len(entry["generated_s"]) == len(entry["blas_s"]) == 2
    assert x == (float("inf") if entry["macs"] is None else entry["macs"]) and x in (16**3, 32**3, float("inf"))
    monkeypatch.setattr(blas, "_measure", lambda *a: pytest.fail("measured again"))
    monkeypatch.setattr(blas, "_CROSSOVERS", {})
    assert blas.crossover(target("host"), "f64", 1, lm.Options()) == x


def test_gemm_option_is_validated(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="Options.gemm .*got 'mkl'"):
        lm.Options(gemm="mkl")
    monkeypatch.setenv("LEAN_MLIR_GEMM", "fast")
    with pytest.raises(ValueError, match="LEAN_MLIR_GEMM"):
        lm.Options()
