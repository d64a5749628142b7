#!/usr/bin/env python3
"""GPU smoke test of lean_mlir.backends.gpu: compile the hand-written linalg modules of
workloads/gpu_kernels.py, run them on CUDA, compare with their NumPy references.

Three ways to run it (each prints one PASS/FAIL line per case, timings, and a summary; exit code 1 on
any FAIL):

  python benchmarks/gpu_smoke.py build DIR [CASE...]
      here, no GPU needed (MLIR wheels + cc): compiles the cases to DIR/<case>.<variant>.so and
      DIR/manifest.json, and copies the MLIR CUDA runtime wrapper library to DIR/lib/ (with an empty
      stand-in for libLLVM.so, which that library lists as NEEDED but never uses). About 5 s, < 1 MB.
  python3 benchmarks/gpu_smoke.py run DIR
      on the GPU machine; needs only NumPy, the NVIDIA driver and this checkout's workloads/ (no MLIR);
      each case runs in its own subprocess, so a crash is reported and the others still run. About 10-30 s.
  python benchmarks/gpu_smoke.py
      in-process through compile_module(lean_mlir.backends.gpu.BACKEND, ...) (needs MLIR *and* a GPU).

Variants built: "ptx-sm80" (PTX, JIT-compiled by the driver at load: runs on any GPU >= sm_80) and
"cubin-sm90" (ptxas-made cubin for Hopper: H100/H200). The .so files are the final host code (LLVM IR ->
llc -> shared object) exporting `_mlir_ciface_<func>(descriptor*...)`; their static constructors load the
kernels. CUDA driver errors are printed by the runtime wrappers on stderr ("'cuXxx(...)' failed with ...")
and do not stop the process; a wrong result shows up as FAIL with the max error.
"""

from __future__ import annotations

import ctypes
import json
import os
import pathlib
import shutil
import subprocess
import sys
import time
from collections.abc import Callable

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))  # the repository root: workloads/
from workloads.gpu_kernels import CASES, Case, compare  # noqa: E402

VARIANTS = {"ptx-sm80": ("sm_80", "+ptx80", "isa"), "cubin-sm90": ("sm_90", "+ptx80", "bin")}


def _time(fn: Callable[[], object], budget_s: float = 1.0, max_iters: int = 50) -> float:
    """Median seconds per call over up to max_iters calls within about budget_s."""
    ts: list[float] = []
    start = time.perf_counter()
    while len(ts) < max_iters and (time.perf_counter() - start < budget_s or len(ts) < 3):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts))


def _report(tag: str, case: Case, err: str | None, t_gpu: float | None, t_np: float | None) -> None:
    times = ""
    if t_gpu is not None:
        times = f"  gpu {t_gpu * 1e3:.3f} ms/call (incl. copies)"
        if t_np is not None:
            times += f", numpy {t_np * 1e3:.3f} ms"
    print(f"{'PASS' if err is None else 'FAIL'} {tag:28s}{times}" + ("" if err is None else f"\n     {err}"),
          flush=True)


# ---------------------------------------------------------------------------------------------------------
# build: compile every case x variant to a shared object (needs MLIR + gcc, no GPU)

_STUB_LLVM_C = "/* empty: libmlir_cuda_runtime.so NEEDs libLLVM.so but uses none of its symbols */\n"


def prepare_lib(out: pathlib.Path) -> None:
    """DIR/lib: the MLIR CUDA runtime wrappers and an empty libLLVM.so stand-in (found via its $ORIGIN)."""
    from lean_mlir.irutils.paths import runtime_lib

    (out / "lib").mkdir(parents=True, exist_ok=True)
    shutil.copy(runtime_lib("mlir_cuda_runtime"), out / "lib" / "libmlir_cuda_runtime.so")
    (out / "lib" / "stub_llvm.c").write_text(_STUB_LLVM_C)
    subprocess.run(["cc", "-shared", "-fPIC", "-Wl,-soname,libLLVM.so", "-o", str(out / "lib" / "libLLVM.so"),
                    str(out / "lib" / "stub_llvm.c")], check=True)


