"""The front end (lean_mlir.trace, lm.Spec): tracing, explicit broadcasting, constants, and the errors
it raises at trace time."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest

import lean_mlir as lm


def _trace(fn, *specs) -> str:
    return lm.trace_ir(fn, *specs, name="f")


def test_specs() -> None:
    assert lm.f32[8, 4] == lm.Spec((8, 4), "f32")
    assert lm.f64[()] == lm.Spec((), "f64")
    assert lm.f32[3].shape == (3,)
    with pytest.raises(TypeError, match="element type must be one of"):
        lm.Spec((2,), "f16")
    with pytest.raises(ValueError, match="negative dimension"):
        lm.Spec((-1,), "f32")


def test_broadcasting_is_explicit() -> None:
    text = _trace(lambda x, b: x + b, lm.f32[4, 3], lm.f32[3])
    assert '"lean.broadcast_to"(%arg1) : (tensor<3xf32>) -> tensor<4x3xf32>' in text
    assert '"lean.add"' in text


def test_python_scalars_become_constants() -> None:
    text = _trace(lambda x: 2.0 * x - 1, lm.f64[2])
    assert "dense<2.000000e+00> : tensor<2xf64>" in text
    assert "dense<1.000000e+00> : tensor<2xf64>" in text


def test_numpy_arrays_become_constants() -> None:
    text = _trace(lambda x: x * np.array([1.0, 2.0]), lm.f32[2])
    assert "dense<[1.000000e+00, 2.000000e+00]> : tensor<2xf32>" in text


def test_shape_error_names_op_shapes_and_line() -> None:
    def bad(x, w):
        return x @ w  # the line the error must name

    with pytest.raises(lm.TraceError) as e:
        _trace(bad, lm.f32[4, 3], lm.f32[5, 6])
    msg = str(e.value)
    assert "lean.matmul" in msg and "3 and 5" in msg and "f32[4, 3]" in msg
    assert f"{pathlib.Path(__file__).name}:{bad.__code__.co_firstlineno + 1}" in msg


def test_broadcast_error() -> None:
    with pytest.raises(lm.TraceError, match=r"lean.add: shapes \(3,\), \(4,\) do not broadcast"):
        _trace(lambda x, y: x + y, lm.f32[3], lm.f32[4])


def test_dtype_mix_is_an_error() -> None:
    with pytest.raises(lm.TraceError, match="element types differ: f32 and f64"):
        _trace(lambda x, y: x * y, lm.f32[3], lm.f64[3])


@pytest.mark.parametrize("fn,spec,match", [
    (lambda x: lm.sum(x, axis=2), lm.f32[3, 4], "axis 2 is out of range for rank 2"),
    (lambda x: lm.transpose(x, (0, 0)), lm.f32[3, 4], "permutation"),
    (lambda x: lm.reshape(x, (5,)), lm.f32[3, 4], r"cannot reshape \(3, 4\) to \(5,\)"),
    (lambda x: lm.broadcast_to(x, (2, 4)), lm.f32[3], "cannot broadcast"),
    (lambda x: lm.conv2d(lm.slice(x, (0, 0, 0, 0), (1, 1, 2, 2)), x), lm.f32[1, 1, 3, 3], "kernel"),
    (lambda x: lm.softmax(x, axis=3), lm.f32[3], "out of range"),
    (lambda x: lm.concatenate([x, lm.reshape(x, (4, 3))], 0), lm.f32[3, 4], "differ outside axis 0"),
    (lambda x: lm.clamp(x, 1.0, 0.0), lm.f32[3], "lo must be <= hi"),
])
def test_trace_time_errors(fn, spec, match) -> None:
    with pytest.raises((lm.TraceError, ValueError), match=match):
        _trace(fn, spec)


def test_traced_value_has_no_truth_value() -> None:
    with pytest.raises(TypeError, match="no truth value"):
        _trace(lambda x: x if x else x, lm.f32[3])
