"""lean-to-linalg (lean_mlir/transforms/to_linalg.py and the `lower` rules next to each stanza): every op,
alone (`Case.single`), lowered, verified, compiled by the CPU back end and run against the op's NumPy
semantics."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
from mlir import ir
from mlir.passmanager import PassManager
from support import build

from lean_mlir import ops as L
from lean_mlir.irutils.context import make_context
from lean_mlir.ops.contract import _conv_out
from lean_mlir.ops.core import OPS, Spec
from lean_mlir.trace import trace
from lean_mlir.transforms.to_linalg import LoweringError, lean_to_linalg_pass, lower_lean_to_linalg
from workloads.op_cases import Case

F32, F64 = "f32", "f64"
TOL = {F32: 1e-5, F64: 1e-12}


def S(shape: tuple[int, ...], dtype: str = F32) -> Spec:
    return Spec(shape, dtype)


UNARY = ["neg", "square", "sqrt", "abs", "sign", "exp", "log", "sin", "cos", "tanh", "erf", "log1p", "expm1",
         "sigmoid", "relu", "softplus", "stop_gradient"]
BINARY = ["add", "sub", "mul", "div", "pow", "maximum", "minimum", "greater", "equal", "greater_equal", "not_equal"]
POSITIVE = {"sqrt", "log", "log1p", "pow"}
EW_SHAPES = [((), F32), ((7,), F64), ((3, 4), F32), ((2, 0, 3), F64), ((2, 3, 5), F64)]


def _cases() -> list[Case]:
    c: list[Case] = []
    for op in UNARY:
        c += [Case.single(op, [S(s, d)], domain="positive" if op in POSITIVE else "normal") for s, d in EW_SHAPES]
    for op in BINARY:
        ties = ("maximum", "minimum", "greater", "equal", "greater_equal", "not_equal")
        dom = "positive" if op in POSITIVE else "ties" if op in ties else "normal"
        c += [Case.single(op, [S(s, d), S(s, d)], domain=dom) for s, d in EW_SHAPES]
    c += [Case.single("where", [S(s, d)] * 3, domain="ties") for s, d in EW_SHAPES]
    c += [Case.single("clamp", [S(s, d)], {"lo": -0.5, "hi": 0.7}) for s, d in EW_SHAPES]
    c += [Case.single("clamp", [S((4,), F64)], {"lo": 0.25, "hi": 0.25})]
    # constants: splat, non-splat, rank 0, size 0, with NaN
    c += [Case.single("constant", [], {"value": v}) for v in (
        np.full((2, 3), 1.5, np.float32), np.arange(5.0), np.array(-2.5, np.float32), np.zeros((0, 2)),
        np.array([1.0, np.nan, np.inf, -np.inf], np.float32))]
    # shape ops
    c += [Case.single("broadcast_to", [S(a, d)], shape=b) for a, b, d in [
        ((3,), (2, 3), F32), ((1, 3), (4, 3), F64), ((), (2, 2), F32), ((2, 1, 1), (3, 2, 0, 4), F64),
        ((1,), (0,), F32), ((4, 1), (2, 4, 5), F32), ((), (), F64)]]
    c += [Case.single("reshape", [S(a, d)], shape=b) for a, b, d in [
        ((2, 3), (3, 2), F32), ((6,), (1, 2, 3), F64), ((), (1, 1), F32), ((1, 1), (), F64), ((0, 3), (3, 0), F32),
        ((2, 3, 4), (4, 6), F64), ((4, 6), (24,), F32), ((1,), (), F32), ((), (1,), F64)]]
    c += [Case.single("transpose", [S(a, d)], {"permutation": p}) for a, p, d in [
        ((2, 3), (1, 0), F32), ((2, 3, 4), (2, 0, 1), F64), ((2, 0, 3), (1, 2, 0), F32), ((5,), (0,), F64),
        ((), (), F32), ((1, 2, 3, 4), (3, 1, 0, 2), F32)]]
    c += [Case.single("reverse", [S(a, d)], {"axes": ax}) for a, ax, d in [
        ((5,), (0,), F32), ((2, 3, 4), (0, 2), F64), ((2, 0, 3), (2,), F32), ((3, 1), (), F64)]]
    c += [Case.single("concatenate", [S(a, d), S(b, d)], {"axis": ax}) for a, b, ax, d in [
        ((2, 3), (4, 3), 0, F32), ((2, 3), (2, 0), 1, F64), ((1,), (2,), 0, F32), ((2, 3, 1), (2, 3, 2), 2, F64),
        ((0, 2), (0, 3), 1, F32)]]
    windows = [((5, 4), (1, 2), (3, 2), F32), ((5,), (5,), (0,), F64), ((), (), (), F32),
               ((3, 4, 5), (0, 1, 2), (3, 2, 1), F64), ((3, 4), (2, 0), (1, 4), F32)]  # big, start, small
    c += [Case.single("slice", [S(a, d)], {"start": st}, shape=b) for a, st, b, d in windows]
    c += [Case.single("pad", [S(b, d)], {"low": st}, shape=a) for a, st, b, d in windows]
    # contractions
    c += [Case.single("matmul", [S(a, d), S(b, d)]) for a, b, d in [
        ((3, 4), (4, 5), F32), ((2, 3, 4), (2, 4, 5), F64), ((2, 3, 2, 4), (2, 3, 4, 1), F64), ((0, 3), (3, 2), F32),
        ((3, 0), (0, 2), F32), ((2, 0, 3, 4), (2, 0, 4, 5), F64), ((1, 1), (1, 1), F32),
        ((2, 1, 2, 3, 4), (2, 1, 2, 4, 3), F32)]]
    for x, w, st, pd, d in [
        ((2, 3, 7, 6), (4, 3, 3, 2), (1, 1), (0, 0), F32), ((2, 3, 7, 6), (4, 3, 3, 2), (2, 2), (1, 1), F32),
        ((1, 2, 8, 7), (3, 2, 3, 3), (2, 1), (1, 0), F64), ((1, 2, 8, 7), (3, 2, 3, 3), (2, 2), (0, 0), F64),
        ((1, 1, 5, 4), (1, 1, 1, 1), (1, 2), (0, 0), F32), ((0, 2, 4, 4), (2, 2, 2, 2), (1, 1), (1, 1), F32),
        ((2, 3, 5, 6), (2, 3, 2, 3), (1, 2), (1, 2), F64), ((1, 1, 0, 3), (1, 1, 2, 2), (1, 1), (1, 1), F64)]:
        a = {"stride": st, "padding": pd}
        g = _conv_out(x, w, st, pd)
        c += [Case.single("conv2d", [S(x, d), S(w, d)], a),
              Case.single("conv2d_input_grad", [S(g, d), S(w, d)], a, shape=x),
              Case.single("conv2d_filter_grad", [S(x, d), S(g, d)], a, shape=w)]
    # reductions
    for op in ("sum", "mean", "max"):
        for x, axes, d in [((3, 4, 5), (1,), F32), ((3, 4, 5), (0, 2), F64), ((3, 4, 5), (0, 1, 2), F32),
                           ((3, 4), (), F64), ((), (), F32), ((2, 0, 3), (0,), F64), ((7,), (0,), F64),
                           ((1, 4, 1), (0, 2), F32)] + ([] if op == "max" else [((2, 0, 3), (1,), F32)]):
            c += [Case.single(op, [S(x, d)], {"axes": axes, "keepdims": k}) for k in (False, True)]
    c += [Case.single("max", [S((4, 6), F32)], {"axes": (1,), "keepdims": False}, domain="neginf")]
    # normalizations: every axis, empty extents, -inf entries and whole -inf rows, large values
    norm = [((3, 4), 0, F32, "normal"), ((3, 4), 1, F64, "normal"), ((2, 3, 4), 1, F32, "normal"),
            ((2, 3, 4), 2, F64, "normal"), ((2, 3, 4), 0, F64, "normal"), ((5,), 0, F64, "normal"),
            ((1,), 0, F32, "normal"), ((4, 6), 1, F32, "neginf"), ((4, 6), 0, F64, "neginf"),
            ((3, 5), 1, F32, "large"), ((0, 3), 1, F32, "normal")]
    for op in ("softmax", "log_softmax", "logsumexp"):
        empty_axis = [] if op == "logsumexp" else [((2, 0), 1, F64, "normal")]
        c += [Case.single(op, [S(x, d)], {"axis": ax}, domain=dom) for x, ax, d, dom in norm + empty_axis]
    # NaN propagation like NumPy
    c += [Case.single(op, [S((3, 8), F32)] * (2 if op in BINARY else 1),
                      {"lo": -0.5, "hi": 0.5} if op == "clamp" else {}, domain="nan")
          for op in ("relu", "sign", "abs", "clamp", "maximum", "minimum", "greater", "equal")]
    c += [Case.single(op, [S((3, 8), F64)], {"axes": (1,), "keepdims": False}, domain="nan") for op in ("sum", "max")]
    c += [Case.single(op, [S((3, 8), F64)], {"axis": 1}, domain="nan") for op in ("softmax", "logsumexp")]
    # sizes the CPU back end tiles and vectorizes (matmul register tiles, 64-wide elementwise)
    c += [Case.single("matmul", [S((16, 64), F32), S((64, 64), F32)]),
          Case.single("matmul", [S((2, 8, 16), F64), S((2, 16, 32), F64)]),
          Case.single("tanh", [S((2, 128), F32)]), Case.single("add", [S((3, 64), F64), S((3, 64), F64)]),
          Case.single("softmax", [S((4, 128), F32)], {"axis": 1}),
          Case.single("sum", [S((8, 64), F32)], {"axes": (0,), "keepdims": True})]
    return c


CASES = _cases()


def _lean_ops(m: ir.Module) -> list[str]:
    names: list[str] = []

    def visit(op: ir.Operation) -> ir.WalkResult:
        if op.name.startswith("lean."):
            names.append(op.name)
        return ir.WalkResult.ADVANCE

    m.operation.walk(visit)
    return names


@pytest.mark.filterwarnings("ignore:Mean of empty slice")
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_lowering_matches_numpy(case: Case) -> None:
    xs = case.inputs(seed=zlib.crc32(case.id.encode()))
    with make_context(), ir.Location.unknown():
        m = ir.Module.create()
        trace(case.fn, case.specs(), name="f", module=m)
        assert _lean_ops(m) == [f"lean.{case.op}"]
        lower_lean_to_linalg(m)
        m.operation.verify()
        assert _lean_ops(m) == []
        (out,) = build("", module=m)[0].entry("f")(*xs)
    with np.errstate(all="ignore"):
        ref = np.asarray(case.ref(*xs))
    assert out.shape == ref.shape and out.dtype == ref.dtype
    rtol = TOL[ref.dtype.name.replace("float", "f")]
    finite = np.abs(ref[np.isfinite(ref)])
    atol = rtol * max(1.0, float(finite.max()) if finite.size else 1.0)
    np.testing.assert_allclose(out, ref, rtol=rtol, atol=atol, equal_nan=True)


def test_every_op_has_a_lowering_and_a_case() -> None:
    missing = [n for n, d in OPS.items() if d.lower is None and d.elementwise is None]
    assert not missing, f"ops with neither `lower` nor `elementwise`: {missing}"
    untested = sorted(set(OPS) - {c.op for c in CASES})
    assert not untested, f"ops without a lowering test case: {untested}"


def test_elementwise_is_one_parallel_identity_generic() -> None:
    with make_context(), ir.Location.unknown():
        m = ir.Module.create()
        trace(lambda x, y: L.clamp(L.tanh(x) * y, -1, 1), [L.f32[4, 3], L.f32[4, 3]], module=m)
        lower_lean_to_linalg(m)
        text = str(m)
    assert text.count("linalg.generic") == 3
    assert "reduction" not in text and "affine_map<(d0, d1) -> (d0, d1)>" in text
    assert "math.tanh" in text and "arith.minimumf" in text


def test_missing_lowering_names_the_op(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(OPS["transpose"], "lower", None)
    with make_context(), ir.Location.unknown():
        m = ir.Module.create()
        trace(lambda x: L.transpose(x), [L.f32[2, 3]], module=m)
        with pytest.raises(LoweringError, match="lean.transpose"):
            lower_lean_to_linalg(m)


def test_pass_manager_entry_point() -> None:
    with make_context(), ir.Location.unknown():
        m = ir.Module.create()
        trace(lambda x, w: L.sum(L.softmax(x @ w, 0)), [L.f64[4, 3], L.f64[3, 5]], module=m)
        pm = PassManager("builtin.module")
        pm.add(lean_to_linalg_pass, name="lean-to-linalg")
        pm.add("canonicalize,cse")
        pm.run(m.operation)
        m.operation.verify()
        assert _lean_ops(m) == [] and "linalg.matmul" in str(m)


def test_chain_of_ops_end_to_end() -> None:
    """A small MLP-ish graph: several lowerings feeding each other in one function."""
    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal((5, 3)), rng.standard_normal((3, 4)), rng.standard_normal(4)
    with make_context(), ir.Location.unknown():
        m = ir.Module.create()
        trace(lambda x, w, b: L.mean(L.log_softmax(L.tanh(x @ w + b), -1) * 2.0, 0), [x, w, b], module=m)
        lower_lean_to_linalg(m)
        (out,) = build("", module=m)[0].entry("f")(x, w, b)
    h = np.tanh(x @ w + b)
    ref = ((h - np.log(np.exp(h).sum(-1, keepdims=True))) * 2.0).mean(0)
    np.testing.assert_allclose(out, ref, rtol=1e-12)
