"""The eager back end (lean_mlir.backends.eager): the NumPy interpreter of lean functions."""

from __future__ import annotations

import numpy as np
from mlir import ir

import lean_mlir as lm
from lean_mlir.backends.eager import evaluate


def test_eager_interpreter_runs_parsed_ir() -> None:
    src = """func.func @g(%a: tensor<2x2xf64>, %b: tensor<2x2xf64>) -> tensor<f64> {
      %0 = "lean.matmul"(%a, %b) : (tensor<2x2xf64>, tensor<2x2xf64>) -> tensor<2x2xf64>
      %1 = "lean.max"(%0) {axes = array<i64: 0, 1>, keepdims = false} : (tensor<2x2xf64>) -> tensor<f64>
      return %1 : tensor<f64>
    }"""
    with lm.make_context(), ir.Location.unknown():
        m = ir.Module.parse(src)
        a, b = np.array([[1.0, 2.0], [3.0, 4.0]]), np.array([[0.5, -1.0], [2.0, 1.0]])
        (y,) = evaluate(m, "g", [a, b])
    assert y == np.max(a @ b)
