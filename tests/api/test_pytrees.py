"""Pytrees, function transforms (lm.jit / grad / value_and_grad / jvp / vjp / hessian_vector_product),
calling conventions and array interop, checked against NumPy references and finite differences."""

from __future__ import annotations

import logging
import pickle
from typing import NamedTuple

import numpy as np
import pytest

import lean_mlir as lm

RNG = np.random.default_rng(0)
P = {"w": RNG.standard_normal((4, 3)), "b": RNG.standard_normal(3)}
X = RNG.standard_normal((5, 4))


class Layer(NamedTuple):
    w: np.ndarray
    b: np.ndarray


def loss(p: dict, x: lm.Tensor) -> lm.Tensor:
    return lm.sum(lm.tanh(x @ p["w"] + p["b"]) ** 2)


def loss_np(p: dict, x: np.ndarray) -> float:
    return float(np.sum(np.tanh(x @ p["w"] + p["b"]) ** 2))


def fd_grad(f, p: dict, eps: float = 1e-6) -> dict:
    """Central finite differences of scalar f over every leaf of dict p (f64)."""
    out = {}
    for k, v in p.items():
        g = np.zeros_like(v)
        for i in np.ndindex(v.shape):
            up, down = {**p, k: v.copy()}, {**p, k: v.copy()}
            up[k][i] += eps
            down[k][i] -= eps
            g[i] = (f(up) - f(down)) / (2 * eps)
        out[k] = g
    return out


# ---- the pytree module
def test_flatten_order_and_round_trip() -> None:
    tree = {"b": [1, (2, 3)], "a": None, "c": Layer(4, 5)}
    leaves, treedef = lm.tree_flatten(tree)
    assert leaves == [1, 2, 3, 4, 5]  # sorted keys; None holds no leaf; NamedTuple fields in order
    assert lm.tree_unflatten(treedef, leaves) == tree
    assert type(lm.tree_unflatten(treedef, leaves)["c"]) is Layer
    assert lm.tree_map(lambda a, b: a * 10 + b, tree, tree)["b"] == [11, (22, 33)]
    with pytest.raises(ValueError, match="tree_map: tree 1 has structure"):
        lm.tree_map(lambda a, b: a, tree, {"b": [1]})
    with pytest.raises(ValueError, match="more leaves"):
        lm.tree_unflatten(treedef, range(6))
    with pytest.raises(ValueError, match="fewer leaves"):
        lm.tree_unflatten(treedef, range(4))


def test_registered_node() -> None:
    class Pair:
        def __init__(self, a, b):
            self.a, self.b = a, b

    lm.register_pytree_node(Pair, lambda p: ((p.a, p.b), None), lambda _, c: Pair(*c))
    c = lm.compile_scalar(lambda p: lm.sum(p.a * p.b), Pair(lm.f64[3], lm.f64[3]))
    a, b = RNG.standard_normal(3), RNG.standard_normal(3)
    (g,) = c.backward(Pair(a, b))
    assert isinstance(g, Pair)
    np.testing.assert_allclose(g.a, b)
    np.testing.assert_allclose(g.b, a)
    with pytest.raises(TypeError, match="register_pytree_node: expected a class"):
        lm.register_pytree_node("Pair", None, None)


# ---- compiled objects over pytrees
@pytest.fixture(scope="module")
def c() -> lm.CompiledScalar:
    return lm.compile_scalar(loss, {"w": lm.f64[4, 3], "b": lm.f64[3]}, lm.f64[5, 4], wrt=[0])


def test_gradients_come_back_in_the_input_structure(c: lm.CompiledScalar) -> None:
    value, (g,) = c.value_and_backward(P, X)
    assert value == pytest.approx(loss_np(P, X), rel=1e-12)
    assert sorted(g) == ["b", "w"]
    want = fd_grad(lambda p: loss_np(p, X), P)
    for k in P:
        np.testing.assert_allclose(g[k], want[k], rtol=1e-6, atol=1e-8)
    assert c(P, X) == value  # callable: forward


