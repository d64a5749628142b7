"""`lm.check_grads`: the checks that stand in for proofs, run on compiled code.

- JVP against central finite differences of an f64 twin of the function (eager interpreter).
- The adjoint identity <vjp(s), dx> == <s, jvp(dx)> on the compiled code itself.
- order=2: the HVP against finite differences of the gradient, and the symmetry <Hu, v> == <u, Hv>.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .compiled import CompiledOut, CompiledScalar, _Compiled
from .ops import Spec, concatenate, reshape
from .pytree import tree_leaves, tree_structure, tree_unflatten

TOLERANCE = {"f64": 1e-6, "f32": 3e-3}


def _dot(a: Sequence[np.ndarray], b: Sequence[np.ndarray]) -> float:
    return float(sum(np.vdot(np.asarray(x, np.float64), np.asarray(y, np.float64)) for x, y in zip(a, b, strict=True)))


def _scale(a: Sequence[np.ndarray], b: Sequence[np.ndarray]) -> float:
    return float(sum(np.abs(np.asarray(x, np.float64)).ravel() @ np.abs(np.asarray(y, np.float64)).ravel()
                     for x, y in zip(a, b, strict=True)))


def _close(name: str, got: float, want: float, scale: float, rtol: float, report: dict[str, float]) -> None:
    err = abs(got - want) / max(scale, abs(want), 1e-12)
    report[name] = err
    if not err <= rtol:  # NaN fails too
        raise AssertionError(f"check_grads: {name}: got {got!r}, expected {want!r} (relative error {err:.3g} > {rtol})")


def _twin(c: _Compiled, cls: type[_Compiled] | None = None, fn: Any = None) -> _Compiled:
    """The same function compiled in f64 for the eager interpreter (the finite-difference oracle)."""
    specs = [Spec(s.shape, "f64") for s in c.specs]
    return (cls or type(c))(fn or c.fn, specs, "eager", c.wrt)


def _flat(c: _Compiled, xs: Sequence[Any]) -> tuple[_Compiled, list[Any]]:
    """A function of pytrees (or with aux) as one of its flat leaves returning one flat array (its
    value's leaves, raveled and concatenated), and `xs` as those leaves: what the checks below take."""
    if c.fn is None:
        raise TypeError("check_grads: an unpickled pytree function has no Python function to check")
    if not isinstance(xs, list | tuple):
        raise TypeError(f"check_grads: xs must be a list or tuple of the inputs, got {type(xs).__name__}")
    in_def, fn, sig = tree_structure(c.signature.args), c.fn, c.signature

    def flat(*leaves: Any) -> Any:
        out = fn(*tree_unflatten(in_def, leaves))
        out = out[0] if sig.has_aux else out
        parts = tree_leaves(out)
        if isinstance(sig.out, Spec):
            return parts[0]
        return concatenate([reshape(p, (-1,)) for p in parts])

    cls = CompiledScalar if isinstance(c, CompiledScalar) else CompiledOut
    return cls(flat, c.specs, c.backend, c.wrt, c.options), c._inputs(tuple(xs), "check_grads")


def check_grads(c: _Compiled, xs: Sequence[Any], order: int = 2, seed: int = 0, eps: float = 1e-6,
                rtol: float | None = None) -> dict[str, float]:
    """Check the derivatives of `c` at `xs` along random directions; return the relative errors.

    Raises AssertionError naming the identity that failed. `rtol` defaults to 1e-6 (f64), 3e-3 (f32).
    """
    if not c._flat_args or c.signature.has_aux or not isinstance(c.signature.out, Spec):
        c, xs = _flat(c, xs)
    if not isinstance(xs, list | tuple) or len(xs) != len(c.specs):
        got = f"{len(xs)} values" if isinstance(xs, list | tuple) else type(xs).__name__
        raise TypeError(f"check_grads: xs must be a list or tuple of {len(c.specs)} inputs, got {got}")
    rng = np.random.default_rng(seed)
    dtype = c.specs[0].dtype if c.specs else "f64"
    rtol = rtol if rtol is not None else max(TOLERANCE[s.dtype] for s in c.specs)
    xs = [np.asarray(x, s.np_dtype) for x, s in zip(xs, c.specs, strict=True)]
    x64 = [x.astype(np.float64) for x in xs]
    dxs = [rng.standard_normal(c.specs[i].shape).astype(c.specs[i].np_dtype) for i in c.wrt]
    ref = c if dtype == "f64" and all(s.dtype == "f64" for s in c.specs) and c.backend == "eager" else _twin(c)
    report: dict[str, float] = {}

    def moved(t: float, direction: Sequence[np.ndarray]) -> list[np.ndarray]:
        out = list(x64)
        for k, i in enumerate(c.wrt):
            out[i] = x64[i] + t * direction[k].astype(np.float64)
        return out

    y, dy = c.jvp(xs, dxs)
    fd = (np.asarray(ref.forward(*moved(eps, dxs)), np.float64)
          - np.asarray(ref.forward(*moved(-eps, dxs)), np.float64)) / (2 * eps)
    err = float(np.max(np.abs(np.asarray(dy, np.float64) - fd), initial=0.0))
    _close("jvp vs finite differences", err, 0.0, float(np.max(np.abs(fd), initial=1.0)), rtol, report)

    s = rng.standard_normal(c.out_spec.shape).astype(c.out_spec.np_dtype)
    ct = c.backward_with_seed(xs, s) if isinstance(c, CompiledScalar) else c.vjp_with_seed(xs, s)
    _close("adjoint identity <vjp(s), dx> = <s, jvp(dx)>", _dot(ct, dxs), _dot([s], [dy]),
           _scale(ct, dxs) + _scale([s], [dy]), rtol, report)

    if order >= 2:
        if isinstance(c, CompiledOut):  # second order of the scalar <s, f(x)>
            from .ops import sum as lsum
            fn, weights = c.fn, s.copy()
            scalar = CompiledScalar(lambda *a: lsum(fn(*a) * weights), c.specs, c.backend, c.wrt)
            report.update({f"<s, f>: {k}": v for k, v in check_grads(scalar, xs, order, seed, eps, rtol).items()})
            return report
        ref_s = ref if isinstance(ref, CompiledScalar) else _twin(c, CompiledScalar)
        us = [rng.standard_normal(c.specs[i].shape).astype(c.specs[i].np_dtype) for i in c.wrt]
        hv = c.hvp(xs, dxs)
        hu = c.hvp(xs, us)
        gp, gm = ref_s.backward(*moved(eps, dxs)), ref_s.backward(*moved(-eps, dxs))
        fd_h = [(a - b) / (2 * eps) for a, b in zip(gp, gm, strict=True)]
        err = max((float(np.max(np.abs(h.astype(np.float64) - f), initial=0.0)) for h, f in zip(hv, fd_h, strict=True)),
                  default=0.0)
        _close("hvp vs finite differences of the gradient", err, 0.0,
               max((float(np.max(np.abs(f), initial=1.0)) for f in fd_h), default=1.0), rtol, report)
        _close("hessian symmetry <Hu, v> = <u, Hv>", _dot(hu, dxs), _dot(us, hv), _scale(hu, dxs) + _scale(us, hv),
               rtol, report)
    return report
