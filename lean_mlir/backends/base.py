"""The back-end interface: a back end lowers a module (linalg on tensors, or lean for the eager
interpreter) in place with `Options`, returning the IR text of its named stages, and loads the
lowered module as an `Executable` whose entry points take and return NumPy arrays.

`compile_module` is the one lowering sequence that `compiled.py`, `lean-mlir-run` and the pass
registry share."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol

import numpy as np
from mlir import ir

from ..irutils.types import Signature, signatures
from ..options import Options

Entry = Callable[..., tuple[np.ndarray, ...]]  # entry(*arrays) -> fresh output arrays


class Executable(Protocol):
    signatures: Mapping[str, Signature]  # entry point -> (inputs, outputs), tensor level
    stages: Mapping[str, str]  # stage name -> IR text

    def entry(self, name: str) -> Entry:
        """The callable of one entry point. Inputs must already be validated (exact dtype and shape,
        C-contiguous: `lean_mlir.runtime.validate.coerce_inputs`)."""
        ...


class Backend(Protocol):
    name: str
    consumes: str  # "linalg" (linalg/tensor/arith/math on tensors) or "lean"
    stage_names: tuple[str, ...]  # what `lower` returns, in pipeline order

    def lower(self, module: ir.Module, options: Options) -> dict[str, str]:
        """Lower `module` in place; the IR text after each named stage."""
        ...

    def load(self, module: ir.Module, signatures: Mapping[str, Signature], stages: Mapping[str, str],
             options: Options) -> Executable:
        """An executable over a module that `lower` has lowered."""
        ...


def compile_module(backend: Backend, module: ir.Module, options: Options,
                   check: Callable[[ir.Module], None] | None = None) -> Executable:
    """Signatures (read before lowering rewrites them), lowering, `check` of the lowered module (it
    may refuse it), loading."""
    sigs = signatures(module)
    stages = backend.lower(module, options)
    if check is not None:
        check(module)
    return backend.load(module, sigs, stages, options)
