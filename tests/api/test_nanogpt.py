"""The nanoGPT example (examples/nanogpt.py): a params pytree with a list of per-block dicts, trained
with lm.value_and_grad(has_aux=True) and lm.tree_map; gradients checked by finite differences (f64)."""

from __future__ import annotations

import importlib.util
import os

import numpy as np
import pytest

import lean_mlir as lm

_PATH = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "nanogpt.py")
_spec = importlib.util.spec_from_file_location("nanogpt", _PATH)
nanogpt = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(nanogpt)


@pytest.fixture(scope="module")
def setup() -> tuple:
    rng = np.random.default_rng(1)
    vocab, seq, width = 8, 4, 8
    params = nanogpt.init_params(rng, vocab, seq, width, blocks=2, dtype=np.float64)
    text = np.tile(np.arange(vocab), 8)
    tokens, targets = nanogpt.batch_of(rng, text, 2, seq, vocab, dtype=np.float64)
    return params, tokens, targets, lm.value_and_grad(nanogpt.loss, has_aux=True)


def test_gradients_match_finite_differences(setup: tuple) -> None:
    params, tokens, targets, step = setup
    (value, logits), grads = step(params, tokens, targets)
    assert logits.shape == (2, 4, 8) and np.isfinite(value)
    assert lm.tree_structure(grads) == lm.tree_structure(params)
    assert len(grads["blocks"]) == 2 and grads["blocks"][1]["attn"]["wqkv"].shape == (8, 24)
    rng = np.random.default_rng(2)
    direction = lm.tree_map(lambda p: rng.standard_normal(p.shape), params)
    eps = 1e-5
    forward = lm.jit(nanogpt.loss)
    up = forward(lm.tree_map(lambda p, d: p + eps * d, params, direction), tokens, targets)[0]
    down = forward(lm.tree_map(lambda p, d: p - eps * d, params, direction), tokens, targets)[0]
    fd = (float(up) - float(down)) / (2 * eps)
    ad = sum(float(np.vdot(g, d)) for g, d in zip(lm.tree_leaves(grads), lm.tree_leaves(direction), strict=True))
    assert ad == pytest.approx(fd, rel=1e-6)


def test_sgd_steps_lower_the_loss(setup: tuple) -> None:
    params, tokens, targets, step = setup
    losses = []
    for _ in range(4):
        (value, _), grads = step(params, tokens, targets)
        losses.append(value)
        params = lm.tree_map(lambda p, g: p - 0.1 * g, params, grads)
    assert all(b < a for a, b in zip(losses, losses[1:], strict=False)), losses
