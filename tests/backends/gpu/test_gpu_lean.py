"""backend="gpu" on every op case and model, f32 and f64: PTX kernels (for the device's chip, else
sm_80) for every entry point that the system ptxas accepts; without a device, calls raise
lm.DeviceUnavailableError; with one, results match the eager interpreter. Plus the lean smoke script's
build + run path under a fake CUDA driver."""

from __future__ import annotations

import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
from collections import Counter
from functools import cache

import numpy as np
import pytest
from mlir import ir
from support import ROOT, fake_cuda_driver

import lean_mlir as lm
from lean_mlir.backends.base import compile_module
from lean_mlir.backends.gpu import BACKEND, GpuExecutable, cuda_available, resolve_target, split_ptx
from lean_mlir.transforms.to_linalg import lower_lean_to_linalg
from workloads.gpu_kernels import max_error
from workloads.models import MODELS
from workloads.op_cases import CASES, Case

DTYPES = ["f32", "f64"]
PTXAS = "/usr/local/cuda/bin/ptxas" if os.path.exists("/usr/local/cuda/bin/ptxas") else shutil.which("ptxas")
CC = shutil.which("cc") or shutil.which("gcc")
HAS_DEVICE = cuda_available()
TARGET = resolve_target(lm.Options())   # what backend="gpu" compiles for here: the device's chip, else sm_80
PTX_VERSION = f"{int(TARGET.features.removeprefix('+ptx')) / 10:.1f}"
needs_device = pytest.mark.skipif(not HAS_DEVICE, reason="no CUDA device (libcuda.so.1 / cuInit / device count)")
no_device = pytest.mark.skipif(HAS_DEVICE, reason="a CUDA device is present")
TOL = {"f32": 1e-4, "f64": 1e-10}
OUT_ENTRIES = {"f", "f_jvp", "f_vjp"}
SCALAR_ENTRIES = OUT_ENTRIES | {"f_vjp_jvp"}


def _case(case: Case, dtype: str) -> lm.CompiledOut:
    return lm.compile_out(case.fn, *case.specs(dtype), backend="gpu")      # lm caches: compiled once


def _model(name: str, dtype: str) -> lm.CompiledScalar:
    fn, shapes = MODELS[name]
    return lm.compile_scalar(fn, *[lm.Spec(s, dtype) for s in shapes], backend="gpu")


@cache
def _model_full(name: str, dtype: str) -> GpuExecutable:
    """All four entry points of a model lowered for the GPU together (compile_scalar may compile the HVP
    separately, on first use), with the options backend="gpu" uses by default."""
    fn, shapes = MODELS[name]
    lean = lm.compile_scalar(fn, *[lm.Spec(s, dtype) for s in shapes], backend="eager").ir("lean")
    with lm.make_context(), ir.Location.unknown():    # the module keeps its Context alive
        m = ir.Module.parse(lean)
        lower_lean_to_linalg(m)
        return compile_module(BACKEND, m, lm.Options())


def _model_inputs(name: str, dtype: str, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s).astype(lm.Spec((), dtype).np_dtype) for s in MODELS[name][1]]


# ---------------------------------------------------------------------------------------------------------
# PTX


_HEADER = re.compile(r"^\s*\.(?:version|target|address_size)\b.*$", re.M)
_LINKAGE = r"^\s*(?:\.(?:visible|extern|weak)\s+)*"
_DECL = re.compile(_LINKAGE + r"(?:\.(?:entry|func)\s+(?:\([^)]*\)\s*)?(\w+)"       # .func (.param ret) name
                   r"|\.(?:global|const|shared)\b[^;=\[\n]*?(\w+)\s*[\[;=])", re.M)


def merge_ptx(modules: dict[str, str]) -> str:
    """One PTX file from many modules (for one ptxas run): module-level symbols get the module's name as a
    suffix (every module names its kernel after the function, e.g. `f_jvp_kernel`), headers appear once."""
    first = next(iter(modules.values()))
    parts = ["\n".join(m.group(0).strip() for m in _HEADER.finditer(first))]
    for mod, ptx in modules.items():
        body = _HEADER.sub("", ptx)
        for sym in {a or b for a, b in _DECL.findall(ptx)}:
            body = re.sub(rf"(?<![\w$.%]){re.escape(sym)}(?!\w)", f"{sym}__{mod}", body)
        parts.append(body)
    return "\n".join(parts)


