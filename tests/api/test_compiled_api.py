"""The compiled API on the eager backend: models vs finite differences, wrt, composition, errors."""

from __future__ import annotations

import numpy as np
import pytest
from support import randn

import lean_mlir as lm
from workloads.models import MODELS


@pytest.mark.parametrize("name", sorted(MODELS))
def test_model_derivatives_match_finite_differences(name: str) -> None:
    fn, shapes = MODELS[name]
    c = lm.compile_scalar(fn, *[lm.f64[s] for s in shapes], backend="eager")
    report = lm.check_grads(c, randn(shapes), order=2)
    assert max(report.values()) < 1e-6, report


def test_scalar_api_shapes_and_values() -> None:
    fn, shapes = MODELS["mlp_mse"]
    c = lm.compile_scalar(fn, *[lm.f64[s] for s in shapes], backend="eager")
    xs = randn(shapes)
    y = c.forward(*xs)
    assert isinstance(y, float)
    grads = c.backward(*xs)
    assert [g.shape for g in grads] == shapes
    value, grads2 = c.value_and_backward(*xs)
    assert value == y
    for a, b in zip(grads, grads2, strict=True):
        np.testing.assert_array_equal(a, b)
    scaled = c.backward_with_seed(xs, 3.0)
    for a, b in zip(grads, scaled, strict=True):
        np.testing.assert_allclose(3 * a, b, rtol=1e-12)
    assert len(c.hvp(xs, xs)) == len(shapes)


def test_wrt_selects_and_orders_gradients() -> None:
    fn, shapes = MODELS["mlp_mse"]
    full = lm.compile_scalar(fn, *[lm.f64[s] for s in shapes], backend="eager")
    part = lm.compile_scalar(fn, *[lm.f64[s] for s in shapes], backend="eager", wrt=[3, 1])
    xs = randn(shapes)
    g = full.backward(*xs)
    g31 = part.backward(*xs)
    assert len(g31) == 2
    np.testing.assert_allclose(g31[0], g[3], rtol=1e-13)
    np.testing.assert_allclose(g31[1], g[1], rtol=1e-13)
    dxs = randn([shapes[3], shapes[1]], seed=1)
    _, dy = part.jvp(xs, dxs)
    assert dy == pytest.approx(float(np.vdot(g[3], dxs[0]) + np.vdot(g[1], dxs[1])), rel=1e-10)
    with pytest.raises(TypeError, match="expected 2 tangents"):
        part.jvp(xs, dxs[:1])
    with pytest.raises(ValueError, match="wrt"):
        lm.compile_scalar(fn, *[lm.f64[s] for s in shapes], backend="eager", wrt=[7])


def test_hvp_is_the_hessian() -> None:
    c = lm.compile_scalar(lambda x: lm.sum(x ** 3) + lm.sum(x) ** 2, lm.f64[3], backend="eager")
    x, v = np.array([1.0, -2.0, 0.5]), np.array([0.3, 1.0, -1.0])
    hess = np.diag(6 * x) + 2 * np.ones((3, 3))
    np.testing.assert_allclose(c.hvp([x], [v])[0], hess @ v, rtol=1e-12)


def test_compile_out_api() -> None:
    o = lm.compile_out(lambda x, w: lm.tanh(x @ w), lm.f64[3, 4], lm.f64[4, 2], backend="eager")
    x, w = randn([(3, 4), (4, 2)])
    y = o.forward(x, w)
    np.testing.assert_allclose(y, np.tanh(x @ w), rtol=1e-14)
    s = np.ones((3, 2))
    gx, gw = o.vjp_with_seed([x, w], s)
    d = 1 - np.tanh(x @ w) ** 2
    np.testing.assert_allclose(gx, d @ w.T, rtol=1e-13)
    np.testing.assert_allclose(gw, x.T @ d, rtol=1e-13)
    with pytest.raises(ValueError, match=r"expected shape \(3, 2\), got \(2, 3\)"):
        o.vjp_with_seed([x, w], np.ones((2, 3)))


def test_identity_function_and_unused_inputs() -> None:
    o = lm.compile_out(lambda x, y: x, lm.f64[2], lm.f64[3], backend="eager")
    x = np.array([1.0, 2.0])
    np.testing.assert_array_equal(o.forward(x, np.zeros(3)), x)
    gx, gy = o.vjp_with_seed([x, np.zeros(3)], np.array([5.0, 6.0]))
    np.testing.assert_array_equal(gx, [5.0, 6.0])
    np.testing.assert_array_equal(gy, np.zeros(3))
    y, dy = o.jvp([x, np.zeros(3)], [np.array([1.0, 1.0]), np.ones(3)])
    np.testing.assert_array_equal(dy, [1.0, 1.0])


def test_compile_scalar_rejects_tensor_output() -> None:
    with pytest.raises(TypeError, match=r"must return a scalar \(rank-0\) value, got shape \(3,\)"):
        lm.compile_scalar(lambda x: x * 2, lm.f32[3], backend="eager")


def test_wrong_seed_shape_is_rejected() -> None:
    c = lm.compile_scalar(lambda x: lm.sum(x), lm.f64[3], backend="eager")
    with pytest.raises(ValueError, match=r"expected shape \(\), got \(3,\)"):
        c.backward_with_seed([np.ones(3)], np.ones(3))


def test_compile_cache_returns_same_object() -> None:
    def f(x):
        return lm.sum(x * x)
    a = lm.compile_scalar(f, lm.f64[3], backend="eager")
    assert lm.compile_scalar(f, lm.f64[3], backend="eager") is a
    assert lm.compile_scalar(f, lm.f64[4], backend="eager") is not a


def test_ir_lean_shows_all_entry_points() -> None:
    c = lm.compile_scalar(lambda x: lm.sum(lm.exp(x)), lm.f32[4], backend="eager")
    text = c.ir("lean")
    for name in ("@f(", "@f_jvp(", "@f_vjp(", "@f_vjp_jvp("):
        assert name in text
    assert '"lean.exp"' in text
    with pytest.raises(ValueError, match="stage 'ptx' is not available"):
        c.ir("ptx")


def test_unknown_backend() -> None:
    with pytest.raises(ValueError, match="backend must be one of"):
        lm.compile_scalar(lambda x: lm.sum(x), lm.f32[3], backend="tpu")


def test_compile_log_names_the_reason(monkeypatch, caplog) -> None:
    monkeypatch.setenv("LEAN_MLIR_LOG_COMPILES", "1")

    def g(x):
        return lm.sum(lm.exp(x))
    with caplog.at_level("WARNING", logger="lean_mlir"):
        lm.compile_scalar(g, lm.f32[3], backend="eager")
        lm.compile_scalar(g, lm.f32[3], backend="eager")  # cached: no log line
        lm.compile_scalar(g, lm.f32[5], backend="eager")
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2, lines
    assert "first compile" in lines[0] and " s: " in lines[0]
    assert "new input specs (f32[5]) (was (f32[3]))" in lines[1]
