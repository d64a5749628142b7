"""Function transforms in JAX's names and conventions: `lm.jit`, `lm.grad`, `lm.value_and_grad`
return callables that trace on the first call's arguments and compile once per input structure,
shapes and dtypes (a new one recompiles, with the reason logged); `lm.jvp`, `lm.vjp` and
`lm.hessian_vector_product` evaluate at given points through the compile cache.

Arguments are arrays (NumPy, or any DLPack producer on the host), Python numbers, or pytrees of them.
Python numbers are weakly typed, as in JAX: they take the element type of the first floating-point
array among the arguments (f32 when there is none).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Hashable, Sequence
from typing import Any

import numpy as np

from .compiled import CompiledOut, CompiledScalar, _compile, _Compiled, log_compile
from .ops import Spec
from .options import Options, resolve
from .pytree import Structure, leaf_paths, tree_flatten, tree_unflatten
from .runtime.cache import CompileCache
from .runtime.validate import from_dlpack

_WEAK = "weak"  # the key of a Python number's leaf: its dtype is decided with the others


def _leaf_key(v: Any) -> Hashable:
    if type(v) is np.ndarray or isinstance(v, np.generic):
        return v.shape, v.dtype
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise TypeError(f"expected arrays, Python numbers or pytrees of them, got {type(v).__name__}; "
                        "pass other Python values with static_argnums (lm.jit)")
    return _WEAK


def _input_names(treedef: Any) -> list[str]:
    """Each leaf's name in messages: "input 0['w']" (the leaf paths of the argument tuple)."""
    return [f"input {p[1:p.index(']')]}{p[p.index(']') + 1:]}" for p in leaf_paths(treedef)]


def _specs(treedef: Any, keys: Sequence[Hashable]) -> tuple[Any, ...]:
    """The per-argument spec pytrees of leaves with keys `keys`."""
    weak = next((dt for k in keys if k is not _WEAK for dt in [k[1]] if dt.kind == "f"), np.dtype(np.float32))
    specs = []
    for name, k in zip(_input_names(treedef), keys, strict=True):
        shape, dt = ((), weak) if k is _WEAK else k
        try:
            specs.append(Spec.of_dtype(shape, dt))
        except TypeError as e:
            raise TypeError(f"{name}: {e}") from None
    return tuple(tree_unflatten(treedef, specs))


def _argnums(argnums: int | Sequence[int], what: str) -> tuple[int, ...]:
    if isinstance(argnums, int) and not isinstance(argnums, bool):
        return (argnums,)
    if isinstance(argnums, tuple | list) and argnums and all(isinstance(i, int) and not isinstance(i, bool)
                                                            for i in argnums):
        return tuple(argnums)
    raise TypeError(f"{what}: argnums must be an int or a non-empty tuple of ints, got {argnums!r}")


class _Forward(CompiledOut):
    """The forward function alone (lm.jit): no derivatives are derived or compiled."""

    entries = ("f",)

    def _derive(self, module: Any) -> None:
        pass