def _check_ptx(c: lm.CompiledOut | GpuExecutable, entries: set[str], tmp_path: pathlib.Path) -> None:
    modules = split_ptx(c.ir("ptx"))
    per_entry = Counter()
    for mod, ptx in modules.items():
        m = re.fullmatch(r"(\w+?)_kernel(?:_\d+)?", mod)
        assert m, f"unexpected gpu.module name {mod}"
        per_entry[m.group(1)] += 1
        assert f".target {TARGET.chip}" in ptx and f".version {PTX_VERSION}" in ptx, mod
        assert len(re.findall(r"\.visible\s+\.entry\s+\w+\(", ptx)) == 1, mod
        assert ".extern .func" not in ptx, f"{mod}: unresolved device function"
    assert set(per_entry) == entries, per_entry
    llvm = c.ir("llvm")
    for e in entries:
        assert f"llvm.func @_mlir_ciface_{e}(" in llvm, e
    if PTXAS:
        merged = merge_ptx(modules)
        assert len(set(re.findall(r"\.entry\s+(\w+)\(", merged))) == len(modules)
        src = tmp_path / "all.ptx"
        src.write_text(merged)
        r = subprocess.run([PTXAS, f"-arch={TARGET.chip}", str(src), "-o", str(tmp_path / "all.cubin")],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr[-2000:]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_case_ptx(case: Case, dtype: str, tmp_path: pathlib.Path) -> None:
    _check_ptx(_case(case, dtype), OUT_ENTRIES, tmp_path)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(MODELS))
def test_model_ptx(name: str, dtype: str, tmp_path: pathlib.Path) -> None:
    _check_ptx(_model_full(name, dtype), SCALAR_ENTRIES, tmp_path)


def test_merge_ptx_keeps_modules_apart() -> None:
    a = (".version 8.0\n.target sm_80\n.address_size 64\n"
         ".func  (.param .align 16 .b8 func_retval0[16]) slow\n(\n.param .b64 slow_param_0\n);\n"
         ".global .align 8 .b8 tab[2] = {1, 2};\n"
         ".visible .entry k(\n.param .u64 k_param_0\n)\n{ ld.global.u8 %r, [tab]; call.uni (r), slow, (p); }\n")
    merged = merge_ptx({"m0": a, "m1": a})
    assert merged.count(".version") == 1 and merged.count(".target") == 1
    assert ".entry k__m0(" in merged and ".entry k__m1(" in merged and "[tab__m1]" in merged
    assert ") slow__m0\n" in merged and "call.uni (r), slow__m1, (p)" in merged and "func_retval0[16]" in merged
    assert merged.count("slow_param_0") == 2
    assert merged.count("k_param_0") == 2                       # parameter names are local: untouched


def test_gpu_options_chip(tmp_path: pathlib.Path) -> None:
    fn = lambda x: lm.exp(x) * 2.0  # noqa: E731
    c90 = lm.compile_out(fn, lm.f32[4, 3], backend="gpu", gpu_options={"chip": "sm_90"})
    assert c90 is lm.compile_out(fn, lm.f32[4, 3], backend="gpu", gpu_options={"chip": "sm_90"})
    c80 = lm.compile_out(fn, lm.f32[4, 3], backend="gpu")
    assert c80 is not c90
    assert ".target sm_90" in c90.ir("ptx") and ".target sm_80" not in c90.ir("ptx")
    assert f".target {TARGET.chip}" in c80.ir("ptx")
    with pytest.raises(ValueError, match="sm_50"):
        lm.compile_out(fn, lm.f32[4, 3], backend="gpu", gpu_options={"chip": "sm_50"})


# ---------------------------------------------------------------------------------------------------------
# Calls: DeviceUnavailableError without a device, agreement with eager with one


@no_device
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_case_no_device_raises(case: Case, dtype: str) -> None:
    c = _case(case, dtype)
    xs = case.inputs(dtype)
    with pytest.raises(lm.DeviceUnavailableError, match="GPU backend unavailable"):
        c.forward(*xs)
    with pytest.raises(lm.DeviceUnavailableError):
        c.jvp(xs, xs)
    with pytest.raises(ValueError, match="input 0: expected shape"):   # bad input: caught in Python first
        c.forward(*[np.zeros((7, 7, 7), x.dtype) for x in xs])


@no_device
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(MODELS))
def test_model_no_device_raises(name: str, dtype: str) -> None:
    c = _model(name, dtype)
    xs = _model_inputs(name, dtype)
    for call in (lambda: c.forward(*xs), lambda: c.backward(*xs), lambda: c.hvp(xs, xs)):
        with pytest.raises(lm.DeviceUnavailableError):
            call()


def _assert_close(got, want, dtype: str) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        g, w = np.asarray(g), np.asarray(w)
        assert g.shape == w.shape and g.dtype == w.dtype
        err = max_error(g, w)
        assert err <= TOL[dtype], f"max error {err:.3g} > {TOL[dtype]}"


@needs_device
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_case_matches_eager(case: Case, dtype: str) -> None:
    specs = case.specs(dtype)
    gpu, eager = _case(case, dtype), lm.compile_out(case.fn, *specs, backend="eager")
    xs = case.inputs(dtype)
    dxs, seed = case.directions(eager.out_spec, dtype)
    _assert_close([gpu.forward(*xs)], [eager.forward(*xs)], dtype)
    _assert_close(gpu.jvp(xs, dxs), eager.jvp(xs, dxs), dtype)
    _assert_close(gpu.vjp_with_seed(xs, seed), eager.vjp_with_seed(xs, seed), dtype)


