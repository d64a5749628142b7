"""Multi-use fusion (lean_mlir.backends.cpu.fusion) on the CPU path: what fuses, what must not, and the JIT's
values against NumPy in each case."""

from __future__ import annotations

import numpy as np
import pytest

import lean_mlir as lm
from lean_mlir.backends.cpu.fusion import MAX_FUSED_RESULTS
from workloads.models import elementwise_sum


def _generics(c: lm.CompiledScalar | lm.CompiledOut, entry: str) -> list[str]:
    """The `linalg.generic` lines of one entry point at the "linalg" stage."""
    text = c.ir("linalg")
    start = text.index(f"func.func @{entry}(")
    end = text.find("func.func @", start + 1)
    return [line for line in text[start: end if end > 0 else None].splitlines() if "linalg.generic" in line]


@pytest.mark.parametrize("dtype", ["f32", "f64"])
def test_jvp_of_sum_is_one_pass(dtype: str, rng: np.random.Generator) -> None:
    """sin and tanh feed the primal and the tangent: one reduction with two results, nothing else."""
    n = 4096
    c = lm.compile_scalar(elementwise_sum, lm.Spec((n,), dtype))
    gens = _generics(c, "f_jvp")
    assert len(gens) == 1 and "reduction" in gens[0], gens
    assert len(_generics(c, "f_vjp")) == 2  # (exp, gradient) in one parallel op, then the sum
    x, dx = (rng.uniform(-3, 3, n).astype(dtype.replace("f", "float")) for _ in range(2))
    x64, dx64 = x.astype(np.float64), dx.astype(np.float64)
    e = np.exp(np.sin(x64) * x64 + np.tanh(x64))
    de = e * (np.cos(x64) * x64 + np.sin(x64) + 1 - np.tanh(x64) ** 2)
    rtol = 1e-5 if dtype == "f32" else 1e-12
    y, dy = c.jvp([x], [dx])
    np.testing.assert_allclose([y, dy], [e.sum(), (de * dx64).sum()], rtol=rtol)
    v, (g,) = c.value_and_backward(x)
    np.testing.assert_allclose(v, e.sum(), rtol=rtol)
    np.testing.assert_allclose(g, de, rtol=rtol, atol=rtol)


def test_reduction_feeding_the_user_blocks_fusion(rng: np.random.Generator) -> None:
    """exp(x) / sum(exp(x)): the sum must be computed before the division, so exp stays its own op."""
    def normalize(x: lm.Tensor) -> lm.Tensor:
        e = lm.exp(x)
        return e / lm.sum(e)

    o = lm.compile_out(normalize, lm.f32[2048])
    assert len(_generics(o, "f")) == 3
    x = rng.standard_normal(2048).astype(np.float32)
    np.testing.assert_allclose(o.forward(x), np.exp(x) / np.exp(x).sum(), rtol=1e-5)


def test_dependent_reductions_do_not_merge(rng: np.random.Generator) -> None:
    """sum(x * sum(x * x)): the outer sum reads the inner one, they stay two reductions."""
    def nested(x: lm.Tensor) -> lm.Tensor:
        return lm.sum(x * lm.sum(x * x))

    o = lm.compile_out(nested, lm.f64[4096])
    reds = [g for g in _generics(o, "f") if "reduction" in g]
    assert len(reds) == 2
    x = rng.standard_normal(4096)
    np.testing.assert_allclose(o.forward(x), (x * (x * x).sum()).sum(), rtol=1e-12)


def test_broadcast_operands_and_several_users(rng: np.random.Generator) -> None:
    """A 2-D producer read by several parallel users with broadcast operands fuses with its results
    kept for a later reduction; values as NumPy."""
    def layer(z: lm.Tensor, b: lm.Tensor) -> lm.Tensor:
        h = lm.tanh(z + b)
        u = h * h + b
        v = lm.exp(h) - b
        return lm.sum(u * v) + lm.sum(h)

    c = lm.compile_scalar(layer, lm.f64[64, 32], lm.f64[32])
    z, b = rng.standard_normal((64, 32)), rng.standard_normal(32)

    def ref(z: np.ndarray, b: np.ndarray) -> float:
        h = np.tanh(z + b)
        return float(((h * h + b) * (np.exp(h) - b)).sum() + h.sum())

    np.testing.assert_allclose(c.forward(z, b), ref(z, b), rtol=1e-12)
    lm.check_grads(c, [z, b], order=1)
    # the forward fuses to one pass: tanh, its two users and both sums in one op, then the scalar add
    gens = _generics(c, "f")
    assert len(gens) == 2 and gens[0].lstrip().startswith("%2:2 =") and "reduction" in gens[0], gens
    assert "iterator_types = []" in gens[1], gens


def test_long_chain(rng: np.random.Generator) -> None:
    """300 steps of sin(x) * 1.01: the single-use steps fuse in one linear scan (upstream's pass took
    quadratic time on them), the forward into one loop, the JVP's primals in groups of at most
    MAX_FUSED_RESULTS; values and derivatives as NumPy / finite differences."""
    n = 300

    def chain(x: lm.Tensor) -> lm.Tensor:
        for _ in range(n):
            x = lm.sin(x) * 1.01
        return lm.sum(x)

    c = lm.compile_scalar(chain, lm.f64[16])
    assert len(_generics(c, "f")) == 1
    assert len(_generics(c, "f_jvp")) <= n // (MAX_FUSED_RESULTS - 1) + 2
    x = rng.uniform(-1, 1, 16)
    y = x.copy()
    for _ in range(n):
        y = np.sin(y) * 1.01
    np.testing.assert_allclose(c.forward(x), y.sum(), rtol=1e-12)
    lm.check_grads(c, [x], order=1)
