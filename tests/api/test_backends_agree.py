"""The CPU JIT agrees with the eager interpreter on every op case and model, for forward, JVP, VJP
and HVP, in f32 and f64."""

from __future__ import annotations

import numpy as np
import pytest
from support import assert_close, randn

import lean_mlir as lm
from workloads.models import MODELS
from workloads.op_cases import CASES, Case

TOL = {"f32": dict(rtol=2e-5, atol=2e-5), "f64": dict(rtol=1e-12, atol=1e-12)}


def _assert_all_close(got, want, dtype: str) -> None:
    for k, (g, w) in enumerate(zip(got, want, strict=True)):
        assert_close(g, w, **TOL[dtype], what=f"result {k}")


@pytest.mark.parametrize("dtype", ["f32", "f64"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_cpu_matches_eager(case: Case, dtype: str) -> None:
    specs = case.specs(dtype)
    cpu = lm.compile_out(case.fn, *specs, backend="cpu")
    eager = lm.compile_out(case.fn, *specs, backend="eager")
    xs = case.inputs(dtype)
    dxs, seed = case.directions(eager.out_spec, dtype)
    _assert_all_close([cpu.forward(*xs)], [eager.forward(*xs)], dtype)
    _assert_all_close(cpu.jvp(xs, dxs), eager.jvp(xs, dxs), dtype)
    _assert_all_close(cpu.vjp_with_seed(xs, seed), eager.vjp_with_seed(xs, seed), dtype)


@pytest.mark.parametrize("dtype", ["f32", "f64"])
@pytest.mark.parametrize("name", sorted(MODELS))
def test_models_cpu_matches_eager_and_checks_pass(name: str, dtype: str) -> None:
    fn, shapes = MODELS[name]
    specs = [lm.Spec(s, dtype) for s in shapes]
    cpu = lm.compile_scalar(fn, *specs)
    eager = lm.compile_scalar(fn, *specs, backend="eager")
    xs, vs = randn(shapes, dtype, seed=0), randn(shapes, dtype, seed=1)
    _assert_all_close([np.float64(cpu.forward(*xs))], [np.float64(eager.forward(*xs))], dtype)
    _assert_all_close(cpu.backward(*xs), eager.backward(*xs), dtype)
    _assert_all_close(cpu.hvp(xs, vs), eager.hvp(xs, vs), dtype)
    value, grads = cpu.value_and_backward(*xs)
    assert value == cpu.forward(*xs)
    _assert_all_close(grads, cpu.backward(*xs), dtype)
    report = lm.check_grads(cpu, xs, order=2)
    assert max(report.values()) < (1e-6 if dtype == "f64" else 3e-3), report


def test_cpu_ir_stages() -> None:
    c = lm.compile_scalar(lambda x, w: lm.sum(lm.tanh(x @ w)), lm.f32[8, 16], lm.f32[16, 32])
    assert '"lean.tanh"' in c.ir("lean")
    linalg = c.ir("linalg")
    assert "linalg.matmul" in linalg and "lean." not in linalg
    assert "llvm.func @f_vjp" in c.ir("llvm")