class Transformed:
    """A function transformed by lm.jit / grad / value_and_grad: call it as the function itself."""

    def __init__(self, fn: Callable[..., Any], kind: str, argnums: tuple[int, ...] = (), has_aux: bool = False,
                 static_argnums: tuple[int, ...] = (), backend: str = "cpu", options: Options | None = None,
                 output: str = "numpy", single: bool = True) -> None:
        if not callable(fn):
            raise TypeError(f"lm.{kind}: expected a function, got {type(fn).__name__}")
        functools.update_wrapper(self, fn)
        self.fn, self.kind, self.argnums, self.has_aux = fn, kind, argnums, has_aux
        self.static_argnums, self.backend, self.output, self._single = static_argnums, backend, output, single
        self.options = resolve(options)
        self._compiled = CompileCache()
        self._last: tuple[Any, ...] | None = None
        self._fast: tuple[Structure, tuple[Hashable, ...], _Compiled] | None = None

    def _lookup(self, args: tuple[Any, ...]) -> tuple[_Compiled, list[Any]]:
        """The compiled function for these arguments (compiling it on a miss) and their leaves."""
        static: tuple[Any, ...] = ()
        if self.static_argnums:
            if any(not -len(args) <= i < len(args) for i in self.static_argnums):
                raise TypeError(f"lm.jit: static_argnums {self.static_argnums} out of range for {len(args)} arguments")
            fixed = {i % len(args) for i in self.static_argnums}
            static = tuple((i, args[i]) for i in sorted(fixed))
            try:
                hash(static)
            except TypeError:
                raise TypeError("lm.jit: static arguments must be hashable (they key the compile cache)") from None
            args = tuple(a for i, a in enumerate(args) if i not in fixed)
        leaves, treedef = tree_flatten(args)
        leaves = [from_dlpack(v) for v in leaves]
        keys = tuple(_leaf_key(v) for v in leaves)
        key = (static, treedef, keys)
        compiled = self._compiled.get(key)
        if compiled is None:
            compiled = self._compile(key, static)
        self._fast = (Structure(treedef), keys, compiled)
        return compiled, leaves

    def _compile(self, key: tuple[Any, ...], static: tuple[Any, ...]) -> _Compiled:
        _, treedef, keys = key
        specs = _specs(treedef, keys)
        fn = self.fn
        if static:
            def fn(*dynamic: Any) -> Any:
                it = iter(dynamic)
                fixed = dict(static)
                return self.fn(*[fixed[i] if i in fixed else next(it) for i in range(len(dynamic) + len(fixed))])
            fn.__qualname__ = getattr(self.fn, "__qualname__", "fn")
        start = time.perf_counter()
        if self.kind == "jit":
            compiled = _Forward(fn, specs, self.backend, (), self.options, self.has_aux, None, self.output)
        else:
            bad = [i for i in self.argnums if not -len(specs) <= i < len(specs)]
            if bad:
                raise TypeError(f"lm.{self.kind}: argnums {self.argnums} out of range for {len(specs)} arguments")
            compiled = CompiledScalar(fn, specs, self.backend, [i % len(specs) for i in self.argnums], self.options,
                                      self.has_aux, ("f_vjp",), self.output)
        log_compile(self.fn, specs, self.backend, time.perf_counter() - start, self._reason(key))
        self._last = key
        self._compiled.put(key, compiled)
        return compiled

    def _reason(self, key: tuple[Any, ...]) -> str:
        if self._last is None:
            return "first compile"
        (s0, t0, k0), (s1, t1, k1) = self._last, key
        if s0 != s1:
            return f"new static arguments {dict(s1)} (was {dict(s0)})"
        if t0 != t1:
            return "a new input structure"
        changed = [f"{name}: {_show(a)} -> {_show(b)}"
                   for name, a, b in zip(_input_names(t1), k0, k1, strict=True) if a != b]
        return "new input specs: " + "; ".join(changed)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if kwargs:
            raise TypeError(f"lm.{self.kind}: pass the arguments positionally (got keywords {sorted(kwargs)})")
        fast = self._fast
        if fast is not None and not self.static_argnums:  # the last call's structure, and specs it accepts
            leaves = fast[0].leaves(args)
            if leaves is not None:
                try:
                    return self._call(fast[2], leaves)
                except (TypeError, ValueError):  # other shapes or dtypes: the slow path compiles or explains
                    pass
        return self._call(*self._lookup(args))

    def _call(self, c: Any, leaves: list[Any]) -> Any:
        if self.kind == "jit":
            return c._forward(leaves)
        value, grads = c._value_and_grads(leaves)
        if self._single:
            grads = grads[0]
        if self.kind == "grad":
            return (grads, value[1]) if self.has_aux else grads
        return value, grads


def _show(key: Hashable) -> str:
    if key is _WEAK:
        return "a Python number"
    return str(Spec.of_dtype(*key))  # keys of compiled specs: float dtypes


