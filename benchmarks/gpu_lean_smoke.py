#!/usr/bin/env python3
"""GPU smoke test of whole lean programs: every op case (workloads/op_cases.py) and model (workloads/models.py),
f32 and f64, all entry points (@f, @f_jvp, @f_vjp, and @f_vjp_jvp for models), against the eager
interpreter.

  python benchmarks/gpu_lean_smoke.py build DIR [-j N] [GLOB...]
      here (MLIR wheels + cc, no GPU): compiles each program with backend="gpu" (sm_80 PTX, JIT-compiled
      by the driver at load, so it runs on any GPU >= sm_80) to DIR/<name>.so, saves its inputs and the
      eager interpreter's outputs to DIR/<name>.npz (one .npy per array), writes DIR/manifest.json and the
      CUDA runtime wrappers to DIR/lib/. GLOBs select programs by name ("exp.f32", "model.*").
  python3 benchmarks/gpu_lean_smoke.py run DIR [-j N] [GLOB...]
      on the GPU machine, NumPy + NVIDIA driver only (imports gpu_smoke.py from this directory and
      workloads/gpu_kernels.py from the checkout). Each
      program runs in its own subprocess (N at a time; the timed models run last, alone), so a crash is
      reported and the rest go on. Prints PASS/FAIL per program and entry with the max error relative to
      max(1, max|expected|), tolerances 1e-4 (f32) and 1e-10 (f64), timings for the models tagged
      "timing", and `SUMMARY: N passed, M failed` (counted per entry); exit code 1 on any failure.

Output arrays are filled with NaN before each call, so a kernel that writes nothing cannot pass.
"""

from __future__ import annotations

import ctypes
import fnmatch
import json
import os
import pathlib
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # workloads/
import gpu_smoke as S  # noqa: E402 - this directory, on sys.path when run as a script

from workloads.gpu_kernels import max_error  # noqa: E402

TOL = {"float32": 1e-4, "float64": 1e-10}
TIMED = {"model.mlp_mse.f32", "model.attention.f32", "model.conv_net.f32"}
DTYPES = ("f32", "f64")


# ---------------------------------------------------------------------------------------------------------
# build (MLIR + cc)


def programs(globs: list[str] | None = None) -> list[tuple[str, object, list, list[np.ndarray], bool]]:
    """(name, fn, specs, primal inputs, scalar?) for every op case and model in f32 and f64."""
    import lean_mlir as lm
    from workloads.models import MODELS
    from workloads.op_cases import CASES

    out = []
    for dt in DTYPES:
        out += [(f"{c.id}.{dt}", c.fn, c.specs(dt), c.inputs(dt), False) for c in CASES]
        for name, (fn, shapes) in MODELS.items():
            rng = np.random.default_rng(0)
            specs = [lm.Spec(s, dt) for s in shapes]
            out.append((f"model.{name}.{dt}", fn, specs,
                        [rng.standard_normal(s).astype(specs[0].np_dtype) for s in shapes], True))
    return [p for p in out if not globs or any(fnmatch.fnmatchcase(p[0], g) for g in globs)]


def entry_args(ins: list[tuple[tuple[int, ...], np.dtype]], xs: list[np.ndarray], rng: np.random.Generator
               ) -> list[np.ndarray]:
    """Arguments of an entry point: the primal inputs first, then random tangents / seeds."""
    return [*xs, *(rng.standard_normal(shape).astype(dt) for shape, dt in ins[len(xs):])]


def lower_for_gpu(lean_text: str):  # -> GpuExecutable
    """Every function of a lean module lowered as backend="gpu" does it (linalg, then the GPU back end),
    for sm_80 PTX whatever device this machine has."""
    from mlir import ir

    from lean_mlir.backends.base import compile_module
    from lean_mlir.backends.gpu import BACKEND
    from lean_mlir.irutils.context import make_context
    from lean_mlir.options import Options
    from lean_mlir.transforms.to_linalg import lower_lean_to_linalg

    with make_context(), ir.Location.unknown():    # the module keeps its Context alive
        m = ir.Module.parse(lean_text)
        lower_lean_to_linalg(m)
        return compile_module(BACKEND, m, Options(gpu_chip="sm_80", gpu_format="isa"))


