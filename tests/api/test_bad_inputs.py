"""The bad-input catalogue: every way a caller can hand the compiled API or the command-line tools
something wrong or unusual, and what happens. Each case gets the documented result or a clear error
naming the argument, what was expected and what came -- never a crash, a hang or a wrong answer.
The rules for arrays live in `lean_mlir.runtime.validate.coerce_inputs`."""

from __future__ import annotations

import math
import pathlib
import re

import numpy as np
import pytest
from support import clean_error, tool

import lean_mlir as lm

RNG = np.random.default_rng(0)
X = RNG.standard_normal((3, 4)).astype(np.float32)
W = RNG.standard_normal((4, 2)).astype(np.float32)


def loss(x: lm.Tensor, w: lm.Tensor) -> lm.Tensor:
    return lm.sum(lm.tanh(x @ w))


def layer(x: lm.Tensor, w: lm.Tensor) -> lm.Tensor:
    return lm.tanh(x @ w)


@pytest.fixture(scope="module")
def c() -> lm.CompiledScalar:
    return lm.compile_scalar(loss, lm.f32[3, 4], lm.f32[4, 2])


@pytest.fixture(scope="module")
def o() -> lm.CompiledOut:
    return lm.compile_out(layer, lm.f32[3, 4], lm.f32[4, 2])


def _ref(x: np.ndarray, w: np.ndarray) -> float:
    return float(np.tanh(x.astype(np.float64) @ w).sum())


# ---- arity
@pytest.mark.parametrize("args", [(X,), (X, W, W), ()], ids=["too-few", "too-many", "none"])
def test_forward_arity(c: lm.CompiledScalar, args: tuple) -> None:
    with pytest.raises(TypeError, match=f"expected 2 inputs, got {len(args)}"):
        c.forward(*args)


def test_backward_arity(c: lm.CompiledScalar) -> None:
    with pytest.raises(TypeError, match="expected 2 inputs, got 1"):
        c.backward(X)
    with pytest.raises(TypeError, match="expected 2 inputs, got 3"):
        c.value_and_backward(X, W, W)
    with pytest.raises(TypeError, match="expected 2 inputs, got 1"):
        c.backward_with_seed([X], 1.0)


def test_jvp_arity(c: lm.CompiledScalar) -> None:
    with pytest.raises(TypeError, match="expected 2 inputs, got 1"):
        c.jvp([X], [X, W])
    with pytest.raises(TypeError, match=r"expected 2 tangents \(one per wrt input \[0, 1\]\), got 1"):
        c.jvp([X, W], [X])
    with pytest.raises(TypeError, match="xs must be a list or tuple of arrays, got ndarray"):
        c.jvp(X, [X, W])
    with pytest.raises(TypeError, match="dxs must be a list or tuple"):
        c.jvp([X, W], X)


# ---- shapes and dtypes: an error naming the argument, never a silent broadcast or cast
@pytest.mark.parametrize(("args", "exc", "message"), [
    ((X.T, W), ValueError, r"input 0: expected shape \(3, 4\), got \(4, 3\)"),
    ((X, W[None]), ValueError, r"input 1: expected shape \(4, 2\), got \(1, 4, 2\)"),
    ((1.0, W), ValueError, r"input 0: expected shape \(3, 4\), got \(\)"),
    ((X.astype(np.float64), W), TypeError, r"input 0: expected dtype float32, got float64 .*astype"),
    ((X, W.astype(np.int32)), TypeError, "input 1: expected dtype float32, got int32"),
    ((X.astype(np.float16), W), TypeError, "input 0: expected dtype float32, got float16"),
    ((X.astype(np.complex64), W), TypeError, "input 0: expected dtype float32, got complex64"),
    ((X > 0, W), TypeError, "input 0: expected dtype float32, got bool"),
    ((True, W), TypeError, "input 0: expected a float32 value, got bool"),
    (("abc", W), TypeError, "input 0: expected a float32 value, got str"),
    ((None, W), TypeError, r"input 0: expected float32 values, got object \(NoneType\)"),
    (([[1.0, 2.0], [3.0]], W), TypeError, "input 0: cannot convert list to a float32 array"),
    ((X, [[1j, 2.0]] * 4), TypeError, "input 1: expected float32 values, got complex128"),
], ids=["transposed", "extra-dim", "scalar-for-matrix", "f64-for-f32", "int", "f16", "complex", "bool-array",
        "bool", "str", "None", "ragged-list", "complex-list"])