def link_shared(llvm_dialect: str, so: pathlib.Path) -> None:
    """LLVM-dialect module text -> LLVM IR -> object (llc -O3, PIC) -> shared object `so`."""
    from lean_mlir.irutils.paths import tool

    ll, obj = so.with_suffix(".ll"), so.with_suffix(".o")
    ll.write_text(subprocess.run([str(tool("mlir-translate")), "--mlir-to-llvmir"], input=llvm_dialect,
                                 capture_output=True, text=True, check=True).stdout)
    try:
        subprocess.run([str(tool("llc")), "-O3", "-filetype=obj", "-relocation-model=pic", str(ll), "-o", str(obj)],
                       check=True)
        subprocess.run(["cc", "-shared", "-o", str(so), str(obj)], check=True)
    finally:
        ll.unlink()
        obj.unlink(missing_ok=True)


def build(out: pathlib.Path, names: list[str] | None = None) -> int:
    from mlir import ir

    from lean_mlir.backends.gpu import GpuTarget, lower_to_gpu

    out.mkdir(parents=True, exist_ok=True)
    prepare_lib(out)
    manifest, failures = [], 0
    for case in CASES:
        if names and case.name not in names:
            continue
        for variant, (chip, features, fmt) in VARIANTS.items():
            tag = f"{case.name}.{variant}"
            t0 = time.perf_counter()
            try:
                with ir.Context():
                    m = ir.Module.parse(case.mlir)
                    stages = lower_to_gpu(m, GpuTarget(chip, features, fmt))
                link_shared(stages["llvm"], out / f"{tag}.so")
            except Exception as e:          # report and go on with the other cases
                failures += 1
                print(f"FAIL build {tag}: {type(e).__name__}: {e}", flush=True)
                continue
            manifest.append({"case": case.name, "variant": variant, "so": f"{tag}.so", "func": case.func})
            print(f"built {tag} in {time.perf_counter() - t0:.2f} s", flush=True)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    print(f"{len(manifest)} built, {failures} failed -> {out}")
    return 1 if failures else 0


# ---------------------------------------------------------------------------------------------------------
# run: load the shared objects with ctypes on the GPU machine (NumPy + driver only)


