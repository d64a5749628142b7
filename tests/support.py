"""What the tests share: compiling hand-written linalg modules on the CPU back end, random inputs,
scaled comparisons, running work in threads, the process's memory, and the command-line tools."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence

import numpy as np
from mlir import ir

import lean_mlir as lm
from lean_mlir.backends.base import compile_module
from lean_mlir.backends.cpu import BACKEND as CPU
from lean_mlir.irutils.context import make_context
from lean_mlir.options import Options

ROOT = pathlib.Path(__file__).resolve().parent.parent  # the repository
BIN = pathlib.Path(sys.executable).parent  # where lean-mlir-opt and lean-mlir-run are installed


def build(text: str, options: Options | None = None, module: ir.Module | None = None):  # noqa: ANN201
    """(executable, stages) of a linalg-on-tensors module (text, or a parsed module) on the CPU."""
    ctx = make_context() if module is None else module.context
    with ctx, ir.Location.unknown():
        m = ir.Module.parse(text) if module is None else module
        exe = compile_module(CPU, m, options or Options())
    exe._ctx = ctx  # type: ignore[attr-defined]  # keep the module's context alive with the engine
    return exe, exe.stages


def randn(shapes: Sequence[tuple[int, ...]], dtype: str | type = "f64", seed: int = 0,
          scale: float = 1.0) -> list[np.ndarray]:
    """Standard-normal arrays (times `scale`) of the given shapes; dtype "f32" / "f64" or a NumPy type."""
    np_dtype = lm.Spec((), dtype).np_dtype if isinstance(dtype, str) else np.dtype(dtype)
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal(s) * scale).astype(np_dtype) for s in shapes]


def assert_close(got: object, want: object, *, rtol: float, atol: float, what: str = "") -> None:
    """Same shape and dtype, and equal up to rtol and atol * max(1, max |want|) over want's finite
    entries (an absolute tolerance that grows with the values); NaN where want has NaN."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape and got.dtype == want.dtype, (what, got.shape, want.shape, got.dtype, want.dtype)
    scale = max(1.0, float(np.max(np.abs(want), initial=0.0, where=np.isfinite(want))))
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol * scale, equal_nan=True, err_msg=what)


def run_threads(work: Callable[[int], None], n: int = 8, timeout: float = 300) -> None:
    """Run work(0..n-1) in n threads that start together; fail if one hangs, re-raise the first failure."""
    barrier = threading.Barrier(n)
    errors: list[BaseException] = []

    def body(k: int) -> None:
        try:
            barrier.wait(timeout=60)
            work(k)
        except BaseException as e:  # noqa: BLE001 - re-raised in the calling thread
            errors.append(e)

    threads = [threading.Thread(target=body, args=(k,)) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=timeout)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    if errors:
        raise errors[0]


