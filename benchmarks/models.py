"""The GPT-block and LeNet-5 cells of bench.py: one computation, written for lean_mlir, NumPy (forward only),
JAX and PyTorch. JAX and PyTorch are imported inside the functions (both are optional peers).

gpt    one pre-norm GPT-2-style block on x (batch, seq, width): x + attn(ln1(x)), then + mlp(ln2(.)); causal
       softmax attention with `heads` heads (the mask a constant, 0 on and below the diagonal and -1e9 above,
       added to the scaled scores before the softmax), layer norm with eps 1e-5 (biased variance), a tanh-GELU
       MLP of width 4 * width, biases on every linear map; loss mean(y * y) over the block's output y.
lenet  LeNet-5 on x (batch, 1, 32, 32): conv 6@5x5 -> tanh -> 2x2 max pool -> conv 16@5x5 -> tanh -> pool ->
       dense 400 -> 120 -> tanh -> 84 -> tanh -> 10; loss the mean cross entropy against one-hot targets.
       The pool is a reshape to (n, c, h/2, 2, w/2, 2) and a max over axes (3, 5) (torch: F.max_pool2d); tanh
       rather than relu so that a pool window has no ties (the systems split a tied max's gradient differently).
"""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any

import numpy as np

import lean_mlir as lm

EPS = 1e-5
GELU_C = math.sqrt(2.0 / math.pi)
NEG = -1e9


def causal_mask(t: int, dtype: Any) -> np.ndarray:
    """(t, t): 0 where a query may see the key (key <= query), NEG above the diagonal."""
    return np.triu(np.full((t, t), NEG, dtype=dtype), 1)


# --------------------------------------------------------------------------------------------------
# GPT block: lean_mlir, NumPy and JAX share one definition over a small namespace of ops


def _gpt_generic(xp: Any, heads: int, x, g1, be1, wq, bq, wk, bk, wv, bv, wo, bo, g2, be2, w1, b1, w2, b2):  # noqa: ANN001
    n, t, c = x.shape
    d = c // heads
    mask = xp.const(causal_mask(t, xp.np_dtype(x)))

    def ln(v, g, b):  # noqa: ANN001, ANN202
        mu = v.mean(axis=-1, keepdims=True)
        vc = v - mu
        var = (vc * vc).mean(axis=-1, keepdims=True)
        return vc / xp.sqrt(var + EPS) * g + b

    def split(v):  # noqa: ANN001, ANN202 - (n * t, c) -> (n, heads, t, d)
        return xp.transpose(v.reshape((n, t, heads, d)), (0, 2, 1, 3))

    h = ln(x, g1, be1).reshape((n * t, c))
    q, k, v = split(h @ wq + bq), split(h @ wk + bk), split(h @ wv + bv)
    s = q @ xp.transpose(k, (0, 1, 3, 2)) * (1.0 / math.sqrt(d)) + mask
    a = xp.transpose(xp.softmax(s) @ v, (0, 2, 1, 3)).reshape((n * t, c))
    x = x + (a @ wo + bo).reshape((n, t, c))
    h = ln(x, g2, be2).reshape((n * t, c))
    u = h @ w1 + b1
    u = 0.5 * u * (1.0 + xp.tanh(GELU_C * (u + 0.044715 * (u * u * u))))
    y = x + (u @ w2 + b2).reshape((n, t, c))
    return (y * y).mean()


