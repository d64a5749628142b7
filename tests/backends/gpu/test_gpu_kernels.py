"""GPU back end: linalg modules -> PTX / cubin (no device needed), device runs against NumPy (skipped
without a CUDA device), host-side data movement checked with a fake CUDA driver (needs a C compiler)."""

from __future__ import annotations

import os
import pathlib
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
from mlir import ir
from support import ROOT, fake_cuda_driver

from lean_mlir.backends import gpu
from lean_mlir.backends.base import compile_module
from lean_mlir.backends.gpu import BACKEND, DeviceUnavailableError, GpuTarget, cuda_available, lower_to_gpu
from lean_mlir.backends.gpu.mapping import tile_sizes
from lean_mlir.backends.gpu.target import MIN_PTX
from lean_mlir.options import Options
from workloads.gpu_kernels import CASES as KERNELS
from workloads.gpu_kernels import Case, compare

CASES = {c.name: c for c in KERNELS}
SMALL = [c.name for c in KERNELS if "timing" not in c.tags]
PTXAS = shutil.which("ptxas") or ("/usr/local/cuda/bin/ptxas" if os.path.exists("/usr/local/cuda/bin/ptxas")
                                  else None)
CC = shutil.which("cc") or shutil.which("gcc")
needs_device = pytest.mark.skipif(not cuda_available(), reason="no CUDA device (libcuda.so.1 / cuInit / count)")


def _lower(name: str, target: GpuTarget | None = None, **kw: str) -> tuple[dict[str, str], ir.Module]:
    ctx = ir.Context()
    with ctx:
        m = ir.Module.parse(CASES[name].mlir)
        stages = lower_to_gpu(m, target, **kw)
    return stages, m


def _compile(case: Case, options: Options) -> gpu.GpuExecutable:
    """Through the back-end interface, as lm.compile_* and lean-mlir-run do; call inside a Context."""
    exe = compile_module(BACKEND, ir.Module.parse(case.mlir), options)
    assert isinstance(exe, gpu.GpuExecutable)
    return exe


@pytest.mark.parametrize("name", list(CASES))
def test_ptx(name: str, tmp_path: pathlib.Path) -> None:
    stages, _ = _lower(name, format="isa")
    assert "gpu.launch_func" in stages["gpu"] and "gpu.module" in stages["gpu"]
    modules = gpu.split_ptx(stages["ptx"])
    assert modules
    for kname, ptx in modules.items():
        assert ".target sm_80" in ptx and ".version 8.0" in ptx, kname
        assert re.search(r"\.entry\s+\w+", ptx), kname
        assert ".extern .func" not in ptx, f"{kname}: unresolved device function (libdevice not linked?)"
        if PTXAS:
            f = tmp_path / f"{kname}.ptx"
            f.write_text(ptx)
            r = subprocess.run([PTXAS, "-arch=sm_80", str(f), "-o", str(tmp_path / f"{kname}.cubin")],
                               capture_output=True, text=True)
            assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("name", SMALL)
def test_cubin(name: str) -> None:
    _, m = _lower(name, format="bin")
    with m.context:
        objs = gpu.kernel_binaries(m)
    assert objs and all(o.startswith(b"\x7fELF") for o in objs.values())


def test_fatbin_and_other_chip() -> None:
    stages, m = _lower("matmul_f32", chip="sm_90", features="+ptx80", format="fatbin")
    assert ".target sm_90" in stages["ptx"]
    with m.context:
        assert all(len(o) > 0 for o in gpu.kernel_binaries(m).values())


def test_host_side_structure() -> None:
    """One stream per call: copies in, kernels, copies out, frees, one wait; no host loops or allocs."""
    stages, _ = _lower("colsum_reduction_first", format="isa")
    host = stages["gpu"].split("gpu.module")[0]
    assert "memref.alloc" not in host and "memref.copy" not in host
    assert "scf.for" not in host, "reduction-first loop must not run on the host"
    assert host.count("gpu.launch_func") == 2               # fill + reduction, not one launch per row
    assert host.count("gpu.memcpy") == 2                    # one input in, one output out
    assert host.count("gpu.alloc") == host.count("gpu.dealloc") == 2
    assert host.count("gpu.wait async") == 1 and host.count("gpu.wait [") == 1
    # the reduction loop runs sequentially inside a thread
    kernels = stages["gpu"].split("gpu.module")[1:]
    assert any("scf.for" in k for k in kernels)


def test_rank0_and_constants_on_device() -> None:
    stages, _ = _lower("multi_rank0", format="isa")
    host = stages["gpu"].split("gpu.module")[0]
    assert "memref.store" not in host and "memref.load" not in host
    stages, _ = _lower("slices_pad", format="isa")
    host = stages["gpu"].split("gpu.module")[0]
    # the dense constant is copied from its host global into a device buffer
    assert re.search(r"gpu\.memcpy async \[%\w+\] %\w+, %\d+ : memref<3xf64>", host)