@needs_device
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(MODELS))
def test_model_matches_eager(name: str, dtype: str) -> None:
    fn, shapes = MODELS[name]
    gpu = _model(name, dtype)
    eager = lm.compile_scalar(fn, *[lm.Spec(s, dtype) for s in shapes], backend="eager")
    xs, vs = _model_inputs(name, dtype), _model_inputs(name, dtype, seed=1)
    _assert_close([np.float64(gpu.forward(*xs))], [np.float64(eager.forward(*xs))], dtype)
    _assert_close(gpu.jvp(xs, vs), eager.jvp(xs, vs), dtype)
    _assert_close(gpu.backward_with_seed(xs, 0.5), eager.backward_with_seed(xs, 0.5), dtype)
    _assert_close(gpu.hvp(xs, vs), eager.hvp(xs, vs), dtype)


# ---------------------------------------------------------------------------------------------------------
# The device scripts' comparison (workloads.gpu_kernels.max_error); the lean smoke script's build + run


def test_max_error() -> None:
    a = np.array([1.0, np.nan, np.inf, 300.0])
    assert max_error(a, a.copy()) == 0.0
    assert max_error(a + [0, 0, 0, 3], a) == pytest.approx(0.01)      # relative to max |want|
    assert max_error(np.array([0.5]), np.array([0.25])) == 0.25         # absolute below 1
    assert max_error(np.array([1.0, 2.0]), np.array([1.0, np.nan])) == np.inf
    assert max_error(np.array([1.0, 2.0]), np.array([1.0, np.inf])) == np.inf
    assert max_error(a.astype(np.float32), a) == np.inf                   # dtype must match


@pytest.mark.skipif(CC is None, reason="no C compiler for the fake CUDA driver")
def test_lean_smoke_build_and_run_with_fake_driver(tmp_path: pathlib.Path) -> None:
    """Build two programs, check what was saved, run them against a fake driver (kernels do not run, so
    every entry FAILs), and check that a program that cannot load is reported without stopping the run."""
    fake_cuda_driver(tmp_path, CC)
    out, script = tmp_path / "build", str(ROOT / "benchmarks" / "gpu_lean_smoke.py")
    r = subprocess.run([sys.executable, script, "build", str(out), "-j", "1", "exp.f32", "model.layer_norm.f64"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "2 built, 0 failed" in r.stdout, r.stdout + r.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert [(m["name"], [e["name"] for e in m["entries"]], m["chip"], m["format"]) for m in manifest] == [
        ("exp.f32", ["f", "f_jvp", "f_vjp"], "sm_80", "isa"),
        ("model.layer_norm.f64", ["f", "f_jvp", "f_vjp", "f_vjp_jvp"], "sm_80", "isa")]
    d = np.load(out / "exp.f32.npz")
    x, dx, dy = d["f_jvp.in0"], d["f_jvp.in1"], d["f_vjp.in1"]
    assert x.dtype == np.float32 and np.array_equal(d["f.in0"], x)
    np.testing.assert_allclose(d["f_jvp.out1"], np.exp(x) * dx, rtol=1e-6)     # eager outputs saved
    np.testing.assert_allclose(d["f_vjp.out0"], np.exp(x) * dy, rtol=1e-6)
    m = np.load(out / "model.layer_norm.f64.npz")
    assert len([k for k in m.files if k.startswith("f_vjp_jvp.out")]) == 1 + 3 + 1 + 3   # value, grads, tangents
    assert sum(f.stat().st_size for f in out.rglob("*")) < 4 * 2**20

    env = dict(os.environ, LD_LIBRARY_PATH=str(tmp_path))
    r = subprocess.run([sys.executable, script, "run", str(out)], env=env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 1 and "FakeGPU" in r.stdout, r.stdout + r.stderr
    assert re.search(r"^FAIL exp\.f32\s+f_vjp\s+max err", r.stdout, re.M)
    assert re.search(r"^FAIL model\.layer_norm\.f64\s+f_vjp_jvp\s+max err", r.stdout, re.M)
    assert "module load ptx=1" in r.stdout                                     # kernels loaded from PTX
    assert "SUMMARY: 0 passed, 7 failed (2 programs" in r.stdout

    manifest.append({**manifest[0], "name": "broken", "so": "missing.so"})
    (out / "manifest.json").write_text(json.dumps(manifest))
    r = subprocess.run([sys.executable, script, "run", str(out), "broken", "exp.*"], env=env, capture_output=True,
                       text=True, timeout=300)
    assert "FAIL broken: subprocess exited with 1" in r.stdout and "missing.so" in r.stdout, r.stdout
    assert "SUMMARY: 0 passed, 6 failed (2 programs" in r.stdout