def _np_softmax(s: np.ndarray) -> np.ndarray:
    e = np.exp(s - s.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


# const: the mask as a (t, t) constant of the traced function (broadcast by the add), not one of the scores' shape
LM_OPS = SimpleNamespace(sqrt=lm.sqrt, tanh=lm.tanh, transpose=lm.transpose, softmax=lambda s: lm.softmax(s, axis=-1),
                         np_dtype=lambda x: x.spec.np_dtype, const=lambda a: lm.constant(a, lm.Spec.of_array(a)))
NP_OPS = SimpleNamespace(sqrt=np.sqrt, tanh=np.tanh, transpose=np.transpose, softmax=_np_softmax,
                         np_dtype=lambda x: x.dtype, const=lambda a: a)


def gpt_lm(heads: int):
    return lambda *args: _gpt_generic(LM_OPS, heads, *args)


def gpt_np(heads: int):
    return lambda *args: _gpt_generic(NP_OPS, heads, *args)


def gpt_jax(heads: int):
    import jax
    import jax.numpy as jnp

    ops = SimpleNamespace(sqrt=jnp.sqrt, tanh=jnp.tanh, transpose=jnp.transpose,
                          softmax=lambda s: jax.nn.softmax(s, axis=-1), np_dtype=lambda x: np.dtype(x.dtype),
                          const=jnp.asarray)
    return lambda *args: _gpt_generic(ops, heads, *args)


def gpt_torch(heads: int):
    """The same block in idiomatic PyTorch: F.layer_norm, F.gelu(approximate="tanh")."""
    import torch
    import torch.nn.functional as F  # noqa: N812

    def loss(x, g1, be1, wq, bq, wk, bk, wv, bv, wo, bo, g2, be2, w1, b1, w2, b2):  # noqa: ANN001, ANN202
        n, t, c = x.shape
        d = c // heads
        mask = torch.from_numpy(causal_mask(t, np.float64)).to(x.dtype)
        h = F.layer_norm(x, (c,), g1, be1, EPS)
        q, k, v = ((h @ w + b).view(n, t, heads, d).transpose(1, 2) for w, b in ((wq, bq), (wk, bk), (wv, bv)))
        s = q @ k.transpose(-1, -2) * (1.0 / math.sqrt(d)) + mask
        a = (torch.softmax(s, dim=-1) @ v).transpose(1, 2).reshape(n, t, c)
        x = x + a @ wo + bo
        h = F.layer_norm(x, (c,), g2, be2, EPS)
        y = x + F.gelu(h @ w1 + b1, approximate="tanh") @ w2 + b2
        return (y * y).mean()

    return loss


def gpt_arrays(batch: int, seq: int, width: int, dtype: Any) -> list[np.ndarray]:
    """x, then the 16 parameters in _gpt_generic's order."""
    rng = np.random.default_rng(3)
    c, f = width, 4 * width

    def r(*s: int, scale: float = 1.0, mean: float = 0.0) -> np.ndarray:
        return (mean + rng.standard_normal(s) * scale).astype(dtype)

    lin = lambda i, o: [r(i, o, scale=i**-0.5), r(o, scale=0.02)]  # noqa: E731
    return [r(batch, seq, c), r(c, scale=0.1, mean=1.0), r(c, scale=0.1), *lin(c, c), *lin(c, c), *lin(c, c),
            *lin(c, c), r(c, scale=0.1, mean=1.0), r(c, scale=0.1), *lin(c, f), *lin(f, c)]


# --------------------------------------------------------------------------------------------------
# LeNet-5


def _pool(y):  # noqa: ANN001, ANN202 - 2x2 max pool of (n, c, h, w) by a reshape and a max
    n, c, h, w = y.shape
    return y.reshape((n, c, h // 2, 2, w // 2, 2)).max(axis=(3, 5))


def lenet_lm(x, t, c1w, c1b, c2w, c2b, f1w, f1b, f2w, f2b, f3w, f3b):  # noqa: ANN001, ANN201
    y = _pool(lm.tanh(lm.conv2d(x, c1w) + c1b.reshape((1, -1, 1, 1))))
    y = _pool(lm.tanh(lm.conv2d(y, c2w) + c2b.reshape((1, -1, 1, 1))))
    h = lm.tanh(y.reshape((x.shape[0], -1)) @ f1w + f1b)
    h = lm.tanh(h @ f2w + f2b)
    return -lm.mean(lm.sum(t * lm.log_softmax(h @ f3w + f3b, axis=-1), axis=-1))


def _np_conv(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Valid cross-correlation, NCHW x OIHW -> NCHW."""
    win = np.lib.stride_tricks.sliding_window_view(x, w.shape[2:], axis=(2, 3))  # n, c, h', w', kh, kw
    return np.tensordot(win, w, axes=([1, 4, 5], [1, 2, 3])).transpose(0, 3, 1, 2)


def lenet_np(x, t, c1w, c1b, c2w, c2b, f1w, f1b, f2w, f2b, f3w, f3b):  # noqa: ANN001, ANN201
    y = _pool(np.tanh(_np_conv(x, c1w) + c1b.reshape(1, -1, 1, 1)))
    y = _pool(np.tanh(_np_conv(y, c2w) + c2b.reshape(1, -1, 1, 1)))
    h = np.tanh(y.reshape(x.shape[0], -1) @ f1w + f1b)
    h = np.tanh(h @ f2w + f2b)
    z = h @ f3w + f3b
    m = z.max(axis=-1, keepdims=True)
    logp = z - m - np.log(np.exp(z - m).sum(axis=-1, keepdims=True))
    return -(t * logp).sum(axis=-1).mean()


def lenet_jax(x, t, c1w, c1b, c2w, c2b, f1w, f1b, f2w, f2b, f3w, f3b):  # noqa: ANN001, ANN201
    import jax
    import jax.numpy as jnp

    def conv(v, w):  # noqa: ANN001, ANN202
        return jax.lax.conv_general_dilated(v, w, (1, 1), "VALID", dimension_numbers=("NCHW", "OIHW", "NCHW"))

    y = _pool(jnp.tanh(conv(x, c1w) + c1b.reshape(1, -1, 1, 1)))
    y = _pool(jnp.tanh(conv(y, c2w) + c2b.reshape(1, -1, 1, 1)))
    h = jnp.tanh(y.reshape(x.shape[0], -1) @ f1w + f1b)
    h = jnp.tanh(h @ f2w + f2b)
    return -(t * jax.nn.log_softmax(h @ f3w + f3b, axis=-1)).sum(axis=-1).mean()


def lenet_torch(x, t, c1w, c1b, c2w, c2b, f1w, f1b, f2w, f2b, f3w, f3b):  # noqa: ANN001, ANN201
    import torch
    import torch.nn.functional as F  # noqa: N812

    y = F.max_pool2d(torch.tanh(F.conv2d(x, c1w, c1b)), 2)
    y = F.max_pool2d(torch.tanh(F.conv2d(y, c2w, c2b)), 2)
    h = torch.tanh(y.flatten(1) @ f1w + f1b)
    h = torch.tanh(h @ f2w + f2b)
    return -(t * F.log_softmax(h @ f3w + f3b, dim=-1)).sum(-1).mean()


def lenet_arrays(batch: int, dtype: Any) -> list[np.ndarray]:
    """x (batch, 1, 32, 32), one-hot targets (batch, 10), then the 10 parameters."""
    rng = np.random.default_rng(4)

    def r(*s: int, fan_in: int = 0, scale: float = 1.0) -> np.ndarray:
        return (rng.standard_normal(s) * (fan_in**-0.5 if fan_in else scale)).astype(dtype)

    onehot = np.eye(10, dtype=dtype)[rng.integers(0, 10, batch)]
    return [r(batch, 1, 32, 32), onehot, r(6, 1, 5, 5, fan_in=25), r(6, scale=0.1), r(16, 6, 5, 5, fan_in=150),
            r(16, scale=0.1), r(400, 120, fan_in=400), r(120, scale=0.1), r(120, 84, fan_in=120), r(84, scale=0.1),
            r(84, 10, fan_in=84), r(10, scale=0.1)]