def test_bad_array(c: lm.CompiledScalar, args: tuple, exc: type, message: str) -> None:
    with pytest.raises(exc, match=message):
        c.forward(*args)


def test_dtype_carrying_scalars_are_not_cast() -> None:
    c = lm.compile_scalar(lambda x: x * x, lm.f32[()])
    assert c.forward(np.float32(3.0)) == 9.0
    assert c.forward(3) == 9.0  # Python numbers convert
    with pytest.raises(TypeError, match="input 0: expected dtype float32, got float64"):
        c.forward(np.float64(3.0))


# ---- tangents and seeds of the wrong shape or dtype
def test_tangent_shape_and_dtype(c: lm.CompiledScalar) -> None:
    with pytest.raises(ValueError, match=r"dxs\[1\] \(tangent of input 1\): expected shape \(4, 2\), got \(3, 4\)"):
        c.jvp([X, W], [X, X])
    with pytest.raises(TypeError, match=r"dxs\[0\] \(tangent of input 0\): expected dtype float32, got float64"):
        c.jvp([X, W], [X.astype(np.float64), W])
    with pytest.raises(ValueError, match=r"vs\[0\] \(tangent of input 0\): expected shape \(3, 4\), got \(4, 2\)"):
        c.hvp([X, W], [W, W])


def test_tangents_follow_wrt() -> None:
    c = lm.compile_scalar(loss, lm.f32[3, 4], lm.f32[4, 2], wrt=[1])
    with pytest.raises(ValueError, match=r"dxs\[0\] \(tangent of input 1\): expected shape \(4, 2\)"):
        c.jvp([X, W], [X])
    _, dy = c.jvp([X, W], [W])
    assert np.isfinite(dy)


def test_seed_shape_and_dtype(c: lm.CompiledScalar, o: lm.CompiledOut) -> None:
    with pytest.raises(ValueError, match=r"seed: expected shape \(\), got \(3,\)"):
        c.backward_with_seed([X, W], np.ones(3, np.float32))
    with pytest.raises(ValueError, match=r"seed: expected shape \(3, 2\), got \(2, 3\)"):
        o.vjp_with_seed([X, W], np.ones((2, 3), np.float32))
    with pytest.raises(TypeError, match="seed: expected dtype float32, got float64"):
        o.vjp_with_seed([X, W], np.ones((3, 2)))
    with pytest.raises(TypeError, match=r"seed: expected float32 values, got object \(NoneType\)"):
        o.vjp_with_seed([X, W], None)
    with pytest.raises(TypeError, match="expected 2 inputs, got 1"):
        o.vjp_with_seed([X], np.ones((3, 2), np.float32))


def test_seed_scales_the_gradient(c: lm.CompiledScalar) -> None:
    g1 = c.backward(X, W)
    g3 = c.backward_with_seed([X, W], 3.0)  # a Python number is a valid rank-0 seed
    for a, b in zip(g1, g3, strict=True):
        np.testing.assert_allclose(3 * a, b, rtol=1e-6)


# ---- what the traced function returns, and other compile-time errors
def test_non_scalar_output_to_compile_scalar() -> None:
    with pytest.raises(TypeError, match=r"must return a scalar \(rank-0\) value, got shape \(3,\); use lm.compile_out"):
        lm.compile_scalar(lambda x: x * 2, lm.f32[3])


