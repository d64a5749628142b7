"""The math functions built from other ops (var, std, rsqrt, silu, gelu, logaddexp, mse_loss): values
against NumPy (and torch where it is installed), derivatives by lm.check_grads (finite differences in
f64, the adjoint identity, the HVP)."""

from __future__ import annotations

import math

import numpy as np
import pytest

import lean_mlir as lm

RNG = np.random.default_rng(0)
X = RNG.standard_normal((3, 4, 5))
Y = RNG.standard_normal((3, 4, 5))
_erf = np.vectorize(math.erf)

CASES = {
    "var": (lambda x, y: lm.var(x, axis=(0, 2), keepdims=True), lambda x, y: np.var(x, axis=(0, 2), keepdims=True)),
    "var-ddof": (lambda x, y: lm.var(x, axis=1, ddof=1), lambda x, y: np.var(x, axis=1, ddof=1)),
    "std": (lambda x, y: lm.std(x), lambda x, y: np.std(x)),
    "x.var": (lambda x, y: lm.std(x, -1, ddof=2), lambda x, y: np.std(x, -1, ddof=2)),
    "rsqrt": (lambda x, y: lm.rsqrt(lm.abs(x) + 0.5), lambda x, y: 1 / np.sqrt(np.abs(x) + 0.5)),
    "silu": (lambda x, y: lm.silu(x), lambda x, y: x / (1 + np.exp(-x))),
    "gelu": (lambda x, y: lm.gelu(x), lambda x, y: 0.5 * x * (1 + _erf(x / np.sqrt(2)))),
    "gelu-tanh": (lambda x, y: lm.gelu(x, approximate=True),
                  lambda x, y: 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)))),
    "logaddexp": (lambda x, y: lm.logaddexp(x * 300, y), lambda x, y: np.logaddexp(x * 300, y)),
    "mse_loss": (lambda x, y: lm.mse_loss(x, y), lambda x, y: np.mean((x - y) ** 2)),
}


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("dtype", ["f64", "f32"])
def test_values_and_derivatives(name: str, dtype: str) -> None:
    fn, ref = CASES[name]
    np_dtype = np.float64 if dtype == "f64" else np.float32
    x, y = X.astype(np_dtype), Y.astype(np_dtype)
    c = lm.compile_out(fn, lm.Spec(X.shape, dtype), lm.Spec(Y.shape, dtype))
    np.testing.assert_allclose(c(x, y), ref(X, Y), rtol=1e-12 if dtype == "f64" else 2e-5, atol=1e-12 if
                               dtype == "f64" else 1e-6)
    if dtype == "f64":
        lm.check_grads(c, [x, y], order=2)


def test_gelu_matches_torch() -> None:
    torch = pytest.importorskip("torch")
    x = torch.tensor(X, requires_grad=True)
    for approximate in (False, True):
        torch.nn.functional.gelu(x, approximate="tanh" if approximate else "none").sum().backward()
        (g,) = lm.grad(lambda v, a=approximate: lm.sum(lm.gelu(v, approximate=a)), argnums=(0,))(X)
        np.testing.assert_allclose(g, x.grad.numpy(), rtol=1e-12, atol=1e-14)
        x.grad = None


def test_var_ddof_out_of_range() -> None:
    with pytest.raises(ValueError, match=r"var: ddof must be in \[0, 4\) for 4 elements, got 4"):
        lm.compile_out(lambda x: lm.var(x, axis=1, ddof=4), lm.f64[3, 4])
