"""The eager back end: a NumPy interpreter of lean functions (the reference semantics and the
tests' oracle). It takes lean IR as is: nothing to lower."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from mlir import ir

from ..irutils.types import Signature
from ..irutils.walk import find_func, funcs, symbol_name
from ..ops import Spec, lookup
from ..options import Options


class EagerFunction:
    """A func.func compiled once into a list of NumPy steps; call it with arrays."""

    def __init__(self, func_op: ir.Operation) -> None:
        op = func_op.operation
        block = op.regions[0].blocks[0]
        self.name = symbol_name(op)
        slots: dict[ir.Value, int] = {a: i for i, a in enumerate(block.arguments)}
        self.arg_specs = [Spec.of_type(a.type) for a in block.arguments]
        self.steps: list[tuple[Callable[..., np.ndarray], list[int], dict[str, Any], np.dtype]] = []
        self.outputs: list[int] = []
        for child in block.operations:
            child = child.operation
            if child.name == "func.return":
                self.outputs = [slots[v] for v in child.operands]
                self.result_specs = [Spec.of_type(v.type) for v in child.operands]
                break
            if not child.name.startswith("lean."):
                raise NotImplementedError(f"eager interpreter: unsupported op '{child.name}' in @{self.name}")
            opdef = lookup(child.name)
            attrs = opdef.attrs_from_op(child)
            spec = Spec.of_type(child.results[0].type)
            if opdef.shape_from_result:
                attrs["shape"] = spec.shape
            self.steps.append((opdef.numpy, [slots[v] for v in child.operands], attrs, spec.np_dtype))
            slots[child.results[0]] = len(slots)

    def __call__(self, *arrays: np.ndarray) -> tuple[np.ndarray, ...]:
        env = list(arrays)
        with np.errstate(all="ignore"):
            for fn, operands, attrs, dtype in self.steps:
                env.append(np.asarray(fn(*[env[i] for i in operands], **attrs), dtype=dtype))
        return tuple(np.array(env[i], copy=True) for i in self.outputs)


def evaluate(module: ir.Module, name: str, arrays: Sequence[np.ndarray]) -> tuple[np.ndarray, ...]:
    """Evaluate `@name` of `module` on NumPy arrays."""
    return EagerFunction(find_func(module, name))(*arrays)


class EagerExecutable:
    def __init__(self, module: ir.Module, signatures: Mapping[str, Signature], stages: Mapping[str, str]) -> None:
        self.signatures, self.stages = dict(signatures), dict(stages)
        self._functions = {symbol_name(f): EagerFunction(f) for f in funcs(module, defined=True)
                           if symbol_name(f) in self.signatures}

    def entry(self, name: str) -> EagerFunction:
        try:
            return self._functions[name]
        except KeyError:
            raise KeyError(f"unknown entry point @{name}; have {sorted(self._functions)}") from None


class EagerBackend:
    name = "eager"
    consumes = "lean"
    stage_names: tuple[str, ...] = ()

    def lower(self, module: ir.Module, options: Options) -> dict[str, str]:
        return {}

    def load(self, module: ir.Module, signatures: Mapping[str, Signature], stages: Mapping[str, str],
             options: Options) -> EagerExecutable:
        return EagerExecutable(module, signatures, stages)


BACKEND = EagerBackend()