@pytest.mark.parametrize(("fn", "exc", "message"), [
    (lambda x: (x, 1.0), TypeError, r"must return traced values, got \(Tensor"),
    (lambda x: 1.0, TypeError, "must return traced values, got 1.0"),
    (lambda x: None, TypeError, "must return traced values, got None"),
    (lambda x: x if x else x, TypeError, "no truth value"),
    (lambda x: x @ x, lm.TraceError, "lean.matmul"),
    (lambda x: lm.exp("a"), TypeError, r"lean.exp: operand 0 must be a traced value \(lm.Tensor\), got str"),
    (lambda x: lm.sum(x.shape), TypeError, "lean.sum: operand 0 must be a traced value"),
    (lambda x: lm.softmax([1.0, 2.0]), TypeError, "lean.softmax: operand 0 must be a traced value .*got list"),
    (lambda x: lm.transpose(np.ones(3)), TypeError, "lean.transpose: operand 0 .*got ndarray"),
    (lambda x: lm.reshape(1.0, (1,)), TypeError, "lean.reshape: operand 0 .*got float"),
    (lambda x: lm.broadcast_to(1.0, (3,)), TypeError, "lean.broadcast_to: operand 0 .*got float"),
    (lambda x: lm.matmul(x, np.ones((4, 2))), TypeError, "lean.matmul: operand 1 .*got ndarray"),
    (lambda x: lm.concatenate([x, np.ones((3, 4))]), TypeError, "lean.concatenate: operand 1 .*got ndarray"),
], ids=["tuple", "float", "None", "if-on-traced", "bad-matmul", "str-operand", "tuple-operand", "list-operand",
        "array-operand", "float-reshape", "float-broadcast", "array-matmul", "array-concatenate"])
def test_bad_traced_function(fn: object, exc: type, message: str) -> None:
    with pytest.raises(exc, match=message):
        lm.CompiledOut(fn, [lm.f32[3, 4]], "eager")


def test_trace_error_names_shapes_and_location() -> None:
    with pytest.raises(lm.TraceError, match=r"contraction dimensions differ: 5 and 4 .*test_bad_inputs.py:\d+"):
        lm.compile_scalar(loss, lm.f32[3, 5], lm.f32[4, 2])


@pytest.mark.parametrize(("call", "exc", "message"), [
    (lambda: lm.compile_out(layer, lm.f32[3, 4], lm.f32[4, 2], backend="tpu"), ValueError, "backend must be one of"),
    (lambda: lm.Spec((3,), "f16"), TypeError, "element type must be one of"),
    (lambda: lm.Spec((-1,), "f32"), ValueError, "negative dimension"),
    (lambda: lm.compile_scalar(loss, "f32", lm.f32[4, 2]), TypeError, "expected an lm.Spec"),
    (lambda: lm.compile_scalar(loss, lm.f32[3, 4], lm.f32[4, 2], wrt=[2]), ValueError, r"wrt must list distinct"),
    (lambda: lm.compile_scalar(loss, lm.f32[3, 4]), TypeError, "argument"),
], ids=["backend", "dtype", "negative-dim", "spec-object", "wrt", "too-few-specs"])
def test_bad_compile_arguments(call: object, exc: type, message: str) -> None:
    with pytest.raises(exc, match=message):
        call()


def test_check_grads_wrong_inputs(c: lm.CompiledScalar) -> None:
    with pytest.raises(TypeError, match="check_grads: xs must be a list or tuple of 2 inputs, got 1 values"):
        lm.check_grads(c, [X])


# ---- unusual but valid arrays: correct results
def _layouts() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    big = RNG.standard_normal((8, 8)).astype(np.float32)
    raw = np.zeros(X.nbytes + 1, np.uint8)[1:].view(np.float32).reshape(3, 4)  # misaligned by one byte
    raw[...] = X
    ro = X.copy()
    ro.flags.writeable = False
    return {
        "fortran": (np.asfortranarray(X), np.asfortranarray(W)),
        "transposed-view": (np.ascontiguousarray(X.T).T, W),
        "strided-view": (big[::2, ::2][:3], big[::2, 1::2][:, :2]),
        "negative-strides": (X[::-1, ::-1].copy()[::-1, ::-1], W[::-1].copy()[::-1]),
        "unaligned": (raw, W),
        "read-only": (ro, W),
        "big-endian": (X.astype(">f4"), W.astype(">f4")),
        "lists": (X.tolist(), W.tolist()),
        "tuples": (tuple(map(tuple, X.tolist())), tuple(map(tuple, W.tolist()))),
        "memoryview": (memoryview(X), W),
    }


