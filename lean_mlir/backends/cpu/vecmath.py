"""Vector math on the CPU: `math.<fn>` on vectors as libmvec calls, and f32 tanh inlined."""

from __future__ import annotations

import ctypes
import ctypes.util
import math
from dataclasses import dataclass
from functools import cache

from mlir import ir
from mlir.dialects import arith
from mlir.dialects import func as func_d
from mlir.dialects import math as math_d
from mlir.dialects import vector as vector_d

from ...irutils.types import element_name
from ...irutils.walk import walk
from .target import CpuTarget

# Vector math: `math.<fn>` on f32/f64 vectors (from the vectorized elementwise/reduction schedules)
# become calls of glibc's libmvec SIMD functions (`_ZGVeN16v_expf`: 16 f32 lanes in one zmm register,
# x86-64 vector function ABI), <= 4 ulp like libm and with libm's inf/nan behaviour. MLIR 22's Python
# wheels expose no pass or transform op for the upstream polynomial approximations (they are only
# reachable from C++ and test passes), and LLVM's loop vectorizer cannot be given a vector library
# through the ExecutionEngine. Without libmvec, AVX-512 or AVX2, the math stays scalar libm calls.
# Options(vector_math=False) (LEAN_MLIR_VECTOR_MATH=0) turns this off.
VECTOR_MATH_OPS: tuple[str, ...] = (
    "sin", "cos", "tan", "exp", "exp2", "expm1", "log", "log2", "log10", "log1p", "tanh", "sinh", "cosh",
    "erf", "erfc", "atan", "asin", "acos", "cbrt",
)


@dataclass(frozen=True)
class VectorMath:
    """The SIMD math functions available to the JIT: name prefix and lanes per element type."""

    library: str  # path or soname, loaded RTLD_GLOBAL so the ExecutionEngine resolves its symbols
    isa: str  # "e": AVX-512 (zmm), "d": AVX2 (ymm)
    lanes: dict[str, int]
    ops: frozenset[str]

    def symbol(self, op: str, elem: str) -> str:
        return f"_ZGV{self.isa}N{self.lanes[elem]}v_{op}{'f' if elem == 'f32' else ''}"


@cache
def vector_math(target: CpuTarget) -> VectorMath | None:
    """libmvec for the target's vector ABI (`CpuTarget.vector_abi`: "e" AVX-512, "d" AVX2), if this
    process can load it (x86-64 glibc)."""
    isa = target.vector_abi
    name = ctypes.util.find_library("mvec")
    if isa is None or name is None:
        return None
    try:
        lib = ctypes.CDLL(name, mode=ctypes.RTLD_GLOBAL)
    except OSError:
        return None
    lanes = {e: target.lanes(e) for e in ("f32", "f64")}
    vm = VectorMath(name, isa, lanes, frozenset())
    ops = frozenset(op for op in VECTOR_MATH_OPS
                    if all(hasattr(lib, vm.symbol(op, e)) for e in ("f32", "f64")))
    return VectorMath(name, isa, lanes, ops) if ops else None


def vector_math_to_calls(module: ir.Module, vm: VectorMath | None) -> int:
    """Rewrite `math.<fn>` on vectors into libmvec calls, chunked to the SIMD width; returns the count.

    Run it after `llvm-request-c-wrappers` (the declarations added here must not get C wrappers).
    """
    if vm is None:
        return 0
    names = {f"math.{op}" for op in vm.ops}
    todo = [op for op in walk(module, names)
            if isinstance(op.results[0].type, ir.VectorType) and len(op.operands) == 1]
    declared: set[str] = set()
    ctx = module.context
    with ctx, ir.Location.unknown(ctx):
        for op in todo:
            vt = ir.VectorType(op.results[0].type)
            elem = element_name(vt.element_type)
            if elem is None or vt.scalable:
                continue
            lanes = vm.lanes[elem]
            n = math.prod(vt.shape)
            if n % lanes:
                continue  # a ragged tail: leave it to the scalar path
            sym = vm.symbol(op.name.split(".", 1)[1], elem)
            chunk_t = ir.VectorType.get([lanes], vt.element_type)
            if sym not in declared:
                declared.add(sym)
                with ir.InsertionPoint.at_block_begin(module.body):
                    func_d.FuncOp(sym, ir.FunctionType.get([chunk_t], [chunk_t]), visibility="private")
            with ir.InsertionPoint(op):
                flat_t = ir.VectorType.get([n], vt.element_type)
                x = op.operands[0]
                if vt.rank != 1:
                    x = vector_d.ShapeCastOp(flat_t, x).result
                call = _exp_call if op.name == "math.exp" else _call
                if n == lanes:
                    y = call(sym, chunk_t, x)
                else:
                    y = None
                    for i in range(0, n, lanes):
                        c = vector_d.ExtractStridedSliceOp(chunk_t, x, [i], [lanes], [1]).result
                        r = call(sym, chunk_t, c)
                        if y is None:
                            y = vector_d.BroadcastOp(flat_t, _zero(vt.element_type)).result
                        y = vector_d.InsertStridedSliceOp(r, y, [i], [1]).result
                if vt.rank != 1:
                    y = vector_d.ShapeCastOp(vt, y).result
            op.results[0].replace_all_uses_with(y)
            op.erase()
    return len(todo)


