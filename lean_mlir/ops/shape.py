"""Shape ops: broadcast_to, reshape, transpose, reverse, concatenate, and slice / pad (each other's adjoints)."""

from __future__ import annotations

import builtins
import math
from collections.abc import Sequence

import numpy as np
from mlir import ir
from mlir.dialects import linalg

from ..irutils import builders as LL
from .core import OpDef, ShapeError, Spec, check, normalize_axis, register, same_dtype
from .tensor import Tensor, emit, expect_tensor, trace_error


# ---- broadcast_to: NumPy rules (new leading axes, size-1 axes stretched); its VJP sums them back
def _broadcast_infer(x: Spec, shape: tuple[int, ...]) -> Spec:
    lead = len(shape) - x.rank
    ok = lead >= 0 and all(d in (1, t) for d, t in zip(x.shape, shape[lead:], strict=True))
    check(ok, f"cannot broadcast shape {x.shape} to {shape}")
    return Spec(shape, x.dtype)


def unbroadcast(g: Tensor, shape: tuple[int, ...]) -> Tensor:
    """Sum `g` over the axes that broadcasting `shape` to g.shape created or stretched."""
    if g.shape == tuple(shape):
        return g
    from .reduce import sum
    lead = g.ndim - len(shape)
    axes = [i for i in range(g.ndim) if i < lead or (shape[i - lead] == 1 and g.shape[i] != 1)]
    return reshape(sum(g, axes, keepdims=True), shape)


def _lower_broadcast_to(ops: list[ir.Value], t: ir.RankedTensorType) -> ir.Value:
    return LL.broadcast(ops[0], t)


register(OpDef(
    "broadcast_to", ("x",), _broadcast_infer, lambda x, shape: np.broadcast_to(x, shape).copy(),
    jvp=(lambda t, x, y, a: broadcast_to(t, y.shape),), vjp=(lambda g, x, y, a: unbroadcast(g, x.shape),),
    shape_from_result=True, lower=_lower_broadcast_to))


def broadcast_to(x: Tensor, shape: Sequence[int]) -> Tensor:
    """NumPy's broadcast_to (lean.broadcast_to); a no-op when the shape already matches."""
    shape = tuple(int(d) for d in shape)
    return x if expect_tensor(x, "broadcast_to").shape == shape else emit("broadcast_to", [x], shape=shape)


# ---- reshape: C order
def _reshape_infer(x: Spec, shape: tuple[int, ...]) -> Spec:
    check(math.prod(shape) == math.prod(x.shape), f"cannot reshape {x.shape} to {shape}")
    return Spec(shape, x.dtype)


register(OpDef(
    "reshape", ("x",), _reshape_infer, lambda x, shape: x.reshape(shape).copy(),
    jvp=(lambda t, x, y, a: reshape(t, y.shape),), vjp=(lambda g, x, y, a: reshape(g, x.shape),),
    shape_from_result=True, lower=lambda ops, t: LL.reshape(ops[0], t)))


