"""The compiled API: `compile_scalar` / `compile_out` build one lean module holding the forward,
JVP and VJP (and HVP) functions, compile it once for a backend, and call its entry points."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from mlir import ir

from .backends import NAMES as BACKENDS
from .backends import get_backend
from .backends.base import compile_module
from .irutils.context import make_context
from .irutils.walk import funcs, symbol_name
from .ops import Spec
from .options import Options, resolve
from .runtime.cache import CompileCache, function_key
from .runtime.validate import coerce_inputs
from .trace import to_spec, trace
from .transforms.autodiff import derive_jvp, derive_vjp
from .transforms.autodiff.common import normalize_wrt
from .transforms.to_linalg import lower_lean_to_linalg
from .transforms.verify import verify

log = logging.getLogger("lean_mlir")
Runner = Callable[..., tuple[np.ndarray, ...]]


class Program:
    """Entry points of a lean module compiled for one backend: `run(name, arrays)` calls one.

    `lean_text` is verified lean IR (`_Compiled` makes it). `entries` picks the functions to compile
    (default: all); the others stay in the "lean" stage only.
    """

    def __init__(self, lean_text: str, backend: str, entries: Sequence[str] | None = None,
                 options: Options | None = None) -> None:
        self.lean_text = lean_text
        self.backend = get_backend(backend)
        self.options = options if options is not None else Options()
        self._ctx = make_context()  # the executable's module lives in it
        with self._ctx, ir.Location.unknown():
            module = ir.Module.parse(lean_text)
            names = [symbol_name(f) for f in funcs(module)]
            self.entries = names if entries is None else list(entries)
            for f in funcs(module):
                if symbol_name(f) not in self.entries:
                    f.erase()
            stages = {"lean": lean_text}
            if self.backend.consumes == "linalg":
                lower_lean_to_linalg(module, verified=True)  # `_Compiled` verified this text
                stages["linalg"] = str(module)
            self._exe = compile_module(self.backend, module, self.options)
        self.signatures = self._exe.signatures
        self.stages: dict[str, str] = {**stages, **self._exe.stages}

    def ir(self, stage: str) -> str:
        if stage == "linalg" and "linalg" not in self.stages:  # eager: lower on demand, to show it
            with make_context(), ir.Location.unknown():
                module = ir.Module.parse(self.lean_text)
                lower_lean_to_linalg(module, verified=True)
                self.stages["linalg"] = str(module)
        if stage not in self.stages:
            raise ValueError(f"stage {stage!r} is not available on backend {self.backend.name!r}; "
                             f"have {sorted(self.stages)}")
        return self.stages[stage]

    def run(self, name: str, arrays: Sequence[Any], what: str | Sequence[str] = "input") -> tuple[np.ndarray, ...]:
        ins, _ = self.signatures[name]
        return self._exe.entry(name)(*coerce_inputs(ins, arrays, what))


class _Compiled:
    """What CompiledScalar and CompiledOut share: tracing, derivation, compilation, forward, jvp, ir."""

    kind = ""

    def __init__(self, fn: Callable[..., Any], specs: Sequence[Any], backend: str = "cpu",
                 wrt: Sequence[int] | None = None, options: Options | None = None) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        self.fn: Callable[..., Any] | None = fn
        self._set_signature([to_spec(s) for s in specs], normalize_wrt(wrt, len(specs), getattr(fn, "__name__", "fn")),
                            backend)
        with make_context(), ir.Location.unknown():
            module = ir.Module.create()
            f = trace(fn, self.specs, "f", module)
            results = ir.FunctionType(ir.TypeAttr(f.attributes["function_type"]).value).results
            self._check_results([Spec.of_type(t) for t in results])
            self._derive(module)
            verify(module)
        self.options = options if options is not None else Options()
        self.program = Program(str(module), backend, ("f", "f_jvp", "f_vjp"), self.options)

    def _set_signature(self, specs: list[Spec], wrt: list[int], backend: str) -> None:
        self.specs, self.wrt, self.backend = specs, wrt, backend
        # argument names for error messages, per entry point (after the inputs)
        inputs = tuple(f"input {i}" for i in range(len(self.specs)))
        tangents = lambda name: tuple(f"{name}[{k}] (tangent of input {i})" for k, i in enumerate(self.wrt))
        self._labels = {"f_jvp": inputs + tangents("dxs"), "f_vjp": (*inputs, "seed"),
                        "f_vjp_jvp": (*inputs, "seed", *tangents("vs"))}

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled as its lean IR, specs, wrt, backend and options (not the Python function): the
        receiving process compiles the IR again, or takes it from its compile cache."""
        return _unpickle, (type(self), self.program.lean_text, tuple(self.specs), tuple(self.wrt), self.out_spec,
                           self.backend, self.options)

    def _check_results(self, results: list[Spec]) -> None:
        if len(results) != 1:
            raise TypeError(f"{type(self).__name__}: the function must return one value, got {len(results)}")
        self.out_spec = results[0]

    def _derive(self, module: ir.Module) -> None:
        derive_jvp(module, "f", self.wrt)

    def _tangents(self, dxs: Sequence[Any]) -> list[Any]:
        if len(dxs) != len(self.wrt):
            raise TypeError(f"expected {len(self.wrt)} tangents (one per wrt input {self.wrt}), got {len(dxs)}")
        return list(dxs)

    def _check_xs(self, xs: Sequence[Any]) -> None:
        _check_seq(xs, "xs")
        if len(xs) != len(self.specs):
            raise TypeError(f"expected {len(self.specs)} inputs, got {len(xs)}")

    def forward(self, *xs: Any) -> Any:
        return self._out(self.program.run("f", xs)[0])

    def jvp(self, xs: Sequence[Any], dxs: Sequence[Any]) -> tuple[Any, Any]:
        """(f(xs), df(xs)[dxs]) with one tangent per `wrt` input."""
        self._check_xs(xs)
        _check_seq(dxs, "dxs")
        y, dy = self.program.run("f_jvp", [*xs, *self._tangents(dxs)], self._labels["f_jvp"])
        return self._out(y), self._out(dy)

    def _out(self, y: np.ndarray) -> Any:
        return y

    def ir(self, stage: str = "lean") -> str:
        """MLIR text of all entry points at `stage`: "lean", "linalg", "llvm" (cpu), "gpu"/"ptx" (gpu)."""
        return self.program.ir(stage)