@pytest.mark.parametrize("name", list(_layouts()))
def test_layouts_give_correct_results(c: lm.CompiledScalar, name: str) -> None:
    x, w = _layouts()[name]
    xc, wc = np.array(x, np.float32), np.array(w, np.float32)  # C-contiguous copies of the same values
    before = (xc.copy(), wc.copy())
    assert c.forward(x, w) == c.forward(xc, wc)
    assert abs(c.forward(x, w) - _ref(xc, wc)) < 1e-5
    for a, b in zip(c.backward(x, w), c.backward(xc, wc), strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(np.asarray(x, np.float32), before[0])  # inputs are never written
    np.testing.assert_array_equal(np.asarray(w, np.float32), before[1])


# ---- NaN and Inf: propagate as in NumPy (the eager interpreter), at the same positions
NAN_X = np.array([[np.nan, 1.0, -2.0, np.inf, 0.5], [-np.inf, 0.0, 3.0, 1.0, -0.0],
                  [1.0, 2.0, -1.0, 0.25, 4.0], [np.inf, -np.inf, 1.0, 2.0, 3.0]])
NAN_CASES = {  # name: (fn, NumPy reference)
    "exp": (lm.exp, np.exp), "log": (lm.log, np.log), "sqrt": (lm.sqrt, np.sqrt), "tanh": (lm.tanh, np.tanh),
    "sin": (lm.sin, np.sin), "abs": (lm.abs, np.abs), "sign": (lm.sign, np.sign),
    "log1p": (lm.log1p, np.log1p), "expm1": (lm.expm1, np.expm1),
    "erf": (lm.erf, np.vectorize(math.erf, otypes=[np.float64])),
    "sigmoid": (lm.sigmoid, lambda x: 1 / (1 + np.exp(-x))), "softplus": (lm.softplus, lambda x: np.logaddexp(0, x)),
    "relu": (lm.relu, lambda x: np.where(np.isnan(x), x, np.maximum(x, 0))),
    "clamp": (lambda x: lm.clamp(x, -1.0, 1.0), lambda x: np.clip(x, -1, 1)),
    "maximum": (lambda x: lm.maximum(x, 0.5), lambda x: np.maximum(x, 0.5)),
    "minimum": (lambda x: lm.minimum(x, 0.5), lambda x: np.minimum(x, 0.5)),
    "div": (lambda x: x / (x - 1.0), lambda x: x / (x - 1)),
    "sum": (lambda x: lm.sum(x, axis=1), lambda x: np.sum(x, 1)),
    "mean": (lambda x: lm.mean(x, axis=0), lambda x: np.mean(x, 0)),
    "max": (lambda x: lm.max(x, axis=1), lambda x: np.max(x, 1)),
    "matmul": (lambda x: x @ lm.transpose(x), lambda x: x @ x.T),
    # no NumPy softmax: the reference is exp(x - logsumexp(x)) (a +inf entry gives NaN there, 0 elsewhere)
    "softmax": (lm.softmax, None), "logsumexp": (lm.logsumexp, None),
}


@pytest.mark.parametrize("dtype", ["f32", "f64"])
@pytest.mark.parametrize("name", list(NAN_CASES))
def test_nan_and_inf_propagate(name: str, dtype: str) -> None:
    fn, ref = NAN_CASES[name]
    spec = lm.Spec(NAN_X.shape, dtype)
    x = NAN_X.astype(spec.np_dtype)
    cpu, eager = lm.compile_out(fn, spec), lm.compile_out(fn, spec, backend="eager")
    y = cpu.forward(x)
    with np.errstate(all="ignore"):
        want = [eager.forward(x)] + ([np.asarray(ref(x), spec.np_dtype)] if ref else [])
    for w in want:
        np.testing.assert_array_equal(np.isnan(y), np.isnan(w))
        np.testing.assert_array_equal(np.isinf(y) * np.sign(y), np.isinf(w) * np.sign(w))
        np.testing.assert_allclose(y, w, rtol=1e-5, atol=1e-6, equal_nan=True)
    # derivatives: the same NaN positions as the interpreter's
    dx, seed = np.ones_like(x), np.ones(eager.out_spec.shape, spec.np_dtype)
    for a, b in [(cpu.jvp([x], [dx])[1], eager.jvp([x], [dx])[1]),
                 (cpu.vjp_with_seed([x], seed)[0], eager.vjp_with_seed([x], seed)[0])]:
        np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6, equal_nan=True)