def rss_mb() -> float:
    """Resident set size of this process in MiB (/proc/self/statm)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def tool(name: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    """Run an installed command-line tool (lean-mlir-opt, lean-mlir-run) as a subprocess."""
    exe = BIN / name
    assert exe.exists(), f"{exe} is not installed (pip install -e '.[test]')"
    return subprocess.run([str(exe), *args], input=stdin if stdin is not None else "", capture_output=True,
                          text=True, timeout=300)


def clean_error(p: subprocess.CompletedProcess, *fragments: str) -> str:
    """Exit code 1, no traceback, every fragment on stderr; returns stderr."""
    out = p.stdout + p.stderr
    assert p.returncode == 1, f"exit {p.returncode}\n{out}"
    assert "Traceback" not in out, out
    for f in fragments:
        assert f in p.stderr, f"{f!r} not in stderr:\n{p.stderr}"
    return p.stderr


# A fake CUDA driver for the GPU back end's host side: device memory is host memory, kernels do not run,
# and allocations, copies, launches, module loads and stream calls are logged on stderr as "fakecuda: ...".
_FAKE_CUDA = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
typedef unsigned long long P;
#define LOG(...) do { fprintf(stderr, "fakecuda: " __VA_ARGS__); fputc('\n', stderr); } while (0)
int cuInit(unsigned f) { return 0; }
int cuDriverGetVersion(int *v) { *v = 13000; return 0; }
int cuDeviceGetCount(int *n) { *n = 1; return 0; }
int cuDeviceGet(int *d, int o) { *d = 0; return 0; }
int cuDeviceGetName(char *s, int n, int d) { strncpy(s, "FakeGPU", n); return 0; }
int cuDeviceGetAttribute(int *v, int a, int d) { *v = a == 75 ? 8 : 0; return 0; }
int cuDevicePrimaryCtxRetain(void **c, int d) { *c = (void *)1; return 0; }
int cuCtxPushCurrent_v2(void *c) { return 0; }
int cuCtxPopCurrent_v2(void **c) { if (c) *c = (void *)1; return 0; }
int cuGetErrorName(int e, const char **s) { *s = "FAKE"; return 0; }
int cuMemAlloc_v2(P *p, size_t n) { *p = (P)calloc(1, n ? n : 1); LOG("alloc %zu", n); return 0; }
int cuMemAllocManaged(P *p, size_t n, unsigned f) { return cuMemAlloc_v2(p, n); }
int cuMemFree_v2(P p) { free((void *)p); LOG("free"); return 0; }
int cuMemcpy(P d, P s, size_t n) { memcpy((void *)d, (void *)s, n); LOG("memcpy %zu", n); return 0; }
int cuMemcpyAsync(P d, P s, size_t n, void *t) { memcpy((void *)d, (void *)s, n); LOG("memcpy %zu", n); return 0; }
int cuMemsetD16Async(P d, unsigned short v, size_t n, void *s) { return 0; }
int cuMemsetD32Async(P d, unsigned v, size_t n, void *s) { return 0; }
int cuMemHostRegister_v2(void *p, size_t n, unsigned f) { return 0; }
int cuMemHostUnregister(void *p) { return 0; }
int cuStreamCreate(void **s, unsigned f) { *s = (void *)2; LOG("stream create"); return 0; }
int cuStreamDestroy_v2(void *s) { LOG("stream destroy"); return 0; }
int cuStreamSynchronize(void *s) { LOG("stream sync"); return 0; }
int cuStreamWaitEvent(void *s, void *e, unsigned f) { return 0; }
int cuEventCreate(void **e, unsigned f) { *e = (void *)3; return 0; }
int cuEventDestroy_v2(void *e) { return 0; }
int cuEventRecord(void *e, void *s) { return 0; }
int cuEventSynchronize(void *e) { return 0; }
int cuModuleLoadData(void **m, const void *i) { *m = (void *)4; LOG("module load"); return 0; }
int cuModuleLoadDataEx(void **m, const void *i, unsigned n, void *o, void **v) {
  *m = (void *)4; LOG("module load ptx=%d", strstr((const char *)i, ".entry") != NULL); return 0; }
int cuModuleUnload(void *m) { return 0; }
int cuModuleGetFunction(void **f, void *m, const char *name) { *f = (void *)5; return 0; }
int cuFuncSetAttribute(void *f, int a, int v) { return 0; }
int cuLaunchKernel(void *f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
                   unsigned sm, void *s, void **p, void **e) {
  LOG("launch %u,%u,%u x %u,%u,%u", gx, gy, gz, bx, by, bz); return 0; }
int cuLaunchKernelEx(const void *c, void *f, void **p, void **e) { return 0; }
int cuTensorMapEncodeTiled(void *a, int b, unsigned c, void *d, const void *e, const void *f, const void *g,
                           const void *h, int i, int j, int k, int l) { return 0; }
"""


def fake_cuda_driver(directory: pathlib.Path, cc: str) -> pathlib.Path:
    """Compile the fake libcuda.so.1 into `directory` with the C compiler `cc`; returns `directory`, to
    put on LD_LIBRARY_PATH of a subprocess (the probe caches its answer per process)."""
    (directory / "fake_cuda.c").write_text(_FAKE_CUDA)
    subprocess.run([cc, "-shared", "-fPIC", "-Wl,-soname,libcuda.so.1", "-o", str(directory / "libcuda.so.1"),
                    str(directory / "fake_cuda.c")], check=True)
    return directory
