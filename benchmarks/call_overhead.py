"""Call overhead of the CPU JIT entry points, and matmul GFLOP/s against NumPy (same process).

Run: python benchmarks/call_overhead.py [--sizes 1024 2048] [--repeat 5]
The JIT code is single-threaded; NumPy's BLAS uses all cores unless run with OPENBLAS_NUM_THREADS=1.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import sys
import time
import timeit
from collections.abc import Callable

import numpy as np
from mlir import ir

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # workloads/
from lean_mlir.backends.base import compile_module  # noqa: E402
from lean_mlir.backends.cpu import BACKEND as CPU  # noqa: E402
from lean_mlir.backends.cpu import CpuExecutable  # noqa: E402
from lean_mlir.options import Options  # noqa: E402
from lean_mlir.runtime import packed, validate  # noqa: E402
from workloads.linalg_modules import MATMUL  # noqa: E402

ADD = """
func.func @add(%a: tensor<4xf32>, %b: tensor<4xf32>) -> tensor<4xf32> {
  %e = tensor.empty() : tensor<4xf32>
  %0 = linalg.add ins(%a, %b : tensor<4xf32>, tensor<4xf32>) outs(%e : tensor<4xf32>) -> tensor<4xf32>
  return %0 : tensor<4xf32>
}
"""

def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        import platform
        return platform.processor() or platform.machine()


def compile_text(text: str) -> tuple[CpuExecutable, float]:
    t0 = time.perf_counter()
    with ir.Context():
        exe = compile_module(CPU, ir.Module.parse(text), Options())
    return exe, time.perf_counter() - t0


def per_call_us(fn: Callable[[], object], number: int, repeat: int) -> float:
    return min(timeit.repeat(fn, number=number, repeat=repeat)) / number * 1e6


def overhead(repeat: int) -> None:
    exe, t = compile_text(ADD)
    add = exe.entry("add")
    a, b = np.arange(4, dtype=np.float32), np.ones(4, np.float32)
    out = np.empty(4, np.float32)
    # the bare kernel through the packed wrapper, with a prebuilt slot table (no Python per arg)
    table, slots = packed._static_table(add.inputs + add.outputs)
    raw = (ctypes.c_void_p * len(slots))(*[s or 0 for s in slots])
    ptrs = [(ctypes.c_void_p * 1)(x.ctypes.data) for x in (a, b, out)]
    for j, s in enumerate(add._ptr_slots):
        raw[s] = raw[s + 1] = ctypes.addressof(ptrs[j])
    fn = packed._PACKED_FN(exe.engine.raw_lookup("add"))
    fn(raw)
    assert np.array_equal(out, a + b) and np.array_equal(add(a, b)[0], a + b)
    specs = add.inputs
    n = 100_000
    rows = [
        ("raw packed call, prebuilt slots", per_call_us(lambda: fn(raw), n, repeat)),
        ("Entry(a, b)", per_call_us(lambda: add(a, b), n, repeat)),
        ("coerce_inputs + Entry",
         per_call_us(lambda: add(*validate.coerce_inputs(specs, (a, b))), n, repeat)),
        ("numpy a + b (reference)", per_call_us(lambda: np.add(a, b), n, repeat)),
    ]
    print(f"tiny 4-element f32 add (compile {t * 1e3:.0f} ms)")
    print(f"{'path':40s} {'us/call':>8s}")
    for name, us in rows:
        print(f"{name:40s} {us:8.2f}")
    print(f"{'Entry overhead above raw kernel':40s} {rows[1][1] - rows[0][1]:8.2f}\n")


def pytree_overhead(repeat: int) -> None:
    """12 f32[4] parameters passed flat, as a dict, and through lm.value_and_grad."""
    import lean_mlir as lm
    names = [f"p{i}" for i in range(12)]
    arrays = [np.full(4, i, np.float32) for i in range(12)]
    params = dict(zip(names, arrays, strict=True))

    def flat(*ps: lm.Tensor) -> lm.Tensor:
        return lm.sum(sum(ps[1:], ps[0]) * ps[0])

    def tree(p: dict) -> lm.Tensor:
        return flat(*[p[k] for k in names])

    c_flat = lm.compile_scalar(flat, *[lm.f32[4]] * 12)
    c_tree = lm.compile_scalar(tree, {k: lm.f32[4] for k in names})
    vg = lm.value_and_grad(tree)
    vg(params)
    assert np.allclose(c_tree.value_and_backward(params)[1][0]["p3"], c_flat.value_and_backward(*arrays)[1][3])
    n = 50_000
    rows = [
        ("forward, 12 flat arrays", per_call_us(lambda: c_flat.forward(*arrays), n, repeat)),
        ("forward, dict of 12", per_call_us(lambda: c_tree.forward(params), n, repeat)),
        ("value_and_backward, 12 flat arrays", per_call_us(lambda: c_flat.value_and_backward(*arrays), n, repeat)),
        ("value_and_backward, dict of 12", per_call_us(lambda: c_tree.value_and_backward(params), n, repeat)),
        ("lm.value_and_grad(fn)(dict of 12)", per_call_us(lambda: vg(params), n, repeat)),
    ]
    print("pytree calls: 12 f32[4] parameters")
    print(f"{'path':40s} {'us/call':>8s} {'+ flat':>8s}")
    for i, (name, us) in enumerate(rows):
        base = rows[0][1] if i < 2 else rows[2][1]
        print(f"{name:40s} {us:8.2f} {us - base:8.2f}")
    print()


def matmul(sizes: list[int], repeat: int) -> None:
    head = ("matmul", "compile s", "lean GFLOP/s", "numpy GFLOP/s", "max rel err")
    print(f"{head[0]:14s} {head[1]:>9s} {head[2]:>12s} {head[3]:>13s} {head[4]:>11s}")
    rng = np.random.default_rng(0)
    for dtype in ("f32", "f64"):
        for n in sizes:
            exe, t = compile_text(MATMUL.format(m=n, k=n, n=n, t=dtype))
            mm = exe.entry("mm")
            npdt = np.float32 if dtype == "f32" else np.float64
            a, b = rng.standard_normal((n, n)).astype(npdt), rng.standard_normal((n, n)).astype(npdt)
            ref = a @ b
            err = float(np.abs(mm(a, b)[0] - ref).max() / np.abs(ref).max())
            flop = 2.0 * n**3
            ours = flop / (min(timeit.repeat(lambda: mm(a, b), number=1, repeat=repeat)) * 1e9)  # noqa: B023
            theirs = flop / (min(timeit.repeat(lambda: a @ b, number=1, repeat=repeat)) * 1e9)  # noqa: B023
            print(f"{dtype} {n:>4d}x{n:<4d}  {t:9.2f} {ours:12.1f} {theirs:13.1f} {err:11.1e}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--sizes", type=int, nargs="*", default=[1024, 2048])
    p.add_argument("--repeat", type=int, default=5)
    args = p.parse_args()
    print(f"CPU: {cpu_model()}")
    overhead(args.repeat)
    pytree_overhead(args.repeat)
    matmul(args.sizes, args.repeat)


if __name__ == "__main__":
    main()
