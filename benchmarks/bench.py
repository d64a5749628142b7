"""lean_mlir (CPU JIT) side by side with NumPy, jax.jit, torch eager and torch.compile, in one process,
on the same float32 arrays.

Run:  env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench.py [--quick]
JAX and PyTorch are optional (measurement only, not test dependencies): a missing one is a "-" column.

Workloads
  mlp-S / mlp-L   3-layer tanh MLP, loss mean((y - t)^2), output dim 10, (batch, width) = (64, 256) and
                  (256, 1024): forward; value and gradients w.r.t. the 6 parameters; JVP of the loss along
                  a tangent of W1 only (lean_mlir compiled with wrt=[W1]).
  ew              sum(exp(sin(x) * x + tanh(x))) over 1e6 floats: forward, value+grad, JVP.
  matmul N        C = A @ B, N = 1024, 2048: GFLOP/s (higher is better; the ratio is peer/lean_mlir).
  tiny-call       sum(x * x) over 4 floats: the per-call overhead.
Cells are median wall times, the systems of a cell sampled in turn (round-robin) so that the load of a shared
machine hits them alike; "ratio" is lean_mlir / best peer (<= 1.0 means lean_mlir is at least as fast).
Compile times are first-call times (tracing + derivation + lowering + LLVM for lean_mlir).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

os.environ.setdefault("TORCHINDUCTOR_COMPILE_THREADS", "1")  # no compile workers competing for the 2 cores
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import lean_mlir as lm  # noqa: E402
from workloads.models import elementwise_sum as ew  # noqa: E402
from workloads.models import mlp3_mse as mlp  # noqa: E402

try:
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_platforms", "cpu")
except Exception:  # noqa: BLE001 - optional peer
    jax = None
try:
    import torch
except Exception:  # noqa: BLE001 - optional peer
    torch = None

PEERS = ["numpy", "jax", "torch", "torch.compile"]
COMPILE: list[tuple[str, str, float]] = []  # (workload, system, seconds)


def timeit_side_by_side(fns: dict[str, Callable[[], Any]], budget: float, rounds: int = 3,
                        settle: float = 0.15) -> dict[str, float]:
    """Median seconds per call of each function. The systems take turns in `rounds` blocks each (in a
    rotating order), so that a change in the load of this shared machine hits all of them alike. A
    block starts with `settle` seconds of untimed calls: the previous system's worker threads may
    still be spinning (OpenBLAS's spin for ~0.1 s after a call) and would halve this one's cores."""
    inner: dict[str, int] = {}
    for name, fn in fns.items():
        fn()
        t0 = time.perf_counter()
        fn()
        inner[name] = max(1, int(1e-3 / max(time.perf_counter() - t0, 1e-7)))  # calls per ~1 ms sample
    samples: dict[str, list[float]] = {k: [] for k in fns}
    names = list(fns)
    for r in range(rounds):
        for name in names[r % len(names):] + names[: r % len(names)]:
            fn, n = fns[name], inner[name]
            end = time.perf_counter() + settle
            while time.perf_counter() < end:
                fn()
            end = time.perf_counter() + budget / rounds
            while len(samples[name]) < 2 * (r + 1) or time.perf_counter() < end:
                t0 = time.perf_counter()
                for _ in range(n):
                    fn()
                samples[name].append((time.perf_counter() - t0) / n)
    return {k: statistics.median(v) for k, v in samples.items()}


def first_call(name: str, system: str, build: Callable[[], Callable[[], Any]]) -> Callable[[], Any] | None:
    """Build and call once; record the compile (first-call) time. None if the peer cannot do it."""
    try:
        t0 = time.perf_counter()
        fn = build()
        fn()
        COMPILE.append((name, system, time.perf_counter() - t0))
        return fn
    except Exception as e:  # noqa: BLE001 - a peer that fails a cell is reported, not fatal
        print(f"  [{system} {name}: {type(e).__name__}: {str(e).splitlines()[0][:100] if str(e) else ''}]",
              file=sys.stderr)
        return None


# --------------------------------------------------------------------------------------------------
# workloads


# the lean_mlir programs (mlp: the 3-layer MLP, ew: the elementwise chain) are workloads.models'; below,
# the same computations for NumPy (by hand, with gradients and JVPs), PyTorch and JAX


def mlp_np(x, t, W1, b1, W2, b2, W3, b3):  # noqa: N803
    h1 = np.tanh(x @ W1 + b1)
    h2 = np.tanh(h1 @ W2 + b2)
    d = h2 @ W3 + b3 - t
    return np.float32((d * d).mean())


def mlp_np_vg(x, t, W1, b1, W2, b2, W3, b3):  # noqa: N803
    h1 = np.tanh(x @ W1 + b1)
    h2 = np.tanh(h1 @ W2 + b2)
    d = h2 @ W3 + b3 - t
    g = d * np.float32(2.0 / d.size)
    gW3, gb3 = h2.T @ g, g.sum(0)
    g2 = (g @ W3.T) * (1 - h2 * h2)
    gW2, gb2 = h1.T @ g2, g2.sum(0)
    g1 = (g2 @ W2.T) * (1 - h1 * h1)
    gW1, gb1 = x.T @ g1, g1.sum(0)
    return np.float32((d * d).mean()), (gW1, gb1, gW2, gb2, gW3, gb3)


def mlp_np_jvp(x, t, W1, b1, W2, b2, W3, b3, dW1):  # noqa: N803
    h1 = np.tanh(x @ W1 + b1)
    dh1 = (x @ dW1) * (1 - h1 * h1)
    h2 = np.tanh(h1 @ W2 + b2)
    dh2 = (dh1 @ W2) * (1 - h2 * h2)
    d = h2 @ W3 + b3 - t
    dd = dh2 @ W3
    return np.float32((d * d).mean()), np.float32(2 * (d * dd).mean())


def ew_np(x):
    return np.float32(np.exp(np.sin(x) * x + np.tanh(x)).sum())


def ew_np_vg(x):
    s, th = np.sin(x), np.tanh(x)
    e = np.exp(s * x + th)
    return np.float32(e.sum()), e * (np.cos(x) * x + s + (1 - th * th))


def ew_np_jvp(x, dx):
    s, th = np.sin(x), np.tanh(x)
    e = np.exp(s * x + th)
    return np.float32(e.sum()), np.float32((e * (np.cos(x) * x + s + (1 - th * th)) * dx).sum())


# --------------------------------------------------------------------------------------------------
# peers


def jax_fns(loss: Callable, argnums: tuple[int, ...], jvp_arg: int) -> dict[str, Callable]:
    def jvp(*args):
        *xs, dx = args

        def along(w):
            ys = list(xs)
            ys[jvp_arg] = w
            return loss(*ys)

        return jax.jvp(along, (xs[jvp_arg],), (dx,))

    return {"fwd": jax.jit(loss), "vg": jax.jit(jax.value_and_grad(loss, argnums=argnums)), "jvp": jax.jit(jvp)}


def torch_fns(loss: Callable, argnums: tuple[int, ...], jvp_arg: int, compiled: bool) -> dict[str, Callable]:
    import torch.func as tf

    def fwd(*xs):
        with torch.no_grad():
            return loss(*xs)

    def vg(*xs):
        return tf.grad_and_value(loss, argnums=argnums)(*xs)

    def jvp(*args):
        *xs, dx = args

        def along(w):
            ys = list(xs)
            ys[jvp_arg] = w
            return loss(*ys)

        with torch.no_grad():
            return tf.jvp(along, (xs[jvp_arg],), (dx,))

    fns = {"fwd": fwd, "vg": vg, "jvp": jvp}
    if compiled:
        fns = {k: torch.compile(v, dynamic=False) for k, v in fns.items()}
    return fns


def mlp_torch(x, t, W1, b1, W2, b2, W3, b3):  # noqa: N803
    h = torch.tanh(x @ W1 + b1)
    h = torch.tanh(h @ W2 + b2)
    y = h @ W3 + b3
    return ((y - t) ** 2).mean()


def mlp_jax(x, t, W1, b1, W2, b2, W3, b3):  # noqa: N803
    h = jnp.tanh(x @ W1 + b1)
    h = jnp.tanh(h @ W2 + b2)
    y = h @ W3 + b3
    return ((y - t) ** 2).mean()


def ew_torch(x):
    return torch.exp(torch.sin(x) * x + torch.tanh(x)).sum()


def ew_jax(x):
    return jnp.exp(jnp.sin(x) * x + jnp.tanh(x)).sum()


def block(v: Any) -> Any:
    if jax is not None:
        return jax.block_until_ready(v)
    return v


# --------------------------------------------------------------------------------------------------


def run_cells(name: str, arrays: list[np.ndarray], jvp_arg: int, argnums: tuple[int, ...],
              lean_fn: Callable, np_fns: dict[str, Callable], jax_loss: Callable | None,
              torch_loss: Callable | None, budget: float, rows: list) -> None:
    rng = np.random.default_rng(7)
    dx = (rng.standard_normal(arrays[jvp_arg].shape) * 0.1).astype(np.float32)
    specs = [lm.Spec(a.shape, "f32") for a in arrays]
    results: dict[str, dict[str, float]] = {k: {} for k in ("fwd", "vg", "jvp")}

    # lean_mlir: one compile for fwd and value+grad (wrt = argnums), one for the JVP along W1 only
    c_all = first_call(name + " fwd+vg", "lean_mlir",
                       lambda: (lambda c: (lambda: c.forward(*arrays)))(
                           lm.compile_scalar(lean_fn, *specs, wrt=list(argnums))))
    c_jvp = first_call(name + " jvp", "lean_mlir",
                       lambda: (lambda c: (lambda: c.jvp(arrays, [dx])))(
                           lm.compile_scalar(lean_fn, *specs, wrt=[jvp_arg])))
    # every system's callable per cell (first calls above and below record the compile times), then
    # one interleaved measurement per cell
    cells: dict[str, dict[str, Callable[[], Any]]] = {k: {} for k in results}
    if c_all is not None:
        c = lm.compile_scalar(lean_fn, *specs, wrt=list(argnums))
        cells["fwd"]["lean_mlir"] = lambda: c.forward(*arrays)
        cells["vg"]["lean_mlir"] = lambda: c.value_and_backward(*arrays)
    if c_jvp is not None:
        cj = lm.compile_scalar(lean_fn, *specs, wrt=[jvp_arg])
        cells["jvp"]["lean_mlir"] = lambda: cj.jvp(arrays, [dx])

    # numpy (hand-written derivatives)
    cells["fwd"]["numpy"] = lambda: np_fns["fwd"](*arrays)
    cells["vg"]["numpy"] = lambda: np_fns["vg"](*arrays)
    cells["jvp"]["numpy"] = lambda: np_fns["jvp"](*arrays, dx)

    if jax is not None and jax_loss is not None:
        ja = [jnp.asarray(a) for a in arrays]
        jdx = jnp.asarray(dx)
        fns = jax_fns(jax_loss, argnums, jvp_arg)
        for cell, fn in fns.items():
            args = ja + ([jdx] if cell == "jvp" else [])
            f = first_call(f"{name} {cell}", "jax", lambda fn=fn, args=args: (lambda: block(fn(*args))))
            if f is not None:
                cells[cell]["jax"] = f
    if torch is not None and torch_loss is not None:
        ta = [torch.from_numpy(a) for a in arrays]
        tdx = torch.from_numpy(dx)
        for system, compiled in (("torch", False), ("torch.compile", True)):
            fns = torch_fns(torch_loss, argnums, jvp_arg, compiled)
            for cell, fn in fns.items():
                args = ta + ([tdx] if cell == "jvp" else [])
                f = first_call(f"{name} {cell}", system, lambda fn=fn, args=args: (lambda: fn(*args)))
                if f is not None:
                    cells[cell][system] = f
    for cell, fns_of_cell in cells.items():
        results[cell] = timeit_side_by_side(fns_of_cell, budget)
    for cell in ("fwd", "vg", "jvp"):
        rows.append((f"{name} {cell}", results[cell], "time"))


def check_lean(name: str, got: Any, want: Any, rtol: float = 2e-3) -> None:
    """The benchmark is meaningless if the answers differ: compare lean_mlir to NumPy once."""
    g = np.concatenate([np.ravel(np.asarray(v, np.float64)) for v in (got if isinstance(got, tuple) else (got,))])
    w = np.concatenate([np.ravel(np.asarray(v, np.float64)) for v in (want if isinstance(want, tuple) else (want,))])
    err = np.max(np.abs(g - w)) / max(np.max(np.abs(w)), 1e-30)
    if not err <= rtol:
        print(f"  WARNING {name}: lean_mlir differs from NumPy, max rel err {err:.2e}", file=sys.stderr)


def mlp_arrays(batch: int, width: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    f = lambda *s, scale=1.0: (rng.standard_normal(s) * scale).astype(np.float32)  # noqa: E731
    return [f(batch, width), f(batch, 10), f(width, width, scale=width**-0.5), f(width, scale=0.1),
            f(width, width, scale=width**-0.5), f(width, scale=0.1), f(width, 10, scale=width**-0.5),
            f(10, scale=0.1)]


def flatten_vg(v: Any) -> tuple:
    val, grads = v
    return (val, *grads)


def bench_mlp(batch: int, width: int, budget: float, rows: list) -> None:
    arrays = mlp_arrays(batch, width)
    name = f"mlp-{'S' if width <= 256 else 'L'} {batch}x{width}"
    specs = [lm.Spec(a.shape, "f32") for a in arrays]
    try:
        c = lm.compile_scalar(mlp, *specs, wrt=[2, 3, 4, 5, 6, 7])
        check_lean(name + " fwd", c.forward(*arrays), mlp_np(*arrays))
        check_lean(name + " vg", flatten_vg(c.value_and_backward(*arrays)), flatten_vg(mlp_np_vg(*arrays)))
        dx = (np.random.default_rng(7).standard_normal(arrays[2].shape) * 0.1).astype(np.float32)
        cj = lm.compile_scalar(mlp, *specs, wrt=[2])
        check_lean(name + " jvp", cj.jvp(arrays, [dx]), mlp_np_jvp(*arrays, dx))
        lm.clear_cache()  # the compile times below are first calls
    except Exception as e:  # noqa: BLE001
        print(f"  [lean_mlir {name}: {type(e).__name__}: {e}]", file=sys.stderr)
    run_cells(name, arrays, 2, (2, 3, 4, 5, 6, 7), mlp,
              {"fwd": mlp_np, "vg": mlp_np_vg, "jvp": mlp_np_jvp},
              mlp_jax if jax is not None else None, mlp_torch if torch is not None else None, budget, rows)


def bench_ew(n: int, budget: float, rows: list) -> None:
    x = np.random.default_rng(1).uniform(-3, 3, n).astype(np.float32)
    name = f"ew {n:.0e}".replace("+0", "")
    try:
        c = lm.compile_scalar(ew, lm.Spec((n,), "f32"))
        check_lean(name + " fwd", c.forward(x), ew_np(x))
        check_lean(name + " vg", flatten_vg(c.value_and_backward(x)), flatten_vg(ew_np_vg(x)))
        lm.clear_cache()
    except Exception as e:  # noqa: BLE001
        print(f"  [lean_mlir {name}: {type(e).__name__}: {e}]", file=sys.stderr)
    run_cells(name, [x], 0, (0,), ew, {"fwd": ew_np, "vg": ew_np_vg, "jvp": ew_np_jvp},
              ew_jax if jax is not None else None, ew_torch if torch is not None else None, budget, rows)


def bench_matmul(n: int, budget: float, rows: list) -> None:
    rng = np.random.default_rng(2)
    a, b = (rng.standard_normal((n, n)).astype(np.float32) for _ in range(2))
    fns: dict[str, Callable[[], Any]] = {}
    name = f"matmul {n}"
    f = first_call(name, "lean_mlir", lambda: (lambda o: (lambda: o.forward(a, b)))(
        lm.compile_out(lambda x, y: x @ y, lm.Spec((n, n), "f32"), lm.Spec((n, n), "f32"))))
    if f is not None:
        check_lean(name, f(), a @ b, rtol=1e-4)
        fns["lean_mlir"] = f
    fns["numpy"] = lambda: a @ b
    if jax is not None:
        ja, jb = jnp.asarray(a), jnp.asarray(b)
        mm = jax.jit(lambda x, y: x @ y)
        g = first_call(name, "jax", lambda: (lambda: block(mm(ja, jb))))
        if g is not None:
            fns["jax"] = g
    if torch is not None:
        ta, tb = torch.from_numpy(a), torch.from_numpy(b)
        fns["torch"] = lambda: ta @ tb
    res = timeit_side_by_side(fns, budget)
    rows.append((name, {k: 2 * n**3 / v / 1e9 for k, v in res.items()}, "gflops"))


def bench_tiny(budget: float, rows: list) -> None:
    x = np.arange(4, dtype=np.float32)
    fns: dict[str, Callable[[], Any]] = {}
    f = first_call("tiny-call", "lean_mlir", lambda: (lambda c: (lambda: c.forward(x)))(
        lm.compile_scalar(lambda v: lm.sum(v * v), lm.Spec((4,), "f32"))))
    if f is not None:
        fns["lean_mlir"] = f
    fns["numpy"] = lambda: float((x * x).sum())
    if jax is not None:
        jx = jnp.asarray(x)
        g = jax.jit(lambda v: (v * v).sum())
        block(g(jx))
        fns["jax"] = lambda: block(g(jx))
    if torch is not None:
        tx = torch.from_numpy(x)
        fns["torch"] = lambda: (tx * tx).sum()
    res = timeit_side_by_side(fns, budget)
    rows.append(("tiny-call", res, "time"))


def fmt_time(s: float) -> str:
    return f"{s * 1e3:.3f} ms" if s >= 1e-4 else f"{s * 1e6:.2f} us"


def print_table(rows: list) -> None:
    cols = ["lean_mlir", *PEERS]
    head = f"{'cell':<24}" + "".join(f"{c:>15}" for c in cols) + f"{'best peer':>15}{'ratio':>8}"
    print(head)
    print("-" * len(head))
    for name, res, kind in rows:
        cells = []
        for c in cols:
            v = res.get(c)
            cells.append("-" if v is None else fmt_time(v) if kind == "time" else f"{v:.1f} GF/s")
        peers = {k: v for k, v in res.items() if k != "lean_mlir"}
        ratio = "-"
        best = "-"
        if peers:
            if kind == "time":
                bk = min(peers, key=peers.get)
                best = bk
                if "lean_mlir" in res:
                    ratio = f"{res['lean_mlir'] / peers[bk]:.2f}"
            else:
                bk = max(peers, key=peers.get)
                best = bk
                if "lean_mlir" in res:
                    ratio = f"{peers[bk] / res['lean_mlir']:.2f}"
        print(f"{name:<24}" + "".join(f"{c:>15}" for c in cells) + f"{best:>15}{ratio:>8}")
    print("\ncompile (first call) times:")
    for name, system, s in COMPILE:
        print(f"  {name:<28} {system:<14} {s:8.3f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes and short timing budgets (smoke run)")
    ap.add_argument("--only", default="", help="comma-separated subset: mlp-S,mlp-L,ew,matmul,tiny")
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    only = set(filter(None, args.only.split(",")))
    want = lambda k: not only or k in only  # noqa: E731
    budget = 0.05 if args.quick else 0.5
    from lean_mlir.backends.cpu.target import host
    cpu = host()
    print(f"CPU: {cpu.model} ({cpu.arch}, {cpu.vector_bits}-bit SIMD, L2 {cpu.l2_bytes >> 10} KiB)")
    print(f"numpy {np.__version__}, jax {getattr(jax, '__version__', '-')}, "
          f"torch {getattr(torch, '__version__', '-')}; {os.cpu_count()} cpus; "
          f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')}", flush=True)
    rows: list = []
    if want("mlp-S"):
        bench_mlp(64, 256, budget, rows)
    if want("mlp-L") and not args.quick:
        bench_mlp(256, 1024, budget, rows)
    if want("ew"):
        bench_ew(10**5 if args.quick else 10**6, budget, rows)
    if want("matmul"):
        for n in (256,) if args.quick else (1024, 2048):
            bench_matmul(n, budget, rows)
    if want("tiny"):
        bench_tiny(budget, rows)
    print()
    print_table(rows)


if __name__ == "__main__":
    main()