def test_signature_is_out_params() -> None:
    stages, _ = _lower("multi_rank0", format="isa")
    assert re.search(r"func\.func @multi\(%arg0: memref<1000xf64>, %arg1: memref<1000xf64>, "
                     r"%arg2: memref<f64>, %arg3: memref<f64>\)", stages["gpu"])
    assert "llvm.func @_mlir_ciface_multi" in stages["llvm"]


@pytest.mark.parametrize(("chip", "features", "fmt"), [
    ("sm_50", "+ptx80", "bin"),          # older than ptxas 13 supports
    ("sm_70", "+ptx80", "isa"),
    ("sm_80", "+ptx60", "bin"),          # would abort the process inside LLVM
    ("sm_80", "+ptx63", "isa"),
    ("sm_90", "+ptx70", "isa"),          # sm_90 needs PTX 7.8
    ("sm_80", "", "isa"),                # LLVM's default PTX 6.0
    ("sm_80", "+ptx80,+ptx81", "isa"),
    ("sm_80", "+ptx99", "isa"),
    ("sm_80", "+ptx80", "elf"),
    ("gfx90a", "+ptx80", "isa"),
])
def test_bad_target_raises(chip: str, features: str, fmt: str) -> None:
    with ir.Context():
        m = ir.Module.parse(CASES["ew_f32"].mlir)
        before = str(m)
        with pytest.raises(ValueError):
            lower_to_gpu(m, chip=chip, features=features, format=fmt)
        assert str(m) == before            # rejected before any pass ran


def test_defaults() -> None:
    assert gpu.GPU_DEFAULTS == {"chip": "sm_80", "features": "+ptx80", "format": "bin"}
    assert gpu.default_features("sm_90a") == "+ptx80" and gpu.default_features("sm_100") == "+ptx86"
    for chip in MIN_PTX:
        gpu.validate_target(chip, gpu.default_features(chip))
    t = GpuTarget()
    assert (t.chip, t.features, t.format) == ("sm_80", "+ptx80", "bin")
    assert (t.max_threads_per_block, t.max_block_z, t.max_grid_yz) == (256, 64, 65535)
    with pytest.raises(ValueError, match="sm_50"):
        GpuTarget(chip="sm_50")
    with pytest.raises(ValueError, match="max_threads_per_block"):
        GpuTarget(max_threads_per_block=2048)


def test_backend_lowers_like_lower_to_gpu() -> None:
    """BACKEND.lower resolves Options to the same target as the explicit call."""
    case = CASES["softmax"]
    with ir.Context():
        exe = _compile(case, Options(gpu_chip="sm_80", gpu_format="isa"))
    assert (exe.chip, exe.features, exe.format) == ("sm_80", "+ptx80", "isa")
    assert exe.target == GpuTarget("sm_80", "+ptx80", "isa")
    stages, _ = _lower("softmax", format="isa")
    assert exe.ir("gpu") == stages["gpu"] and exe.ir("ptx") == stages["ptx"]


def test_launch_limits_come_from_the_target() -> None:
    """Block shapes: powers of two within the target's thread budget (thread x first, z capped); a grid
    over the target's y/z limit is refused."""
    t = GpuTarget()
    assert tile_sizes([1000], t) == [256] and tile_sizes([33, 257], t) == [64, 4]
    assert tile_sizes([2, 2, 1000, 7], t) == [2, 2, 64, 1]
    assert tile_sizes([33, 257], GpuTarget(max_threads_per_block=64)) == [64, 1]
    assert tile_sizes([4, 4, 100], GpuTarget(max_block_z=8)) == [4, 4, 8]
    stages, _ = _lower("matmul_f32", GpuTarget(max_threads_per_block=32), format="isa")
    assert "gpu.launch_func" in stages["gpu"]
    with pytest.raises(NotImplementedError, match="exceeds 16 blocks"):
        _lower("matmul_f32", GpuTarget(max_grid_yz=16), format="isa")     # 67 rows / 4 per block = 17


@pytest.mark.skipif(cuda_available(), reason="a CUDA device is present")
def test_no_device_raises_on_call() -> None:
    case = CASES["matmul_f32"]
    with ir.Context():
        ex = _compile(case, Options())
        assert ".entry" in ex.ir("ptx") and ex.chip == "sm_80" and ex.format == "isa"
        fn = ex.entry(case.func)
        with pytest.raises(DeviceUnavailableError, match="libcuda|cuInit|device"):
            fn(*case.make_inputs())
        with pytest.raises(DeviceUnavailableError):     # still an exception the second time
            fn(*case.make_inputs())
        with pytest.raises(KeyError):
            ex.entry("nope")