class CompiledScalar(_Compiled):
    """A compiled scalar-valued function: forward, jvp, backward, backward_with_seed,
    value_and_backward, hvp. Its module holds @f, @f_jvp, @f_vjp (returning the value first) and
    @f_vjp_jvp (the HVP), which is compiled to native code on the first `hvp` call only."""

    _hvp_program: Program | None = None

    def _check_results(self, results: list[Spec]) -> None:
        super()._check_results(results)
        if self.out_spec.rank != 0:
            raise TypeError(f"compile_scalar: the function must return a scalar (rank-0) value, got shape "
                            f"{self.out_spec.shape}; use lm.compile_out for tensor outputs or reduce with lm.sum")

    def _derive(self, module: ir.Module) -> None:
        super()._derive(module)
        derive_vjp(module, "f", self.wrt, with_primal=True)
        derive_jvp(module, "f_vjp", self.wrt)

    def _out(self, y: np.ndarray) -> float:
        return float(y)

    def backward_with_seed(self, xs: Sequence[Any], seed: Any) -> tuple[np.ndarray, ...]:
        self._check_xs(xs)
        return self.program.run("f_vjp", [*xs, seed], self._labels["f_vjp"])[1:]

    def backward(self, *xs: Any) -> tuple[np.ndarray, ...]:
        """Gradients w.r.t. the `wrt` inputs, in that order (seed 1)."""
        return self.backward_with_seed(xs, 1.0)

    def value_and_backward(self, *xs: Any) -> tuple[float, tuple[np.ndarray, ...]]:
        self._check_xs(xs)
        y, *grads = self.program.run("f_vjp", [*xs, 1.0], self._labels["f_vjp"])
        return float(y), tuple(grads)

    def hvp(self, xs: Sequence[Any], vs: Sequence[Any]) -> tuple[np.ndarray, ...]:
        """Hessian-vector products H(xs) @ vs, one per `wrt` input (the JVP of the VJP)."""
        self._check_xs(xs)
        _check_seq(vs, "vs")
        if self._hvp_program is None:
            self._hvp_program = Program(self.program.lean_text, self.backend, ("f_vjp_jvp",), self.options)
        outs = self._hvp_program.run("f_vjp_jvp", [*xs, 1.0, *self._tangents(vs)], self._labels["f_vjp_jvp"])
        return outs[len(outs) - len(self.wrt):]