def test_nan_in_one_input_does_not_leak() -> None:
    c = lm.compile_out(lambda a, b: a * 2.0 + b, lm.f64[3], lm.f64[3])
    y = c.forward(np.array([np.nan, 1.0, 2.0]), np.zeros(3))
    np.testing.assert_array_equal(y[1:], [2.0, 4.0])
    assert np.isnan(y[0])


# ---- zero-size dimensions
def test_zero_size_forward_and_derivatives() -> None:
    o = lm.compile_out(lambda x, w: lm.tanh(x @ w) * 2.0, lm.f32[0, 4], lm.f32[4, 2])
    x, w = np.zeros((0, 4), np.float32), W
    assert o.forward(x, w).shape == (0, 2)
    y, dy = o.jvp([x, w], [x, w])
    assert y.shape == dy.shape == (0, 2)
    gx, gw = o.vjp_with_seed([x, w], np.zeros((0, 2), np.float32))
    assert gx.shape == (0, 4)
    np.testing.assert_array_equal(gw, np.zeros((4, 2), np.float32))  # a sum over no rows


def test_zero_size_reductions_follow_numpy() -> None:
    x = np.zeros((2, 0), np.float64)
    s = lm.compile_scalar(lambda x: lm.sum(x), lm.f64[2, 0])
    assert s.forward(x) == 0.0 and s.backward(x)[0].shape == (2, 0)
    o = lm.compile_out(lambda x: lm.sum(x, axis=1), lm.f64[2, 0])
    np.testing.assert_array_equal(o.forward(x), np.zeros(2))
    with np.errstate(invalid="ignore"), pytest.warns(RuntimeWarning, match="Mean of empty slice"):
        want = np.mean(x, axis=1)
    m = lm.compile_out(lambda x: lm.mean(x, axis=1), lm.f64[2, 0])  # 0 / 0, as in NumPy
    np.testing.assert_array_equal(m.forward(x), want)
    assert np.isnan(m.forward(x)).all()
    zero_contraction = lm.compile_out(lambda a: a @ lm.transpose(a), lm.f64[3, 0])
    np.testing.assert_array_equal(zero_contraction.forward(np.zeros((3, 0))), np.zeros((3, 3)))


@pytest.mark.parametrize("fn", [lambda x: lm.max(x, axis=1), lambda x: lm.max(x), lambda x: lm.logsumexp(x)],
                         ids=["max-axis", "max-all", "logsumexp"])
def test_undefined_zero_size_reductions_are_rejected(fn: object) -> None:
    with pytest.raises(lm.TraceError, match="zero-size axis"):
        lm.compile_out(fn, lm.f32[3, 0])


