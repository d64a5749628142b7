"""The compiled API: `compile_scalar` / `compile_out` build one lean module holding the forward,
JVP and VJP (and HVP) functions, compile it once for a backend, and call its entry points."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from mlir import ir

from .backends import NAMES as BACKENDS
from .backends import get_backend
from .backends.base import compile_module
from .irutils.context import make_context
from .irutils.walk import funcs, symbol_name
from .ops import Spec, Tensor
from .options import Options, resolve
from .pytree import (
    LEAF,
    Structure,
    format_tree,
    leaf_paths,
    num_leaves,
    tree_flatten,
    tree_leaves,
    tree_map,
    tree_structure,
    tree_unflatten,
)
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


_MISSING: Any = object()
OUTPUTS = ("numpy", "torch", "dlpack")


def _is_spec_leaf(v: Any) -> bool:
    return isinstance(v, Spec | np.ndarray) or (isinstance(v, tuple) and len(v) == 2 and isinstance(v[1], str))


def spec_tree(s: Any) -> Any:
    """One argument's specs: a Spec, a NumPy array or a (shape, dtype) pair, or a pytree of them."""
    return tree_map(to_spec, s, is_leaf=_is_spec_leaf)


@dataclass(frozen=True, eq=False)
class Signature:
    """What a compiled object's entry points take and give, as pytrees of Specs."""

    args: tuple[Any, ...]  # one pytree of Specs per positional argument
    argnums: tuple[int, ...]  # the differentiated arguments (their floating-point leaves)
    out: Any  # the function's value (with has_aux, the first of the pair it returns)
    aux: Any = None  # with has_aux: the auxiliary output, returned alongside, never differentiated
    has_aux: bool = False

    def key(self) -> tuple[Any, ...]:
        leaves, treedef = tree_flatten((self.args, self.argnums, self.out, self.aux, self.has_aux))
        return treedef, tuple(leaves)


def _flat_function(fn: Callable[..., Any], in_def: Any, has_aux: bool,
                   found: dict[str, Any]) -> Callable[..., list[Tensor]]:
    """`fn` over pytrees as a function of the flat leaves, returning the leaves of its value, then
    those of aux; `found` receives the structures of both."""
    def flat(*tensors: Tensor) -> list[Tensor]:
        out = fn(*tree_unflatten(in_def, tensors))
        aux = None
        if has_aux:
            if not (isinstance(out, tuple | list) and len(out) == 2):
                raise TypeError(f"has_aux=True: the function must return a pair (value, aux), got {out!r}")
            out, aux = out
        out_leaves, found["out"] = tree_flatten(out)
        aux_leaves, found["aux"] = tree_flatten(aux)
        leaves = [*out_leaves, *aux_leaves]
        if not leaves or not all(isinstance(v, Tensor) for v in leaves):
            raise TypeError(f"the traced function must return traced values, got {out!r} (expected an lm.Tensor "
                            "or a pytree of them)")
        return leaves
    return flat


def _converter(output: str) -> Callable[[np.ndarray], Any] | None:
    if output not in OUTPUTS:
        raise ValueError(f"output must be one of {OUTPUTS}, got {output!r}")
    if output == "torch":
        import torch  # optional: only when asked for
        return torch.from_numpy
    if output == "dlpack":
        return lambda a: a.__dlpack__()
    return None