class CompiledOut(_Compiled):
    """A compiled tensor-valued function: forward, jvp, vjp_with_seed. Its module holds @f, @f_jvp
    and @f_vjp."""

    def _derive(self, module: ir.Module) -> None:
        super()._derive(module)
        derive_vjp(module, "f", self.wrt)

    def vjp_with_seed(self, xs: Sequence[Any], seed: Any) -> tuple[np.ndarray, ...]:
        """Cotangents of the `wrt` inputs for the output cotangent `seed` (the output's shape)."""
        self._check_xs(xs)
        return self.program.run("f_vjp", [*xs, seed], self._labels["f_vjp"])


def _unpickle(cls: type[_Compiled], lean_text: str, specs: tuple[Spec, ...], wrt: tuple[int, ...], out_spec: Spec,
              backend: str, options: Options) -> _Compiled:
    key = (cls, lean_text, specs, wrt, backend, options)
    hit = _cache.get(key)
    if hit is not None:
        return hit
    compiled = cls.__new__(cls)
    compiled.fn = None
    compiled._set_signature(list(specs), list(wrt), backend)
    compiled.out_spec = out_spec
    compiled.options = options
    compiled.program = Program(lean_text, backend, ("f", "f_jvp", "f_vjp"), options)
    _cache.put(key, compiled)
    return compiled


def _check_seq(v: Any, name: str) -> None:
    if not isinstance(v, list | tuple):
        raise TypeError(f"{name} must be a list or tuple of arrays, got {type(v).__name__}")


_cache = CompileCache()  # (cls, fn, specs, wrt, backend, options) -> compiled object
_seen = CompileCache()  # (cls, fn, backend) -> (specs, wrt, options) of its last compile, for the log


def _compile(cls: type[_Compiled], fn: Callable[..., Any], specs: Sequence[Any], backend: str,
             wrt: Sequence[int] | None, options: Options | None, gpu_options: dict[str, str] | None) -> Any:
    specs_t = tuple(to_spec(s) for s in specs)
    wrt_t = None if wrt is None else tuple(wrt)
    opts = resolve(options, gpu_options)
    fkey = function_key(fn)
    key = (cls, fkey, specs_t, wrt_t, backend, opts)
    hit = _cache.get(key)
    if hit is not None:
        return hit
    start = time.perf_counter()
    compiled = cls(fn, specs_t, backend, wrt_t, opts)
    previous = _seen.get((cls, fkey, backend))
    _seen.put((cls, fkey, backend), (specs_t, wrt_t, opts))
    _cache.put(key, compiled)
    if os.environ.get("LEAN_MLIR_LOG_COMPILES") == "1":
        if previous is None:
            reason = "first compile"
        elif previous[0] != specs_t:
            reason = f"new input specs {[str(s) for s in specs_t]} (was {[str(s) for s in previous[0]]})"
        elif previous[1] != wrt_t:
            reason = f"new wrt {wrt_t} (was {previous[1]})"
        else:
            reason = f"new options {opts} (was {previous[2]})"
        name = getattr(fn, "__qualname__", repr(fn))
        log.warning("lean_mlir: compiled %s(%s) for %s in %.3f s: %s", name, ", ".join(map(str, specs_t)),
                    backend, time.perf_counter() - start, reason)
    return compiled


def compile_scalar(fn: Callable[..., Any], *specs: Any, backend: str = "cpu", wrt: Sequence[int] | None = None,
                   options: Options | None = None, gpu_options: dict[str, str] | None = None) -> CompiledScalar:
    """Trace `fn` (returning a rank-0 value) over `specs`, derive its JVP, VJP and HVP, compile once.

    A second call with the same (fn, specs, wrt, backend, options) returns the cached object.
    `options`: an `lm.Options` (default: from the environment); `gpu_options`: {"chip", "features",
    "format"}, the same as Options.gpu_chip / gpu_features / gpu_format.
    """
    return _compile(CompiledScalar, fn, specs, backend, wrt, options, gpu_options)


def compile_out(fn: Callable[..., Any], *specs: Any, backend: str = "cpu", wrt: Sequence[int] | None = None,
                options: Options | None = None, gpu_options: dict[str, str] | None = None) -> CompiledOut:
    """Trace `fn` (returning one tensor) over `specs`, derive its JVP and VJP, compile once."""
    return _compile(CompiledOut, fn, specs, backend, wrt, options, gpu_options)


def clear_cache() -> None:
    _cache.clear()
    _seen.clear()