# ---- the command-line tools: malformed, ill-typed and unknown-op IR -> exit 1, a message, no traceback
GOOD = """func.func @f(%a: tensor<3xf32>) -> tensor<3xf32> {
  %0 = "lean.exp"(%a) : (tensor<3xf32>) -> tensor<3xf32>
  return %0 : tensor<3xf32>
}
"""
BAD_IR = {
    "malformed": (GOOD.replace("return", "retur"), "custom op 'retur' is unknown"),
    "truncated": (GOOD[:60], "error:"),
    "binary-garbage": ("\x00\x7f garbage {", "error:"),
    "ill-typed-use": (GOOD.replace("-> tensor<3xf32>\n  return", "-> tensor<4xf64>\n  return"),
                      "expects different type than prior uses"),
    "ill-typed-lean": (GOOD.replace('"lean.exp"(%a) : (tensor<3xf32>) -> tensor<3xf32>',
                                    '"lean.add"(%a, %a) : (tensor<3xf32>, tensor<3xf32>) -> tensor<4xf32>'), "error:"),
    "integer-lean": (GOOD.replace("f32", "i32"), "element type must be f32 or f64"),
    "bad-attribute": ("""func.func @f(%a: tensor<3x4xf32>) -> tensor<3xf32> {
  %0 = "lean.sum"(%a) {axes = array<i64: 5>, keepdims = false} : (tensor<3x4xf32>) -> tensor<3xf32>
  return %0 : tensor<3xf32>
}
""", r"axes \(5,\) must be sorted, distinct and within rank 2"),
    "unknown-op": (GOOD.replace("lean.exp", "lean.frobnicate"), "unregistered operation 'lean.frobnicate'"),
}
TOOL_ARGS = {"lean-mlir-opt": [], "lean-mlir-run": ["--inputs"]}  # before the input files


@pytest.mark.parametrize("name", list(TOOL_ARGS))
@pytest.mark.parametrize("case", list(BAD_IR))
def test_tools_reject_bad_ir(name: str, case: str, tmp_path: pathlib.Path) -> None:
    text, message = BAD_IR[case]
    path = tmp_path / "bad.mlir"
    path.write_text(text)
    np.save(tmp_path / "x.npy", np.ones(3, np.float32))
    extra = [str(tmp_path / "x.npy")] if name == "lean-mlir-run" else []
    err = clean_error(tool(name, str(path), *TOOL_ARGS[name], *extra), "error")
    assert re.search(message, err), err


@pytest.mark.parametrize(("args", "message"), [
    (["{x64}"], "input 0: expected dtype float32, got float64"),
    (["{x4}"], r"input 0: expected shape \(3,\), got \(4,\)"),
    ([], "expected 1 input, got 0"),
    (["{x}", "{x}"], "expected 1 input, got 2"),
    (["{missing}"], "input 0: cannot read"),
    (["{mlir}"], "input 0: .* is not a .npy array"),
], ids=["dtype", "shape", "no-inputs", "too-many", "missing-file", "not-npy"])
def test_run_rejects_bad_inputs(args: list[str], message: str, tmp_path: pathlib.Path) -> None:
    paths = {"x": tmp_path / "x.npy", "x64": tmp_path / "x64.npy", "x4": tmp_path / "x4.npy",
             "missing": tmp_path / "nope.npy", "mlir": tmp_path / "good.mlir"}
    np.save(paths["x"], np.ones(3, np.float32))
    np.save(paths["x64"], np.ones(3))
    np.save(paths["x4"], np.ones(4, np.float32))
    paths["mlir"].write_text(GOOD)
    err = clean_error(tool("lean-mlir-run", str(paths["mlir"]), "--inputs", *[a.format(**paths) for a in args]))
    assert re.search(f"lean-mlir-run: error: .*{message}", err), err


def test_tools_missing_file_and_bad_pipeline(tmp_path: pathlib.Path) -> None:
    clean_error(tool("lean-mlir-opt", str(tmp_path / "nope.mlir")), "cannot read")
    (tmp_path / "good.mlir").write_text(GOOD)
    clean_error(tool("lean-mlir-opt", str(tmp_path / "good.mlir"), "--pass-pipeline=builtin.module(no-such-pass)"),
                "no-such-pass")
    clean_error(tool("lean-mlir-run", str(tmp_path / "good.mlir"), "--entry", "g", "--inputs"),
                "no function @g in the module (have @f)")
    np.save(tmp_path / "x.npy", np.array([0.0, 1.0, -1.0], np.float32))
    r = tool("lean-mlir-run", str(tmp_path / "good.mlir"), "--inputs", str(tmp_path / "x.npy"),
             "--output-dir", str(tmp_path / "out"))
    assert r.returncode == 0, r.stderr
    np.testing.assert_allclose(np.load(tmp_path / "out" / "out0.npy"), np.exp([0.0, 1.0, -1.0]), rtol=1e-6)
