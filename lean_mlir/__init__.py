"""lean_mlir: trace Python computations into the `lean` MLIR dialect, derive their JVP and VJP as
MLIR functions, and run them compiled through linalg to LLVM (CPU), to NVVM (GPU), or eagerly."""

from .checks import check_grads
from .compiled import CompiledOut, CompiledScalar, clear_cache, compile_out, compile_scalar
from .context import make_context
from .lower.gpu import DeviceUnavailableError
from .ops import *  # noqa: F403 - the op functions: lm.exp, lm.matmul, ...
from .ops import __all__ as _ops_all
from .ops.core import ShapeError, Spec, f32, f64
from .trace import Tensor, TraceError, trace, trace_ir
from .verify import VerificationError, verify

__all__ = [
    "CompiledOut", "CompiledScalar", "DeviceUnavailableError", "ShapeError", "Spec", "Tensor", "TraceError",
    "VerificationError", "check_grads", "clear_cache", "compile_out", "compile_scalar", "f32", "f64",
    "make_context", "trace", "trace_ir", "verify", *_ops_all,
]