class _Compiled:
    """What CompiledScalar and CompiledOut share: tracing over pytrees, derivation, compilation,
    calling conventions, forward, jvp, ir.

    Every entry point takes the inputs the same way, as positional arguments (arrays or pytrees of
    them, in the structure of the specs); tangents and seeds go in one keyword argument
    (`tangents=`, `seed=`), or in the older form `c.jvp(inputs, tangents)`."""

    entries = ("f", "f_jvp", "f_vjp")  # compiled to native code up front; the others on first use

    def __init__(self, fn: Callable[..., Any], specs: Sequence[Any], backend: str = "cpu",
                 wrt: Sequence[int] | None = None, options: Options | None = None, has_aux: bool = False,
                 entries: Sequence[str] | None = None, output: str = "numpy") -> None:
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        self.fn: Callable[..., Any] | None = fn
        args = tuple(spec_tree(s) for s in specs)
        argnums = normalize_wrt(wrt, len(args), getattr(fn, "__name__", "fn"))
        flat_specs, in_def = tree_flatten(args)
        found: dict[str, Any] = {}
        with make_context(), ir.Location.unknown():
            module = ir.Module.create()
            f = trace(_flat_function(fn, in_def, has_aux, found), flat_specs, "f", module)
            types = ir.FunctionType(ir.TypeAttr(f.attributes["function_type"]).value).results
            results = [Spec.of_type(t) for t in types]
            n_out = num_leaves(found["out"])
            sig = Signature(args, tuple(argnums), tree_unflatten(found["out"], results[:n_out]),
                            tree_unflatten(found["aux"], results[n_out:]), has_aux)
            self._check_results(sig)
            self._set_signature(sig, backend, output)
            self._derive(module)
            verify(module)
        self.options = options if options is not None else Options()
        self._compile_program(str(module), tuple(entries) if entries is not None else self.entries)

    def _compile_program(self, lean_text: str, entries: tuple[str, ...]) -> None:
        self.program = Program(lean_text, self.backend, entries, self.options)
        self._programs = dict.fromkeys(entries, self.program)

    def _set_signature(self, sig: Signature, backend: str, output: str) -> None:
        self.signature, self.backend, self.output = sig, backend, output
        self._convert = _converter(output)
        arg_defs = [tree_structure(a) for a in sig.args]
        self._n_args = len(sig.args)
        self._flat_args = all(d == LEAF for d in arg_defs)
        self._in = Structure((tuple, None, tuple(arg_defs)))
        self.specs: list[Spec] = tree_leaves(sig.args)
        starts = np.cumsum([0] + [num_leaves(d) for d in arg_defs]).tolist()
        self.wrt = [j for i in sig.argnums for j in range(starts[i], starts[i + 1])]  # flat input indices
        self._per_wrt = Structure((tuple, None, tuple(arg_defs[i] for i in sig.argnums)))  # tangents, gradients
        out_def = tree_structure(sig.out)
        self.out_spec = sig.out  # a Spec when the function returns one array
        self._out = Structure(out_def)
        self._aux = Structure(tree_structure(sig.aux))
        self._n_out, self._n_aux = self._out.num_leaves, self._aux.num_leaves
        # argument names for error messages, per entry point
        paths = [leaf_paths(d) for d in arg_defs]
        inputs = tuple(f"input {i}{p}" for i in range(self._n_args) for p in paths[i])
        tangents = lambda name: tuple(f"{name}[{k}]{p} (tangent of input {i}{p})"
                                      for k, i in enumerate(sig.argnums) for p in paths[i])
        seeds = tuple(f"seed{p}" for p in leaf_paths(out_def))
        self._labels = {"f": inputs, "f_jvp": inputs + tangents("dxs"), "f_vjp": inputs + seeds,
                        "f_vjp_jvp": inputs + seeds + tangents("vs")}

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled as its lean IR, signature, backend and options (not the Python function): the
        receiving process compiles the IR again, or takes it from its compile cache."""
        return _unpickle, (type(self), self.program.lean_text, self.signature, self.backend, self.options,
                           self.output, tuple(self.program.entries))

    def _check_results(self, sig: Signature) -> None:
        pass

    def _derive(self, module: ir.Module) -> None:
        derive_jvp(module, "f", self.wrt)

    # ---- calling conventions
    def _inputs(self, xs: Sequence[Any], method: str) -> list[Any]:
        """The flat input leaves of positional arguments `xs`."""
        if len(xs) != self._n_args:
            hint = ""
            if len(xs) == 1 and isinstance(xs[0], list | tuple) and len(xs[0]) == self._n_args:
                hint = f"; the inputs are separate arguments: c.{method}(*xs)"
            raise TypeError(f"expected {self._n_args} input{'s' if self._n_args != 1 else ''}, got {len(xs)}{hint}")
        if self._flat_args:
            return list(xs)
        flat = self._in.leaves(tuple(xs))
        if flat is None:
            for i, (x, spec) in enumerate(zip(xs, self.signature.args, strict=True)):
                if Structure(tree_structure(spec)).leaves(x) is None:
                    raise TypeError(f"input {i}: expected the structure {format_tree(tree_structure(spec))}, got "
                                    f"{format_tree(tree_structure(x))}")
        return flat

    def _split(self, method: str, args: tuple[Any, ...], extra: Any, keyword: str) -> tuple[Sequence[Any], Any]:
        """(inputs, tangents-or-seed) from `c.method(*inputs, keyword=...)` or `c.method(inputs, extra)`."""
        if extra is not _MISSING:
            return args, extra
        if len(args) != 2:
            raise TypeError(f"{method}: pass the inputs positionally and the {keyword} by keyword, "
                            f"c.{method}(*inputs, {keyword}=...), or as c.{method}(inputs, {keyword}); "
                            f"got {len(args)} positional arguments and no {keyword}=")
        _check_seq(args[0], "xs")
        return args[0], args[1]

    def _tangents(self, dxs: Any, name: str) -> list[Any]:
        _check_seq(dxs, name)
        argnums = list(self.signature.argnums)
        if len(dxs) != len(argnums):
            raise TypeError(f"expected {len(argnums)} tangents (one per wrt input {argnums}), got {len(dxs)}")
        flat = self._per_wrt.leaves(tuple(dxs))
        if flat is None:
            raise TypeError(f"{name}: expected one tangent per wrt input in its structure, "
                            f"{format_tree(self._per_wrt.treedef)}, got {format_tree(tree_structure(tuple(dxs)))}")
        return flat

    def _seeds(self, seed: Any) -> list[Any]:
        flat = self._out.leaves(seed)
        if flat is None:
            raise TypeError(f"seed: expected the structure of the output, {format_tree(self._out.treedef)}, got "
                            f"{format_tree(tree_structure(seed))}")
        return flat

    def _run(self, name: str, arrays: list[Any]) -> tuple[np.ndarray, ...]:
        program = self._programs.get(name)
        if program is None:  # an entry point not compiled up front
            program = self._programs[name] = Program(self.program.lean_text, self.backend, (name,), self.options)
        return program.run(name, arrays, self._labels[name])

    # ---- results
    def _arrays(self, arrays: Sequence[np.ndarray]) -> Sequence[Any]:
        return arrays if self._convert is None else [self._convert(a) for a in arrays]

    def _value(self, leaves: Sequence[np.ndarray]) -> Any:
        """The function's value (not aux) from its leaves."""
        return self._out.build(self._arrays(leaves))

    def _aux_value(self, outs: Sequence[np.ndarray]) -> Any:
        """The auxiliary output, from an entry point's results (it follows the value's leaves)."""
        return self._aux.build(self._arrays(outs[self._n_out:self._n_out + self._n_aux]))

    def _with_aux(self, value: Any, outs: Sequence[np.ndarray]) -> Any:
        return (value, self._aux_value(outs)) if self.signature.has_aux else value

    def _grads(self, leaves: Sequence[np.ndarray]) -> tuple[Any, ...]:
        """Gradients (cotangents) of the wrt inputs, each in its input's structure."""
        return self._per_wrt.build(self._arrays(leaves))

    # ---- entry points
    def _forward(self, flat: list[Any]) -> Any:
        """f of the flat input leaves; with has_aux, (value, aux)."""
        outs = self._run("f", flat)
        return self._with_aux(self._value(outs[:self._n_out]), outs)

    def forward(self, *xs: Any) -> Any:
        """f(*xs); with has_aux, (value, aux)."""
        return self._forward(self._inputs(xs, "forward"))

    def __call__(self, *xs: Any) -> Any:
        return self.forward(*xs)

    def jvp(self, *args: Any, tangents: Any = _MISSING) -> tuple[Any, ...]:
        """(f(xs), df(xs)[tangents]), one tangent per `wrt` input: c.jvp(*xs, tangents=dxs) or
        c.jvp(xs, dxs). With has_aux, (value, tangent, aux)."""
        xs, dxs = self._split("jvp", args, tangents, "tangents")
        outs = self._run("f_jvp", self._inputs(xs, "jvp") + self._tangents(dxs, "dxs"))
        n = self._n_out + self._n_aux
        value, tangent = self._value(outs[:self._n_out]), self._value(outs[n:n + self._n_out])
        return (value, tangent, self._aux_value(outs)) if self.signature.has_aux else (value, tangent)

    def ir(self, stage: str = "lean") -> str:
        """MLIR text of all entry points at `stage`: "lean", "linalg", "llvm" (cpu), "gpu"/"ptx" (gpu)."""
        return self.program.ir(stage)


