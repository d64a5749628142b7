"""Table-driven checks of every op: IRDL <-> rule table, eager vs NumPy, JVP vs finite differences,
the adjoint identity, and second order (HVP), in f64 on the eager interpreter."""

from __future__ import annotations

import numpy as np
import pytest

import lean_mlir as lm
from lean_mlir.irutils.context import lean_op_names
from lean_mlir.ops import OPS
from workloads.op_cases import CASES, Case


def test_every_irdl_op_has_a_rule_stanza_and_a_case() -> None:
    irdl = set(lean_op_names())
    assert irdl == set(OPS), f"IRDL-only: {irdl - set(OPS)}, table-only: {set(OPS) - irdl}"
    for name, op in OPS.items():
        assert len(op.jvp) == len(op.operands) == len(op.vjp), name
        assert op.numpy is not None and op.infer is not None, name
    assert {c.op for c in CASES} == set(OPS), f"ops without a test case: {set(OPS) - {c.op for c in CASES}}"


def test_missing_rule_names_the_op() -> None:
    with pytest.raises(KeyError, match="lean.nosuch"):
        lm.ops.lookup("lean.nosuch")


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
@pytest.mark.parametrize("dtype", ["f64", "f32"])
def test_eager_matches_numpy(case: Case, dtype: str) -> None:
    if case.ref is None:
        pytest.skip("checked by test_conv_maps_are_adjoint")
    xs = case.inputs(dtype)
    got = lm.compile_out(case.fn, *case.specs(dtype), backend="eager").forward(*xs)
    want = case.ref(*[x.astype(np.float64) for x in xs])
    assert got.dtype == lm.Spec((), dtype).np_dtype
    assert got.shape == np.shape(want)
    tol = 1e-12 if dtype == "f64" else 2e-6
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


@pytest.mark.parametrize("case", [c for c in CASES if c.smooth], ids=lambda c: c.id)
def test_derivatives_first_and_second_order(case: Case) -> None:
    c = lm.compile_out(case.fn, *case.specs(), backend="eager")
    report = lm.check_grads(c, case.inputs(), order=2)
    assert all(v <= 1e-6 for v in report.values()), report


def test_conv_maps_are_adjoint(rng: np.random.Generator) -> None:
    """<conv(x, w), g> == <x, input_grad(g, w)> == <w, filter_grad(x, g)> for the NumPy semantics."""
    for (n, c, h, w_), (o, kh, kw), s, p in [((2, 3, 7, 6), (4, 3, 2), 2, 1), ((1, 2, 5, 5), (3, 3, 3), 1, 0)]:
        x, w = rng.standard_normal((n, c, h, w_)), rng.standard_normal((o, c, kh, kw))
        y = OPS["conv2d"].numpy(x, w, stride=(s, s), padding=(p, p))
        g = rng.standard_normal(y.shape)
        dx = OPS["conv2d_input_grad"].numpy(g, w, stride=(s, s), padding=(p, p), shape=x.shape)
        dw = OPS["conv2d_filter_grad"].numpy(x, g, stride=(s, s), padding=(p, p), shape=w.shape)
        assert np.vdot(y, g) == pytest.approx(np.vdot(x, dx), rel=1e-12)
        assert np.vdot(y, g) == pytest.approx(np.vdot(w, dw), rel=1e-12)


def test_stop_gradient_blocks_derivatives() -> None:
    c = lm.compile_scalar(lambda x, y: lm.sum(lm.stop_gradient(x) * y + x), lm.f64[3], lm.f64[3], backend="eager")
    x, y = np.array([1.0, 2.0, 3.0]), np.array([4.0, 5.0, 6.0])
    gx, gy = c.backward(x, y)
    np.testing.assert_array_equal(gx, np.ones(3))
    np.testing.assert_array_equal(gy, x)
    assert c.jvp([x, y], [np.ones(3), np.zeros(3)])[1] == 3.0
