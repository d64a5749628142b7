"""NumPy basic indexing and the NumPy / torch-style methods of traced values: `x[i]`, `x[a:b]`,
`x[:, ::2]`, `x[..., None]`, negative indices, against NumPy on both back ends; the VJP scatters the
seed where NumPy's `g[key] += seed` puts it, the JVP indexes the tangent; errors as NumPy's."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lean_mlir as lm

SHAPE = (5, 6, 7)


def _index(n: int) -> st.SearchStrategy[Any]:
    bound = st.integers(-n - 2, n + 2) | st.none()
    return (st.integers(-n, n - 1)
            | st.builds(slice, bound, bound, st.none() | st.integers(1, 4) | st.integers(-4, -1)))


@st.composite
def _keys(draw: st.DrawFn) -> Any:
    items = [draw(_index(n)) for n in SHAPE[:draw(st.integers(0, len(SHAPE)))]]
    for _ in range(draw(st.integers(0, 2))):
        items.insert(draw(st.integers(0, len(items))), None)
    if draw(st.booleans()):
        items.insert(draw(st.integers(0, len(items))), Ellipsis)
    return tuple(items) if len(items) != 1 or draw(st.booleans()) else items[0]


@settings(max_examples=40, deadline=None)
@given(key=_keys())
def test_indexing_matches_numpy(key: Any) -> None:
    x = np.random.default_rng(0).standard_normal(SHAPE)
    want = x[key]
    for backend in ("eager", "cpu"):
        c = lm.compile_out(lambda a: a[key] * 2.0, lm.Spec(SHAPE, "f64"), backend=backend)
        got = c.forward(x)
        assert got.shape == want.shape, (key, backend)
        np.testing.assert_array_equal(got, want * 2.0)
        if want.size == 0:
            continue
        seed = np.random.default_rng(1).standard_normal(want.shape)
        expected = np.zeros(SHAPE)
        expected[key] += 2.0 * seed
        np.testing.assert_array_equal(c.vjp_with_seed([x], seed)[0], expected)
        dx = np.random.default_rng(2).standard_normal(SHAPE)
        np.testing.assert_array_equal(c.jvp([x], [dx])[1], 2.0 * dx[key])


@pytest.mark.parametrize("key, error, match", [
    (5, IndexError, "index 5 is out of bounds for axis 0 with size 5"),
    ((0, -7), IndexError, "index -7 is out of bounds for axis 1 with size 6"),
    ((0, 0, 0, 0), IndexError, "too many indices: the value has rank 3, 4 were indexed"),
    ((Ellipsis, 0, Ellipsis), IndexError, "single ellipsis"),
    ((0, [1, 6]), IndexError, "index 6 is out of bounds for axis 1 with size 6"),
    (([0], [1]), IndexError, "only one integer-array index per key"),
    (np.array([0.5]), IndexError, "an array index must be a 1-D array of integers, got float64"),
    (True, IndexError, "got bool"),
    (1.0, IndexError, "got float"),
])
def test_bad_index_raises_as_numpy_does(key: Any, error: type[Exception], match: str) -> None:
    if key is not True and not isinstance(key, float | np.ndarray) and not (isinstance(key, tuple) and key[0] == [0]):
        with pytest.raises(IndexError):
            np.zeros(SHAPE)[key]
    with pytest.raises(error, match=match):
        lm.compile_out(lambda a: a[key], lm.Spec(SHAPE, "f64"))


@pytest.mark.parametrize("key", [[4, 0, 0, 2], (slice(None), [5, -1, 2, 3]), (1, [0, 5, 3]), ([1, 2], 3),
                                 (Ellipsis, np.array([6, 5, 0])), (None, slice(1, 4), [2, 1], slice(None, None, -2))],
                         ids=str)
def test_constant_integer_array_index(key: Any) -> None:
    x = np.random.default_rng(0).standard_normal(SHAPE)
    want = x[key]
    for backend in ("eager", "cpu"):
        c = lm.compile_out(lambda a: a[key] * 2.0, lm.Spec(SHAPE, "f64"), backend=backend)
        np.testing.assert_array_equal(c(x), want * 2.0)
        seed = np.random.default_rng(1).standard_normal(want.shape)
        expected = np.zeros(SHAPE)
        np.add.at(expected, key, 2.0 * seed)  # a repeated index gets the sum of its seeds
        np.testing.assert_allclose(c.vjp_with_seed(x, seed=seed)[0], expected, rtol=1e-12)


def test_index_error_names_the_line() -> None:
    with pytest.raises(IndexError, match=r"out of bounds for axis 0 with size 5 at .*test_indexing.py:\d+"):
        lm.compile_out(lambda a: a[9], lm.Spec(SHAPE, "f64"))


def test_array_index_apart_from_integers_is_refused() -> None:
    with pytest.raises(IndexError, match="an array index and integer indices apart from it"):
        lm.compile_out(lambda a: a[0, :, [1, 2]], lm.Spec(SHAPE, "f64"))


def test_step_of_zero_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="slice step cannot be zero"):
        lm.compile_out(lambda a: a[::0], lm.Spec(SHAPE, "f64"))


def test_methods_match_numpy() -> None:
    x = np.random.default_rng(3).standard_normal(SHAPE)

    def f(a: Any) -> Any:
        assert a.size == x.size and len(a) == 5 and a.ndim == 3 and a.shape == SHAPE
        parts = [a.swapaxes(0, 2).transpose(), a.transpose(1, 0, 2).transpose((1, 0, 2)), a.exp().log(),
                 abs(a).sqrt(), a.tanh() + a.sigmoid() + a.relu() + a.softplus() + a.square() + a.sign(),
                 a.sin() * a.cos(), a.clip(-0.5, 0.5), a.astype("f64"), a.reshape(5, 42).reshape((5, 6, 7))]
        out = parts[0]
        for p in parts[1:]:
            out = out + p
        return out

    sig = lambda v: 1 / (1 + np.exp(-v))
    want = (x + x + x + np.sqrt(abs(x)) + np.tanh(x) + sig(x) + np.maximum(x, 0) + np.logaddexp(0, x) + x * x
            + np.sign(x) + np.sin(x) * np.cos(x) + np.clip(x, -0.5, 0.5) + x + x)
    np.testing.assert_allclose(lm.compile_out(f, lm.Spec(SHAPE, "f64")).forward(x), want, rtol=1e-12)


def test_astype_to_another_dtype_is_not_silent() -> None:
    with pytest.raises(TypeError, match="astype\\(f32\\) of a f64 value: lean has no conversion op yet"):
        lm.compile_out(lambda a: a.astype(np.float32), lm.Spec(SHAPE, "f64"))


def test_iterating_a_traced_value_yields_its_rows() -> None:
    x = np.arange(6.0).reshape(3, 2)
    c = lm.compile_out(lambda a: lm.concatenate([r * float(i) for i, r in enumerate(a)]), lm.Spec((3, 2), "f64"))
    np.testing.assert_array_equal(c.forward(x), np.concatenate([r * i for i, r in enumerate(x)]))
