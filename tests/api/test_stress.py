"""Stress: one compiled object called from many threads at once, 100k calls with flat memory, and
100 compiles whose memory is released."""

from __future__ import annotations

import gc
import weakref
from typing import Any

import numpy as np
import pytest
from support import randn, rss_mb, run_threads

import lean_mlir as lm

THREADS = 8


def mlp(x: lm.Tensor, w1: lm.Tensor, w2: lm.Tensor) -> lm.Tensor:
    return lm.mean(lm.log_softmax(lm.tanh(x @ w1) @ w2, axis=-1))


SPECS = [lm.f32[16, 32], lm.f32[32, 64], lm.f32[64, 10]]


def _inputs(seed: int) -> list[np.ndarray]:
    return randn([s.shape for s in SPECS], "f32", seed)


def _all_calls(c: lm.CompiledScalar, xs: list[np.ndarray], vs: list[np.ndarray]) -> list[np.ndarray]:
    value, grads = c.value_and_backward(*xs)
    y, dy = c.jvp(xs, vs)
    return [np.float64(c.forward(*xs)), np.float64(value), *grads, np.float64(y), np.float64(dy), *c.hvp(xs, vs),
            *c.backward_with_seed(xs, np.float32(0.5))]


@pytest.mark.parametrize("backend", ["cpu", "eager"])
def test_threads_share_one_compiled_object(backend: str) -> None:
    """8 threads call every entry point of one object at once (the first hvp call, which compiles
    @f_vjp_jvp lazily, included); each result equals the single-threaded one bit for bit."""
    c = lm.CompiledScalar(mlp, SPECS, backend)
    other = lm.CompiledScalar(mlp, SPECS, backend)  # the reference, computed without any contention
    data = [(_inputs(k), _inputs(100 + k)) for k in range(THREADS)]
    want = [_all_calls(other, xs, vs) for xs, vs in data]
    got: dict[int, list[list[np.ndarray]]] = {}

    def work(k: int) -> None:
        got[k] = [_all_calls(c, *data[k]) for _ in range(20)]

    run_threads(work, THREADS)
    for k in range(THREADS):
        for rep in got[k]:
            assert len(rep) == len(want[k])
            for a, b in zip(rep, want[k], strict=True):
                np.testing.assert_array_equal(a, b)


def test_threads_compile_concurrently(fresh_cache: None) -> None:
    """Compiling from 8 threads at once (cache and compile log shared) gives working objects."""
    xs = _inputs(0)
    want = lm.CompiledScalar(mlp, SPECS, "cpu").value_and_backward(*xs)
    got: dict[int, Any] = {}

    def work(k: int) -> None:
        got[k] = lm.compile_scalar(mlp, *SPECS).value_and_backward(*xs)

    run_threads(work, THREADS)
    for value, grads in got.values():
        assert value == want[0]
        for a, b in zip(grads, want[1], strict=True):
            np.testing.assert_array_equal(a, b)


def test_100k_calls_keep_memory_flat() -> None:
    c = lm.CompiledScalar(lambda x, w: lm.sum(lm.tanh(x @ w)), [lm.f32[4, 8], lm.f32[8, 3]], "cpu")
    x, w = _inputs(0)[0][:4, :8].copy(), _inputs(1)[1][:8, :3].copy()
    want = c.value_and_backward(x, w)
    for _ in range(2000):  # warm up allocator pools and caches
        c.value_and_backward(x, w)
    gc.collect()
    before = rss_mb()
    for _ in range(50_000):
        c.forward(x, w)
    for _ in range(50_000):
        value, grads = c.value_and_backward(x, w)
    gc.collect()
    growth = rss_mb() - before
    assert growth < 20, f"RSS grew by {growth:.1f} MiB over 100k calls"
    assert value == want[0]
    np.testing.assert_array_equal(grads[1], want[1][1])


def test_100_compiles_release_their_memory() -> None:
    x, w = np.ones((4, 8), np.float32), np.ones((8, 3), np.float32)

    def compile_one(i: int, cached: bool) -> lm.CompiledScalar:
        fn = lambda x, w: lm.sum(lm.tanh(x @ w) * float(i))  # a new function each time: no cache hits
        c = lm.compile_scalar(fn, lm.f32[4, 8], lm.f32[8, 3]) if cached else \
            lm.CompiledScalar(fn, [lm.f32[4, 8], lm.f32[8, 3]], "cpu")
        assert c.forward(x, w) == pytest.approx(i * 3 * 4 * np.tanh(8.0), rel=1e-6)
        return c

    for i in range(10):  # warm-up: first-use costs (pass registrations, libraries, allocator pools)
        compile_one(i, cached=False)
    gc.collect()
    before = rss_mb()
    refs = []
    for i in range(100):
        cached = i % 2 == 0  # half through the cache, released by clear_cache
        refs.append(weakref.ref(compile_one(i, cached)))
        if cached:
            lm.clear_cache()
    gc.collect()
    alive = sum(r() is not None for r in refs)
    growth = rss_mb() - before
    assert alive == 0, f"{alive} compiled objects are still referenced"
    assert growth < 40, f"RSS grew by {growth:.1f} MiB over 100 compiles"
