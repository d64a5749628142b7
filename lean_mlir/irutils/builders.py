"""Small builders of linalg / tensor / arith IR on tensors, shared by the op stanzas' lowerings (all
need an insertion point and a location). They know no lean op."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from mlir import ir
from mlir.dialects import arith, linalg, tensor

# A map of a generic's operand: for each operand dim, a loop index, or None for the constant 0
# (a stretched size-1 dim). `None` as the whole map means the identity.
Dims = Sequence[int | None]


# ---- small builders (all need an insertion point and a location)
def tensor_type(shape: Sequence[int], elem: ir.Type) -> ir.RankedTensorType:
    return ir.RankedTensorType.get(list(shape), elem)


def empty(t: ir.RankedTensorType) -> ir.Value:
    return tensor.empty(list(t.shape), t.element_type)


def scalar(elem: ir.Type, v: float) -> ir.Value:
    return arith.constant(elem, float(v))


def full(t: ir.RankedTensorType, v: float) -> ir.Value:
    """linalg.fill of tensor.empty with the constant `v` (+-inf allowed)."""
    return linalg.fill(scalar(t.element_type, v), outs=[empty(t)])


def zeros(t: ir.RankedTensorType) -> ir.Value:
    return full(t, 0.0)


def _iter(kind: str) -> ir.Attribute:
    return ir.Attribute.parse(f"#linalg.iterator_type<{kind}>")


def affine_map(n_loops: int, exprs: Sequence[ir.AffineExpr | int | None]) -> ir.AffineMap:
    """(d0..dn) -> exprs; an int i is the loop index d_i, None the constant 0."""
    out = [ir.AffineConstantExpr.get(0) if e is None else ir.AffineDimExpr.get(e) if isinstance(e, int) else e
           for e in exprs]
    return ir.AffineMap.get(n_loops, 0, out)


def generic(inputs: Sequence[ir.Value], in_maps: Sequence[ir.AffineMap], init: ir.Value,
            out_map: ir.AffineMap, iterators: Sequence[str],
            body: Callable[..., ir.Value]) -> ir.Value:
    """One linalg.generic; `body(*input_scalars, acc)` returns the yielded scalar."""
    t = ir.RankedTensorType(init.type)
    maps = ir.ArrayAttr.get([ir.AffineMapAttr.get(m) for m in [*in_maps, out_map]])
    op = linalg.GenericOp([t], list(inputs), [init], maps, ir.ArrayAttr.get([_iter(k) for k in iterators]))
    elems = [ir.RankedTensorType(v.type).element_type for v in inputs] + [t.element_type]
    block = op.regions[0].blocks.append(*elems)
    with ir.InsertionPoint(block):
        linalg.YieldOp([body(*block.arguments)])
    return op.result


def parallel(body: Callable[..., ir.Value], inputs: Sequence[ir.Value], result_type: ir.RankedTensorType,
             dims: Sequence[Dims | None] | None = None) -> ir.Value:
    """All-parallel generic over `result_type`'s shape; `dims[i]` maps input i (None: identity).

    `body` gets one scalar per input (not the output's).
    """
    r = result_type.rank
    dims = dims or [None] * len(inputs)
    maps = [affine_map(r, range(r) if d is None else d) for d in dims]
    return generic(inputs, maps, empty(result_type), affine_map(r, range(r)), ["parallel"] * r,
                   lambda *a: body(*a[:-1]))


def lower_elementwise(body: Callable[..., ir.Value], operands: Sequence[ir.Value],
                      result_type: ir.RankedTensorType, **attrs: Any) -> ir.Value:
    """The one lowering of every elementwise op: identity maps, parallel iterators."""
    return parallel(lambda *xs: body(*xs, **attrs), operands, result_type)


def broadcast_dims(shape: Sequence[int], target: Sequence[int]) -> list[int | None]:
    """NumPy broadcasting of `shape` into `target` as a generic input map."""
    lead = len(target) - len(shape)
    return [None if d == 1 and target[lead + i] != 1 else lead + i for i, d in enumerate(shape)]


def broadcast(x: ir.Value, result_type: ir.RankedTensorType) -> ir.Value:
    """NumPy broadcast_to as a parallel generic (new leading dims, size-1 dims stretched)."""
    shape = ir.RankedTensorType(x.type).shape
    return parallel(lambda v: v, [x], result_type, [broadcast_dims(shape, result_type.shape)])


def reduce(x: ir.Value, axes: Sequence[int], init: float,
           combine: Callable[[ir.Value, ir.Value], ir.Value]) -> ir.Value:
    """linalg.reduce over `axes` (dropped from the shape), from a fill of `init`."""
    t = ir.RankedTensorType(x.type)
    out_t = tensor_type([d for i, d in enumerate(t.shape) if i not in axes], t.element_type)
    red = linalg.ReduceOp([out_t], [x], [full(out_t, init)], list(axes))
    block = red.regions[0].blocks.append(t.element_type, t.element_type)
    with ir.InsertionPoint(block):
        linalg.YieldOp([combine(block.arguments[0], block.arguments[1])])
    return red.result


def reduce_sum(x: ir.Value, axes: Sequence[int]) -> ir.Value:
    return reduce(x, axes, 0.0, arith.addf)


def reduce_max(x: ir.Value, axes: Sequence[int]) -> ir.Value:
    """Max with -inf init; NaN propagates like np.max."""
    return reduce(x, axes, float("-inf"), arith.maximumf)


def reshape(x: ir.Value, result_type: ir.RankedTensorType) -> ir.Value:
    """C-order reshape: collapse to 1-D, then expand (to or from rank 0: one reassociation [])."""
    src = ir.RankedTensorType(x.type)
    shape = list(result_type.shape)
    if list(src.shape) == shape:
        return x
    if src.rank == 0:
        return tensor.expand_shape(result_type, x, [], [], shape)
    if result_type.rank == 0:
        return tensor.collapse_shape(result_type, x, [])
    n = math.prod(src.shape)
    flat = x if src.rank == 1 else tensor.collapse_shape(tensor_type([n], src.element_type), x,
                                                         [list(range(src.rank))])
    return flat if result_type.rank == 1 else tensor.expand_shape(result_type, flat, [list(range(len(shape)))],
                                                                  [], shape)


def insert(src: ir.Value, dest: ir.Value, offsets: Sequence[int],
           strides: Sequence[int] | None = None) -> ir.Value:
    """tensor.insert_slice of all of `src` into `dest` at static offsets (and strides).

    An empty `src` leaves `dest` as is (the slice verifier rejects offset == dim even for size 0)."""
    shape = list(ir.RankedTensorType(src.type).shape)
    if 0 in shape:
        return dest
    return tensor.insert_slice(src, dest, [], [], [], list(offsets), shape, list(strides or [1] * len(shape)))


def extract(x: ir.Value, offsets: Sequence[int], result_type: ir.RankedTensorType) -> ir.Value:
    """tensor.extract_slice (unit strides) of `result_type`'s shape at static offsets (empty: tensor.empty)."""
    shape = list(result_type.shape)
    if 0 in shape:
        return empty(result_type)
    return tensor.extract_slice(result_type, x, [], [], [], list(offsets), shape, [1] * len(shape))