@needs_device
@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("fmt", ["isa", "bin"])
def test_device_matches_numpy(name: str, fmt: str) -> None:
    if fmt == "bin" and not PTXAS:
        pytest.skip("ptxas not found: no cubin on this machine")
    case = CASES[name]
    with ir.Context():
        ex = _compile(case, Options(gpu_format=fmt))
        xs = case.make_inputs()
        copies = [x.copy() for x in xs]
        got = ex.entry(case.func)(*xs)
        assert compare(case, got, case.ref(*xs)) is None
        assert all(np.array_equal(a, b) for a, b in zip(xs, copies, strict=True))   # inputs untouched
        got2 = ex.entry(case.func)(*xs)                                              # repeatable
        assert compare(case, got2, case.ref(*xs)) is None


# ---------------------------------------------------------------------------------------------------------
# Host side with a fake CUDA driver: device memory = host memory, kernels are not run, calls are logged.
# Checks loading of libmlir_cuda_runtime.so, kernel-module loading at engine start, the calling
# convention, copy sizes and directions, and that every device buffer is freed.

_FAKE_RUN = """
import sys
from mlir import ir
sys.path.insert(0, {root!r})
from lean_mlir.backends.base import compile_module
from lean_mlir.backends.gpu import BACKEND, cuda_available
from lean_mlir.options import Options
from workloads.gpu_kernels import CASES
assert cuda_available()
case = next(c for c in CASES if c.name == "multi_rank0")
with ir.Context():
    ex = compile_module(BACKEND, ir.Module.parse(case.mlir), Options())
    f = ex.entry(case.func)
    for _ in range(2):
        outs = f(*case.make_inputs())
print("shapes", [o.shape for o in outs])
"""


@pytest.mark.skipif(CC is None, reason="no C compiler for the fake CUDA driver")
def test_host_side_with_fake_driver(tmp_path: pathlib.Path) -> None:
    fake_cuda_driver(tmp_path, CC)
    env = dict(os.environ, LD_LIBRARY_PATH=f"{tmp_path}:{os.environ.get('LD_LIBRARY_PATH', '')}")
    script = _FAKE_RUN.format(root=str(ROOT))
    r = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "shapes [(1000,), (), ()]" in r.stdout
    log = [ln.split("fakecuda: ")[1] for ln in r.stderr.splitlines() if ln.startswith("fakecuda: ")]
    # kernels are loaded once, from PTX, when the engine starts (5 kernels: map, 2 fills, 2 reductions)
    assert log.count("module load ptx=1") == 5
    call = log[log.index("stream create"):]
    call = call[: call.index("stream destroy") + 1]
    assert call.count("launch 4,1,1 x 256,1,1") == 1 and call.count("launch 1,1,1 x 1,1,1") == 4
    # in: 1000 f64; out: 1000 f64 + two scalars; all four device buffers freed; one sync at the end
    assert [c for c in call if c.startswith("memcpy")] == ["memcpy 8000", "memcpy 8000", "memcpy 8", "memcpy 8"]
    assert sorted(c for c in call if c.startswith("alloc")) == ["alloc 8", "alloc 8", "alloc 8000", "alloc 8000"]
    assert call.count("free") == 4 and call[-2:] == ["stream sync", "stream destroy"]
    assert log.count("stream create") == 2      # two calls


@pytest.mark.skipif(CC is None, reason="no C compiler")
def test_smoke_build_and_run_with_fake_driver(tmp_path: pathlib.Path) -> None:
    """The smoke script's build + run path works end to end (results are wrong: kernels are not run)."""
    fake_cuda_driver(tmp_path, CC)
    out, script = tmp_path / "build", str(ROOT / "benchmarks" / "gpu_smoke.py")
    r = subprocess.run([sys.executable, script, "build", str(out), "matmul_f32"], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0 and "2 built, 0 failed" in r.stdout, r.stdout + r.stderr
    assert sorted(p.name for p in out.glob("*.so")) == ["matmul_f32.cubin-sm90.so", "matmul_f32.ptx-sm80.so"]
    env = dict(os.environ, LD_LIBRARY_PATH=str(tmp_path))
    r = subprocess.run([sys.executable, script, "run", str(out)], env=env, capture_output=True, text=True,
                       timeout=120)
    assert "FakeGPU" in r.stdout and "SUMMARY: 0/2 passed" in r.stdout, r.stdout + r.stderr
    assert "memcpy 12060" in r.stdout            # A (67x45 f32) copied in, stderr relayed