def _call(sym: str, t: ir.VectorType, x: ir.Value) -> ir.Value:
    return func_d.CallOp([t], sym, [x]).result


# Near and below ln(smallest normal) libmvec's exp takes its slow scalar path for the whole vector (a
# softmax after a -1e9 causal mask, f32[8,4,64,64]: 1.12 ms, 0.16 with the mask at -30; the bound at
# ln(2^-126) exactly still gave 0.74 ms). Lanes below the bound get exp of the bound, then 0: results
# under exp(-87) = 1.6e-38 (f32) and exp(-708) = 3.3e-308 (f64) are flushed to zero.
_EXP_LOW = {"f32": -87.0, "f64": -708.0}


def _exp_call(sym: str, t: ir.VectorType, x: ir.Value) -> ir.Value:
    low = arith.ConstantOp(t, ir.DenseElementsAttr.get_splat(
        t, ir.FloatAttr.get(t.element_type, _EXP_LOW[element_name(t.element_type)]))).result
    y = _call(sym, t, arith.MaximumFOp(x, low).result)
    below = arith.CmpFOp(arith.CmpFPredicate.OLT, x, low).result  # false for NaN: exp(NaN) stays NaN
    zero = arith.ConstantOp(t, ir.DenseElementsAttr.get_splat(t, ir.FloatAttr.get(t.element_type, 0.0))).result
    return arith.SelectOp(below, zero, y).result


# f32 tanh on vectors: a rational approximation inlined as arith ops (Eigen's / XLA's CPU tanh:
# odd degree-13 numerator over even degree-6 denominator on x clamped to [-c, c], x itself for
# |x| < 4e-4) instead of the libmvec call, about 4x faster (a 256x1024 bias+tanh layer: 0.126 ->
# ~0.03 ms CPU). Max error against float64 tanh: see `tests/test_cpu_fast_paths.py` (<= 3e-7 absolute,
# <= 5 ulp away from 0). NaN propagates (minimumf/maximumf); +-inf give +-1. f64 keeps libmvec/libm.
# Options(fast_tanh=False) (LEAN_MLIR_FAST_TANH=0) turns it off.
_TANH_CLAMP = 7.99881172180175781
_TANH_ALPHA = (-2.76076847742355e-16, 2.00018790482477e-13, -8.60467152213735e-11, 5.12229709037114e-08,
               1.48572235717979e-05, 6.37261928875436e-04, 4.89352455891786e-03)  # x^13 .. x^1
_TANH_BETA = (1.19825839466702e-06, 1.18534705686654e-04, 2.26843463243900e-03, 4.89352518554385e-03)  # x^6 .. 1


def fast_tanh_f32(module: ir.Module) -> int:
    """Replace `math.tanh` on f32 vectors by the rational approximation above; returns the count."""
    todo = [op for op in walk(module, "math.tanh")
            if isinstance(op.results[0].type, ir.VectorType)
            and isinstance(ir.VectorType(op.results[0].type).element_type, ir.F32Type)]
    ctx = module.context
    with ctx, ir.Location.unknown(ctx):
        for op in todo:
            vt = ir.VectorType(op.results[0].type)
            f32 = vt.element_type
            with ir.InsertionPoint(op):
                def splat(v: float, vt: ir.VectorType = vt, f32: ir.Type = f32) -> ir.Value:
                    return arith.ConstantOp(vt, ir.DenseElementsAttr.get_splat(vt, ir.FloatAttr.get(f32, v))).result

                a = op.operands[0]
                x = arith.MaximumFOp(arith.MinimumFOp(a, splat(_TANH_CLAMP)).result, splat(-_TANH_CLAMP)).result
                x2 = arith.MulFOp(x, x).result
                p = splat(_TANH_ALPHA[0])
                for c in _TANH_ALPHA[1:]:
                    p = math_d.FmaOp(x2, p, splat(c)).result
                p = arith.MulFOp(x, p).result
                q = splat(_TANH_BETA[0])
                for c in _TANH_BETA[1:]:
                    q = math_d.FmaOp(x2, q, splat(c)).result
                r = arith.DivFOp(p, q).result
                tiny = arith.CmpFOp(arith.CmpFPredicate.OLT, math_d.AbsFOp(a).result, splat(0.0004)).result
                y = arith.SelectOp(tiny, a, r).result
            op.results[0].replace_all_uses_with(y)
            op.erase()
    return len(todo)


def _zero(t: ir.Type) -> ir.Value:
    return arith.ConstantOp(t, ir.FloatAttr.get(t, 0.0)).result
