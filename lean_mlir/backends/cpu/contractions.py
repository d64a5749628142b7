"""Every contraction into the forms the matmul schedule takes (CPU back end, after the fusion).

The front end lowers `a @ b` to `linalg.matmul` / `batch_matmul` (rank > 3: the batch dims collapsed
around a batch_matmul), with the broadcast of batch dims and the transposes as copies of their own.
What reaches the back end after the fusion is more varied: the fusion propagates a rank-4 matmul's
reshapes back through it and fuses a transpose into it (`q @ k^T` is a rank-5 generic), a derivative
transposes a result (`dw = (x^T g)^T`) or sums one over broadcast batch dims (the VJP of `x[b] @ w`).

`canonicalize_contractions` reads every statically shaped mul-add contraction, named or generic, as
loop dims of four groups: batch (in C and both inputs, or all missing from one, which is broadcast),
rows (C and A), columns (C and B) and the contraction (A and B), with the copies around it folded in:
a transpose or broadcast that produces an input, a transpose or a sum over some of its dims that
consumes the result. It is rewritten as one `linalg.matmul` / `linalg.batch_matmul` between reshapes
(a group of several dims collapsed into one):

    x[b, t, c] @ w[c, d]         2-D matmul over b * t rows (the copy of w per b folded away)
    w[m, k] @ x[b, k, n]         batch_matmul, A broadcast (no batch dim in its map)
    q[b, h, t, d] @ k^T          batch_matmul over b * h, B packed (below)
    h^T @ g                      A read stored k x m (no copy)
    sum_b (x[b]^T @ g[b])        one 2-D A^T B, contracting over b * t
    (x^T g)^T                    g^T x, A read stored k x m (no transposed copy of the result)

The register tile reads a row of B per k step, so a B stored n x k (`g @ w.T`, `q @ k^T`) is packed:
a `linalg.transpose` to k x n in front of the matmul, which the outliner moves into the kernel and the
matmul schedule fuses into its cache tile loops (each tile of B transposed in registers just before the
register tiles read it from L2). A's groups or B's interleaved in memory take a copy in the kernel's
order. The choice between folding a copy and leaving it is the one with fewer copies left.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import groupby, product

from mlir import ir
from mlir.dialects import arith, linalg

from ...irutils import builders as LL
from ...irutils.linalg import defining_op, indexing_maps, iterator_types, loop_sizes, matmul_maps, zero_fill
from ...irutils.walk import walk

CONTRACTIONS = ("linalg.matmul", "linalg.batch_matmul", "linalg.generic")


def _dims(m: ir.AffineMap) -> list[int] | None:
    """The loop index of each result of a map; None unless every result is a distinct loop index."""
    if not all(isinstance(e, ir.AffineDimExpr) for e in m.results):
        return None
    d = [ir.AffineDimExpr(e).position for e in m.results]
    return d if len(set(d)) == len(d) else None


def _body(op: ir.Operation) -> list[ir.Operation]:
    return [o.operation for o in op.regions[0].blocks[0].operations]


def _of(op: ir.Operation, name: str, x: ir.Value, y: ir.Value) -> bool:
    """`op` is `name` of x and y, in either order."""
    return op.name == name and list(op.operands) in ([x, y], [y, x])


def _mul_add(op: ir.Operation) -> bool:
    """The body yields acc + x * y of the two inputs x, y and the output's acc."""
    ops = _body(op)
    if len(ops) != 3:
        return False
    x, y, acc = op.regions[0].blocks[0].arguments
    mul, add, yld = ops
    return _of(mul, "arith.mulf", x, y) and _of(add, "arith.addf", acc, mul.result) and yld.operands[0] == add.result


def _slice(root: ir.Value, body: list[ir.Operation]) -> list[ir.Operation] | None:
    """The body ops `root` is computed by, in body order; None if `root` is not computed in the body."""
    seen: list[ir.Operation] = []
    stack = [root]
    while stack:
        v = stack.pop()
        o = defining_op(v)
        if o is None or all(o != s for s in body) or any(o == s for s in seen):
            continue
        seen.append(o)
        stack.extend(o.operands)
    return [o for o in body if any(o == s for s in seen)] or None


