"""The worker pool of the CPU thread split (lean_mlir.runtime.pool): threaded kernels called from many
Python threads at once, workers that fall asleep between calls, a forked child, a clean exit."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from support import randn, run_threads

import lean_mlir as lm
from lean_mlir.backends.cpu.schedules.common import PARALLEL_MIN_ELEMENTS
from lean_mlir.runtime import pool

pytestmark = pytest.mark.skipif(not pool.supported(), reason="no worker pool on this platform")

N = 1 << 20  # elements: above PARALLEL_MIN_ELEMENTS, so the loop is split


def program(a: lm.Tensor, b: lm.Tensor) -> lm.Tensor:
    return lm.tanh(a) * b + lm.exp(-a * a)


def reference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a64 = a.astype(np.float64)
    return np.tanh(a64) * b + np.exp(-a64 * a64)


def _inputs(seed: int) -> list[np.ndarray]:
    return randn([(N,), (N,)], "f32", seed)


def test_split_loop_calls_the_pool(two_threads: None) -> None:
    assert N >= PARALLEL_MIN_ELEMENTS
    o = lm.compile_out(program, lm.f32[N], lm.f32[N])
    assert pool.SUBMIT_SYMBOL in o.ir("llvm") and "mlirAsyncRuntime" not in o.ir("llvm")
    a, b = _inputs(0)
    np.testing.assert_allclose(o.forward(a, b), reference(a, b), rtol=2e-6, atol=2e-6)
    assert pool.pool(1).workers >= 1


def test_many_callers_share_the_workers(two_threads: None) -> None:
    """8 Python threads call split kernels at once: a caller that finds no free worker runs the block
    itself; every result equals the single-caller one bit for bit."""
    o = lm.compile_out(program, lm.f32[N], lm.f32[N])
    data = [_inputs(k) for k in range(8)]
    want = [o.forward(*d) for d in data]

    def work(k: int) -> None:
        for _ in range(25):
            np.testing.assert_array_equal(o.forward(*data[k]), want[k])

    run_threads(work, 8, timeout=120)


def _run_script(body: str, env: dict[str, str], timeout: float = 240) -> subprocess.CompletedProcess:
    script = textwrap.dedent("""
        import os, sys, time
        import numpy as np
        import lean_mlir as lm
        N = 1 << 20
        def program(a, b):
            return lm.tanh(a) * b + lm.exp(-a * a)
        rng = np.random.default_rng(1)
        a, b = rng.standard_normal(N).astype(np.float32), rng.standard_normal(N).astype(np.float32)
        want = np.tanh(a.astype(np.float64)) * b + np.exp(-a.astype(np.float64) ** 2)
        o = lm.compile_out(program, lm.f32[N], lm.f32[N])
        assert "__lean_pool_submit" in o.ir("llvm")
    """) + textwrap.dedent(body)
    return subprocess.run([sys.executable, "-c", script], env={**os.environ, "LEAN_MLIR_THREADS": "2", **env},
                          capture_output=True, text=True, timeout=timeout)


def test_sleeping_workers_wake_up_and_exit_cleanly() -> None:
    """With no spinning (LEAN_MLIR_SPIN=0) every task goes to a worker asleep on its futex; the
    results stay right, and the process exits with 0 (the workers are joined at exit)."""
    r = _run_script("""
        for i in range(200):
            np.testing.assert_allclose(o.forward(a, b), want, rtol=2e-6, atol=2e-6)
            if i % 20 == 0:
                time.sleep(0.01)
        print("ok")
    """, {"LEAN_MLIR_SPIN": "0"})
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr[-2000:]


def test_forked_child_runs_split_loops_on_its_own_thread() -> None:
    """fork() copies no worker threads: the child's pool is switched off and runs every block itself."""
    r = _run_script("""
        o.forward(a, b)  # the parent's workers are running
        pid = os.fork()
        if pid == 0:
            ok = all(np.allclose(o.forward(a, b), want, rtol=2e-6, atol=2e-6) for _ in range(5))
            os._exit(0 if ok else 3)
        for _ in range(600):
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            time.sleep(0.1)
        else:
            os.kill(pid, 9)
            sys.exit("the forked child hung")
        assert os.waitstatus_to_exitcode(status) == 0, status
        np.testing.assert_allclose(o.forward(a, b), want, rtol=2e-6, atol=2e-6)
        print("ok")
    """, {})
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr[-2000:]


def test_bad_spin_setting_is_a_clear_error() -> None:
    r = _run_script("print('unreachable')", {"LEAN_MLIR_SPIN": "lots"})
    assert r.returncode != 0 and "LEAN_MLIR_SPIN must be a non-negative integer" in r.stderr, r.stderr[-2000:]