class CompiledScalar(_Compiled):
    """A compiled scalar-valued function: forward, jvp, backward, backward_with_seed,
    value_and_backward, hvp. Its module holds @f, @f_jvp, @f_vjp (returning the value first) and
    @f_vjp_jvp (the HVP), which is compiled to native code on the first `hvp` call only."""

    def _check_results(self, sig: Signature) -> None:
        if not isinstance(sig.out, Spec):
            raise TypeError(f"compile_scalar: the function must return one scalar value, got the structure "
                            f"{format_tree(tree_structure(sig.out))}; with has_aux=True it may return (value, aux)")
        if sig.out.rank != 0:
            raise TypeError(f"compile_scalar: the function must return a scalar (rank-0) value, got shape "
                            f"{sig.out.shape}; use lm.compile_out for tensor outputs or reduce with lm.sum")

    def _derive(self, module: ir.Module) -> None:
        super()._derive(module)
        derive_vjp(module, "f", self.wrt, with_primal=True, seeded=1)
        derive_jvp(module, "f_vjp", self.wrt)

    def _value(self, leaves: Sequence[np.ndarray]) -> float:
        return float(leaves[0])

    def _value_and_grads(self, flat: list[Any], seed: Any = 1.0) -> tuple[Any, tuple[Any, ...]]:
        """(value, gradients) at the flat input leaves; with has_aux, ((value, aux), gradients)."""
        outs = self._run("f_vjp", [*flat, seed])
        return self._with_aux(float(outs[0]), outs), self._grads(outs[1 + self._n_aux:])

    def backward_with_seed(self, *args: Any, seed: Any = _MISSING) -> tuple[Any, ...]:
        """Gradients scaled by `seed`: c.backward_with_seed(*xs, seed=s) or c.backward_with_seed(xs, s)."""
        xs, seed = self._split("backward_with_seed", args, seed, "seed")
        return self._value_and_grads(self._inputs(xs, "backward_with_seed"), seed)[1]

    def backward(self, *xs: Any) -> tuple[Any, ...]:
        """Gradients w.r.t. the `wrt` inputs, in that order, each in its input's structure (seed 1)."""
        return self._value_and_grads(self._inputs(xs, "backward"))[1]

    def value_and_backward(self, *xs: Any) -> tuple[Any, tuple[Any, ...]]:
        """(value, gradients); with has_aux, ((value, aux), gradients), as jax.value_and_grad."""
        return self._value_and_grads(self._inputs(xs, "value_and_backward"))

    def hvp(self, *args: Any, tangents: Any = _MISSING) -> tuple[Any, ...]:
        """Hessian-vector products H(xs) @ vs, one per `wrt` input (the JVP of the VJP):
        c.hvp(*xs, tangents=vs) or c.hvp(xs, vs)."""
        xs, vs = self._split("hvp", args, tangents, "tangents")
        outs = self._run("f_vjp_jvp", [*self._inputs(xs, "hvp"), 1.0, *self._tangents(vs, "vs")])
        return self._grads(outs[len(outs) - len(self.wrt):])