def _depends_on(ops: list[ir.Operation], args: list[ir.Value]) -> list[int]:
    """Which of the block arguments `args` the ops read."""
    return sorted({i for o in ops for v in o.operands for i, a in enumerate(args) if v == a})


def _clone_into(chain: list[ir.Operation], mapping: list[tuple[ir.Value, ir.Value]], root: ir.Value) -> ir.Value:
    """Clone `chain` at the insertion point, reading mapping's new values for its old ones; `root`'s
    clone."""
    for o in chain:
        c = o.clone()
        for k, operand in enumerate(c.operands):
            new = next((n for old, n in mapping if old == operand), None)
            if new is not None:
                c.operands[k] = new
        mapping = mapping + list(zip(o.results, c.results, strict=True))
    return next(n for old, n in mapping if old == root)


def _expr_dims(e: ir.AffineExpr) -> set[int]:
    """The loop dims an affine expression reads."""
    if isinstance(e, ir.AffineDimExpr):
        return {e.position}
    if isinstance(e, ir.AffineBinaryExpr):
        return _expr_dims(e.lhs) | _expr_dims(e.rhs)
    return set()


def split_prologues(op: ir.Operation) -> bool:
    """A contraction generic whose body computes acc + f(xs) * g(ys) (the fusion moved elementwise
    producers of its inputs into it: a bias add, a layer norm, a GELU, a softmax before the matmul),
    or that reads an input through affine expressions (a convolution's windows, x[n, c, i*s + p, ...]),
    gets f and g (or the window copy: im2col) back out as generics over the loop dims their inputs
    span, computed once per element instead of once per multiply-add; the contraction is then a plain
    mul-add of two inputs read through plain loop dims. Returns whether it split anything."""
    if op.name != "linalg.generic" or len(op.results) != 1 or len(op.operands) < 3:
        return False
    block = op.regions[0].blocks[0]
    args = list(block.arguments)
    ins, acc = args[:-1], args[-1]
    *rest, add, yld = _body(op)
    if yld.operands[0] != add.result or add.name != "arith.addf" or acc not in list(add.operands):
        return False
    mul = defining_op(add.operands[1] if add.operands[0] == acc else add.operands[0])
    if mul is None or mul.name != "arith.mulf" or all(mul != o for o in rest):
        return False
    others = [o for o in rest if o != mul]
    chains = [_slice(v, others) or [] for v in mul.operands]
    used = [o for c in chains for o in c]
    if len(used) != len(others) or any(o == q for i, o in enumerate(used) for q in used[:i]):
        return False  # ops shared between the two sides, or ops neither side needs
    # the inputs each side reads: at least one each, none of them both sides' nor acc
    reads = [_depends_on(c, ins) if c else [k for k, a in enumerate(ins) if v == a]
             for c, v in zip(chains, mul.operands, strict=True)]
    if not all(reads) or set(reads[0]) & set(reads[1]) or any(acc in list(o.operands) for o in used):
        return False
    maps = indexing_maps(op)
    if _dims(maps[-1]) is None:
        return False
    plain = [_dims(m) is not None for m in maps]
    split = [bool(c) or not all(plain[i] for i in r) for c, r in zip(chains, reads, strict=True)]
    sizes = loop_sizes(maps, [v.type for v in op.operands], len(iterator_types(op)), skip_compound=True)
    if not any(split) or sizes is None:
        return False  # a plain mul-add already
    elem = ir.RankedTensorType(op.operands[-1].type).element_type
    new_ins, new_maps = [], []
    with ir.InsertionPoint(op), op.location:
        for chain, read, root, this in zip(chains, reads, list(mul.operands), split, strict=True):
            if not this:  # the input itself
                new_ins.append(op.operands[read[0]])
                new_maps.append(maps[read[0]])
                continue
            dims = sorted(set().union(*(_expr_dims(e) for i in read for e in maps[i].results)))
            # each input's map over the prologue's loops: loop dim dims[j] -> d_j
            rename = ir.AffineMap.get(len(dims), 0, [ir.AffineDimExpr.get(dims.index(k)) if k in dims
                                                     else ir.AffineConstantExpr.get(0) for k in range(len(sizes))])
            body = lambda *xs, chain=chain, read=read, root=root: _clone_into(
                chain, [(ins[i], x) for i, x in zip(read, xs, strict=True)], root)
            new_ins.append(LL.parallel(body, [op.operands[i] for i in read],
                                       LL.tensor_type([sizes[d] for d in dims], elem),
                                       [[e.compose(rename) for e in maps[i].results] for i in read]))
            new_maps.append(ir.AffineMap.get(len(sizes), 0, [ir.AffineDimExpr.get(d) for d in dims]))
        result = LL.generic(new_ins, new_maps, op.operands[-1], maps[-1], iterator_types(op),
                            lambda a, b, c: arith.AddFOp(c, arith.MulFOp(a, b).result).result)
    op.results[0].replace_all_uses_with(result)
    op.erase()
    return True