def build_one(out: pathlib.Path, name: str) -> dict:
    """Compile one program, save its .so and .npz; return its manifest record."""
    from mlir import ir

    import lean_mlir as lm
    from lean_mlir.backends.eager import EagerFunction
    from lean_mlir.irutils.context import make_context

    [(_, fn, specs, xs, scalar)] = programs([name])
    compile_ = lm.compile_scalar if scalar else lm.compile_out
    lean = compile_(fn, *specs, backend="eager").ir("lean")       # traced + derived: all entry points
    rng = np.random.default_rng(1)
    arrays, entries = {}, []
    with make_context(), ir.Location.unknown():
        for f in ir.Module.parse(lean).body.operations:
            ev = EagerFunction(f)
            args = entry_args([(s.shape, s.np_dtype) for s in ev.arg_specs], xs, rng)
            want = ev(*args)
            arrays.update({f"{ev.name}.in{i}": a for i, a in enumerate(args)})
            arrays.update({f"{ev.name}.out{i}": np.asarray(w) for i, w in enumerate(want)})
            entries.append({"name": ev.name, "n_in": len(args), "n_out": len(want)})
    exe = lower_for_gpu(lean)
    S.link_shared(exe.ir("llvm"), out / f"{name}.so")
    np.savez(out / f"{name}.npz", **arrays)
    return {"name": name, "so": f"{name}.so", "npz": f"{name}.npz", "entries": entries,
            "chip": exe.chip, "format": exe.format}


def _build_worker(out: str, names: list[str]) -> list[dict | str]:
    """Build `names` in this process; an error string instead of a record for a failed build."""
    res: list[dict | str] = []
    for n in names:
        t0 = time.perf_counter()
        try:
            res.append(build_one(pathlib.Path(out), n))
            print(f"built {n} in {time.perf_counter() - t0:.2f} s", flush=True)
        except Exception as e:     # report and go on
            res.append(f"FAIL build {n}: {type(e).__name__}: {e}")
            print(res[-1], flush=True)
    return res


def build(out: pathlib.Path, globs: list[str] | None, jobs: int) -> int:
    from concurrent.futures import ProcessPoolExecutor

    out.mkdir(parents=True, exist_ok=True)
    S.prepare_lib(out)
    names = [p[0] for p in programs(globs)]
    t0 = time.perf_counter()
    if jobs == 1:
        results = _build_worker(str(out), names)
    else:
        with ProcessPoolExecutor(jobs) as pool:
            chunks = [names[i::jobs] for i in range(jobs)]
            results = [r for rs in pool.map(_build_worker, [str(out)] * jobs, chunks) for r in rs]
    manifest = sorted((r for r in results if isinstance(r, dict)), key=lambda r: names.index(r["name"]))
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    failed = [r for r in results if isinstance(r, str)]
    mib = sum(f.stat().st_size for f in out.rglob("*") if f.is_file()) / 2**20
    print(f"{len(manifest)} built, {len(failed)} failed in {time.perf_counter() - t0:.1f} s -> {out} "
          f"({mib:.1f} MiB)")
    for f in failed:
        print(f)
    return 1 if failed else 0


# ---------------------------------------------------------------------------------------------------------
# run (NumPy + CUDA driver)