def reshape(x: Tensor, shape: Sequence[int] | int) -> Tensor:
    """NumPy's reshape in C order, with one -1 allowed (lean.reshape)."""
    x = expect_tensor(x, "reshape")
    shape = (shape,) if isinstance(shape, int) else tuple(int(d) for d in shape)
    if shape.count(-1) == 1:
        known = math.prod([d for d in shape if d != -1])
        check(known > 0 and math.prod(x.shape) % known == 0, f"cannot reshape {x.shape} to {shape}")
        shape = tuple(math.prod(x.shape) // known if d == -1 else d for d in shape)
    return x if x.shape == shape else emit("reshape", [x], shape=shape)


# ---- transpose
def _transpose_infer(x: Spec, permutation: tuple[int, ...]) -> Spec:
    check(sorted(permutation) == list(range(x.rank)), f"permutation {permutation} is not one of rank {x.rank}")
    return Spec(tuple(x.shape[p] for p in permutation), x.dtype)


def _lower_transpose(ops: list[ir.Value], t: ir.RankedTensorType, permutation: tuple[int, ...]) -> ir.Value:
    if list(permutation) == sorted(permutation):  # identity (rank 0: linalg.transpose aborts)
        return ops[0]
    return linalg.transpose(ops[0], outs=[LL.empty(t)], permutation=list(permutation)).results[0]


register(OpDef(
    "transpose", ("x",), _transpose_infer, lambda x, permutation: np.transpose(x, permutation).copy(),
    jvp=(lambda t, x, y, a: transpose(t, a["permutation"]),),
    vjp=(lambda g, x, y, a: transpose(g, tuple(np.argsort(a["permutation"]))),),
    attrs={"permutation": "ints"}, lower=_lower_transpose))


def transpose(x: Tensor, axes: Sequence[int] | None = None) -> Tensor:
    """NumPy's transpose: reverses the axes by default (lean.transpose)."""
    x = expect_tensor(x, "transpose")
    try:
        perm = tuple(range(x.ndim))[::-1] if axes is None else tuple(normalize_axis(a, x.ndim) for a in axes)
        check(len(perm) == x.ndim, f"axes {tuple(axes or ())} do not match rank {x.ndim} (NumPy's transpose "
              "takes a permutation of all axes)")
    except ShapeError as e:
        raise trace_error("transpose", e) from None
    return x if perm == tuple(range(x.ndim)) else emit("transpose", [x], permutation=perm)


def swap_last(x: Tensor) -> Tensor:
    """Transpose of the last two axes (matrix transpose of each batch element)."""
    return transpose(x, tuple(range(x.ndim - 2)) + (x.ndim - 1, x.ndim - 2))




# ---- reverse: NumPy's flip over `axes` (negative slice steps); its own JVP and VJP
def _reverse_infer(x: Spec, axes: tuple[int, ...]) -> Spec:
    check(len(set(axes)) == len(axes) and all(0 <= a < x.rank for a in axes),
          f"axes {axes} must be distinct axes of rank {x.rank}")
    return x


def _lower_reverse(ops: list[ir.Value], t: ir.RankedTensorType, axes: tuple[int, ...]) -> ir.Value:
    """One parallel generic reading x[..., n - 1 - i, ...] on the reversed axes."""
    exprs = [ir.AffineExpr.__add__(ir.AffineDimExpr.get(i) * -1, ir.AffineConstantExpr.get(n - 1)) if i in axes
             else i for i, n in enumerate(t.shape)]
    return LL.parallel(lambda v: v, ops, t, [exprs])


register(OpDef(
    "reverse", ("x",), _reverse_infer, lambda x, axes: np.flip(x, axes).copy(),
    jvp=(lambda t, x, y, a: reverse(t, a["axes"]),), vjp=(lambda g, x, y, a: reverse(g, a["axes"]),),
    attrs={"axes": "ints"}, lower=_lower_reverse))


def reverse(x: Tensor, axes: Sequence[int] | int | None = None) -> Tensor:
    """NumPy's flip: the elements of `axes` (default: all) in reverse order (lean.reverse)."""
    x = expect_tensor(x, "reverse")
    try:
        axes = range(x.ndim) if axes is None else (axes,) if isinstance(axes, int) else axes
        norm = tuple(sorted(normalize_axis(a, x.ndim) for a in axes))
    except ShapeError as e:
        raise trace_error("reverse", e) from None
    norm = tuple(a for a in norm if x.shape[a] > 1)  # a length-1 axis reversed is itself
    return emit("reverse", [x], axes=norm) if norm else x


# ---- concatenate (binary; IRDL binds a variadic operand to one type)
def _concat_infer(a: Spec, b: Spec, axis: int) -> Spec:
    same_dtype(a, b)
    check(a.rank == b.rank and a.rank > 0, f"ranks must agree and be positive, got {a.rank} and {b.rank}")
    check(0 <= axis < a.rank, f"axis {axis} is out of range for rank {a.rank}")
    check(all(x == y for i, (x, y) in enumerate(zip(a.shape, b.shape, strict=True)) if i != axis),
          f"shapes {a.shape} and {b.shape} differ outside axis {axis}")
    return Spec(tuple(d + b.shape[i] if i == axis else d for i, d in enumerate(a.shape)), a.dtype)


def _offset(rank: int, axis: int, n: int) -> tuple[int, ...]:
    return tuple(n if i == axis else 0 for i in range(rank))


def _lower_concatenate(ops: list[ir.Value], t: ir.RankedTensorType, axis: int) -> ir.Value:
    a, b = ops
    out = LL.insert(a, LL.empty(t), (0,) * t.rank)
    return LL.insert(b, out, _offset(t.rank, axis, ir.RankedTensorType(a.type).shape[axis]))


register(OpDef(
    "concatenate", ("lhs", "rhs"), _concat_infer, lambda a, b, axis: np.concatenate([a, b], axis),
    jvp=(lambda t, a, b, y, at: pad(t, (0,) * a.ndim, y.shape),
         lambda t, a, b, y, at: pad(t, _offset(a.ndim, at["axis"], a.shape[at["axis"]]), y.shape)),
    vjp=(lambda g, a, b, y, at: slice(g, (0,) * a.ndim, a.shape),
         lambda g, a, b, y, at: slice(g, _offset(a.ndim, at["axis"], a.shape[at["axis"]]), b.shape)),
    attrs={"axis": "int"}, lower=_lower_concatenate))


def concatenate(xs: Sequence[Tensor], axis: int = 0) -> Tensor:
    """NumPy's concatenate, as a chain of binary lean.concatenate ops."""
    xs = list(xs)
    check(len(xs) > 0, "concatenate needs at least one array")
    xs = [expect_tensor(x, "concatenate", i) for i, x in enumerate(xs)]
    axis = normalize_axis(axis, xs[0].ndim)
    out = xs[0]
    for x in xs[1:]:
        out = emit("concatenate", [out, x], axis=axis)
    return out


# ---- slice (unit stride) and pad (zeros): the result type gives the extent
def _window_check(small: Spec, big: tuple[int, ...], start: tuple[int, ...], what: str) -> None:
    check(len(start) == small.rank == len(big), f"{what}: start {start} does not fit rank {small.rank}")
    check(all(0 <= s and s + n <= m for s, n, m in zip(start, small.shape, big, strict=True)),
          f"{what}: window at {start} of shape {small.shape} exceeds {big}")


def _slice_infer(x: Spec, start: tuple[int, ...], shape: tuple[int, ...]) -> Spec:
    out = Spec(shape, x.dtype)
    _window_check(out, x.shape, start, "slice")
    return out


def _pad_infer(x: Spec, low: tuple[int, ...], shape: tuple[int, ...]) -> Spec:
    _window_check(x, shape, low, "pad")
    return Spec(shape, x.dtype)


def _np_slice(x: np.ndarray, start: tuple[int, ...], shape: tuple[int, ...]) -> np.ndarray:
    return x[tuple(np.s_[s:s + n] for s, n in zip(start, shape, strict=True))].copy()


def _np_pad(x: np.ndarray, low: tuple[int, ...], shape: tuple[int, ...]) -> np.ndarray:
    out = np.zeros(shape, x.dtype)
    out[tuple(np.s_[s:s + n] for s, n in zip(low, x.shape, strict=True))] = x
    return out


register(OpDef(
    "slice", ("x",), _slice_infer, _np_slice,
    jvp=(lambda t, x, y, a: slice(t, a["start"], y.shape),),
    vjp=(lambda g, x, y, a: pad(g, a["start"], x.shape),),
    attrs={"start": "ints"}, shape_from_result=True,
    lower=lambda ops, t, start: LL.extract(ops[0], start, t)))
register(OpDef(
    "pad", ("x",), _pad_infer, _np_pad,
    jvp=(lambda t, x, y, a: pad(t, a["low"], y.shape),),
    vjp=(lambda g, x, y, a: slice(g, a["low"], x.shape),),
    attrs={"low": "ints"}, shape_from_result=True,
    lower=lambda ops, t, low: LL.insert(ops[0], LL.zeros(t), low)))


def slice(x: Tensor, start: Sequence[int], shape: Sequence[int]) -> Tensor:  # noqa: A001
    """The window of `shape` at `start` (unit stride), i.e. x[s0:s0+n0, ...] (lean.slice)."""
    start, shape = tuple(map(int, start)), tuple(map(int, shape))
    return x if shape == expect_tensor(x, "slice").shape else emit("slice", [x], shape=shape, start=start)


def pad(x: Tensor, low: Sequence[int], shape: Sequence[int]) -> Tensor:
    """Zero-pad `x` into `shape`, with `low` elements before it on each axis (lean.pad)."""
    low, shape = tuple(map(int, low)), tuple(map(int, shape))
    return x if shape == expect_tensor(x, "pad").shape else emit("pad", [x], shape=shape, low=low)


# ---- front-end compositions (no op of their own): swapaxes, NumPy basic indexing
def swapaxes(x: Tensor, a: int, b: int) -> Tensor:
    """NumPy's swapaxes (torch's transpose(a, b)): a transpose exchanging two axes."""
    x = expect_tensor(x, "swapaxes")
    try:
        a, b = normalize_axis(a, x.ndim), normalize_axis(b, x.ndim)
    except ShapeError as e:
        raise trace_error("swapaxes", e) from None
    perm = list(range(x.ndim))
    perm[a], perm[b] = b, a
    return transpose(x, perm)


def _index_items(key: object, rank: int) -> list[object]:
    """`key` as one item per axis (Ellipsis expanded to full slices) plus the Nones, in order."""
    items = list(key) if isinstance(key, tuple) else [key]
    for item in items:
        if not (item is None or item is Ellipsis or isinstance(item, builtins.slice | np.ndarray)
                or (isinstance(item, int | np.integer) and not isinstance(item, bool | np.bool_))):
            what = type(item).__name__
            arrays = (" (indices held in a traced value need lm.take, with integer tensors)" if what == "Tensor"
                      else "")
            raise IndexError(f"only integers, slices (`:`), ellipsis (`...`), None and constant integer arrays are "
                             f"valid indices of a traced value, got {what}{arrays}")
    if items.count(Ellipsis) > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")
    used = sum(item is not None and item is not Ellipsis for item in items)
    if used > rank:
        raise IndexError(f"too many indices: the value has rank {rank}, {used} were indexed")
    fill = [builtins.slice(None)] * (rank - used)
    if Ellipsis in items:
        i = items.index(Ellipsis)
        return items[:i] + fill + items[i + 1:]
    return items + fill


def _take_constant(x: Tensor, indices: np.ndarray, axis: int) -> Tensor:
    """x.take(indices, axis) for constant indices: one slice per run of consecutive indices, concatenated
    (so its VJP is the pads' sum: a scatter-add)."""
    if not 0 <= axis < x.ndim:
        raise IndexError(f"too many indices: the value has rank {x.ndim}")
    n = x.shape[axis]
    bad = indices[(indices < -n) | (indices >= n)]
    if bad.size:
        raise IndexError(f"index {int(bad[0])} is out of bounds for axis {axis} with size {n}")
    idx = [int(i) % n for i in indices]
    if not idx:
        raise IndexError("an empty index array selects nothing (zero-size results are not traced values)")
    runs, first = [], 0
    for k in range(1, len(idx) + 1):
        if k == len(idx) or idx[k] != idx[k - 1] + 1:
            runs.append((idx[first], k - first))
            first = k
    parts = [slice(x, [lo if a == axis else 0 for a in range(x.ndim)],
                   [count if a == axis else d for a, d in enumerate(x.shape)]) for lo, count in runs]
    return concatenate(parts, axis)


def getitem(x: Tensor, key: object) -> Tensor:
    """NumPy basic indexing of a traced value: integers (negative from the end), slices with any
    step, None (a new axis) and Ellipsis, as unit-stride lean.slice windows; a step s > 1 pads the
    window to a multiple of s, reshapes each such axis into (count, s) and keeps index 0; a negative
    step reads the same elements forward and reverses them (lean.reverse). One constant 1-D integer
    array (a list or a NumPy array) may index one axis: slices of its runs, concatenated."""
    x = expect_tensor(x, "getitem")
    key = list(key) if isinstance(key, tuple) else [key]
    key = [np.asarray(k) if isinstance(k, list) else k for k in key]
    arrays = [i for i, k in enumerate(key) if isinstance(k, np.ndarray)]
    if arrays:
        if len(arrays) > 1:
            raise IndexError("only one integer-array index per key is available on traced values")
        i = arrays[0]
        advanced = [j for j, k in enumerate(key) if j == i or (isinstance(k, int | np.integer)
                                                              and not isinstance(k, bool | np.bool_))]
        if advanced != list(range(advanced[0], advanced[-1] + 1)):
            raise IndexError("an array index and integer indices apart from it (NumPy moves such a result's axes "
                             "first): index in two steps, e.g. x[0][:, idx]")
        if key[i].ndim != 1 or key[i].dtype.kind not in "iu":
            raise IndexError(f"an array index must be a 1-D array of integers, got {key[i].dtype.name} of shape "
                             f"{key[i].shape}")
        axis = sum(k is not None and k is not Ellipsis for k in key[:i])
        if Ellipsis in key[:i]:
            axis = x.ndim - sum(k is not None and k is not Ellipsis for k in key[i:])
        x = _take_constant(x, key[i], axis)
        key[i] = builtins.slice(None)
    start, window, counts, steps, out_shape, flipped = [], [], [], [], [], []
    axis = 0
    for item in _index_items(tuple(key), x.ndim):
        if item is None:
            out_shape.append(1)
            continue
        n = x.shape[axis]
        if isinstance(item, builtins.slice):
            lo, hi, step = item.indices(n)
            count = len(range(lo, hi, step))
            if step < 0 and count:  # the same elements read forward, then reversed
                lo, step = lo + step * (count - 1), -step
                flipped.append(axis)
            out_shape.append(count)
        else:
            i = int(item)
            if not -n <= i < n:
                raise IndexError(f"index {i} is out of bounds for axis {axis} with size {n}")
            lo, step, count = i % n, 1, 1
        start.append(lo if count else 0)
        window.append(step * (count - 1) + 1 if count else 0)
        counts.append(count)
        steps.append(step)
        axis += 1
    y = slice(x, start, window)
    strided = [s > 1 and c > 1 for s, c in zip(steps, counts, strict=True)]
    if any(strided):
        padded = [c * s if st else w for w, c, s, st in zip(window, counts, steps, strided, strict=True)]
        y = pad(y, [0] * len(padded), padded)
        split = [d for w, c, s, st in zip(padded, counts, steps, strided, strict=True)
                 for d in ((c, s) if st else (w,))]
        kept = [d for c, st in zip(counts, strided, strict=True) for d in ((c, 1) if st else (c,))]
        y = slice(reshape(y, split), [0] * len(split), kept)
        y = reshape(y, counts)
    if flipped:
        y = reverse(reshape(y, counts), flipped)
    return reshape(y, tuple(out_shape))


def expand_dims(x: Tensor, axis: int | Sequence[int]) -> Tensor:
    """NumPy's expand_dims: new size-1 axes at `axis` (positions in the result)."""
    x = expect_tensor(x, "expand_dims")
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    rank = x.ndim + len(axes)
    try:
        new = sorted(normalize_axis(a, rank) for a in axes)
        check(len(set(new)) == len(new), f"repeated axis in {axes}")
    except ShapeError as e:
        raise trace_error("expand_dims", e) from None
    dims = iter(x.shape)
    return reshape(x, tuple(1 if a in new else next(dims) for a in range(rank)))


def squeeze(x: Tensor, axis: int | Sequence[int] | None = None) -> Tensor:
    """NumPy's squeeze: drop the size-1 axes (those of `axis`, which must have size 1)."""
    x = expect_tensor(x, "squeeze")
    try:
        axes = [a for a, d in enumerate(x.shape) if d == 1] if axis is None else \
            [normalize_axis(a, x.ndim) for a in ((axis,) if isinstance(axis, int) else axis)]
        check(all(x.shape[a] == 1 for a in axes), f"cannot squeeze axes {axis} of shape {x.shape}: size is not 1")
    except ShapeError as e:
        raise trace_error("squeeze", e) from None
    return reshape(x, tuple(d for a, d in enumerate(x.shape) if a not in axes))


def stack(xs: Sequence[Tensor], axis: int = 0) -> Tensor:
    """NumPy's stack: the values (of one shape) along a new axis."""
    xs = [expect_tensor(x, "stack", i) for i, x in enumerate(xs)]
    if not xs:
        raise trace_error("stack", ShapeError("stack needs at least one array"))
    if len({x.shape for x in xs}) != 1:
        raise trace_error("stack", ShapeError(f"all values must have one shape, got {[x.shape for x in xs]}"))
    return concatenate([expand_dims(x, axis) for x in xs], axis)


def split(x: Tensor, sections: int | Sequence[int], axis: int = 0) -> list[Tensor]:
    """NumPy's split: `sections` equal parts, or the parts between the given indices, along `axis`."""
    x = expect_tensor(x, "split")
    try:
        axis = normalize_axis(axis, x.ndim)
        n = x.shape[axis]
        if isinstance(sections, int):
            check(sections > 0 and n % sections == 0, f"{n} elements do not split into {sections} equal parts")
            bounds = [n // sections * i for i in range(sections + 1)]
        else:
            bounds = [0, *[builtins.min(builtins.max(int(i), 0), n) for i in sections], n]
            check(bounds == sorted(bounds), f"split indices {list(sections)} must be increasing")
    except ShapeError as e:
        raise trace_error("split", e) from None
    lead = (builtins.slice(None),) * axis
    return [x[(*lead, builtins.slice(lo, hi))] for lo, hi in zip(bounds, bounds[1:], strict=False)]


def cumsum(x: Tensor, axis: int = -1) -> Tensor:
    """NumPy's cumsum along `axis`, as log2(n) rounds of shifted adds (Hillis-Steele), so its JVP and
    VJP are shifted adds too (the VJP is the reversed cumulative sum)."""
    x = expect_tensor(x, "cumsum")
    try:
        axis = normalize_axis(axis, x.ndim)
    except ShapeError as e:
        raise trace_error("cumsum", e) from None
    n, y, shift = x.shape[axis], x, 1
    while shift < n:
        kept = tuple(n - shift if a == axis else d for a, d in enumerate(x.shape))
        moved = pad(slice(y, (0,) * x.ndim, kept), tuple(shift if a == axis else 0 for a in range(x.ndim)), x.shape)
        y, shift = y + moved, shift * 2
    return y