def _one_generic(v: ir.Value, n_ops: int) -> ir.Operation | None:
    """The linalg.generic of one input, one output and `n_ops` body ops producing `v`."""
    op = defining_op(v)
    if op is None or op.name != "linalg.generic" or len(op.operands) != 2 or len(op.results) != 1:
        return None
    return op if len(_body(op)) == n_ops else None


def _copy_of(v: ir.Value) -> tuple[ir.Value, list[int]] | None:
    """If `v` is produced by a linalg.generic copying its one input (a transpose, a broadcast): the
    input, and for each of its dims the dim of `v` it is copied to."""
    op = _one_generic(v, 1)
    if op is None:
        return None
    src, dst = (_dims(m) for m in indexing_maps(op))
    if src is None or dst != list(range(len(dst))) or _body(op)[0].operands[0] != op.regions[0].blocks[0].arguments[0]:
        return None
    return op.operands[0], src


def _sum_of(v: ir.Value) -> list[int] | None:
    """If `v` is a sum of a tensor over some of its dims into a zero fill: the dims kept, in order."""
    op = _one_generic(v, 2)
    if op is None or zero_fill(op.operands[1]) is None:
        return None
    src, dst = (_dims(m) for m in indexing_maps(op))
    x, acc = op.regions[0].blocks[0].arguments
    add, yld = _body(op)
    if src != list(range(len(src))) or dst is None or dst != sorted(dst) or not _of(add, "arith.addf", x, acc):
        return None
    return dst if yld.operands[0] == add.result else None


def _user(v: ir.Value) -> ir.Operation | None:
    """The one operation that reads `v`, if only one does."""
    uses = list(v.uses)
    if len(uses) != 1:
        return None
    owner = uses[0].owner
    return owner.operation if isinstance(owner, ir.OpView) else owner


@dataclass(frozen=True)
class _Side:
    """An input of a contraction, or its result, as one reading takes it: the value and the loop dim
    of each of its dims, whether a copy is left in between (1) or folded away (`folds`: 1)."""

    value: ir.Value
    dims: list[int]
    copies: int = 0
    folds: int = 0
    consumer: ir.Operation | None = None  # the result's: the copy or sum replaced with the op


def _inputs(v: ir.Value, dims: list[int]) -> list[_Side]:
    """An input as the op reads it, and where a copy produces it, the copy's input read through it."""
    copy = _copy_of(v)
    if copy is None:
        return [_Side(v, dims)]
    src, to = copy
    return [_Side(src, [dims[p] for p in to], folds=1), _Side(v, dims, copies=1)]


def _results(op: ir.Operation, dims: list[int]) -> list[_Side]:
    """The op's result, and where its one user transposes it or sums it over some dims into zeros
    (the op's own init zeros too), that user's result."""
    r = op.results[0]
    user = _user(r)
    if zero_fill(op.operands[2]) is None or user is None or len(user.results) != 1 or user.operands[0] != r:
        return [_Side(r, dims)]
    copy, kept = _copy_of(user.results[0]), _sum_of(user.results[0])
    if copy is not None and sorted(copy[1]) == list(range(len(dims))):  # a transpose
        moved = [0] * len(dims)
        for i, d in enumerate(copy[1]):
            moved[d] = dims[i]
        return [_Side(user.results[0], moved, folds=1, consumer=user), _Side(r, dims, copies=1)]
    if kept is not None:
        return [_Side(user.results[0], [dims[d] for d in kept], folds=1, consumer=user), _Side(r, dims, copies=1)]
    return [_Side(r, dims)]


