"""lean_mlir: trace Python computations into the `lean` MLIR dialect, derive their JVP and VJP as
MLIR functions, and run them compiled through linalg to LLVM (CPU), to NVVM (GPU), or eagerly."""

from .backends.gpu.driver import DeviceUnavailableError
from .checks import check_grads
from .compiled import CompiledOut, CompiledScalar, clear_cache, compile_out, compile_scalar
from .functional import grad, hessian_vector_product, jit, jvp, value_and_grad, vjp
from .irutils.context import make_context
from .ops import *  # noqa: F403 - the op functions: lm.exp, lm.matmul, ...
from .ops import FUNCTIONS as _functions
from .ops import ShapeError, Spec, Tensor, TraceError, f32, f64
from .options import Options
from .pytree import register_pytree_node, tree_flatten, tree_leaves, tree_map, tree_structure, tree_unflatten
from .trace import trace, trace_ir
from .transforms.verify import VerificationError, verify

__all__ = [
    "CompiledOut", "CompiledScalar", "DeviceUnavailableError", "Options", "ShapeError", "Spec", "Tensor",
    "TraceError", "VerificationError", "check_grads", "clear_cache", "compile_out", "compile_scalar", "f32", "f64",
    "grad", "hessian_vector_product", "jit", "jvp", "make_context", "register_pytree_node", "trace", "trace_ir",
    "tree_flatten", "tree_leaves", "tree_map", "tree_structure", "tree_unflatten", "value_and_grad", "verify", "vjp",
    *_functions,
]
