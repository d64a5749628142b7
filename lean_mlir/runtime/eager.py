"""The eager interpreter: NumPy evaluation of a func.func of lean ops (the reference semantics)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from mlir import ir

from ..ops.core import Spec, lookup


class EagerFunction:
    """A func.func compiled once into a list of NumPy steps; call it with arrays."""

    def __init__(self, func_op: ir.Operation) -> None:
        op = func_op.operation
        block = op.regions[0].blocks[0]
        self.name = ir.StringAttr(op.attributes["sym_name"]).value
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


def find_func(module: ir.Module, name: str) -> ir.Operation:
    for op in module.body.operations:
        if op.operation.name == "func.func" and ir.StringAttr(op.attributes["sym_name"]).value == name:
            return op.operation
    raise KeyError(f"no function @{name} in the module")


def evaluate(module: ir.Module, name: str, arrays: Sequence[np.ndarray]) -> tuple[np.ndarray, ...]:
    """Evaluate `@name` of `module` on NumPy arrays."""
    return EagerFunction(find_func(module, name))(*arrays)
