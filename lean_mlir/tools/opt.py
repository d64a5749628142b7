"""`lean-mlir-opt`: parse a .mlir file with the lean dialect loaded, verify it, run a pass pipeline, print.

    lean-mlir-opt FILE.mlir --pass-pipeline='builtin.module(lean-derive-vjp,lean-to-linalg)' [-o OUT]
    lean-mlir-opt --list-passes

Every error is one or more MLIR-style lines on stderr (`file:line:col: error: ...` where a location
is known) and exit code 1; never a Python traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from mlir import ir

PROG = "lean-mlir-opt"


class ToolError(Exception):
    """An error already formatted as diagnostic lines."""

    def __init__(self, lines: Sequence[str]) -> None:
        super().__init__("\n".join(lines))
        self.lines = list(lines)


def mlir_error_lines(e: ir.MLIRError, fallback: str) -> list[str]:
    """One `loc: error: msg` line per diagnostic (and its notes); `fallback` prefixes the bare message."""
    from ..transforms.verify import format_location
    lines = []
    for d in e.error_diagnostics:
        lines.append(f"{format_location(d.location)}: error: {d.message}")
        lines += [f"{format_location(n.location)}: note: {n.message}" for n in d.notes]
    return lines or [f"{fallback}: error: {e}"]


MAX_INPUT_BYTES = 256 << 20  # a larger .mlir file is refused (`lean-mlir-opt /dev/zero` must not eat memory)
MAX_NESTING = 256  # bracket depth; MLIR's recursive parser overflows the C stack around 5,000 nested regions


def _nesting_depth(text: str) -> int:
    """Deepest bracket nesting outside string literals and comments (a linear scan, no recursion)."""
    depth = deepest = 0
    in_string = escaped = in_comment = False
    prev = ""
    for ch in text:
        arrow, prev = ch == ">" and prev == "-", ch  # `->` closes nothing
        if in_comment:
            in_comment = ch != "\n"
        elif in_string:
            in_string = escaped or ch != '"'
            escaped = not escaped and ch == "\\"
        elif ch == '"':
            in_string = True
        elif ch == "/":  # `//` comments (MLIR has no other use of `/` outside strings)
            in_comment = True
        elif ch in "{([<":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "})]>" and not arrow:
            depth = max(0, depth - 1)
    return deepest


def read_source(path: str, prog: str = PROG) -> str:
    """The text of `path` ('-' = stdin): at most MAX_INPUT_BYTES, UTF-8, nested at most MAX_NESTING deep."""
    try:
        if path == "-":
            data = sys.stdin.buffer.read(MAX_INPUT_BYTES + 1)
        else:
            with open(path, "rb") as f:
                data = f.read(MAX_INPUT_BYTES + 1)
    except OSError as e:
        raise ToolError([f"{prog}: error: cannot read {path!r}: {e.strerror}"]) from None
    if len(data) > MAX_INPUT_BYTES:
        raise ToolError([f"{prog}: error: {path!r} is larger than {MAX_INPUT_BYTES >> 20} MiB; refusing to parse it"])
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        bad = data[e.start:e.start + 1]
        raise ToolError([f"{prog}: error: {path!r} is not UTF-8 text (byte {e.start}: {bad!r})"]) from None
    if "\0" in text:
        raise ToolError([f"{prog}: error: {path!r} holds a NUL byte; expected MLIR text"])
    if (depth := _nesting_depth(text)) > MAX_NESTING:
        raise ToolError([f"{prog}: error: {path!r} nests {depth} levels deep (at most {MAX_NESTING})"])
    return text


def load_module(path: str, context: ir.Context, prog: str = PROG) -> tuple[ir.Module, str]:
    """Parse `path` ('-' = stdin); locations name the file as given. Returns (module, display name)."""
    text = read_source(path, prog)
    try:
        if path == "-":
            return ir.Module.parse(text, context=context), "-"
        return ir.Module.parseFile(path, context=context), path  # (checked above) locations name the file
    except ir.MLIRError as e:
        raise ToolError(mlir_error_lines(e, path)) from None


def verify_lines(module: ir.Module) -> list[str]:
    from ..transforms.verify import VerificationError, verify
    try:
        verify(module)
    except VerificationError as e:
        return list(e.diagnostics)
    return []


def process(args: argparse.Namespace) -> str:
    """Parse, verify, run the pipeline; return the printed module."""
    from ..irutils.context import make_context
    from .passes import PipelineError, parse_pipeline

    ctx = make_context()
    with ctx, ir.Location.unknown():
        module, name = load_module(args.input, ctx)
        if not args.no_verify and (lines := verify_lines(module)):
            raise ToolError(lines)
        if args.verify_only:
            return ""
        try:
            steps = parse_pipeline(args.pass_pipeline or "", ctx)
        except PipelineError as e:
            raise ToolError([f"{PROG}: error: {line}" if i == 0 else line
                             for i, line in enumerate(str(e).splitlines())]) from None
        for step in steps:
            try:
                step.run(module)
            except ir.MLIRError as e:
                raise ToolError(mlir_error_lines(e, name)) from None
            except PipelineError as e:
                raise ToolError([f"{name}: error: {e}"]) from None
            except Exception as e:
                from ..transforms.verify import VerificationError
                if isinstance(e, VerificationError):
                    raise ToolError(e.diagnostics) from None
                msg = e.args[0] if isinstance(e, KeyError) and e.args else e
                raise ToolError([f"{name}: error: pass '{step.name}' failed: {type(e).__name__}: {msg}"]) from None
        try:
            module.operation.verify()
        except ir.MLIRError as e:
            raise ToolError(mlir_error_lines(e, name)) from None
        return module.operation.get_asm(enable_debug_info=args.mlir_print_debuginfo)


class ArgumentParser(argparse.ArgumentParser):
    """Usage errors exit with 1 (like every other error of the tools), not argparse's 2."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(1, f"{self.prog}: error: {message}\n")