@dataclass(frozen=True)
class _Form:
    """One reading of a contraction: its two inputs and the result it replaces."""

    x: _Side
    y: _Side
    out: _Side

    @property
    def copies(self) -> int:
        return self.x.copies + self.y.copies + self.out.copies

    @property
    def folds(self) -> int:
        return self.x.folds + self.y.folds + self.out.folds


def _forms(op: ir.Operation) -> list[_Form]:
    maps = [_dims(m) for m in indexing_maps(op)]
    if None in maps:
        return []
    sides = [_inputs(op.operands[0], maps[0]), _inputs(op.operands[1], maps[1]), _results(op, maps[2])]
    return [_Form(*f) for f in product(*sides)]


@dataclass
class _Plan:
    """How one form maps onto a (batch_)matmul: A and B (the form's inputs, maybe swapped) with their
    loop dims as stored, and the loop dims of each group."""

    form: _Form
    ins: list[ir.Value]
    stored: list[list[int]]
    batch: list[int]
    m: list[int]
    n: list[int]
    k: list[int]
    transposed_a: bool

    def groups(self, i: int) -> list[list[int]]:
        """The dims of A, B, C (i = 0, 1, 2) in the kernel, each a group of loop dims."""
        b = self.batch if i == 2 or set(self.batch) <= set(self.stored[i]) else []
        g = ([self.k, self.m] if self.transposed_a else [self.m, self.k], [self.k, self.n], [self.m, self.n])[i]
        return [b, *g] if b else g

    @property
    def broadcast(self) -> str:
        return next((x for i, x in enumerate("ab") if self.batch and len(self.groups(i)) == 2), "")

    @property
    def packs(self) -> int:
        """Inputs not stored in the kernel's order (a pack or a copy each)."""
        return sum(self.stored[i] != [d for g in self.groups(i) for d in g] for i in (0, 1))


def _plan(f: _Form) -> _Plan | None:
    """C's dims read from the back are columns of one input, rows of the other, and batch dims (in both
    inputs, or all missing from one); the dims C lacks are the contraction's."""
    x, y, z = f.x.dims, f.y.dims, f.out.dims
    k = [d for d in x if d in y and d not in z]
    if not k or set(x) | set(y) != set(z) | set(k):
        return None  # an outer product, or a dim only one input reduces
    owner = [(d in x) + 2 * (d in y) for d in z]  # 1: x only, 2: y only, 3: both
    runs = [[z[i] for i in g] for _, g in groupby(range(len(z)), key=owner.__getitem__)]
    if len(runs) < 2 or {(d in x) + 2 * (d in y) for d in (runs[-2][0], runs[-1][0])} != {1, 2}:
        return None
    batch, m, n = [d for r in runs[:-2] for d in r], runs[-2], runs[-1]
    ins = [f.x.value, f.y.value]
    if m[0] in y:  # the rows are y's: y is the kernel's A
        ins, (x, y) = ins[::-1], (y, x)
    if any(0 < len(set(batch) & set(v)) < len(batch) for v in (x, y)):
        return None  # an input with some batch dims but not all
    ba, kk = [d for d in batch if d in x], [d for d in x if d in k]
    # A stored k x m is read in place, except broadcast over the batch: linalg.batch_matmul takes no
    # transposed broadcast A ("Invalid broadcast requested"), so A (a small weight) is packed instead
    return _Plan(f, list(ins), [x, y], batch, m, n, kk, x == [*ba, *kk, *m] and not (batch and not ba))


def _group_order(dims: list[int], groups: list[list[int]]) -> list[int] | None:
    """The order in which whole groups lie in `dims` (each contiguous, its dims in order), else None."""
    order: list[int] = []
    while dims:
        j = next((j for j, g in enumerate(groups) if dims[:len(g)] == g), None)
        if j is None:
            return None
        order.append(j)
        dims = dims[len(groups[j]):]
    return order


