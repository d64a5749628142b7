"""The CPU target description: schedule constants are formulas of the host's SIMD width, registers
and caches, and the schedules of other CPUs (presets) compile and compute correctly on this one."""

from __future__ import annotations

import re

import numpy as np
import pytest

import lean_mlir as lm
from lean_mlir.backends.cpu.target import PRESETS, CpuTarget, host, target


def test_presets_give_the_measured_avx512_tiles_and_scale_with_the_vector_width() -> None:
    avx512, avx2, neon = PRESETS["avx512"], PRESETS["avx2"], PRESETS["neon"]
    assert avx512.matmul_register_tile("f32") == (8, 32, 1) and avx512.matmul_register_tile("f64") == (4, 32, 1)
    assert avx512.matmul_cache_tile("f32") == (256, 256, 256)  # measured best on a 1 MiB L2 (Zen 4)
    assert (avx512.elementwise_vector("f32"), avx512.reduction_vector("f32"),
            avx512.transpose_tile("f64")) == (32, 64, 8)
    assert avx2.lanes("f32") == 8 and avx2.elementwise_vector("f32") == 16 and avx2.vector_abi == "d"
    assert neon.lanes("f64") == 2 and neon.vector_abi is None
    for t in PRESETS.values():
        for elem in ("f32", "f64"):
            m, n, k = t.matmul_register_tile(elem)
            assert m * n // t.lanes(elem) <= t.vector_registers // 2  # C fits half the registers
            cm, cn, ck = t.matmul_cache_tile(elem)
            assert cm % m == 0 and cn % n == 0
            assert (cm * ck + ck * cn) * np.dtype(np.float32 if elem == "f32" else np.float64).itemsize \
                <= t.l2_bytes // 2 or (cm, cn) == (m, n)


def test_host_description_is_read_from_the_machine() -> None:
    h = host()
    assert isinstance(h, CpuTarget) and h.name == "host" and h.model
    assert h.vector_bits in (128, 256, 512) and h.l2_bytes > 0
    with pytest.raises(ValueError, match="unknown CPU target 'pentium'"):
        target("pentium")
    with pytest.raises(ValueError, match="unknown CPU target"):
        lm.compile_out(lambda x: x * 2.0, lm.f32[4], options=lm.Options(cpu_target="pentium"))


def _mlp(x, w1, b1, w2):  # noqa: ANN001, ANN202
    return lm.sum(lm.tanh(x @ w1 + b1) @ w2)


@pytest.mark.parametrize("name", ["avx2", "neon", "avx512"])
def test_other_targets_schedules_run_correctly_here(name: str, rng: np.random.Generator) -> None:
    specs = [lm.f32[64, 128], lm.f32[128, 64], lm.f32[64], lm.f32[64, 10]]
    xs = [(rng.standard_normal(s.shape) * 0.3).astype(np.float32) for s in specs]
    c = lm.compile_scalar(_mlp, *specs, options=lm.Options(cpu_target=name))
    vec = PRESETS[name].elementwise_vector("f32")
    assert re.search(rf"vector<{vec}xf32>", c.ir("scheduled"))
    x, w1, b1, w2 = (a.astype(np.float64) for a in xs)
    h = np.tanh(x @ w1 + b1)
    assert abs(c.forward(*xs) - (h @ w2).sum()) <= 1e-4 * max(1.0, abs((h @ w2).sum()))
    g_w2 = c.backward(*xs)[3]
    np.testing.assert_allclose(g_w2, h.sum(0)[:, None] * np.ones((1, 10)), rtol=1e-4, atol=1e-4)
