"""split, stack, squeeze, expand_dims, cumsum, min and cross_entropy (probability targets): values against
NumPy / torch, derivatives by lm.check_grads."""

from __future__ import annotations

import numpy as np
import pytest

import lean_mlir as lm

RNG = np.random.default_rng(0)
X = RNG.standard_normal((4, 6, 5))

CASES = {
    "split-equal": (lambda x: lm.concatenate(lm.split(x, 3, axis=1)[::-1], 1),
                    lambda x: np.concatenate(np.split(x, 3, axis=1)[::-1], 1)),
    "split-indices": (lambda x: lm.split(x, [1, 4], axis=-1)[1] * 2, lambda x: np.split(x, [1, 4], axis=-1)[1] * 2),
    "stack": (lambda x: lm.stack([x, x * 2, -x], axis=2), lambda x: np.stack([x, x * 2, -x], axis=2)),
    "expand-squeeze": (lambda x: lm.squeeze(lm.expand_dims(x, (0, -1)), 0),
                       lambda x: np.squeeze(np.expand_dims(x, (0, -1)), 0)),
    "cumsum": (lambda x: lm.cumsum(x, axis=1), lambda x: np.cumsum(x, axis=1)),
    "cumsum-method": (lambda x: x.cumsum(0) * x, lambda x: np.cumsum(x, 0) * x),
    "min": (lambda x: lm.min(x, axis=(0, 2), keepdims=True), lambda x: np.min(x, axis=(0, 2), keepdims=True)),
    "x.min/var/std": (lambda x: x.min() + x.var(1).sum() + x.std(ddof=1),
                      lambda x: x.min() + x.var(1).sum() + x.std(ddof=1)),
}


@pytest.mark.parametrize("name", CASES)
def test_against_numpy(name: str) -> None:
    fn, ref = CASES[name]
    for backend in ("eager", "cpu"):
        c = lm.compile_out(fn, lm.f64[4, 6, 5], backend=backend)
        np.testing.assert_allclose(c(X), ref(X), rtol=1e-12, atol=1e-12)
    lm.check_grads(c, [X], order=1 if "min" in name else 2)


def test_cross_entropy_with_probability_targets() -> None:
    logits = RNG.standard_normal((8, 5))
    target = np.eye(5)[RNG.integers(0, 5, 8)]
    c = lm.compile_scalar(lm.cross_entropy, logits, target, wrt=[0])
    shifted = logits - logits.max(1, keepdims=True)
    want = -(target * (shifted - np.log(np.exp(shifted).sum(1, keepdims=True)))).sum(1).mean()
    assert c(logits, target) == pytest.approx(want, rel=1e-12)
    lm.check_grads(c, [logits, target])
    torch = pytest.importorskip("torch")
    assert c(logits, target) == pytest.approx(
        torch.nn.functional.cross_entropy(torch.tensor(logits), torch.tensor(target)).item(), rel=1e-12)


def test_errors() -> None:
    with pytest.raises(lm.TraceError, match="6 elements do not split into 4 equal parts"):
        lm.compile_out(lambda x: lm.split(x, 4, axis=1)[0], lm.f64[4, 6, 5])
    with pytest.raises(lm.TraceError, match="cannot squeeze axes 1 of shape"):
        lm.compile_out(lambda x: lm.squeeze(x, 1), lm.f64[4, 6, 5])
    with pytest.raises(lm.TraceError, match="all values must have one shape"):
        lm.compile_out(lambda x: lm.stack([x, x[0]]), lm.f64[4, 6, 5])
    with pytest.raises(TypeError, match="cross_entropy: target must be class probabilities"):
        lm.compile_scalar(lambda x: lm.cross_entropy(x, x[0]), lm.f64[4, 6])
