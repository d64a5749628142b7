"""The lean passes by name, and pipelines that mix them with upstream MLIR passes.

`PASSES` maps a pass name to `(run(module, options), one-line help)`. A pipeline string such as
`builtin.module(lean-derive-vjp{func=f wrt=0},canonicalize,lean-to-linalg,func.func(cse))` is split at
its top-level commas; lean passes run as Python on the module, and each run of consecutive upstream
pieces goes to one `PassManager.parse("builtin.module(...)")`. Adding a pass = adding one entry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from mlir import ir
from mlir.passmanager import PassManager

from ..backends import get_backend
from ..irutils.walk import funcs, symbol_name
from ..options import Options as CompileOptions
from ..transforms.autodiff import cleanup, derive_jvp, derive_vjp
from ..transforms.to_linalg import lower_lean_to_linalg
from ..transforms.verify import verify

Options = dict[str, str]
PassFn = Callable[[ir.Module, Options], None]


class PipelineError(ValueError):
    """A malformed pipeline, an unknown pass or a bad pass option (the message says which)."""


# ---- option helpers
def _check_options(name: str, options: Options, allowed: tuple[str, ...]) -> None:
    bad = sorted(set(options) - set(allowed))
    if bad:
        known = ", ".join(allowed) or "none"
        raise PipelineError(f"pass '{name}' has no option {', '.join(map(repr, bad))} (options: {known})")


def _wrt(name: str, options: Options) -> list[int] | None:
    text = options.get("wrt")
    if text is None:
        return None
    try:
        return [int(i) for i in text.split(",") if i.strip()]
    except ValueError:
        raise PipelineError(f"pass '{name}': wrt must be a comma-separated list of ints, got {text!r}") from None


def _flag(name: str, options: Options, key: str) -> bool:
    text = options.get(key, "false").lower()
    if text not in ("true", "false", "1", "0"):
        raise PipelineError(f"pass '{name}': {key} must be true or false, got {text!r}")
    return text in ("true", "1")


def _targets(module: ir.Module, options: Options) -> list[str]:
    """`func=NAME`, or every function present when the pass starts."""
    names = [symbol_name(f) for f in funcs(module)]
    if "func" in options:
        if options["func"] not in names:
            raise PipelineError(f"no function @{options['func']} in the module (have {', '.join(names) or 'none'})")
        return [options["func"]]
    return names


# ---- the passes
def derive_jvp_pass(module: ir.Module, options: Options) -> None:
    _check_options("lean-derive-jvp", options, ("func", "wrt"))
    wrt = _wrt("lean-derive-jvp", options)
    for name in _targets(module, options):
        derive_jvp(module, name, wrt)


def derive_vjp_pass(module: ir.Module, options: Options) -> None:
    _check_options("lean-derive-vjp", options, ("func", "wrt", "with-primal"))
    wrt = _wrt("lean-derive-vjp", options)
    with_primal = _flag("lean-derive-vjp", options, "with-primal")
    for name in _targets(module, options):
        derive_vjp(module, name, wrt, with_primal=with_primal)


def cleanup_pass(module: ir.Module, options: Options) -> None:
    _check_options("lean-cleanup", options, ())
    for f in funcs(module):
        cleanup(f)


def verify_pass(module: ir.Module, options: Options) -> None:
    _check_options("lean-verify", options, ())
    verify(module)


def to_linalg_pass(module: ir.Module, options: Options) -> None:
    _check_options("lean-to-linalg", options, ())
    lower_lean_to_linalg(module)


def fuse_linalg_pass(module: ir.Module, options: Options) -> None:
    from ..backends.cpu.fusion import fuse
    _check_options("lean-fuse-linalg", options, ())
    fuse(module)


def _lower_pass(backend: str, keys: tuple[str, ...]) -> PassFn:
    """lean-to-linalg, then the back end's lowering (`Backend.lower`); pass options become Options
    fields (`chip=` -> Options.gpu_chip, ...), so the target is validated before anything can abort."""
    def run(module: ir.Module, options: Options) -> None:
        _check_options(f"lean-lower-{backend}", options, keys)
        lower_lean_to_linalg(module)
        prefix = "gpu_" if backend == "gpu" else ""
        get_backend(backend).lower(module, CompileOptions().with_(**{prefix + k: v for k, v in options.items()}))
    return run


PASSES: dict[str, tuple[PassFn, str]] = {
    "lean-derive-jvp": (derive_jvp_pass, "add @f_jvp(x..., dx...) -> (y..., dy...) per function "
                        "(options: func=NAME, wrt=0,1)"),
    "lean-derive-vjp": (derive_vjp_pass, "add @f_vjp(x..., dy...) -> (dx...) per function "
                        "(options: func=NAME, wrt=0,1, with-primal=true)"),
    "lean-cleanup": (cleanup_pass, "CSE and DCE of lean ops (which carry no traits for upstream cse)"),
    "lean-verify": (verify_pass, "check every lean op's shapes, element types and attributes"),
    "lean-to-linalg": (to_linalg_pass, "rewrite lean ops into linalg / tensor / arith / math on tensors"),
    "lean-fuse-linalg": (fuse_linalg_pass, "linalg on tensors: generalize, fuse elementwise producers into "
                         "their users, also multi-use ones and sibling full reductions"),
    "lean-lower-cpu": (_lower_pass("cpu", ()), "lean-to-linalg, then the CPU pipeline down to the LLVM dialect"),
    "lean-lower-gpu": (_lower_pass("gpu", ("chip", "features", "format")),
                       "lean-to-linalg, then GPU kernels (NVVM) + host code in the LLVM dialect "
                       "(options: chip=sm_80, features=+ptx80, format=isa|bin|fatbin)"),
}


# ---- pipeline parsing
def split_top_level(text: str) -> list[tuple[str, int]]:
    """Split at commas outside braces/parens; each piece comes with its 0-based offset in `text`."""
    pieces: list[tuple[str, int]] = []
    depth, start = 0, 0
    for i, ch in enumerate(text):
        if ch in "({":
            depth += 1
        elif ch in ")}":
            depth -= 1
            if depth < 0:
                raise PipelineError(f"unbalanced '{ch}' at column {i + 1} of {text!r}")
        elif ch == "," and depth == 0:
            pieces.append((text[start:i], start))
            start = i + 1
    if depth != 0:
        raise PipelineError(f"unbalanced brackets in {text!r}")
    pieces.append((text[start:], start))
    return [(p.strip(), off + len(p) - len(p.lstrip())) for p, off in pieces if p.strip()]


def parse_options(name: str, text: str) -> Options:
    """`{func=f wrt=0,1}` -> {'func': 'f', 'wrt': '0,1'}."""
    body = text.strip()
    if not body:
        return {}
    if not (body.startswith("{") and body.endswith("}")):
        raise PipelineError(f"pass '{name}': expected options in braces, got {text!r}")
    out: Options = {}
    for item in body[1:-1].split():
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise PipelineError(f"pass '{name}': option {item!r} is not key=value")
        out[key] = value
    return out


@dataclass
class Step:
    """One step of a pipeline: a lean pass with options, or a parsed upstream PassManager."""

    name: str
    run: Callable[[ir.Module], None]


def _strip_anchor(text: str) -> str:
    text = text.strip()
    if text.startswith("builtin.module(") and text.endswith(")"):
        return text[len("builtin.module("):-1]
    return text


def parse_pipeline(text: str, context: ir.Context) -> list[Step]:
    """Parse the whole pipeline up front, so an unknown pass fails before anything runs."""
    steps: list[Step] = []
    upstream: list[str] = []

    def flush() -> None:
        if not upstream:
            return
        pipeline = f"builtin.module({','.join(upstream)})"
        try:
            pm = PassManager.parse(pipeline, context=context)
        except ValueError as e:  # "MLIR Textual PassPipeline Parser:1:14: error: 'x' does not refer ..."
            raise PipelineError(str(e).strip()) from None
        steps.append(Step(",".join(upstream), lambda m, pm=pm: pm.run(m.operation)))
        upstream.clear()

    for piece, _ in split_top_level(_strip_anchor(text)):
        cut = min([i for i in (piece.find("{"), piece.find("(")) if i >= 0], default=len(piece))
        name = piece[:cut].strip()
        if name in PASSES:
            if "(" in piece[cut:cut + 1]:
                raise PipelineError(f"'{name}' is a module pass; it cannot nest {piece[cut:]!r}")
            flush()
            fn = PASSES[name][0]
            options = parse_options(name, piece[cut:])
            steps.append(Step(name, lambda m, fn=fn, options=options: fn(m, options)))
        else:
            upstream.append(piece)
    flush()
    return steps


def run_pipeline(module: ir.Module, text: str) -> None:
    """Run a pipeline string on `module` in place (errors propagate as Python exceptions)."""
    for step in parse_pipeline(text, module.context):
        step.run(module)


def list_passes() -> str:
    width = max(map(len, PASSES))
    return "\n".join(f"  {name:<{width}}  {help_}" for name, (_, help_) in PASSES.items())
