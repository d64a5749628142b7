"""Small models used across the tests (eager, cpu, gpu), the demo and the benchmarks.

MODELS: name -> (fn, input shapes), the table the back-end agreement, API and GPU tests run over.
`mlp3_mse` and `elementwise_sum` are the benchmarks' mlp and ew workloads (sizes chosen by the caller)."""

from __future__ import annotations

from collections.abc import Callable

import lean_mlir as lm


def mlp_mse(x, w1, b1, w2, b2, t):
    h = lm.tanh(x @ w1 + b1)
    return lm.mean((h @ w2 + b2 - t) ** 2)


def softmax_cross_entropy(x, w, onehot):
    return -lm.mean(lm.sum(onehot * lm.log_softmax(x @ w), axis=-1))


def layer_norm(x, gamma, beta):
    mu = lm.mean(x, axis=-1, keepdims=True)
    var = lm.mean((x - mu) ** 2, axis=-1, keepdims=True)
    return lm.sum(lm.sin((x - mu) / lm.sqrt(var + 1e-5) * gamma + beta))


def attention(q, k, v):
    scores = lm.softmax(q @ lm.transpose(k, (0, 2, 1)) * (1.0 / 2.0), axis=-1)
    return lm.sum(lm.tanh(scores @ v))


def conv_net(x, w, b):
    y = lm.relu(lm.conv2d(x, w, stride=2, padding=1) + lm.reshape(b, (1, -1, 1, 1)))
    return lm.logsumexp(lm.reshape(y, (x.shape[0], -1)), axis=-1).sum()


MODELS: dict[str, tuple[Callable, list[tuple[int, ...]]]] = {
    "mlp_mse": (mlp_mse, [(8, 5), (5, 16), (16,), (16, 3), (3,), (8, 3)]),
    "softmax_cross_entropy": (softmax_cross_entropy, [(6, 4), (4, 5), (6, 5)]),
    "layer_norm": (layer_norm, [(4, 6), (6,), (6,)]),
    "attention": (attention, [(2, 3, 4), (2, 5, 4), (2, 5, 3)]),
    "conv_net": (conv_net, [(2, 3, 7, 6), (4, 3, 3, 3), (4,)]),
}


def mlp3_mse(x, t, w1, b1, w2, b2, w3, b3):
    """A 3-layer tanh MLP, loss mean((y - t)^2): x (batch, width), t (batch, 10), square hidden layers."""
    h = lm.tanh(x @ w1 + b1)
    h = lm.tanh(h @ w2 + b2)
    return lm.mean((h @ w3 + b3 - t) ** 2)


def mlp3_shapes(batch: int, width: int) -> list[tuple[int, ...]]:
    """The input shapes of mlp3_mse, in argument order."""
    return [(batch, width), (batch, 10), (width, width), (width,), (width, width), (width,), (width, 10), (10,)]


def elementwise_sum(x):
    """sum(exp(sin(x) * x + tanh(x))): an elementwise chain into a reduction (one fused pass on the CPU)."""
    return lm.sum(lm.exp(lm.sin(x) * x + lm.tanh(x)))