def report_errors(prog: str, body: Callable[[], int]) -> int:
    """Run a tool's body: any error becomes a message on stderr and exit code 1, never a traceback."""
    try:
        return body()
    except ToolError as e:
        print("\n".join(e.lines), file=sys.stderr)
    except KeyboardInterrupt:
        print(f"{prog}: error: interrupted", file=sys.stderr)
    except Exception as e:  # last resort: a message, never a traceback
        print(f"{prog}: error: {type(e).__name__}: {e}", file=sys.stderr)
    return 1


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog=PROG, description="Run lean and upstream MLIR passes on a .mlir file.")
    p.add_argument("input", nargs="?", default="-", help="input .mlir file ('-' or nothing: stdin)")
    p.add_argument("--pass-pipeline", "-p", metavar="PIPELINE",
                   help="e.g. 'builtin.module(lean-derive-vjp{func=f wrt=0},canonicalize,lean-to-linalg)'")
    p.add_argument("-o", dest="output", metavar="FILE", help="write the result here instead of stdout")
    p.add_argument("--list-passes", action="store_true", help="list the lean passes and exit")
    p.add_argument("--verify-only", action="store_true", help="parse and verify, print nothing")
    p.add_argument("--no-verify", action="store_true", help="skip the lean verifier on the input")
    p.add_argument("--mlir-print-debuginfo", action="store_true", help="print locations")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def body() -> int:
        if args.list_passes:
            from .passes import list_passes
            print("lean passes (mix freely with upstream passes in --pass-pipeline):")
            print(list_passes())
            return 0
        text = process(args)
        if args.verify_only:
            return 0
        if args.output:
            with open(args.output, "w") as f:
                f.write(text if text.endswith("\n") else text + "\n")
        else:
            sys.stdout.write(text if text.endswith("\n") else text + "\n")
        return 0

    return report_errors(PROG, body)


if __name__ == "__main__":
    sys.exit(main())
