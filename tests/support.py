"""What the tests share: compiling hand-written linalg modules on the CPU back end."""

from __future__ import annotations

from mlir import ir

from lean_mlir.backends.base import compile_module
from lean_mlir.backends.cpu import BACKEND as CPU
from lean_mlir.irutils.context import make_context
from lean_mlir.options import Options


def build(text: str, options: Options | None = None, module: ir.Module | None = None):  # noqa: ANN201
    """(executable, stages) of a linalg-on-tensors module (text, or a parsed module) on the CPU."""
    ctx = make_context() if module is None else module.context
    with ctx, ir.Location.unknown():
        m = ir.Module.parse(text) if module is None else module
        exe = compile_module(CPU, m, options or Options())
    exe._ctx = ctx  # type: ignore[attr-defined]  # keep the module's context alive with the engine
    return exe, exe.stages