def test_jvp_hvp_and_the_adjoint_identity(c: lm.CompiledScalar) -> None:
    t = {"w": RNG.standard_normal((4, 3)), "b": RNG.standard_normal(3)}
    value, tangent = c.jvp(P, X, tangents=(t,))
    (g,) = c.backward(P, X)
    assert tangent == pytest.approx(sum(np.vdot(g[k], t[k]) for k in P), rel=1e-10)
    assert c.jvp((P, X), (t,)) == (value, tangent)  # the older form
    (hv,) = c.hvp(P, X, tangents=(t,))
    eps = 1e-6
    up = c.backward({k: P[k] + eps * t[k] for k in P}, X)[0]
    down = c.backward({k: P[k] - eps * t[k] for k in P}, X)[0]
    for k in P:
        np.testing.assert_allclose(hv[k], (up[k] - down[k]) / (2 * eps), rtol=1e-5, atol=1e-7)
    (g2,) = c.backward_with_seed(P, X, seed=2.0)
    np.testing.assert_allclose(g2["w"], 2 * g["w"])


def test_pytree_outputs_and_seeds() -> None:
    o = lm.compile_out(lambda p, x: {"y": x @ p[0], "z": (lm.sum(p[1]), p[1] * 2)}, [lm.f64[4, 3], lm.f64[3]],
                       lm.f64[5, 4])
    w, b = P["w"], P["b"]
    out = o([w, b], X)
    np.testing.assert_allclose(out["y"], X @ w)
    assert out["z"][0] == pytest.approx(b.sum())
    seed = {"y": np.ones((5, 3)), "z": (np.float64(3.0), np.ones(3))}
    gp, gx = o.vjp_with_seed([w, b], X, seed=seed)
    np.testing.assert_allclose(gp[0], X.T @ np.ones((5, 3)))
    np.testing.assert_allclose(gp[1], np.full(3, 3.0 + 2.0))
    np.testing.assert_allclose(gx, np.ones((5, 3)) @ w.T)
    y, dy = o.jvp([w, b], X, tangents=([np.zeros_like(w), np.ones(3)], np.zeros_like(X)))
    assert dy["z"][0] == pytest.approx(3.0) and np.all(dy["y"] == 0)


def test_has_aux() -> None:
    def f(p, x):
        h = lm.tanh(x @ p["w"] + p["b"])
        return lm.sum(h * h), {"h": h, "mean": lm.mean(h)}

    c = lm.compile_scalar(f, {"w": lm.f64[4, 3], "b": lm.f64[3]}, lm.f64[5, 4], wrt=[0], has_aux=True)
    (value, aux), (g,) = c.value_and_backward(P, X)
    h = np.tanh(X @ P["w"] + P["b"])
    np.testing.assert_allclose(aux["h"], h)
    assert aux["mean"] == pytest.approx(h.mean())
    assert value == pytest.approx(loss_np(P, X))
    (g_plain,) = lm.compile_scalar(loss, {"w": lm.f64[4, 3], "b": lm.f64[3]}, lm.f64[5, 4], wrt=[0]).backward(P, X)
    np.testing.assert_allclose(g["w"], g_plain["w"], rtol=1e-12)  # aux is not differentiated
    assert c.forward(P, X)[0] == value
    v, t, aux2 = c.jvp(P, X, tangents=({"w": np.ones((4, 3)), "b": np.zeros(3)},))
    assert t == pytest.approx(g["w"].sum()) and aux2["mean"] == aux["mean"]
    with pytest.raises(TypeError, match=r"has_aux=True: the function must return a pair \(value, aux\)"):
        lm.compile_scalar(lambda x: lm.sum(x), lm.f64[3], has_aux=True)


def test_pickled_pytree_function_keeps_its_structure(c: lm.CompiledScalar) -> None:
    d = pickle.loads(pickle.dumps(c))
    (g,) = d.backward(P, X)
    np.testing.assert_allclose(g["w"], c.backward(P, X)[0]["w"])


