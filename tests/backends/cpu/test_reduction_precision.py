"""f32 reductions keep their precision at 1e7-1e8 elements (blocked accumulators: no accumulator adds
more than LONGEST values; the error grows like log n, as NumPy's pairwise sum's) and column reductions
(the reduced loop outside the parallel ones) are vectorized and blocked the same way: against float64
references and against NumPy on the same data. A few large arrays (the 1e8 ones): kept to a handful;
`LEAN_MLIR_PRECISION_SOAK=1` adds the heavier cases (1e8 constant sums on 1 and 2 threads, f64 1e8)."""

from __future__ import annotations

import math
import os
import re

import numpy as np
import pytest

import lean_mlir as lm
from lean_mlir.backends.cpu.schedules.common import best_tile
from lean_mlir.backends.cpu.schedules.reduction import LONGEST
from lean_mlir.backends.cpu.target import PRESETS, CpuTarget, host

SOAK = os.environ.get("LEAN_MLIR_PRECISION_SOAK") == "1"
soak = pytest.mark.skipif(not SOAK, reason="heavy: LEAN_MLIR_PRECISION_SOAK=1")


def pairwise_bound(n: int, eps: float) -> float:
    """Relative error bound of a pairwise (tree) sum of n terms of one sign: log2(n) roundings."""
    return math.log2(n) * eps


def ulps(got: object, ref: np.ndarray | float) -> float:
    """Largest error of `got` against the float64 `ref`, in units of the f32 spacing at `ref`."""
    ref = np.asarray(ref, np.float64)
    return float(np.max(np.abs(np.asarray(got, np.float64) - ref) / np.spacing(np.abs(ref.astype(np.float32)))))


