"""Every contraction form reaches the matmul kernel (`lean_mlir.backends.cpu.contractions`): transposed
A or B (2-D and batched), batch ranks above 3, broadcast batch dims (`x[b, t] @ w`, `w @ x[b]`), and
the derivatives' forms (`g @ w.T`, `x^T g` summed over a broadcast batch, transposed results), against
NumPy in f32 and f64 at odd shapes, with JVP / VJP checked against finite differences
(`lm.check_grads`). No timing assertions."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import lean_mlir as lm


def _t(x: Any, *perm: int) -> Any:
    """Transpose for both lean tensors and NumPy arrays."""
    return lm.transpose(x, perm) if isinstance(x, lm.Tensor) else np.transpose(x, perm)


def _bcast(x: Any, shape: tuple[int, ...]) -> Any:
    return lm.broadcast_to(x, shape) if isinstance(x, lm.Tensor) else np.broadcast_to(x, shape)


def _tanh(x: Any) -> Any:
    return lm.tanh(x) if isinstance(x, lm.Tensor) else np.tanh(x)


def _swap(x: Any) -> Any:
    return _t(x, *range(x.ndim - 2), x.ndim - 1, x.ndim - 2)


# name -> (fn on lean tensors and NumPy arrays alike, input shapes)
CASES: dict[str, tuple[Callable[..., Any], list[tuple[int, ...]]]] = {
    "2d primes": (lambda a, b: a @ b, [(7, 13), (13, 5)]),
    "2d one row": (lambda a, b: a @ b, [(1, 13), (13, 5)]),
    "2d one column": (lambda a, b: a @ b, [(7, 13), (13, 1)]),
    "2d k = 1": (lambda a, b: a @ b, [(7, 1), (1, 5)]),
    "matrix vector": (lambda a, b: a @ b, [(7, 13), (13,)]),
    "vector matrix": (lambda a, b: a @ b, [(13,), (13, 5)]),
    "2d A^T": (lambda x, b: _t(x, 1, 0) @ b, [(13, 7), (13, 11)]),
    "2d B^T": (lambda a, w: a @ _t(w, 1, 0), [(7, 13), (11, 13)]),
    "2d A^T B^T": (lambda x, w: _t(x, 1, 0) @ _t(w, 1, 0), [(13, 7), (11, 13)]),
    "2d B^T tiled": (lambda a, w: a @ _t(w, 1, 0), [(16, 48), (64, 48)]),
    "2d B^T tiled narrow": (lambda a, w: a @ _t(w, 1, 0), [(24, 40), (10, 40)]),
    "2d B^T prime k": (lambda a, w: a @ _t(w, 1, 0), [(16, 257), (32, 257)]),
    "2d B^T cache blocks": (lambda a, w: a @ _t(w, 1, 0), [(264, 512), (96, 512)]),
    "batch primes": (lambda a, b: a @ b, [(3, 7, 5), (3, 5, 11)]),
    "batch B^T": (lambda a, b: a @ _swap(b), [(3, 7, 5), (3, 11, 5)]),
    "batch B^T tiled": (lambda a, b: a @ _swap(b), [(3, 16, 24), (3, 64, 24)]),
    "batch A^T": (lambda x, g: _swap(x) @ g, [(3, 13, 7), (3, 13, 11)]),
    "batch A^T tiled": (lambda x, g: _swap(x) @ g, [(2, 24, 16), (2, 24, 32)]),
    "rank 4 q k^T": (lambda q, k: q @ _t(k, 0, 1, 3, 2), [(2, 3, 16, 8), (2, 3, 32, 8)]),
    "rank 4 primes": (lambda a, b: a @ b, [(2, 3, 5, 7), (2, 3, 7, 11)]),
    "rank 4 B^T primes": (lambda a, b: a @ _swap(b), [(2, 3, 5, 7), (2, 3, 11, 7)]),
    "rank 5 with ones": (lambda a, b: a @ b, [(2, 1, 3, 8, 5), (2, 1, 3, 5, 32)]),
    "rank 5 B^T": (lambda a, b: a @ _swap(b), [(2, 2, 3, 8, 16), (2, 2, 3, 32, 16)]),
    "x[b,t] @ w": (lambda x, w: x @ w, [(2, 3, 7, 5), (5, 11)]),
    "x[b,t] @ w tiled": (lambda x, w: x @ w, [(4, 16, 24), (24, 64)]),
    "x[b,t] @ w^T tiled": (lambda x, w: x @ _t(w, 1, 0), [(4, 16, 24), (64, 24)]),
    "w @ x[b]": (lambda w, x: w @ x, [(7, 5), (3, 5, 11)]),
    "w @ x[b] tiled": (lambda w, x: w @ x, [(16, 24), (4, 24, 32)]),
    # its VJP's W^T g[b] (a transposed A without batch dim: packed), 100 columns (a 4-wide register tile)
    "w @ x[b] 100 columns": (lambda w, x: w @ x, [(16, 40), (3, 40, 100)]),
    "x[b]^T @ w": (lambda x, w: _swap(x) @ w, [(3, 13, 7), (13, 5)]),
    "partial broadcast": (lambda a, b: a @ b, [(2, 1, 7, 5), (3, 5, 11)]),
    "swapped batch rows": (lambda x, w: _t(x, 1, 0, 2) @ w, [(5, 3, 7), (7, 32)]),
    "result transposed": (lambda a, b: _swap(a @ b), [(3, 16, 24), (3, 24, 32)]),
    "result broadcast": (lambda a, b: _bcast(a @ b, (2, 7, 5)), [(7, 13), (13, 5)]),
    # an elementwise producer the fusion moved into the contraction, split back out
    "prologue reshape": (lambda x, w: _tanh(x).reshape((64, 24)) @ w, [(4, 16, 24), (24, 32)]),
    "prologues both": (lambda x, w: _tanh(x) @ (_t(w, 1, 0) * 2.0), [(16, 24), (32, 24)]),
    "bias prologue": (lambda x, b, w: _tanh(x + b).reshape((64, 24)) @ w, [(4, 16, 24), (24,), (24, 32)]),
}

TOL = {"f32": 1e-4, "f64": 1e-12}


def _compile(name: str, dtype: str) -> tuple[lm.CompiledOut, list[tuple[int, ...]], Callable[..., Any]]:
    fn, shapes = CASES[name]
    c = lm.compile_out(fn, *[lm.Spec(s, dtype) for s in shapes])
    return c, shapes, fn


@pytest.mark.parametrize("dtype", ["f32", "f64"])
@pytest.mark.parametrize("name", list(CASES))
def test_contraction_matches_numpy(name: str, dtype: str, rng: np.random.Generator) -> None:
    """Forward against NumPy (in f64), JVP against finite differences, VJP by the adjoint identity."""
    c, shapes, fn = _compile(name, dtype)
    np_t = lm.Spec((), dtype).np_dtype
    xs = [rng.standard_normal(s).astype(np_t) for s in shapes]
    want = fn(*[x.astype(np.float64) for x in xs])
    got = c.forward(*xs)
    assert got.shape == want.shape and got.dtype == np_t
    np.testing.assert_allclose(got, want, rtol=TOL[dtype], atol=TOL[dtype] * max(1.0, np.abs(want).max()))
    report = lm.check_grads(c, xs, order=1)
    assert max(report.values()) < (1e-6 if dtype == "f64" else 3e-3), report


def _bodies(sched: str) -> dict[str, str]:
    """Function name -> text of its body, in the scheduled stage."""
    parts = re.split(r"\n  func\.func (?:private )?@", "\n" + sched)
    return {p.split("(", 1)[0]: p for p in parts[1:]}


# the cases whose every contraction (forward, JVP, VJP) has a register tile on the host (not "prime k":
# its dw has 257 columns, which no register tile divides)
TILED = ["2d B^T tiled", "2d B^T cache blocks", "batch B^T tiled", "batch A^T tiled", "rank 4 q k^T", "rank 5 B^T",
         "x[b,t] @ w tiled", "x[b,t] @ w^T tiled", "w @ x[b] tiled", "result transposed", "prologue reshape",
         "prologues both"]


@pytest.mark.parametrize("dtype", ["f32", "f64"])
@pytest.mark.parametrize("name", TILED)
def test_contraction_reaches_the_kernel(name: str, dtype: str) -> None:
    """Forward, JVP and VJP call matmul kernels: no contraction, no transposed or broadcast copy and no
    scalar multiply left in the public functions; each kernel is vectorized (vector FMAs, the outer
    products of the register tile; a packed B transposed in registers), without scalar multiplies."""
    c, _, _ = _compile(name, dtype)
    bodies = _bodies(c.ir("scheduled"))
    for f in ("f", "f_jvp", "f_vjp"):
        body = bodies[f]
        assert "call @__lean_" in body, (f, body)
        assert not re.search(rf"linalg\.(generic|matmul|batch_matmul|transpose)|arith\.mulf .*: {dtype}\n", body), body
    kernels = [b for n, b in bodies.items() if n.startswith("__lean_")]
    assert kernels
    for k in kernels:
        assert re.search(rf"vector\.fma %\w+, %\w+, %\w+ : vector<\d+x{dtype}>", k), k
        assert not re.search(rf"linalg\.(generic|matmul|batch_matmul|transpose)|arith\.mulf .*: {dtype}\n", k), k


def test_prologue_of_several_inputs_is_split_out() -> None:
    """`tanh(x + b).reshape(...) @ w`: the fusion moves the bias add and the tanh into the contraction;
    they come back out as one elementwise generic over x's dims and the matmul reaches its kernel (the
    VJP's bias gradient is a column sum, not a contraction)."""
    c, _, _ = _compile("bias prologue", "f32")
    body = _bodies(c.ir("scheduled"))["f"]
    assert "call @__lean_matmul" in body and not re.search(r"linalg\.(generic|matmul)", body), body