# ---- calling mistakes get errors that say how to call
def test_calling_errors(c: lm.CompiledScalar) -> None:
    with pytest.raises(TypeError, match=r"expected 2 inputs, got 1; the inputs are separate arguments: "
                                        r"c.backward\(\*xs\)"):
        c.backward([P, X])
    with pytest.raises(TypeError, match=r"input 0: expected the structure \{'b': \*, 'w': \*\}, got \{'w': \*\}"):
        c.forward({"w": P["w"]}, X)
    with pytest.raises(TypeError, match=r"input 0: expected the structure .*, got \[\*, \*\]"):
        c.forward([P["w"], P["b"]], X)
    with pytest.raises(ValueError, match=r"input 0\['w'\]: expected shape \(4, 3\), got \(3, 4\)"):
        c.forward({"w": P["w"].T, "b": P["b"]}, X)
    with pytest.raises(TypeError, match=r"jvp: pass the inputs positionally and the tangents by keyword"):
        c.jvp(P, X, ({"w": P["w"], "b": P["b"]},))
    with pytest.raises(ValueError, match=r"dxs\[0\]\['b'\] \(tangent of input 0\['b'\]\): expected shape \(3,\)"):
        c.jvp(P, X, tangents=({"w": P["w"], "b": X},))
    with pytest.raises(TypeError, match=r"dxs: expected one tangent per wrt input in its structure"):
        c.jvp(P, X, tangents=([P["w"], P["b"]],))
    o = lm.compile_out(lambda x: (x, x * 2), lm.f64[3])
    with pytest.raises(TypeError, match=r"seed: expected the structure of the output, \(\*, \*\), got \*"):
        o.vjp_with_seed(np.ones(3), seed=np.ones(3))
    with pytest.raises(TypeError, match="must return one scalar value, got the structure"):
        lm.compile_scalar(lambda x: (lm.sum(x), x), lm.f64[3])


# ---- the functional transforms
def test_grad_and_value_and_grad_match_finite_differences() -> None:
    g = lm.grad(loss)(P, X)
    want = fd_grad(lambda p: loss_np(p, X), P)
    for k in P:
        np.testing.assert_allclose(g[k], want[k], rtol=1e-6, atol=1e-8)
    gp, gx = lm.grad(loss, argnums=(0, 1))(P, X)
    np.testing.assert_allclose(gp["b"], g["b"])
    assert gx.shape == X.shape
    value, g2 = lm.value_and_grad(loss)(P, X)
    assert value == pytest.approx(loss_np(P, X)) and np.array_equal(g2["w"], g["w"])

    def with_aux(p, x):
        return loss(p, x), {"n": lm.sum(x)}

    (value, aux), g3 = lm.value_and_grad(with_aux, has_aux=True)(P, X)
    assert aux["n"] == pytest.approx(X.sum()) and np.array_equal(g3["b"], g["b"])
    g4, aux4 = lm.grad(with_aux, has_aux=True)(P, X)
    assert np.array_equal(g4["w"], g["w"]) and aux4["n"] == aux["n"]
    with pytest.raises(TypeError, match="argnums must be an int or a non-empty tuple of ints"):
        lm.grad(loss, argnums="0")
    with pytest.raises(TypeError, match=r"lm.grad: argnums \(2,\) out of range for 2 arguments"):
        lm.grad(loss, argnums=2)(P, X)


def test_sgd_steps_with_tree_map_lower_the_loss() -> None:
    step = lm.value_and_grad(loss)
    p = {k: v.astype(np.float32) for k, v in P.items()}
    x = X.astype(np.float32)
    losses = []
    for _ in range(5):
        value, grads = step(p, x)
        losses.append(value)
        p = lm.tree_map(lambda a, g: a - 0.05 * g, p, grads)
    assert all(b < a for a, b in zip(losses, losses[1:], strict=False)), losses
    assert p["w"].dtype == np.float32


