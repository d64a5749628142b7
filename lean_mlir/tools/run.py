"""`lean-mlir-run`: run one function of a .mlir file on .npy inputs.

    lean-mlir-run FILE.mlir --entry f --inputs a.npy b.npy [--backend cpu|eager] [--output-dir DIR]

The file may be lean-level (lowered here with lean-to-linalg and the CPU pipeline) or already
linalg-on-tensors. Inputs are checked (count, shape, dtype) before any native code runs. Outputs are
printed (`result N: shape dtype` and the array) or saved as DIR/out0.npy, DIR/out1.npy, ...
All errors: a message on stderr and exit code 1, never a traceback.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Sequence

import numpy as np
from mlir import ir

from ..backends import get_backend
from ..backends.base import compile_module
from ..irutils.context import make_context
from ..irutils.types import Signature, SignatureError
from ..irutils.types import signature as read_signature
from ..irutils.walk import find_func, funcs, has_body, is_public, symbol_name, walk
from ..options import Options
from ..runtime.validate import coerce_inputs
from ..transforms.to_linalg import lower_lean_to_linalg
from .opt import ArgumentParser, ToolError, load_module, mlir_error_lines, report_errors, verify_lines

PROG = "lean-mlir-run"


def _fail(msg: str) -> ToolError:
    return ToolError([f"{PROG}: error: {msg}"])


def find_entry(module: ir.Module, name: str) -> ir.Operation:
    try:
        f = find_func(module, name)
    except KeyError as e:
        raise _fail(e.args[0]) from None
    if not has_body(f):
        raise _fail(f"@{name} is only a declaration")
    return f


def signature(f: ir.Operation) -> Signature:
    try:
        return read_signature(f)
    except SignatureError as e:
        raise _fail(str(e)) from None


def load_inputs(paths: Sequence[str]) -> list[np.ndarray]:
    arrays = []
    for i, p in enumerate(paths):
        try:
            a = np.load(p, allow_pickle=False)
        except OSError as e:
            raise _fail(f"input {i}: cannot read {p!r}: {e.strerror or e}") from None
        except ValueError as e:
            raise _fail(f"input {i}: {p!r} is not a .npy array: {e}") from None
        if not isinstance(a, np.ndarray):
            raise _fail(f"input {i}: {p!r} holds an archive (.npz), not one array")
        arrays.append(a)
    return arrays


# External functions generated code may call: libm / libmvec math, the allocator and the runtimes of
# the back ends. Running IR runs a program: any other symbol (`llvm.func @system`) needs --allow-external.
ALLOWED_EXTERNALS = re.compile(
    r"(a?(sin|cos|tan)h?f?|atan2f?|exp(2|m1)?f?|log(2|10|1p)?f?|erfc?f?|cbrtf?|powf?|sqrtf?|fabsf?|floorf?|ceilf?"
    r"|roundf?|fmodf?|_ZGV\w+|malloc|aligned_alloc|free|memrefCopy|__lean_\w+|mlirAsyncRuntime\w+|mgpu\w+"
    r"|_setjmp|longjmp|pthread_[gs]etspecific|write|abort"  # the allocation guard (backends/cpu/allocation.py)
    r"|scipy_cblas_[sd]gemm)"  # OpenBLAS (backends/cpu/blas.py)
)


def external_calls(module: ir.Module) -> list[str]:
    """Names of the functions the lowered module declares but does not define (it calls them)."""
    return sorted(symbol_name(op) for op in walk(module, ("llvm.func", "func.func")) if not has_body(op))


def check_externals(module: ir.Module) -> None:
    bad = [n for n in external_calls(module) if not ALLOWED_EXTERNALS.fullmatch(n)]
    if bad:
        raise _fail(f"the program calls external function(s) {', '.join('@' + n for n in bad)}, which generated "
                    "code never needs; running IR runs a program: pass --allow-external if you trust this file")


def execute(path: str, entry: str, input_paths: Sequence[str], backend_name: str,
            allow_external: bool = False) -> tuple[np.ndarray, ...]:
    arrays = load_inputs(input_paths)
    ctx = make_context()
    with ctx, ir.Location.unknown():
        module, _ = load_module(path, ctx, PROG)
        if lines := verify_lines(module):
            raise ToolError(lines)
        f = find_entry(module, entry)
        sig = signature(f)
        try:
            arrays = coerce_inputs(sig[0], arrays)
        except (TypeError, ValueError) as e:
            raise _fail(f"@{entry}: {e}") from None
        backend = get_backend(backend_name)
        for other in funcs(module):
            if symbol_name(other) != entry and is_public(other):
                other.erase()  # only the entry is compiled (private callees stay)
        try:
            if backend.consumes == "linalg" and walk(module, where=lambda op: op.name.startswith("lean.")):
                lower_lean_to_linalg(module)
            exe = compile_module(backend, module, Options(), None if allow_external else check_externals)
        except NotImplementedError as e:
            if backend.name != "eager":
                raise
            raise _fail(f"{e} (the eager backend runs lean-level functions only)") from None
        except ir.MLIRError as e:
            raise ToolError(mlir_error_lines(e, path)) from None
        return exe.entry(entry)(*arrays)


def show(outputs: Sequence[np.ndarray]) -> str:
    parts = []
    for i, y in enumerate(outputs):
        parts.append(f"result {i}: shape {tuple(y.shape)} {y.dtype}")
        parts.append(np.array2string(y, precision=6, threshold=1000))
    return "\n".join(parts) + "\n"


def build_parser() -> ArgumentParser:
    p = ArgumentParser(prog=PROG, description="Run a function of a .mlir file on .npy inputs.")
    p.add_argument("input", help="the .mlir file (lean-level or linalg-on-tensors)")
    p.add_argument("--entry", "-e", default="f", help="function to run (default: f)")
    p.add_argument("--inputs", "-i", nargs="*", default=[], metavar="NPY", help="one .npy file per argument")
    p.add_argument("--backend", choices=("cpu", "eager"), default="cpu")
    p.add_argument("--output-dir", "-o", metavar="DIR", help="save out0.npy, out1.npy, ... instead of printing")
    p.add_argument("--allow-external", action="store_true",
                   help="let the program call external functions beyond math, the allocator and the runtimes "
                        "(running IR runs a program: only for files you trust)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def body() -> int:
        outputs = execute(args.input, args.entry, args.inputs, args.backend, args.allow_external)
        if args.output_dir:
            os.makedirs(args.output_dir, exist_ok=True)
            for i, y in enumerate(outputs):
                np.save(os.path.join(args.output_dir, f"out{i}.npy"), y)
        else:
            sys.stdout.write(show(outputs))
        return 0

    return report_errors(PROG, body)


if __name__ == "__main__":
    sys.exit(main())