def _descriptor(a: np.ndarray) -> ctypes.Structure:
    rank = a.ndim
    fields = [("allocated", ctypes.c_void_p), ("aligned", ctypes.c_void_p), ("offset", ctypes.c_int64)]
    if rank:
        fields += [("sizes", ctypes.c_int64 * rank), ("strides", ctypes.c_int64 * rank)]
    d = type(f"MemRef{rank}", (ctypes.Structure,), {"_fields_": fields})()
    d.allocated = d.aligned = a.ctypes.data
    if rank:
        d.sizes[:] = a.shape
        d.strides[:] = [s // a.itemsize for s in a.strides]
    return d


def _driver_info() -> str:
    try:
        cu = ctypes.CDLL("libcuda.so.1")
    except OSError as e:
        return f"libcuda.so.1 not loadable: {e}"
    v, n = ctypes.c_int(), ctypes.c_int()
    rc = cu.cuInit(0)
    cu.cuDriverGetVersion(ctypes.byref(v))
    cu.cuDeviceGetCount(ctypes.byref(n))
    info = f"cuInit rc={rc}, driver API {v.value}, {n.value} device(s)"
    if n.value:
        name = ctypes.create_string_buffer(256)
        dev, ma, mi = ctypes.c_int(), ctypes.c_int(), ctypes.c_int()
        cu.cuDeviceGet(ctypes.byref(dev), 0)
        cu.cuDeviceGetName(name, 256, dev)
        cu.cuDeviceGetAttribute(ctypes.byref(ma), 75, dev)
        cu.cuDeviceGetAttribute(ctypes.byref(mi), 76, dev)
        info += f"; device 0: {name.value.decode()} (sm_{ma.value}{mi.value})"
    return info


def run_one(out: pathlib.Path, so: str, case_name: str, func: str) -> int:
    case = next(c for c in CASES if c.name == case_name)
    ctypes.CDLL(str(out / "lib" / "libmlir_cuda_runtime.so"), mode=ctypes.RTLD_GLOBAL)
    t0 = time.perf_counter()
    lib = ctypes.CDLL(str(out / so))           # static constructors load the kernels here
    t_load = time.perf_counter() - t0
    fn = getattr(lib, f"_mlir_ciface_{func}")
    fn.restype = None
    xs = case.make_inputs()
    want = case.ref(*xs)
    outs = [np.empty(np.shape(w), np.asarray(w).dtype) for w in want]
    descs = [_descriptor(a) for a in (*xs, *outs)]
    args = [ctypes.c_void_p(ctypes.addressof(d)) for d in descs]
    fn.argtypes = [ctypes.c_void_p] * len(args)
    fn(*args)
    err = compare(case, tuple(outs), want)
    t_gpu = _time(lambda: fn(*args)) if err is None else None
    t_np = _time(lambda: case.ref(*xs)) if err is None else None
    _report(f"{case.name}.{so.split('.')[1]}", case, err, t_gpu, t_np)
    print(f"     module load {t_load * 1e3:.1f} ms", flush=True)
    return 0 if err is None else 1


def run(out: pathlib.Path) -> int:
    print(f"driver: {_driver_info()}", flush=True)
    manifest = json.loads((out / "manifest.json").read_text())
    fails = 0
    t_all = time.perf_counter()
    for item in manifest:
        tag = item["so"][:-3]
        try:
            cmd = [sys.executable, __file__, "run-one", str(out), item["so"], item["case"], item["func"]]
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
            sys.stdout.write(p.stdout)
            if p.stderr.strip():
                print("     stderr: " + p.stderr.strip().replace("\n", "\n     stderr: ")[:3000])
            if p.returncode != 0:
                fails += 1
                if not p.stdout.strip():
                    print(f"FAIL {tag}: subprocess exited with {p.returncode} (negative = signal)")
        except subprocess.TimeoutExpired:
            fails += 1
            print(f"FAIL {tag}: timed out after 60 s")
        sys.stdout.flush()
    print(f"SUMMARY: {len(manifest) - fails}/{len(manifest)} passed in {time.perf_counter() - t_all:.1f} s")
    return 1 if fails else 0


# ---------------------------------------------------------------------------------------------------------
# in-process: through the back-end interface (needs MLIR and a device)


def in_process() -> int:
    from mlir import ir

    from lean_mlir.backends.base import compile_module
    from lean_mlir.backends.gpu import BACKEND, cuda_available
    from lean_mlir.options import Options

    print(f"driver: {_driver_info()}", flush=True)
    if not cuda_available():
        print("SKIP: no CUDA device; use `build DIR` here and `run DIR` on the GPU machine")
        return 0
    fails = 0
    for case in CASES:
        try:
            with ir.Context():
                t0 = time.perf_counter()
                ex = compile_module(BACKEND, ir.Module.parse(case.mlir), Options())
                fn = ex.entry(case.func)
                xs = case.make_inputs()
                got = fn(*xs)
                t_first = time.perf_counter() - t0
                want = case.ref(*xs)
                err = compare(case, got, want)
                t_gpu = _time(lambda fn=fn, xs=xs: fn(*xs)) if err is None else None
                t_np = _time(lambda case=case, xs=xs: case.ref(*xs)) if err is None else None
        except Exception as e:
            err, t_gpu, t_np, t_first = f"{type(e).__name__}: {e}", None, None, 0.0
        fails += err is not None
        _report(f"{case.name}.{ex.chip if err is None else ''}", case, err, t_gpu, t_np)
        print(f"     compile + load + first call {t_first:.2f} s", flush=True)
    print(f"SUMMARY: {len(CASES) - fails}/{len(CASES)} passed")
    return 1 if fails else 0


def main(argv: list[str]) -> int:
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    if len(argv) >= 2 and argv[0] == "build":
        return build(pathlib.Path(argv[1]), argv[2:] or None)
    if len(argv) >= 2 and argv[0] == "run":
        return run(pathlib.Path(argv[1]))
    if len(argv) == 5 and argv[0] == "run-one":
        return run_one(pathlib.Path(argv[1]), argv[2], argv[3], argv[4])
    if not argv:
        return in_process()
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