def test_jit_caches_on_specs_and_logs_the_reason(caplog: pytest.LogCaptureFixture) -> None:
    def f(p, x):
        return {"y": x @ p["w"], "s": lm.sum(x)}

    jf = lm.jit(f)
    with caplog.at_level("INFO", logger="lean_mlir"):
        out = jf(P, X)
        jf(P, X)  # cached
        jf(P, X[:2])
        jf(P, 3.0 * np.ones((5, 4), np.float64))  # same specs: cached
    np.testing.assert_allclose(out["y"], X @ P["w"])
    lines = [r.getMessage() for r in caplog.records if r.name == "lean_mlir"]
    assert len(lines) == 2, lines
    assert "first compile" in lines[0]
    assert "new input specs: input 1: f64[5, 4] -> f64[2, 4]" in lines[1]
    assert jf.__name__ == "f"
    with pytest.raises(TypeError, match="pass the arguments positionally"):
        jf(P, x=X)
    with pytest.raises(TypeError, match=r"input 1: arrays must be float32 or float64, got int64"):
        jf(P, np.ones((5, 4), np.int64))
    with pytest.raises(TypeError, match="expected arrays, Python numbers or pytrees of them, got str"):
        jf(P, "x")


def test_jit_static_argnums_and_weak_python_numbers(caplog: pytest.LogCaptureFixture) -> None:
    scale = lm.jit(lambda x, n, s: x * n + s, static_argnums=1)
    x32 = X.astype(np.float32)
    with caplog.at_level("INFO", logger="lean_mlir"):
        np.testing.assert_allclose(scale(x32, 2, 1.0), x32 * 2 + 1, rtol=1e-6)
        np.testing.assert_allclose(scale(x32, 3, 1.0), x32 * 3 + 1, rtol=1e-6)
    assert scale(x32, 2, 0.5).dtype == np.float32  # the Python number took the array's dtype
    assert "new static arguments {1: 3} (was {1: 2})" in caplog.records[-1].getMessage()
    with pytest.raises(TypeError, match="static arguments must be hashable"):
        scale(x32, [2], 1.0)


def test_jvp_vjp_and_hvp_functions() -> None:
    def f(a, b):
        return lm.sin(a) * b, lm.sum(a)

    a, b = RNG.standard_normal(4), RNG.standard_normal(4)
    ta, tb = RNG.standard_normal(4), RNG.standard_normal(4)
    (y, s), (dy, ds) = lm.jvp(f, (a, b), (ta, tb))
    np.testing.assert_allclose(y, np.sin(a) * b)
    np.testing.assert_allclose(dy, np.cos(a) * ta * b + np.sin(a) * tb)
    assert ds == pytest.approx(ta.sum())
    (y2, s2), pullback = lm.vjp(f, a, b)
    ga, gb = pullback((np.ones(4), np.float64(2.0)))
    np.testing.assert_allclose(ga, np.cos(a) * b + 2.0)
    np.testing.assert_allclose(gb, np.sin(a))
    # adjoint identity <vjp(ct), t> == <ct, jvp(t)>
    ct = (RNG.standard_normal(4), np.float64(0.7))
    ga, gb = pullback(ct)
    assert np.vdot(ga, ta) + np.vdot(gb, tb) == pytest.approx(np.vdot(ct[0], dy) + ct[1] * ds, rel=1e-12)
    (hv,) = lm.hessian_vector_product(lambda v: lm.sum(v * v * v), (a,), (ta,))
    np.testing.assert_allclose(hv, 6 * a * ta)
    y, pb, aux = lm.vjp(lambda v: (lm.exp(v), {"v": v}), a, has_aux=True)
    np.testing.assert_allclose(aux["v"], a)
    with pytest.raises(TypeError, match="lm.jvp: primals must be a tuple or list"):
        lm.jvp(f, a, (ta, tb))