def jit(fn: Callable[..., Any], static_argnums: int | Sequence[int] = (), *, backend: str = "cpu",
        options: Options | None = None, output: str = "numpy") -> Transformed:
    """`fn` compiled on its first call's arguments; `static_argnums`: positions of Python values
    (hashable) that are fixed at trace time and key the cache."""
    static = (static_argnums,) if isinstance(static_argnums, int) else tuple(static_argnums)
    return Transformed(fn, "jit", static_argnums=static, backend=backend, options=options, output=output)


def grad(fn: Callable[..., Any], argnums: int | Sequence[int] = 0, has_aux: bool = False, *, backend: str = "cpu",
         options: Options | None = None, output: str = "numpy") -> Transformed:
    """The gradient of scalar-valued `fn` w.r.t. argument `argnums` (in its structure; a tuple of
    them for a tuple of argnums). With has_aux, `fn` returns (value, aux) and this (grads, aux)."""
    return Transformed(fn, "grad", _argnums(argnums, "lm.grad"), has_aux, backend=backend, options=options,
                       output=output, single=isinstance(argnums, int))


def value_and_grad(fn: Callable[..., Any], argnums: int | Sequence[int] = 0, has_aux: bool = False, *,
                   backend: str = "cpu", options: Options | None = None, output: str = "numpy") -> Transformed:
    """(value, grads) of scalar-valued `fn`; with has_aux ((value, aux), grads), as jax.value_and_grad."""
    return Transformed(fn, "value_and_grad", _argnums(argnums, "lm.value_and_grad"), has_aux, backend=backend,
                       options=options, output=output, single=isinstance(argnums, int))


def _primal_specs(primals: Any, what: str) -> tuple[Any, ...]:
    if not isinstance(primals, tuple | list):
        raise TypeError(f"{what}: primals must be a tuple or list of the function's arguments, got "
                        f"{type(primals).__name__}")
    leaves, treedef = tree_flatten(tuple(primals))
    return _specs(treedef, [_leaf_key(from_dlpack(v)) for v in leaves])


def jvp(fn: Callable[..., Any], primals: Sequence[Any], tangents: Sequence[Any], has_aux: bool = False, *,
        backend: str = "cpu", options: Options | None = None, output: str = "numpy") -> tuple[Any, ...]:
    """(fn(*primals), its directional derivative along `tangents`), one tangent per primal in its
    structure; with has_aux, (value, tangent, aux). As jax.jvp."""
    specs = _primal_specs(primals, "lm.jvp")
    c = _compile(CompiledOut, fn, specs, backend, None, options, None, has_aux, ("f_jvp",), output)
    return c.jvp(*primals, tangents=tangents)


def vjp(fn: Callable[..., Any], *primals: Any, has_aux: bool = False, backend: str = "cpu",
        options: Options | None = None, output: str = "numpy") -> tuple[Any, ...]:
    """(fn(*primals), pullback), pullback(cotangent) -> one cotangent per primal; with has_aux,
    (value, pullback, aux). As jax.vjp; the pullback is compiled code (it recomputes the forward)."""
    specs = _primal_specs(primals, "lm.vjp")
    c = _compile(CompiledOut, fn, specs, backend, None, options, None, has_aux, ("f", "f_vjp"), output)
    value = c.forward(*primals)

    def pullback(cotangent: Any) -> tuple[Any, ...]:
        return c.vjp_with_seed(*primals, seed=cotangent)

    return (value[0], pullback, value[1]) if has_aux else (value, pullback)


def hessian_vector_product(fn: Callable[..., Any], primals: Sequence[Any], tangents: Sequence[Any], *,
                           backend: str = "cpu", options: Options | None = None,
                           output: str = "numpy") -> tuple[Any, ...]:
    """H(primals) @ tangents for scalar-valued `fn`: one product per primal, in its structure."""
    specs = _primal_specs(primals, "lm.hessian_vector_product")
    c = _compile(CompiledScalar, fn, specs, backend, None, options, None, False, ("f_vjp_jvp",), output)
    return c.hvp(*primals, tangents=tangents)


__all__ = ["Transformed", "grad", "hessian_vector_product", "jit", "jvp", "value_and_grad", "vjp"]
