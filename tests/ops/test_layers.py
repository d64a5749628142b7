"""The layers composed of lean ops (lean_mlir/ops/layers.py): values against NumPy loops and torch
(where installed), derivatives by lm.check_grads (finite differences in f64, adjoint identity, HVP)."""

from __future__ import annotations

import numpy as np
import pytest

import lean_mlir as lm

RNG = np.random.default_rng(0)


def _np_pool(x: np.ndarray, k: int, s: int, p: int, reduce, fill: float) -> np.ndarray:
    n, c, h, w = x.shape
    xp = np.full((n, c, h + 2 * p, w + 2 * p), fill)
    xp[:, :, p:p + h, p:p + w] = x
    oh, ow = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
    out = np.empty((n, c, oh, ow))
    for i in range(oh):
        for j in range(ow):
            out[:, :, i, j] = reduce(xp[:, :, i * s:i * s + k, j * s:j * s + k], axis=(2, 3))
    return out


@pytest.mark.parametrize(("k", "s", "p"), [(2, 2, 0), (3, 2, 1), (3, 1, 0), (2, 1, 1)])
@pytest.mark.parametrize("kind", ["max", "avg"])
def test_pooling(k: int, s: int, p: int, kind: str) -> None:
    x = RNG.standard_normal((2, 3, 6, 6))
    fn = lm.max_pool2d if kind == "max" else lm.avg_pool2d
    want = _np_pool(x, k, s, p, np.max if kind == "max" else np.mean, -np.inf if kind == "max" else 0.0)
    for backend in ("eager", "cpu"):
        c = lm.compile_out(lambda v: fn(v, k, s, p), lm.f64[2, 3, 6, 6], backend=backend)
        np.testing.assert_allclose(c(x), want, rtol=1e-12)
    lm.check_grads(c, [x], order=1 if kind == "max" else 2)


def test_max_pool_ties_share_the_gradient() -> None:
    x = np.zeros((1, 1, 2, 2))
    x[0, 0, 0, 1] = x[0, 0, 1, 0] = 1.0  # two maxima in the one window
    (g,) = lm.grad(lambda v: lm.sum(lm.max_pool2d(v, 2)), argnums=(0,))(x)
    np.testing.assert_array_equal(g, [[[[0, 0.5], [0.5, 0]]]])


