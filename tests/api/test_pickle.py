"""Compiled objects pickle to their lean IR, specs, wrt, backend and options, and unpickle by
compiling that IR (or taking it from the compile cache): they travel to multiprocessing workers
(spawn: a fresh interpreter) and give the same answers there."""

from __future__ import annotations

import multiprocessing
import pickle
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import numpy as np

import lean_mlir as lm


def _loss(x: Any, w: Any) -> Any:
    return lm.sum(lm.tanh(x @ w))


def _layer(x: Any, w: Any) -> Any:
    return lm.tanh(x @ w)


def _all_calls(c: lm.CompiledScalar, x: np.ndarray, w: np.ndarray) -> list[Any]:
    return [c.forward(x, w), c.backward(x, w), c.value_and_backward(x, w), c.jvp([x, w], [x, w]), c.hvp([x, w], [x, w])]


def _in_worker(blob: bytes, x: np.ndarray, w: np.ndarray) -> list[Any]:
    return _all_calls(pickle.loads(blob), x, w)


def test_pickle_round_trip_in_process(rng: np.random.Generator) -> None:
    c = lm.compile_out(_layer, lm.Spec((3, 4), "f64"), lm.Spec((4, 5), "f64"), wrt=[1],
                       options=lm.Options(threads=1))
    d = pickle.loads(pickle.dumps(c))
    assert type(d) is lm.CompiledOut and d.wrt == [1] and d.specs == c.specs and d.options == c.options
    assert d.fn is None and d.ir("lean") == c.ir("lean")
    assert pickle.loads(pickle.dumps(c)) is d  # the second unpickle is a compile-cache hit
    x, w = rng.standard_normal((3, 4)), rng.standard_normal((4, 5))
    np.testing.assert_array_equal(d.forward(x, w), c.forward(x, w))
    seed = rng.standard_normal((3, 5))
    np.testing.assert_array_equal(d.vjp_with_seed([x, w], seed)[0], c.vjp_with_seed([x, w], seed)[0])


def test_pickled_compiled_object_runs_in_spawned_workers(rng: np.random.Generator) -> None:
    c = lm.compile_scalar(_loss, lm.Spec((3, 4), "f32"), lm.Spec((4, 5), "f32"), options=lm.Options(threads=1))
    x, w = rng.standard_normal((3, 4)).astype(np.float32), rng.standard_normal((4, 5)).astype(np.float32)
    want = _all_calls(c, x, w)
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        results = list(pool.map(_in_worker, [pickle.dumps(c)] * 2, [x] * 2, [w] * 2))
    for got in results:
        assert got[0] == want[0]
        for g, e in zip(got[1], want[1], strict=True):
            np.testing.assert_array_equal(g, e)
        assert got[2][0] == want[2][0]
        np.testing.assert_array_equal(got[3][1], want[3][1])
        for g, e in zip(got[4], want[4], strict=True):
            np.testing.assert_array_equal(g, e)