def test_broadcast_batch_is_one_matmul() -> None:
    """`x[b, t] @ w` is one 2-D matmul over b * t rows, and its VJP's `dw = sum_b x[b]^T g[b]` one
    2-D A^T B contracting over b * t: no copy of w per batch element, no batched partial sums."""
    c, _, _ = _compile("x[b,t] @ w tiled", "f32")  # x f32[4, 16, 24] @ w f32[24, 64]
    sched = c.ir("scheduled")
    assert "batch_matmul" not in sched
    bodies = _bodies(sched)
    assert re.search(r"call @__lean_matmul_\w+\(%\w+, %\w+\) : \(tensor<64x24xf32>, tensor<24x64xf32>\)", bodies["f"])
    # dw = x^T g with x, g collapsed to 64 rows; dx = g @ w^T with w packed in the kernel
    assert re.search(r"\(tensor<64x24xf32>, tensor<64x64xf32>\) -> tensor<24x64xf32>", bodies["f_vjp"])
    assert re.search(r"\(tensor<64x64xf32>, tensor<24x64xf32>\) -> tensor<64x24xf32>", bodies["f_vjp"])


@pytest.mark.parametrize("case", [((64, 256), (128, 256)), ((4, 64, 32), (4, 128, 32))])
def test_packed_b_across_threads(case: tuple[tuple[int, ...], tuple[int, ...]], two_threads: None,
                                 rng: np.random.Generator) -> None:
    """`a @ w^T` large enough for the thread split (by columns, by rows of each batch element): each
    block packs the B tiles it reads into its own buffer; NumPy's values, call after call."""
    a_shape, w_shape = case
    c = lm.compile_out(lambda a, w: a @ _swap(w), lm.Spec(a_shape, "f32"), lm.Spec(w_shape, "f32"))
    assert "scf.forall" in c.ir("scheduled")
    a, w = (rng.standard_normal(s).astype(np.float32) for s in case)
    want = a.astype(np.float64) @ _swap(w.astype(np.float64))
    for _ in range(5):
        np.testing.assert_allclose(c.forward(a, w), want, rtol=1e-4, atol=1e-4 * np.abs(want).max())