def run_one(out: pathlib.Path, name: str) -> int:
    rec = next(r for r in json.loads((out / "manifest.json").read_text()) if r["name"] == name)
    data = np.load(out / rec["npz"])
    ctypes.CDLL(str(out / "lib" / "libmlir_cuda_runtime.so"), mode=ctypes.RTLD_GLOBAL)
    t0 = time.perf_counter()
    lib = ctypes.CDLL(str(out / rec["so"]))        # static constructors load (and JIT) the kernels here
    print(f"     {name}: module load {(time.perf_counter() - t0) * 1e3:.1f} ms", flush=True)
    fails = 0
    for e in rec["entries"]:
        ins = [np.ascontiguousarray(data[f"{e['name']}.in{i}"]) for i in range(e["n_in"])]
        want = [data[f"{e['name']}.out{i}"] for i in range(e["n_out"])]
        outs = [np.full(w.shape, np.nan, w.dtype) for w in want]
        descs = [S._descriptor(a) for a in (*ins, *outs)]
        fn = getattr(lib, f"_mlir_ciface_{e['name']}")
        fn.restype, fn.argtypes = None, [ctypes.c_void_p] * len(descs)
        args = [ctypes.c_void_p(ctypes.addressof(d)) for d in descs]
        fn(*args)
        err = max(max_error(g, w) for g, w in zip(outs, want, strict=True))
        tol = TOL[want[0].dtype.name]
        ok = err <= tol
        fails += not ok
        timing = ""
        if ok and name in TIMED:
            timing = f"  gpu {S._time(lambda fn=fn, args=args: fn(*args), 0.5) * 1e3:.3f} ms/call (incl. copies)"
        print(f"{'PASS' if ok else 'FAIL'} {name:34s} {e['name']:10s} max err {err:.2e} (tol {tol:.0e}){timing}",
              flush=True)
    return 1 if fails else 0


def _run_sub(out: pathlib.Path, rec: dict) -> tuple[int, int, str]:
    """(passed, failed, text) of one program run in a subprocess; missing entry lines count as failed."""
    n = len(rec["entries"])
    try:
        p = subprocess.run([sys.executable, __file__, "run-one", str(out), rec["name"]], capture_output=True,
                           text=True, timeout=180)
    except subprocess.TimeoutExpired:
        return 0, n, f"FAIL {rec['name']}: timed out after 180 s\n"
    lines = p.stdout.splitlines()
    passed = sum(ln.startswith("PASS") for ln in lines)
    failed = n - passed
    text = p.stdout
    if p.stderr.strip():
        text += "     stderr: " + p.stderr.strip()[-3000:].replace("\n", "\n     stderr: ") + "\n"
    if p.returncode != 0 and passed + sum(ln.startswith("FAIL") for ln in lines) < n:
        text += f"FAIL {rec['name']}: subprocess exited with {p.returncode} (negative = signal) after " \
                f"{passed} passed entries\n"
    return passed, failed, text


def run(out: pathlib.Path, globs: list[str] | None, jobs: int) -> int:
    print(f"driver: {S._driver_info()}", flush=True)
    recs = [r for r in json.loads((out / "manifest.json").read_text())
            if not globs or any(fnmatch.fnmatchcase(r["name"], g) for g in globs)]
    t0 = time.perf_counter()
    passed = failed = 0

    def report(res: tuple[int, int, str]) -> None:
        nonlocal passed, failed
        passed, failed = passed + res[0], failed + res[1]
        sys.stdout.write(res[2])
        sys.stdout.flush()

    with ThreadPoolExecutor(jobs) as pool:
        for res in pool.map(lambda r: _run_sub(out, r), [r for r in recs if r["name"] not in TIMED]):
            report(res)
    for r in recs:                                   # timed programs alone on the GPU
        if r["name"] in TIMED:
            report(_run_sub(out, r))
    print(f"SUMMARY: {passed} passed, {failed} failed ({len(recs)} programs, "
          f"{time.perf_counter() - t0:.1f} s)")
    return 1 if failed else 0


def main(argv: list[str]) -> int:
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    jobs = 4 if argv and argv[0] == "run" else 2
    if "-j" in argv:
        k = argv.index("-j")
        jobs, argv = int(argv[k + 1]), argv[:k] + argv[k + 2:]
    if len(argv) >= 2 and argv[0] == "build":
        return build(pathlib.Path(argv[1]), argv[2:] or None, jobs)
    if len(argv) >= 2 and argv[0] == "run":
        return run(pathlib.Path(argv[1]), argv[2:] or None, jobs)
    if len(argv) == 3 and argv[0] == "run-one":
        return run_one(pathlib.Path(argv[1]), argv[2])
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