# ---- array interop
def test_torch_inputs_and_outputs() -> None:
    torch = pytest.importorskip("torch")
    w = torch.nn.Parameter(torch.randn(4, 3, dtype=torch.float64))
    x = torch.randn(5, 4, dtype=torch.float64)
    g = lm.grad(lambda w, x: lm.sum(lm.tanh(x @ w)), output="torch")(w, x)
    assert isinstance(g, torch.Tensor)
    torch.sum(torch.tanh(x @ w)).backward()
    np.testing.assert_allclose(g.numpy(), w.grad.numpy(), rtol=1e-12)
    c = lm.compile_out(lambda x: x * 2, lm.f32[3], output="dlpack")
    np.testing.assert_array_equal(torch.from_dlpack(c(torch.ones(3))).numpy(), np.full(3, 2, np.float32))
    with pytest.raises(TypeError, match="input 0: expected dtype float32, got int64"):
        c(torch.ones(3, dtype=torch.int64))
    with pytest.raises(ValueError, match="output must be one of"):
        lm.compile_out(lambda x: x * 2, lm.f32[3], output="cupy")


def test_device_arrays_are_refused_clearly() -> None:
    class DeviceArray:  # what CuPy and torch.cuda tensors say through DLPack
        def __dlpack__(self, **_: object) -> None:
            raise AssertionError("not to be read")

        def __dlpack_device__(self) -> tuple[int, int]:
            return (2, 0)  # kDLCUDA

    with pytest.raises(TypeError, match=r"input 0: .*DeviceArray in device memory \(DLPack device type 2\)"):
        lm.compile_out(lambda x: x * 2, lm.f32[3])(DeviceArray())


def test_check_grads_of_pytree_functions(c: lm.CompiledScalar) -> None:
    report = lm.check_grads(c, [P, X])
    assert report and max(report.values()) < 1e-6
    o = lm.compile_out(lambda p, x: ({"y": x @ p["w"]}, lm.sum(p["b"] * p["b"])), {"w": lm.f64[4, 3], "b": lm.f64[3]},
                       lm.f64[5, 4])
    lm.check_grads(o, [P, X], order=1)
    wrong = lm.compile_scalar(lambda p, x: lm.sum(lm.stop_gradient(p["w"]) * p["w"]) + loss(p, x),
                              {"w": lm.f64[4, 3], "b": lm.f64[3]}, lm.f64[5, 4])
    with pytest.raises(AssertionError, match="check_grads"):  # stop_gradient: the derivative is not the FD one
        lm.check_grads(wrong, [P, X])


def test_jax_inputs() -> None:
    jnp = pytest.importorskip("jax.numpy")
    x = jnp.arange(6.0, dtype=jnp.float32).reshape(2, 3)
    np.testing.assert_allclose(lm.jit(lambda x: x * x)(x), np.asarray(x) ** 2)


def test_pytree_call_overhead_is_logged_not_asserted(caplog: pytest.LogCaptureFixture) -> None:
    # the speed itself is measured in benchmarks/call_overhead.py; here: a compile is logged once
    with caplog.at_level(logging.INFO, logger="lean_mlir"):
        f = lm.jit(lambda p: lm.sum(p["a"]))
        for _ in range(3):
            f({"a": np.ones(2)})
    assert sum("compiled" in r.getMessage() for r in caplog.records) == 1


def test_container_types_survive_the_round_trip() -> None:
    spec = [lm.f64[2], (lm.f64[2], Layer(lm.f64[2], None))]
    c = lm.compile_scalar(lambda p: lm.sum(p[0] * p[1][0] * p[1][1].w), spec)
    ones = np.ones(2)
    (g,) = c.backward([ones, (ones * 2, Layer(ones * 3, None))])
    assert type(g) is list and type(g[1]) is tuple and type(g[1][1]) is Layer and g[1][1].b is None
    np.testing.assert_array_equal(g[1][1].w, np.full(2, 2.0))