def test_norms_and_attention_match_torch() -> None:
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x = RNG.standard_normal((4, 3, 5, 5))
    w, b = RNG.standard_normal(3), RNG.standard_normal(3)
    y, mu, var = lm.compile_out(lambda x, w, b: lm.batch_norm(x, w, b, return_stats=True), x, w, b)(x, w, b)
    t = [torch.tensor(v) for v in (x, w, b)]
    np.testing.assert_allclose(y, F.batch_norm(t[0], None, None, t[1], t[2], training=True).numpy(), rtol=1e-10)
    np.testing.assert_allclose(var, x.var(axis=(0, 2, 3)), rtol=1e-12)
    np.testing.assert_allclose(mu, x.mean(axis=(0, 2, 3)), rtol=1e-12)
    h = RNG.standard_normal((2, 7, 8))
    g8, b8 = RNG.standard_normal(8), RNG.standard_normal(8)
    got = lm.compile_out(lambda h, g, b: lm.layer_norm(h, g, b), h, g8, b8)(h, g8, b8)
    want = F.layer_norm(torch.tensor(h), (8,), torch.tensor(g8), torch.tensor(b8)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    q, k, v = (RNG.standard_normal((2, 3, 5, 4)) for _ in range(3))
    mask = RNG.random((5, 5)) > 0.3
    np.fill_diagonal(mask, True)
    for kwargs, tkw in (({"causal": True}, {"is_causal": True}), ({"mask": mask}, {"attn_mask": torch.tensor(mask)})):
        got = lm.compile_out(lambda q, k, v, kw=kwargs: lm.scaled_dot_product_attention(q, k, v, **kw), q, k, v)
        want = F.scaled_dot_product_attention(*(torch.tensor(a) for a in (q, k, v)), **tkw).numpy()
        np.testing.assert_allclose(got(q, k, v), want, rtol=1e-10, atol=1e-12)


def test_layer_derivatives() -> None:
    x = RNG.standard_normal((3, 2, 4, 4))
    w, b = RNG.standard_normal(2), RNG.standard_normal(2)
    c = lm.compile_scalar(lambda x, w, b: lm.sum(lm.tanh(lm.batch_norm(x, w, b))), x, w, b)
    lm.check_grads(c, [x, w, b])
    c = lm.compile_scalar(lambda x: lm.sum(lm.tanh(lm.layer_norm(x, axis=(-1, -2)))), x)
    lm.check_grads(c, [x])
    q = RNG.standard_normal((2, 5, 4))
    c = lm.compile_scalar(lambda q, k: lm.sum(lm.scaled_dot_product_attention(q, k, k * 2, causal=True)), q, q)
    lm.check_grads(c, [q, q * 0.5])


def test_layer_errors() -> None:
    with pytest.raises(lm.TraceError, match="max_pool2d: expected an NCHW input of rank 4"):
        lm.compile_out(lambda x: lm.max_pool2d(x, 2), lm.f32[4, 4])
    with pytest.raises(lm.TraceError, match="padding .* at most half the kernel"):
        lm.compile_out(lambda x: lm.max_pool2d(x, 2, padding=2), lm.f32[1, 1, 4, 4])
    with pytest.raises(TypeError, match="kernel must be an int or a pair of ints"):
        lm.compile_out(lambda x: lm.avg_pool2d(x, (2, 2, 2)), lm.f32[1, 1, 4, 4])


def _np_conv_transpose(x: np.ndarray, w: np.ndarray, s: int, p: int, op: int) -> np.ndarray:
    n, c, h, wd = x.shape
    _, o, kh, kw = w.shape
    full = np.zeros((n, o, (h - 1) * s + kh + op, (wd - 1) * s + kw + op))
    for i in range(h):
        for j in range(wd):
            full[:, :, i * s:i * s + kh, j * s:j * s + kw] += np.einsum("nc,cokl->nokl", x[:, :, i, j], w)
    return full[:, :, p:full.shape[2] - p, p:full.shape[3] - p]


@pytest.mark.parametrize(("s", "p", "op"), [(1, 0, 0), (2, 1, 1), (3, 2, 0)])
def test_conv_transpose2d(s: int, p: int, op: int) -> None:
    x, w, b = RNG.standard_normal((2, 3, 4, 5)), RNG.standard_normal((3, 2, 3, 3)), RNG.standard_normal(2)
    c = lm.compile_out(lambda x, w, b: lm.conv_transpose2d(x, w, b, stride=s, padding=p, output_padding=op), x, w, b)
    want = _np_conv_transpose(x, w, s, p, op) + b[:, None, None]
    np.testing.assert_allclose(c(x, w, b), want, rtol=1e-12, atol=1e-12)
    lm.check_grads(c, [x, w, b], order=1)


@pytest.mark.parametrize("kwargs", [{"dilation": 2, "padding": 2}, {"groups": 3, "stride": 2},
                                    {"groups": 3, "dilation": (1, 2), "padding": 1}], ids=str)
def test_conv2d_bias_dilation_groups(kwargs: dict) -> None:
    groups = kwargs.get("groups", 1)
    x, w, b = RNG.standard_normal((2, 6, 7, 7)), RNG.standard_normal((3 * groups, 6 // groups, 3, 3)), None
    b = RNG.standard_normal(3 * groups)
    c = lm.compile_out(lambda x, w, b: lm.conv2d(x, w, b, **kwargs), x, w, b)
    lm.check_grads(c, [x, w, b], order=1)
    torch = pytest.importorskip("torch")
    want = torch.nn.functional.conv2d(*(torch.tensor(a) for a in (x, w, b)), **kwargs).numpy()
    np.testing.assert_allclose(c(x, w, b), want, rtol=1e-10, atol=1e-12)


def test_conv_errors() -> None:
    with pytest.raises(lm.TraceError, match="2 groups do not divide input"):
        lm.compile_out(lambda x, w: lm.conv2d(x, w, groups=2), lm.f32[1, 3, 4, 4], lm.f32[2, 1, 3, 3])
    with pytest.raises(lm.TraceError, match="conv_transpose2d: stride .* output_padding"):
        lm.compile_out(lambda x, w: lm.conv_transpose2d(x, w, stride=2, output_padding=2), lm.f32[1, 3, 4, 4],
                       lm.f32[3, 2, 3, 3])