class CompiledOut(_Compiled):
    """A compiled function returning a tensor or a pytree of them: forward, jvp, vjp_with_seed. Its
    module holds @f, @f_jvp and @f_vjp."""

    def _derive(self, module: ir.Module) -> None:
        super()._derive(module)
        derive_vjp(module, "f", self.wrt, seeded=self._n_out)

    def vjp_with_seed(self, *args: Any, seed: Any = _MISSING) -> tuple[Any, ...]:
        """Cotangents of the `wrt` inputs for the output cotangent `seed` (in the output's structure):
        c.vjp_with_seed(*xs, seed=s) or c.vjp_with_seed(xs, s)."""
        xs, seed = self._split("vjp_with_seed", args, seed, "seed")
        return self._grads(self._run("f_vjp", self._inputs(xs, "vjp_with_seed") + self._seeds(seed)))


def _unpickle(cls: type[_Compiled], lean_text: str, sig: Signature, backend: str, options: Options, output: str,
              entries: tuple[str, ...]) -> _Compiled:
    key = (cls, lean_text, sig.key(), backend, options, output, entries)
    hit = _cache.get(key)
    if hit is not None:
        return hit
    compiled = cls.__new__(cls)
    compiled.fn = None
    compiled._set_signature(sig, backend, output)
    compiled.options = options
    compiled._compile_program(lean_text, entries)
    _cache.put(key, compiled)
    return compiled


def _check_seq(v: Any, name: str) -> None:
    if not isinstance(v, list | tuple):
        raise TypeError(f"{name} must be a list or tuple of arrays, got {type(v).__name__}")


