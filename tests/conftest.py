"""Fixtures several test modules share: a reproducible random generator per test, a cleared compile
cache, and the CPU thread count of what a test compiles (LEAN_MLIR_THREADS)."""

from __future__ import annotations

import os
import zlib
from collections.abc import Callable, Iterator

import numpy as np
import pytest

import lean_mlir as lm

# Matmul kernels generated, whatever this host's OpenBLAS crossover (Options.gemm="auto" would pick
# the library for some kernels on some hosts): the tests that read kernels' IR read the same IR
# everywhere; tests/backends/cpu/test_blas.py asks for the library calls and "auto" explicitly.
os.environ.setdefault("LEAN_MLIR_GEMM", "generated")


@pytest.fixture
def rng(request: pytest.FixtureRequest) -> np.random.Generator:
    """A generator seeded from the test's name (parameters included): the same draws on every run,
    whichever tests ran before it."""
    return np.random.default_rng(zlib.crc32(request.node.name.encode()))


@pytest.fixture
def fresh_cache() -> Iterator[None]:
    """An empty compile cache before the test, and none of its compiles left in it after."""
    lm.clear_cache()
    yield
    lm.clear_cache()


@pytest.fixture
def set_threads(monkeypatch: pytest.MonkeyPatch, fresh_cache: None) -> Callable[[int], None]:
    """set_threads(n): what the test compiles next splits work across n threads (LEAN_MLIR_THREADS=n;
    the compile cache is cleared, so nothing compiled for another count is reused)."""
    def set_(n: int) -> None:
        monkeypatch.setenv("LEAN_MLIR_THREADS", str(n))
        lm.clear_cache()
    return set_


@pytest.fixture
def two_threads(set_threads: Callable[[int], None]) -> None:
    """LEAN_MLIR_THREADS=2 for the whole test."""
    set_threads(2)
