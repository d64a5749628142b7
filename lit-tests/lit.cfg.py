# ruff: noqa: F821 - lit provides `config` and `lit_config`
"""lit configuration of the lean_mlir FileCheck suite (run with `python -m lit -v lit-tests`).

Tools come from the installed wheels (mlir-opt, FileCheck, not) and from the Python environment that
runs lit (lean-mlir-opt, lean-mlir-run sit next to its interpreter). Uses lit's internal shell.
"""

import importlib.util
import os
import sys

import lit.formats

config.name = "lean-mlir"
config.test_format = lit.formats.ShTest(execute_external=False)
config.suffixes = [".mlir", ".py"]
config.excludes = ["lit.cfg.py", "Inputs"]
config.test_source_root = os.path.dirname(os.path.abspath(__file__))
config.test_exec_root = os.path.join(config.test_source_root, "..", "build", "lit-tests")


def _package_dir(name: str) -> str:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        lit_config.fatal(f"package {name!r} is not installed in {sys.executable}; pip install '.[test]'")
    return next(iter(spec.submodule_search_locations))


_bin_dirs = [os.path.join(_package_dir("mlir"), "bin"), os.path.join(_package_dir("llvm"), "bin"),
             os.path.dirname(sys.executable)]
for tool in ("lean-mlir-opt", "lean-mlir-run"):
    if not os.path.exists(os.path.join(os.path.dirname(sys.executable), tool)):
        lit_config.fatal(f"{tool} not found next to {sys.executable}; pip install '.[test]'")
config.environment["PATH"] = os.pathsep.join(_bin_dirs + [config.environment.get("PATH", os.defpath)])
config.environment["PYTHONDONTWRITEBYTECODE"] = "1"
for var in ("HOME", "TMPDIR", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
    if var in os.environ:
        config.environment[var] = os.environ[var]

config.substitutions += [
    ("%python", sys.executable),
    ("%irdl", os.path.join(config.test_source_root, "..", "dialect", "lean.irdl.mlir")),
]