def accumulator_terms(scheduled: str) -> list[int]:
    """Trip counts of the scheduled loops that carry a vector accumulator (iter_args of vector type):
    the values one register accumulator adds."""
    consts = {m[0]: int(m[1]) for m in re.findall(r"(%c\w*) = arith.constant (\d+) : index", scheduled)}
    trips = []
    for lo, hi, step in re.findall(r"scf.for %\w+ = (%\w+) to (%\w+) step (%\w+) iter_args\([^)]*\) -> \(vector<",
                                   scheduled):
        if lo in consts and hi in consts and step in consts:
            trips.append((consts[hi] - consts[lo]) // consts[step])
    return trips


def column_lanes(t: CpuTarget, cols: int) -> int:
    """The vector of columns a column sum steps by: up to 4 registers kept across the rows where the
    row fits them, else one register per step (the accumulated row lives in L1)."""
    lanes = min(t.reduction_vector("f32"), cols & -cols)
    return lanes if cols <= t.reduction_vector("f32") else min(lanes, t.lanes("f32"))


# ---- full and row reductions
@pytest.mark.parametrize("threads", [1, 2])  # the blocks differ: 2 threads need an even block count
def test_sum_of_1e8_ones_is_exact(threads: int) -> None:
    n = 10**8
    ones = np.ones(n, np.float32)
    assert lm.compile_scalar(lambda x: lm.sum(x), lm.f32[n], options=lm.Options(threads=threads)).forward(ones) == n


def test_sums_of_1e8_f32_are_as_precise_as_numpys() -> None:
    n = 10**8
    x = np.random.default_rng(1).random(n, dtype=np.float32)
    total = lm.compile_scalar(lambda v: lm.sum(v), lm.f32[n])
    mean_exp = lm.compile_scalar(lambda v: lm.mean(lm.exp(v)), lm.f32[n])
    for got, mine, ref in ((total.forward(x), x.sum(), x.sum(dtype=np.float64)),
                           (mean_exp.forward(x), np.exp(x).mean(), np.exp(x.astype(np.float64)).mean())):
        # measured: sum 0.19 ulp (NumPy 0.19; HEAD's chunk sums added in turn: 7.8), mean(exp) 0.10 (NumPy 1.1; was 13)
        assert ulps(got, ref) <= max(2 * ulps(mine, ref), 1.0), (got, mine, ref)


@pytest.mark.parametrize("n, threads", [(10**7, 1), (10**7, 2), pytest.param(10**8, 1, marks=soak),
                                        pytest.param(10**8, 2, marks=soak)])
def test_constant_sums_stay_within_the_pairwise_bound(n: int, threads: int) -> None:
    """Every term e (f32(exp(1)), all mantissa bits set): each add of an accumulator rounds the same
    way, the worst case of blocked accumulation. mean(exp(ones(1e8))) was 3.5e-5 off (chunk sums added
    in turn), 3.3e-6 with 256-term accumulators at every level; measured: 1.2e-7 (NumPy 1.5e-7)."""
    e = np.float32(np.e)
    opts = lm.Options(threads=threads)
    total = lm.compile_scalar(lambda v: lm.sum(v), lm.f32[n], options=opts).forward(np.full(n, e, np.float32))
    assert abs(float(total) - n * float(e)) <= pairwise_bound(n, 2.0**-24) * n * float(e), total
    mean_exp = lm.compile_scalar(lambda v: lm.mean(lm.exp(v)), lm.f32[n], options=opts).forward(np.ones(n, np.float32))
    assert abs(float(mean_exp) - math.e) <= pairwise_bound(n, 2.0**-24) * math.e, mean_exp


@pytest.mark.parametrize("threads", [1, 2])
def test_rows_of_ones_past_2_24_are_exact(threads: int) -> None:
    """A row of 2^25 ones summed to 2^24 with one accumulator per lane chunk added in turn."""
    shape = (2, 2**25)
    got = lm.compile_out(lambda v: lm.sum(v, axis=1), lm.Spec(shape, "f32"),
                         options=lm.Options(threads=threads)).forward(np.ones(shape, np.float32))
    np.testing.assert_array_equal(got, np.full(2, 2**25, np.float32))


@pytest.mark.parametrize("shape, axis", [((10**7,), None), ((3, 2**21), 1), ((2**20, 8), 0),
                                         pytest.param((10**8,), None, marks=soak)])
def test_f64_sums_within_the_pairwise_bound(shape: tuple[int, ...], axis: int | None,
                                             rng: np.random.Generator) -> None:
    x = rng.random(shape)
    got = lm.compile_out(lambda v: lm.sum(v, axis=axis), lm.Spec(shape, "f64")).forward(x)
    ref = x.astype(np.longdouble).sum(axis=axis)
    n = x.size // np.size(ref)
    assert np.max(np.abs(got - ref) / ref) <= pairwise_bound(n, 2.0**-53)


@pytest.mark.parametrize("shape, axis", [((10**7,), None), ((4, 10**6), -1), ((10**6, 4), 0)])
@pytest.mark.parametrize("threads", [1, 2])
def test_max_and_min_are_exact_on_the_blocked_paths(shape: tuple[int, ...], axis: int | None, threads: int,
                                                     rng: np.random.Generator) -> None:
    """max (and min as -max(-x)) are blocked like sums: the result is still one of the inputs."""
    x = rng.standard_normal(shape).astype(np.float32)
    opts = lm.Options(threads=threads)
    hi = lm.compile_out(lambda v: lm.max(v, axis=axis), lm.Spec(shape, "f32"), options=opts).forward(x)
    lo = lm.compile_out(lambda v: -lm.max(-v, axis=axis), lm.Spec(shape, "f32"), options=opts).forward(x)
    np.testing.assert_array_equal(hi, x.max(axis=axis))
    np.testing.assert_array_equal(lo, x.min(axis=axis))


def test_long_rows_are_blocked_and_exact() -> None:
    shape = (4, 10**7)
    x = np.random.default_rng(2).random(shape, dtype=np.float32)
    o = lm.compile_out(lambda v: lm.mean(v, axis=-1), lm.Spec(shape, "f32"))
    sched = o.ir("scheduled").split("func.func @f_jvp")[0]
    assert "tensor.expand_shape" in sched and max(accumulator_terms(sched)) <= LONGEST
    ref = x.astype(np.float64).mean(-1)
    assert ulps(o.forward(x), ref) <= max(2 * ulps(x.mean(-1), ref), 1.0)  # measured 0.38 (NumPy 0.75; was 5.8)


@pytest.mark.parametrize("shape, axis", [((1000, 1000), None), ((8, 700, 40), (0, 2)), ((3, 2**18 + 64), -1)])
def test_multi_axis_and_odd_row_sums_against_float64(shape: tuple[int, ...], axis: object,
                                                      rng: np.random.Generator) -> None:
    """A full sum over two loops (the outer one's 1000 row sums reduced by a second op), two reduced
    loops around a parallel one, a row whose vector steps have few divisors (2^18 + 64)."""
    x = rng.random(shape, dtype=np.float32)
    o = lm.compile_out(lambda v: lm.sum(v, axis=axis), lm.Spec(shape, "f32"))
    assert max(accumulator_terms(o.ir("scheduled").split("func.func @f_jvp")[0])) <= LONGEST
    ref = x.astype(np.float64).sum(axis=axis)
    assert ulps(o.forward(x), ref) <= 2.0  # measured (1000, 1000): 0.95 ulp, was 12


# ---- column reductions
@pytest.mark.parametrize("threads", [1, 2])
def test_column_sums_of_ones_past_2_24_rows_are_exact(threads: int) -> None:
    """Each column of a single accumulator stops at 2^24 (2^24 + 1 rounds back); NumPy's column sums
    do (they are not pairwise)."""
    opts = lm.Options(threads=threads)
    for shape in ((2**25, 2), (2**24 + 2**16, 16)):
        ones = np.ones(shape, np.float32)
        got = lm.compile_out(lambda v: lm.sum(v, axis=0), lm.Spec(shape, "f32"), options=opts).forward(ones)
        np.testing.assert_array_equal(got, np.full(shape[1], shape[0], np.float32))
        del ones


@pytest.mark.parametrize("shape", [(2**20, 16), (4096, 1024), (10**6, 8), (3000, 1000)])
def test_column_sums_are_vectorized_blocked_and_beat_numpys_precision(shape: tuple[int, int]) -> None:
    x = np.random.default_rng(3).random(shape, dtype=np.float32)
    o = lm.compile_out(lambda v: lm.sum(v, axis=0), lm.Spec(shape, "f32"))
    sched = o.ir("scheduled").split("func.func @f_jvp")[0]
    assert re.search(rf"arith.addf %\w+, %\w+ : vector<{column_lanes(host(), shape[1])}xf32>", sched), sched[:3000]
    assert not accumulator_terms(sched) or max(accumulator_terms(sched)) <= LONGEST
    # measured 2.2, 4.0, 2.2, 3.3 ulp; NumPy (rows added in turn, as here before): 310, 44, 363, 32
    assert ulps(o.forward(x), x.astype(np.float64).sum(0)) <= 8.0


@pytest.mark.parametrize("fn, ref", [
    (lambda v: lm.sum(v, axis=1), lambda v: v.sum(1)),  # [A, R, C]: a reduced loop between parallel ones
    (lambda v: lm.sum(v, axis=(0, 1)), lambda v: v.sum((0, 1))),
    (lambda v: lm.max(v, axis=1), lambda v: v.max(1)),
    (lambda v: lm.sum(v, axis=1) + lm.sum(v * v, axis=1), lambda v: v.sum(1) + (v * v).sum(1)),
    (lambda v: lm.sum((v - lm.reshape(lm.mean(v, axis=1), (6, 1, 24))) ** 2, axis=1),
     lambda v: ((v - v.mean(1, keepdims=True)) ** 2).sum(1)),
])
@pytest.mark.parametrize("threads", [1, 2])
def test_mixed_column_reductions_against_float64(fn, ref, threads: int, rng: np.random.Generator) -> None:  # noqa: ANN001
    shape = (6, 70_000, 24)
    x = rng.standard_normal(shape).astype(np.float32)
    o = lm.compile_out(fn, lm.Spec(shape, "f32"), options=lm.Options(threads=threads))
    want = ref(x.astype(np.float64))
    np.testing.assert_allclose(o.forward(x), want, rtol=2e-6, atol=2e-6 * np.sqrt(np.abs(x).sum(1)).max())


def test_bias_gradient_is_a_precise_column_reduction(rng: np.random.Generator) -> None:
    """The VJP of a broadcast sums the rows: d/db sum((x + b)^2) = 2 sum(x + b, axis=0)."""
    rows, cols = 2**21, 8
    x = rng.random((rows, cols), dtype=np.float32)
    b = rng.random(cols, dtype=np.float32)
    c = lm.compile_scalar(lambda x, b: lm.sum((x + b) * (x + b)), lm.f32[rows, cols], lm.f32[cols], wrt=[1])
    (gb,) = c.backward(x, b)
    want = 2 * (x.astype(np.float64) + b).sum(0)
    assert ulps(gb, want) <= 8.0  # measured 2.9; one accumulator per column (before, and NumPy): 292


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_other_targets_block_and_vectorize_column_reductions(name: str, rng: np.random.Generator) -> None:
    """The vector lengths, and the panels of wide rows (accumulated rows of half of L1), come from the
    target description."""
    shape = (300, 16384)  # 64 KiB rows
    t = PRESETS[name]
    x = rng.random(shape, dtype=np.float32)
    o = lm.compile_out(lambda v: lm.sum(v, axis=0), lm.Spec(shape, "f32"), options=lm.Options(cpu_target=name))
    sched = o.ir("scheduled").split("func.func @f_jvp")[0]
    lanes = column_lanes(t, shape[1])
    assert re.search(rf"arith.addf %\w+, %\w+ : vector<{lanes}xf32>", sched)
    panel = best_tile(shape[1], lanes, t.l1d_bytes // 2 // 4)
    assert panel < shape[1] and re.search(rf"to %c{shape[1]} step %c{panel} ", sched)
    np.testing.assert_allclose(o.forward(x), x.astype(np.float64).sum(0), rtol=1e-6)
