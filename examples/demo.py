"""lean_mlir demo: compile a small model once, derive its JVP and VJP as MLIR functions, run them
on the CPU JIT, show the IR at each stage, and check the gradients."""

from __future__ import annotations

import sys
import time

import numpy as np

import lean_mlir as lm


def mlp_loss(x, w1, b1, w2, b2, target):
    """A two-layer tanh MLP with a mean-squared-error loss."""
    h = lm.tanh(x @ w1 + b1)
    return lm.mean((h @ w2 + b2 - target) ** 2)


def main(backend: str = "cpu") -> None:
    rng = np.random.default_rng(0)
    shapes = [(16, 8), (8, 32), (32,), (32, 4), (4,), (16, 4)]
    specs = [lm.f32[s] for s in shapes]
    xs = [rng.standard_normal(s).astype(np.float32) for s in shapes]

    start = time.perf_counter()
    c = lm.compile_scalar(mlp_loss, *specs, backend=backend)
    print(f"compiled forward + JVP + VJP + HVP for {backend} in {time.perf_counter() - start:.2f} s\n")

    print("== @f and its derived @f_vjp in the lean dialect (c.ir('lean') also holds @f_jvp, @f_vjp_jvp) ==")
    lean = c.ir("lean")
    print(lean[: lean.index("  func.func @f_jvp(")] + lean[lean.index("  func.func @f_vjp("):
                                                            lean.index("  func.func @f_vjp_jvp(")])

    loss, grads = c.value_and_backward(*xs)
    print(f"loss = {loss:.6f}")
    for name, g in zip(["x", "w1", "b1", "w2", "b2", "target"], grads, strict=True):
        print(f"  d loss / d {name:6s} shape {str(g.shape):8s} |g| = {np.linalg.norm(g):.6f}")
    dxs = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    value, tangent = c.jvp(xs, dxs)
    print(f"jvp along a random direction: {tangent:.6f}  (<grad, dx> = "
          f"{sum(float(np.vdot(g, d)) for g, d in zip(grads, dxs, strict=True)):.6f})")

    n = 1000
    start = time.perf_counter()
    for _ in range(n):
        c.value_and_backward(*xs)
    print(f"value_and_backward: {(time.perf_counter() - start) / n * 1e6:.1f} us per call\n")

    if backend == "cpu":
        linalg = c.ir("linalg")
        print(f"== linalg stage: {linalg.count('linalg.generic')} linalg.generic, "
              f"{linalg.count('linalg.matmul')} linalg.matmul ops; llvm stage: {len(c.ir('llvm'))} chars ==\n")

    report = lm.check_grads(c, xs, order=2)
    print("gradient check (finite differences in f64, adjoint identity, HVP):")
    for k, v in report.items():
        print(f"  {k:50s} relative error {v:.2e}")
    print("OK")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "cpu")
