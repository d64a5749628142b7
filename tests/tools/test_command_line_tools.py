"""lean-mlir-opt / lean-mlir-run as subprocesses: results, and every error path is a message + exit 1."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import numpy as np
import pytest
from support import clean_error, tool

from lean_mlir.tools.passes import PASSES, PipelineError, parse_options, split_top_level

GOOD = """func.func @f(%a: tensor<2x3xf32>, %b: tensor<3x4xf32>) -> tensor<2x4xf32> {
  %0 = "lean.matmul"(%a, %b) : (tensor<2x3xf32>, tensor<3x4xf32>) -> tensor<2x4xf32>
  %1 = "lean.tanh"(%0) : (tensor<2x4xf32>) -> tensor<2x4xf32>
  return %1 : tensor<2x4xf32>
}
"""
ILL_TYPED = GOOD.replace("tensor<3x4xf32>", "tensor<5x4xf32>")
MALFORMED = GOOD.replace("return %1", "return %9")
UNKNOWN_OP = GOOD.replace('"lean.tanh"', '"lean.frobnicate"')
NOT_LEAN = """func.func @g(%a: tensor<2xf32>) -> tensor<2xf32> {
  %0 = arith.addf %a, %a : tensor<2xf32>
  return %0 : tensor<2xf32>
}
"""


@pytest.fixture
def files(tmp_path: pathlib.Path, rng: np.random.Generator) -> dict[str, pathlib.Path]:
    out = {}
    for name, text in [("good", GOOD), ("ill", ILL_TYPED), ("malformed", MALFORMED), ("unknown", UNKNOWN_OP),
                       ("notlean", NOT_LEAN)]:
        out[name] = tmp_path / f"{name}.mlir"
        out[name].write_text(text)
    for name, arr in [("a", rng.standard_normal((2, 3)).astype(np.float32)),
                      ("b", rng.standard_normal((3, 4)).astype(np.float32)),
                      ("b64", rng.standard_normal((3, 4))), ("bT", rng.standard_normal((4, 3)).astype(np.float32)),
                      ("v2", np.ones(2, np.float32))]:
        out[name] = tmp_path / f"{name}.npy"
        np.save(out[name], arr)
    (tmp_path / "text.npy").write_text("not an array")
    out["text"] = tmp_path / "text.npy"
    return out


# ---- lean-mlir-opt: results
def test_opt_round_trip_and_pipeline(files: dict[str, pathlib.Path], tmp_path: pathlib.Path) -> None:
    p = tool("lean-mlir-opt", str(files["good"]))
    assert p.returncode == 0, p.stderr
    assert '"lean.matmul"(%arg0, %arg1)' in p.stdout
    out = tmp_path / "vjp.mlir"
    p = tool("lean-mlir-opt", str(files["good"]), "-o", str(out),
             "--pass-pipeline=builtin.module(lean-derive-vjp{func=f wrt=1},canonicalize,func.func(cse))")
    assert p.returncode == 0 and p.stdout == "", p.stderr
    text = out.read_text()
    assert "func.func @f_vjp(%arg0: tensor<2x3xf32>, %arg1: tensor<3x4xf32>, %arg2: tensor<2x4xf32>) " \
           "-> tensor<3x4xf32>" in text


def test_opt_reads_stdin_and_module_form() -> None:
    p = tool("lean-mlir-opt", "-p", "lean-derive-jvp", stdin="module {\n" + GOOD + "}\n")
    assert p.returncode == 0, p.stderr
    assert "func.func @f_jvp(" in p.stdout


def test_opt_list_passes() -> None:
    p = tool("lean-mlir-opt", "--list-passes")
    assert p.returncode == 0
    for name in PASSES:
        assert name in p.stdout


def test_opt_python_m(files: dict[str, pathlib.Path]) -> None:
    p = subprocess.run([sys.executable, "-m", "lean_mlir.tools.opt", str(files["good"]), "-p", "lean-to-linalg"],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert "linalg.matmul" in p.stdout and "lean." not in p.stdout


# ---- lean-mlir-opt: errors
def test_opt_malformed(files: dict[str, pathlib.Path]) -> None:
    clean_error(tool("lean-mlir-opt", str(files["malformed"])),
                f"{files['malformed']}:4:10: error: use of undeclared SSA value")


def test_opt_malformed_stdin() -> None:
    clean_error(tool("lean-mlir-opt", stdin="func.func @f( {\n"), "-:1:14: error: expected non-function type")


def test_opt_ill_typed(files: dict[str, pathlib.Path]) -> None:
    err = clean_error(tool("lean-mlir-opt", str(files["ill"])),
                      f"{files['ill']}:2:8: error: 'lean.matmul' op contraction dimensions differ: 3 and 5")
    assert err.count("error:") == 1


def test_opt_unknown_op(files: dict[str, pathlib.Path]) -> None:
    clean_error(tool("lean-mlir-opt", str(files["unknown"])),
                f"{files['unknown']}:3:8: error: unregistered operation 'lean.frobnicate'")


@pytest.mark.parametrize("pipeline, message", [
    ("builtin.module(lean-derive-vjp,nosuch-pass)", "'nosuch-pass' does not refer to a registered pass"),
    ("lean-derive-vjp{func=f wrt=x}", "wrt must be a comma-separated list of ints"),
    ("lean-derive-vjp{bogus=1}", "has no option 'bogus'"),
    ("lean-derive-jvp{func=nope}", "no function @nope in the module (have f)"),
    ("lean-derive-jvp{wrt=0,0}", "wrt must list distinct input indices"),
    ("lean-to-linalg(cse)", "is a module pass"),
    ("builtin.module(canonicalize", "unbalanced brackets"),
])
def test_opt_bad_pipeline(files: dict[str, pathlib.Path], pipeline: str, message: str) -> None:
    p = tool("lean-mlir-opt", str(files["good"]), "--pass-pipeline", pipeline)
    clean_error(p, message)
    assert p.stdout == ""


def test_opt_pass_exception_is_a_message(files: dict[str, pathlib.Path]) -> None:
    # derivatives need lean ops only: the pass raises ValueError, the tool prints it
    clean_error(tool("lean-mlir-opt", str(files["notlean"]), "-p", "lean-derive-vjp"),
                "pass 'lean-derive-vjp' failed: ValueError: @g: derivatives need lean ops only, found 'arith.addf'")


@pytest.mark.parametrize("name", ["lean-mlir-opt", "lean-mlir-run"])
def test_usage_error_exits_1(name: str) -> None:
    clean_error(tool(name, "x.mlir", "--no-such-flag"), f"{name}: error: unrecognized arguments: --no-such-flag")


def test_opt_missing_file(tmp_path: pathlib.Path) -> None:
    clean_error(tool("lean-mlir-opt", str(tmp_path / "nope.mlir")), "lean-mlir-opt: error: cannot read", "nope.mlir")


# ---- lean-mlir-run
def test_run_cpu_matches_numpy(files: dict[str, pathlib.Path], tmp_path: pathlib.Path) -> None:
    a, b = np.load(files["a"]), np.load(files["b"])
    outs = {}
    for backend in ("cpu", "eager"):
        d = tmp_path / backend
        p = tool("lean-mlir-run", str(files["good"]), "--entry", "f", "--inputs", str(files["a"]), str(files["b"]),
                 "--backend", backend, "--output-dir", str(d))
        assert p.returncode == 0, p.stderr
        outs[backend] = np.load(d / "out0.npy")
        assert outs[backend].dtype == np.float32 and outs[backend].shape == (2, 4)
        np.testing.assert_allclose(outs[backend], np.tanh(a @ b), rtol=1e-5, atol=1e-6)
    p = tool("lean-mlir-run", str(files["good"]), "--inputs", str(files["a"]), str(files["b"]))
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("result 0: shape (2, 4) float32\n[[")


@pytest.mark.parametrize("inputs, message", [
    (["a", "bT"], "@f: input 1: expected shape (3, 4), got (4, 3)"),
    (["a", "b64"], "@f: input 1: expected dtype float32, got float64"),
    (["a"], "@f: expected 2 inputs, got 1"),
    (["a", "b", "b"], "@f: expected 2 inputs, got 3"),
    (["a", "text"], "input 1:"),
])
def test_run_bad_inputs(files: dict[str, pathlib.Path], inputs: list[str], message: str) -> None:
    p = tool("lean-mlir-run", str(files["good"]), "--entry", "f", "--inputs", *[str(files[k]) for k in inputs])
    clean_error(p, "lean-mlir-run: error:", message)
    assert p.stdout == ""


def test_run_missing_npy(files: dict[str, pathlib.Path], tmp_path: pathlib.Path) -> None:
    clean_error(tool("lean-mlir-run", str(files["good"]), "--inputs", str(files["a"]), str(tmp_path / "x.npy")),
                "input 1: cannot read", "x.npy")


def test_run_bad_module(files: dict[str, pathlib.Path], tmp_path: pathlib.Path) -> None:
    ab = [str(files["a"]), str(files["b"])]
    clean_error(tool("lean-mlir-run", str(files["ill"]), "--inputs", *ab), "'lean.matmul' op contraction dimensions")
    clean_error(tool("lean-mlir-run", str(files["malformed"]), "--inputs", *ab), "malformed.mlir:4:10: error:")
    clean_error(tool("lean-mlir-run", str(files["good"]), "--entry", "g", "--inputs", *ab),
                "no function @g in the module (have @f)")
    clean_error(tool("lean-mlir-run", str(tmp_path / "nope.mlir"), "--inputs", *ab), "cannot read")
    clean_error(tool("lean-mlir-run", str(files["notlean"]), "--entry", "g", "--backend", "eager", "--inputs",
                     str(files["v2"])), "eager backend runs lean-level functions only")


# ---- the pipeline parser, in process
def test_split_top_level() -> None:
    pieces = [p for p, _ in split_top_level("a{x=1,2 y=3},func.func(cse,canonicalize), b")]
    assert pieces == ["a{x=1,2 y=3}", "func.func(cse,canonicalize)", "b"]
    with pytest.raises(PipelineError):
        split_top_level("a(b")
    assert parse_options("p", "{func=f wrt=0,1}") == {"func": "f", "wrt": "0,1"}
    with pytest.raises(PipelineError):
        parse_options("p", "{novalue}")
