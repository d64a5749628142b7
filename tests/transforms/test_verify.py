"""The lean verifier (lm.verify, IRDL at parse time): diagnostics with the source location."""

from __future__ import annotations

import pytest
from mlir import ir

import lean_mlir as lm

BAD_IR = [
    ('%0 = "lean.matmul"(%a, %a) : (tensor<3x4xf32>, tensor<3x4xf32>) -> tensor<3x4xf32>',
     "contraction dimensions differ: 4 and 3"),
    ('%0 = "lean.sum"(%a) {axes = array<i64: 5>, keepdims = false} : (tensor<3x4xf32>) -> tensor<3xf32>',
     "axes (5,) must be sorted"),
    ('%0 = "lean.exp"(%a) : (tensor<3x4xf32>) -> tensor<3x4xf32>\n %1 = "lean.sum"(%0) {axes = array<i64: 0>,'
     ' keepdims = false} : (tensor<3x4xf32>) -> tensor<3xf32>', "result type should be tensor<4xf32>"),
    ('%0 = "lean.transpose"(%a) {permutation = array<i64: 0, 0>} : (tensor<3x4xf32>) -> tensor<3x3xf32>',
     "permutation (0, 0) is not one of rank 2"),
    ('%0 = "lean.sum"(%a) {axes = [0], keepdims = false} : (tensor<3x4xf32>) -> tensor<4xf32>',
     "expected base attribute"),
]


@pytest.mark.parametrize("body,match", BAD_IR)
def test_verifier_diagnostics_carry_locations(body: str, match: str) -> None:
    src = f"func.func @f(%a: tensor<3x4xf32>) {{\n {body}\n return\n}}"
    with lm.make_context(), ir.Location.unknown():
        try:
            m = ir.Operation.parse(src, source_name="bad.mlir")
        except ir.MLIRError as e:  # IRDL-level errors surface at parse time
            assert match in str(e)
            return
        with pytest.raises(lm.VerificationError) as e:
            lm.verify(m)
    d = e.value.diagnostics[0]
    assert d.startswith(("bad.mlir:2:", "bad.mlir:3:")) and ": error: 'lean." in d and match in d, d


def test_f16_is_rejected_by_the_verifier() -> None:
    src = ('func.func @f(%a: tensor<3xf16>) -> tensor<3xf16> {\n'
           ' %0 = "lean.exp"(%a) : (tensor<3xf16>) -> tensor<3xf16>\n return %0 : tensor<3xf16>\n}')
    with lm.make_context(), ir.Location.unknown():
        m = ir.Operation.parse(src, source_name="h.mlir")
        with pytest.raises(lm.VerificationError, match="element type must be f32 or f64, got f16"):
            lm.verify(m)