_cache = CompileCache()  # (cls, fn, specs, wrt, backend, options, ...) -> compiled object
_seen = CompileCache()  # (cls, fn, backend) -> (specs, wrt, options) of its last compile, for the log


def _compile(cls: type[_Compiled], fn: Callable[..., Any], specs: Sequence[Any], backend: str,
             wrt: Sequence[int] | None, options: Options | None, gpu_options: dict[str, str] | None,
             has_aux: bool = False, entries: Sequence[str] | None = None, output: str = "numpy") -> Any:
    args = tuple(spec_tree(s) for s in specs)
    leaves, treedef = tree_flatten(args)
    specs_key = (treedef, tuple(leaves))
    wrt_t = None if wrt is None else tuple(wrt)
    entries_t = None if entries is None else tuple(entries)
    opts = resolve(options, gpu_options)
    fkey = function_key(fn)
    key = (cls, fkey, specs_key, wrt_t, backend, opts, has_aux, entries_t, output)
    hit = _cache.get(key)
    if hit is not None:
        return hit
    start = time.perf_counter()
    compiled = cls(fn, args, backend, wrt_t, opts, has_aux, entries_t, output)
    previous = _seen.get((cls, fkey, backend))
    _seen.put((cls, fkey, backend), (specs_key, wrt_t, opts))
    _cache.put(key, compiled)
    if previous is None:
        reason = "first compile"
    elif previous[0] != specs_key:
        reason = f"new input specs {describe_specs(args)} (was {describe_specs(tree_unflatten(*previous[0]))})"
    elif previous[1] != wrt_t:
        reason = f"new wrt {wrt_t} (was {previous[1]})"
    else:
        reason = f"new options {opts} (was {previous[2]})"
    log_compile(fn, args, backend, time.perf_counter() - start, reason)
    return compiled


def describe_specs(args: Any) -> str:
    """Input specs as text: (f32[3, 4], {'b': f32[4], 'w': f32[4, 4]})."""
    return "(" + ", ".join(repr(tree_map(_Text, a)) for a in args) + ")"


class _Text(str):
    __repr__ = str.__str__


def log_compile(fn: Any, args: Any, backend: str, seconds: float, reason: str) -> None:
    """Every compile is logged at INFO on the "lean_mlir" logger, at WARNING with LEAN_MLIR_LOG_COMPILES=1."""
    level = logging.WARNING if os.environ.get("LEAN_MLIR_LOG_COMPILES") == "1" else logging.INFO
    if log.isEnabledFor(level):
        log.log(level, "lean_mlir: compiled %s%s for %s in %.3f s: %s", getattr(fn, "__qualname__", repr(fn)),
                describe_specs(args), backend, seconds, reason)


def compile_scalar(fn: Callable[..., Any], *specs: Any, backend: str = "cpu", wrt: Sequence[int] | None = None,
                   options: Options | None = None, gpu_options: dict[str, str] | None = None, has_aux: bool = False,
                   output: str = "numpy") -> CompiledScalar:
    """Trace `fn` (returning a rank-0 value) over `specs`, derive its JVP, VJP and HVP, compile once.

    Each spec is an lm.Spec, a NumPy array, a (shape, dtype) pair, or a pytree of them (one per
    positional argument of `fn`). `wrt`: the argument indices to differentiate (default: all; every
    leaf of a pytree argument). `has_aux`: `fn` returns (scalar, aux), aux a pytree of tensors
    returned alongside and never differentiated. `output`: "numpy" (default), "torch" or "dlpack"
    for the arrays returned. A second call with the same arguments returns the cached object.
    `options`: an `lm.Options` (default: from the environment); `gpu_options`: {"chip", "features",
    "format"}, the same as Options.gpu_chip / gpu_features / gpu_format.
    """
    return _compile(CompiledScalar, fn, specs, backend, wrt, options, gpu_options, has_aux, None, output)


def compile_out(fn: Callable[..., Any], *specs: Any, backend: str = "cpu", wrt: Sequence[int] | None = None,
                options: Options | None = None, gpu_options: dict[str, str] | None = None, has_aux: bool = False,
                output: str = "numpy") -> CompiledOut:
    """Trace `fn` (returning a tensor or a pytree of them) over `specs`, derive its JVP and VJP,
    compile once. The arguments are those of `compile_scalar`."""
    return _compile(CompiledOut, fn, specs, backend, wrt, options, gpu_options, has_aux, None, output)


def clear_cache() -> None:
    _cache.clear()
    _seen.clear()
