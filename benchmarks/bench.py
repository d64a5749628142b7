"""lean_mlir (CPU JIT) side by side with NumPy, jax.jit, torch eager and torch.compile, in one process,
on the same arrays (float32, and float64 for the model cells).

Run:  env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench.py [--quick] [--only gpt,lenet]
                                                                              [--dtype f32,f64]
JAX and PyTorch are optional (measurement only, not test dependencies): a missing one is a "-" column; "n/a"
is a cell a system does not offer (NumPy has no autodiff: its MLP derivatives are written by hand, the GPT and
LeNet gradients are not).

Workloads
  mlp-S / mlp-L   3-layer tanh MLP, loss mean((y - t)^2), output dim 10, (batch, width) = (64, 256) and
                  (256, 1024): forward; value and gradients w.r.t. the 6 parameters; JVP of the loss along
                  a tangent of W1 only (lean_mlir compiled with wrt=[W1]).
  gpt             one GPT-2-style pre-norm transformer block, batch 8, sequence 64, width 128, 4 heads: causal
                  softmax attention (a constant mask added to the scores), layer norm, tanh-GELU MLP of width
                  512, residuals; loss mean(y * y): forward; value and gradients w.r.t. the 16 parameters.
  lenet           LeNet-5 at batch 64 on 1x32x32: conv 6@5x5 -> tanh -> 2x2 max pool -> conv 16@5x5 -> tanh ->
                  pool -> 120 -> 84 -> 10, mean cross entropy: forward; value and gradients w.r.t. the 10
                  parameters. (The models and their peers' versions: benchmarks/models.py.)
  ew              sum(exp(sin(x) * x + tanh(x))) over 1e6 floats: forward, value+grad, JVP.
  matmul N        C = A @ B, N = 1024, 2048: GFLOP/s (higher is better; the ratio is peer/lean_mlir).
  tiny-call       sum(x * x) over 4 floats: the per-call overhead.
The model cells (mlp, gpt, lenet) run once per --dtype (f32 by default, --dtype f32,f64 adds the float64 rows:
torch.compile's and lean_mlir's compiles would take the full run past 10 minutes on 2 cores; ew, matmul and
tiny-call are f32 only). Before timing, lean_mlir's value and gradients are checked against torch's (and
NumPy's and jax's values and gradients against torch's): a mismatch drops that system from the cell.
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
import models as bm  # noqa: E402 - benchmarks/models.py (this script's directory is on sys.path)

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
    return (d * d).mean()


def mlp_np_vg(x, t, W1, b1, W2, b2, W3, b3):  # noqa: N803
    h1 = np.tanh(x @ W1 + b1)
    h2 = np.tanh(h1 @ W2 + b2)
    d = h2 @ W3 + b3 - t
    g = d * d.dtype.type(2.0 / d.size)
    gW3, gb3 = h2.T @ g, g.sum(0)
    g2 = (g @ W3.T) * (1 - h2 * h2)
    gW2, gb2 = h1.T @ g2, g2.sum(0)
    g1 = (g2 @ W2.T) * (1 - h1 * h1)
    gW1, gb1 = x.T @ g1, g1.sum(0)
    return (d * d).mean(), (gW1, gb1, gW2, gb2, gW3, gb3)


def mlp_np_jvp(x, t, W1, b1, W2, b2, W3, b3, dW1):  # noqa: N803
    h1 = np.tanh(x @ W1 + b1)
    dh1 = (x @ dW1) * (1 - h1 * h1)
    h2 = np.tanh(h1 @ W2 + b2)
    dh2 = (dh1 @ W2) * (1 - h2 * h2)
    d = h2 @ W3 + b3 - t
    dd = dh2 @ W3
    return (d * d).mean(), 2 * (d * dd).mean()


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


def jax_fns(loss: Callable, argnums: tuple[int, ...], jvp_arg: int | None) -> dict[str, Callable]:
    def jvp(*args):
        *xs, dx = args

        def along(w):
            ys = list(xs)
            ys[jvp_arg] = w
            return loss(*ys)

        return jax.jvp(along, (xs[jvp_arg],), (dx,))

    fns = {"fwd": jax.jit(loss), "vg": jax.jit(jax.value_and_grad(loss, argnums=argnums)), "jvp": jax.jit(jvp)}
    return fns if jvp_arg is not None else {k: v for k, v in fns.items() if k != "jvp"}


def torch_fns(loss: Callable, argnums: tuple[int, ...], jvp_arg: int | None, compiled: bool) -> dict[str, Callable]:
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

    fns = {"fwd": fwd, "vg": vg, "jvp": jvp} if jvp_arg is not None else {"fwd": fwd, "vg": vg}
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


def run_cells(name: str, arrays: list[np.ndarray], jvp_arg: int | None, argnums: tuple[int, ...],
              lean_fn: Callable | None, np_fns: dict[str, Callable], jax_loss: Callable | None,
              torch_loss: Callable | None, budget: float, rows: list) -> None:
    """Time fwd, value+grad and (unless jvp_arg is None) the JVP along arrays[jvp_arg]; a system missing from
    np_fns is n/a in that cell, lean_fn None leaves lean_mlir out (it failed its check)."""
    kinds = ("fwd", "vg", "jvp") if jvp_arg is not None else ("fwd", "vg")
    rng = np.random.default_rng(7)
    dx = (rng.standard_normal(arrays[jvp_arg].shape) * 0.1).astype(arrays[jvp_arg].dtype) if jvp_arg is not None \
        else None
    specs = [lm.Spec.of_array(a) for a in arrays]
    results: dict[str, dict[str, float | None]] = {k: {} for k in kinds}

    # lean_mlir: one compile for fwd and value+grad (wrt = argnums), one for the JVP along W1 only
    c_all = c_jvp = None
    if lean_fn is not None:
        c_all = first_call(name + " fwd+vg", "lean_mlir",
                           lambda: (lambda c: (lambda: c.forward(*arrays)))(
                               lm.compile_scalar(lean_fn, *specs, wrt=list(argnums))))
    if lean_fn is not None and jvp_arg is not None:
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

    # numpy (hand-written derivatives, where there are any)
    for cell in kinds:
        if cell in np_fns:
            f = np_fns[cell]
            cells[cell]["numpy"] = (lambda f=f: f(*arrays, dx)) if cell == "jvp" else (lambda f=f: f(*arrays))

    if jax is not None and jax_loss is not None:
        ja = [jnp.asarray(a) for a in arrays]
        jdx = jnp.asarray(dx) if dx is not None else None
        fns = jax_fns(jax_loss, argnums, jvp_arg)
        for cell, fn in fns.items():
            args = ja + ([jdx] if cell == "jvp" else [])
            f = first_call(f"{name} {cell}", "jax", lambda fn=fn, args=args: (lambda: block(fn(*args))))
            if f is not None:
                cells[cell]["jax"] = f
    if torch is not None and torch_loss is not None:
        ta = [torch.from_numpy(a) for a in arrays]
        tdx = torch.from_numpy(dx) if dx is not None else None
        for system, compiled in (("torch", False), ("torch.compile", True)):
            fns = torch_fns(torch_loss, argnums, jvp_arg, compiled)
            for cell, fn in fns.items():
                args = ta + ([tdx] if cell == "jvp" else [])
                f = first_call(f"{name} {cell}", system, lambda fn=fn, args=args: (lambda: fn(*args)))
                if f is not None:
                    cells[cell][system] = f
    for cell, fns_of_cell in cells.items():
        results[cell] = {**timeit_side_by_side(fns_of_cell, budget), **({} if cell in np_fns else {"numpy": None})}
    for cell in kinds:
        rows.append((f"{name} {cell}", results[cell], "time"))


def check_lean(name: str, got: Any, want: Any, rtol: float = 2e-3) -> None:
    """The benchmark is meaningless if the answers differ: compare lean_mlir to NumPy once."""
    g = np.concatenate([np.ravel(np.asarray(v, np.float64)) for v in (got if isinstance(got, tuple) else (got,))])
    w = np.concatenate([np.ravel(np.asarray(v, np.float64)) for v in (want if isinstance(want, tuple) else (want,))])
    err = np.max(np.abs(g - w)) / max(np.max(np.abs(w)), 1e-30)
    if not err <= rtol:
        print(f"  WARNING {name}: lean_mlir differs from NumPy, max rel err {err:.2e}", file=sys.stderr)


RTOL = {"f32": 1e-4, "f64": 1e-9}  # lean_mlir (and each peer) against the reference (torch, else jax)


def reference(loss_torch: Callable | None, loss_jax: Callable | None, arrays: list[np.ndarray],
              argnums: tuple[int, ...]) -> tuple[str, tuple] | None:
    """(system, (value, grads)) of torch's autograd, else of jax (not jitted: the timed jit's first call must
    still be its compile), else None."""
    if torch is not None and loss_torch is not None:
        import torch.func as tf
        grads, value = tf.grad_and_value(loss_torch, argnums=argnums)(*[torch.from_numpy(a) for a in arrays])
        return "torch", (float(value), tuple(g.numpy() for g in grads))
    if jax is not None and loss_jax is not None:
        value, grads = jax.value_and_grad(loss_jax, argnums=argnums)(*[jnp.asarray(a) for a in arrays])
        return "jax", (float(value), tuple(np.asarray(g) for g in grads))
    return None


def mismatch(got: tuple, want: tuple, rtol: float) -> str | None:
    """None if got == want = (value, grads) within rtol, else which one differs. Each array is compared relative
    to its own largest entry, floored at 1e-3 times the largest gradient entry overall (a gradient that is zero
    in exact arithmetic, as the GPT block's key bias's, is rounding noise in every system)."""
    (gv, gg), (wv, wg) = got, want
    if len(gg) != len(wg):
        return f"{len(gg)} gradients, expected {len(wg)}"
    floor = 1e-3 * max((float(np.max(np.abs(w))) for w in wg), default=0.0)
    pairs = [("value", gv, wv), *((f"gradient {i}", g, w) for i, (g, w) in enumerate(zip(gg, wg, strict=True)))]
    for what, g, w in pairs:
        g, w = np.asarray(g, np.float64), np.asarray(w, np.float64)
        if g.shape != w.shape:
            return f"{what}: shape {g.shape}, expected {w.shape}"
        err = float(np.max(np.abs(g - w))) / max(float(np.max(np.abs(w))), floor if what != "value" else 0.0, 1e-30)
        if not err <= rtol:
            return f"{what}: max rel err {err:.2e} > {rtol:.0e}"
    return None


def mlp_arrays(batch: int, width: int, dtype: Any = np.float32) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    f = lambda *s, scale=1.0: (rng.standard_normal(s) * scale).astype(dtype)  # noqa: E731
    return [f(batch, width), f(batch, 10), f(width, width, scale=width**-0.5), f(width, scale=0.1),
            f(width, width, scale=width**-0.5), f(width, scale=0.1), f(width, 10, scale=width**-0.5),
            f(10, scale=0.1)]


def flatten_vg(v: Any) -> tuple:
    val, grads = v
    return (val, *grads)


def bench_mlp(batch: int, width: int, dtype: str, budget: float, rows: list) -> None:
    arrays = mlp_arrays(batch, width, np.float32 if dtype == "f32" else np.float64)
    name = f"mlp-{'S' if width <= 256 else 'L'} {batch}x{width} {dtype}"
    specs = [lm.Spec.of_array(a) for a in arrays]
    rtol = 2e-3 if dtype == "f32" else 1e-8  # against NumPy's hand-written derivatives
    argnums = (2, 3, 4, 5, 6, 7)
    lean_fn: Callable | None = mlp
    try:
        c = lm.compile_scalar(mlp, *specs, wrt=list(argnums))
        check_lean(name + " fwd", c.forward(*arrays), mlp_np(*arrays), rtol)
        check_lean(name + " vg", flatten_vg(c.value_and_backward(*arrays)), flatten_vg(mlp_np_vg(*arrays)), rtol)
        ref = reference(mlp_torch if torch is not None else None, mlp_jax if jax is not None else None, arrays,
                        argnums)
        if ref is not None and (bad := mismatch(c.value_and_backward(*arrays), ref[1], RTOL[dtype])):
            print(f"  [lean_mlir {name}: differs from {ref[0]}: {bad}; left out]", file=sys.stderr)
            lean_fn = None
        dx = (np.random.default_rng(7).standard_normal(arrays[2].shape) * 0.1).astype(arrays[2].dtype)
        cj = lm.compile_scalar(mlp, *specs, wrt=[2])
        check_lean(name + " jvp", cj.jvp(arrays, [dx]), mlp_np_jvp(*arrays, dx), rtol)
        lm.clear_cache()  # the compile times below are first calls
    except Exception as e:  # noqa: BLE001
        print(f"  [lean_mlir {name}: {type(e).__name__}: {e}]", file=sys.stderr)
    run_cells(name, arrays, 2, argnums, lean_fn,
              {"fwd": mlp_np, "vg": mlp_np_vg, "jvp": mlp_np_jvp},
              mlp_jax if jax is not None else None, mlp_torch if torch is not None else None, budget, rows)


def bench_model(name: str, arrays: list[np.ndarray], argnums: tuple[int, ...], lean_fn: Callable,
                np_fwd: Callable, jax_loss: Callable | None, torch_loss: Callable | None, budget: float,
                rows: list) -> None:
    """A model cell without a JVP and without NumPy gradients (n/a): forward and value+grad. Before timing,
    lean_mlir's value and gradients, NumPy's value and jax's value and gradients must match the reference
    (torch's autograd); a system that does not is left out of the timing, with a message."""
    dtype = "f32" if arrays[0].dtype == np.float32 else "f64"
    rtol = RTOL[dtype]
    ref = reference(torch_loss, jax_loss, arrays, argnums)
    if ref is None:
        print(f"  [{name}: no torch or jax to check against; lean_mlir and NumPy unchecked]", file=sys.stderr)
    refname, want = ref if ref is not None else ("", None)
    np_fns = {"fwd": np_fwd}
    try:
        c = lm.compile_scalar(lean_fn, *[lm.Spec.of_array(a) for a in arrays], wrt=list(argnums))
        got = c.value_and_backward(*arrays)
        bad = None if want is None else (mismatch(got, want, rtol) or mismatch((c.forward(*arrays), ()),
                                                                               (want[0], ()), rtol))
        if bad:
            print(f"  [lean_mlir {name}: differs from {refname}: {bad}; left out]", file=sys.stderr)
            lean_fn = None
        lm.clear_cache()  # the compile times below are first calls
    except Exception as e:  # noqa: BLE001 - reported (with the first line of the message), not fatal
        print(f"  [lean_mlir {name}: {type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}]",
              file=sys.stderr)
        lean_fn = None
    if want is not None and (bad := mismatch((np_fwd(*arrays), ()), (want[0], ()), rtol)):
        print(f"  [numpy {name}: differs from {refname}: {bad}; left out]", file=sys.stderr)
        np_fns = {}
    if want is not None and refname == "torch" and jax is not None and jax_loss is not None:
        jv, jg = jax.value_and_grad(jax_loss, argnums=argnums)(*[jnp.asarray(a) for a in arrays])
        if bad := mismatch((float(jv), tuple(np.asarray(g) for g in jg)), want, rtol):
            print(f"  [jax {name}: differs from torch: {bad}; left out]", file=sys.stderr)
            jax_loss = None
    run_cells(name, arrays, None, argnums, lean_fn, np_fns, jax_loss, torch_loss, budget, rows)
    if not np_fns:  # NumPy failed its check: "-", not n/a
        for _, res, _ in rows[-2:]:
            res.pop("numpy", None)


def bench_gpt(dtype: str, budget: float, rows: list, batch: int = 8, seq: int = 64, width: int = 128,
              heads: int = 4) -> None:
    arrays = bm.gpt_arrays(batch, seq, width, np.float32 if dtype == "f32" else np.float64)
    bench_model(f"gpt {batch}x{seq}x{width} {dtype}", arrays, tuple(range(1, len(arrays))), bm.gpt_lm(heads),
                bm.gpt_np(heads), bm.gpt_jax(heads) if jax is not None else None,
                bm.gpt_torch(heads) if torch is not None else None, budget, rows)


def bench_lenet(dtype: str, budget: float, rows: list, batch: int = 64) -> None:
    arrays = bm.lenet_arrays(batch, np.float32 if dtype == "f32" else np.float64)
    bench_model(f"lenet-5 b{batch} {dtype}", arrays, tuple(range(2, len(arrays))), bm.lenet_lm, bm.lenet_np,
                bm.lenet_jax if jax is not None else None, bm.lenet_torch if torch is not None else None, budget,
                rows)


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
    head = f"{'cell':<25}" + "".join(f"{c:>15}" for c in cols) + f"{'best peer':>15}{'ratio':>8}"
    print(head)
    print("-" * len(head))
    for name, res, kind in rows:
        cells = []
        for c in cols:
            v = res.get(c)
            cells.append("-" if c not in res else "n/a" if v is None else fmt_time(v) if kind == "time"
                         else f"{v:.1f} GF/s")
        peers = {k: v for k, v in res.items() if k != "lean_mlir" and v is not None}
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
        print(f"{name:<25}" + "".join(f"{c:>15}" for c in cells) + f"{best:>15}{ratio:>8}")
    print("\ncompile (first call) times:")
    for name, system, s in COMPILE:
        print(f"  {name:<28} {system:<14} {s:8.3f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes and short timing budgets (smoke run)")
    ap.add_argument("--only", default="", help="comma-separated subset: mlp-S,mlp-L,gpt,lenet,ew,matmul,tiny")
    ap.add_argument("--dtype", default="f32", help="element types of the model cells (mlp, gpt, lenet): "
                    "f32 (default), f64 or f32,f64; ew, matmul and tiny-call are f32 only")
    args = ap.parse_args()
    dtypes = [d for d in ("f32", "f64") if d in args.dtype.split(",")]
    if not dtypes or set(args.dtype.split(",")) - {"f32", "f64"}:
        ap.error(f"--dtype: f32, f64 or f32,f64, got {args.dtype!r}")
    if jax is not None and "f64" in dtypes:
        jax.config.update("jax_enable_x64", True)  # else jnp.asarray makes float64 arrays float32
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
    # Options.gemm="auto": the host's OpenBLAS crossover, measured once per host (kept in the user's cache
    # directory), out of the compile times below
    from lean_mlir.backends.cpu import blas
    opts = lm.Options()
    if opts.gemm == "auto" and blas.library() is not None:
        for dtype in dtypes:
            x = blas.crossover(cpu, dtype, opts.threads, opts)
            print(f"matmul kernels ({dtype}, {opts.threads} threads): "
                  + ("generated at every size" if x == float("inf") else f"OpenBLAS from {x:.3g} multiply-adds"))
    rows: list = []
    for dtype in dtypes:
        if want("mlp-S"):
            bench_mlp(64, 256, dtype, budget, rows)
        if want("mlp-L") and not args.quick:
            bench_mlp(256, 1024, dtype, budget, rows)
    for dtype in dtypes:
        if want("gpt"):
            bench_gpt(dtype, budget, rows)
        if want("lenet"):
            bench_lenet(dtype, budget, rows)
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