def _rewrite(op: ir.Operation, p: _Plan) -> bool:
    """Build the plan's named op between reshapes before `op` and replace the form's result; False
    where `op` is that op already."""
    sizes: dict[int, int] = {}
    for v, dims in zip(p.ins, p.stored, strict=True):
        sizes.update(zip(dims, ir.RankedTensorType(v.type).shape, strict=True))
    elem = ir.RankedTensorType(op.results[0].type).element_type
    shape = lambda groups: LL.tensor_type([math.prod(sizes[d] for d in g) for g in groups], elem)
    types = [shape(p.groups(i)) for i in range(3)]
    maps = matmul_maps(bool(p.batch), p.transposed_a, p.broadcast)
    name = "linalg.batch_matmul" if p.batch else "linalg.matmul"
    if (op.name == name and indexing_maps(op) == maps and p.ins == list(op.operands[:2]) and not p.packs
            and p.form.out.consumer is None and types == [v.type for v in op.operands]):
        return False
    ins = []
    for i, (v, dims) in enumerate(zip(p.ins, p.stored, strict=True)):
        groups = p.groups(i)
        order = _group_order(dims, groups)
        if order is None:  # groups interleaved in memory: a copy in the kernel's order (rare)
            layout = [d for g in groups for d in g]
            v = LL.parallel(lambda x: x, [v], shape([[d] for d in layout]), [[layout.index(d) for d in dims]])
        else:
            v = LL.reshape(v, shape([groups[j] for j in order]))
            if order != sorted(order):  # a pack: the matmul schedule fuses it into its cache tile loops
                v = linalg.transpose(v, outs=[LL.empty(types[i])],
                                     permutation=[order.index(j) for j in range(len(order))]).results[0]
        ins.append(LL.reshape(v, types[i]))
    init = LL.zeros(types[2]) if zero_fill(op.operands[2]) is not None else LL.reshape(op.operands[2], types[2])
    build = linalg.batch_matmul if p.batch else linalg.matmul
    result = p.form.out.value
    result.replace_all_uses_with(LL.reshape(build(*ins, outs=[init], indexing_maps=maps),
                                            ir.RankedTensorType(result.type)))
    return True


def _contraction(op: ir.Operation) -> bool:
    types = [v.type for v in op.operands]
    if (len(op.operands) != 3 or len(op.results) != 1 or not all(
            isinstance(t, ir.RankedTensorType) and t.has_static_shape and 0 not in t.shape for t in types)):
        return False
    elems = {str(ir.RankedTensorType(t).element_type) for t in types}
    if len(elems) != 1 or elems.pop() not in ("f32", "f64") or not _mul_add(op):
        return False
    if op.name != "linalg.generic":
        return True
    out = _dims(indexing_maps(op)[2])
    return out is not None and all((kind == "parallel") == (d in out) for d, kind in enumerate(iterator_types(op)))


def canonicalize_contractions(module: ir.Module) -> int:
    """Rewrite every contraction as above, in place; copies nothing reads any more are erased.
    Returns the number of rewrites."""
    done = 0
    with module.context:
        for op in walk(module, "linalg.generic", where=lambda o: "reduction" in iterator_types(o)):
            split_prologues(op)
        for op in walk(module, CONTRACTIONS, where=_contraction):
            plans = [p for p in map(_plan, _forms(op)) if p is not None]
            if not plans:
                continue
            p = min(plans, key=lambda p: (p.form.copies + p.packs, -p.form.folds))
            replaced = [o for o in (p.form.out.consumer, op) if o is not None]
            producers = [defining_op(v) for o in replaced for v in o.operands]
            with ir.InsertionPoint(op), op.location:
                if not _rewrite(op, p):
                    continue
            done += 1
            unique: list[ir.Operation] = []
            for o in [*replaced, *producers]:
                if o is not None and o not in unique:
                    unique.append(o)
            for o in unique:  # users before producers
                if not any(list(r.uses) for r in o.results):
                    o.erase()
    return done
