"""Multi-use fusion of linalg generics on tensors, the step upstream's `linalg-fuse-elementwise-ops`
leaves out: it fuses a producer only into its single user. A derivative reuses its primal values
(sin(x) feeds both exp(sin(x) * x) and the tangent cos(x) * dx * x + sin(x) * dx), so without this
every such value is a full array written and read again.

Two rewrites, each a plain move of the ops of linalg bodies into one new generic:
- sibling full reductions over the same loops (`sum(f(x))` and `sum(g(x))` of a JVP) become one
  multi-result reduction; the inputs they share then have a single user, and the upstream pass
  fuses their producers in;
- an all-parallel producer P with several users is fused into its first all-parallel user C over the
  same loops (identity output maps): the new op computes P's body, then C's with P's values, and
  yields both (P's results stay available to P's other users, which must come after C or be
  movable there). Results nobody reads are dropped by `canonicalize`.

`fuse_multi_use` runs them with the upstream fusion and canonicalization to a fixed point.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cmp_to_key

from mlir import ir
from mlir.dialects import linalg
from mlir.dialects.transform import structured

from ...irutils.linalg import indexing_maps, iterator_types, loop_sizes, static_shapes
from ...irutils.passes import run_passes
from ...irutils.walk import funcs, walk
from .schedules.common import apply_transform

_CLEANUP = ("canonicalize", "linalg-fuse-elementwise-ops", "canonicalize", "cse")

# Named linalg ops turned into linalg.generic before fusion (all implement the LinalgOp interface).
# Contractions (matmul, batch_matmul) stay named so the matmul schedule can find them; fill stays
# named because it is only ever an init (outs) operand, which fusion does not look through.
GENERALIZED_OPS: tuple[str, ...] = tuple(
    "linalg." + n
    for n in (
        "add sub mul div div_unsigned max min powf exp log abs ceil floor negf reciprocal round sqrt "
        "rsqrt square tanh erf select elemwise_unary elemwise_binary elementwise map reduce broadcast "
        "transpose copy"
    ).split()
)

# Upstream fusion of elementwise producers into their consumers (after generalization).
# `linalg-fold-unit-extent-dims` turns broadcasts from `tensor<1xf32>` (map `(d0) -> (0)`, which the
# vectorizer rejects) into rank-0 operands (`(d0) -> ()`).
UPSTREAM_FUSION = ("canonicalize", "linalg-fold-unit-extent-dims", "canonicalize", "linalg-fuse-elementwise-ops",
                   "canonicalize", "cse")
MAX_ROUNDS = 16
# A fused op yields every value later code reads (a long chain's derivative keeps each step's primal
# for the backward pass): past this many results the fusion stops growing it. Fusing a whole
# 800-step chain into one generic with hundreds of results made every later fusion and pass
# quadratic (800 steps: 28 s in fusion); a loop writing 16 arrays gains nothing from more.
MAX_FUSED_RESULTS = 16


def _n_inputs(op: ir.Operation) -> int:
    return len(op.operands) - len(op.results)


def _loop_ranges(op: ir.Operation) -> list[int] | None:
    maps = indexing_maps(op)
    return loop_sizes(maps, [v.type for v in op.operands], maps[0].n_dims)


def _identity(m: ir.AffineMap) -> bool:
    return m == ir.AffineMap.get_identity(m.n_dims, m.context)


def _all(op: ir.Operation, kind: str) -> bool:
    iters = iterator_types(op)
    return bool(iters) and all(it == kind for it in iters)


def _parallel(op: ir.Operation) -> bool:
    """All-parallel, every output indexed by the loops in order."""
    n_in = _n_inputs(op)
    return _all(op, "parallel") and all(_identity(m) for m in indexing_maps(op)[n_in:])


def _full_reduction(op: ir.Operation) -> bool:
    return _all(op, "reduction") and all(ir.RankedTensorType(r.type).rank == 0 for r in op.results)


def _users(op: ir.Operation) -> list[ir.Operation] | None:
    """The distinct users of op's results, if all are in op's block (else None)."""
    out: list[ir.Operation] = []
    for r in op.results:
        for use in r.uses:
            u = use.owner.operation
            if u.block != op.block:
                return None
            if u not in out:
                out.append(u)
    return out


def _build(parts: Sequence[ir.Operation], anchor: ir.Operation,
           substitute: Callable[[int, int], tuple[int, int] | None],
           keep: Sequence[Sequence[bool]] | None = None) -> ir.Operation:
    """One generic before `anchor` holding the bodies of `parts` in order, over the last part's loops:
    the inputs of each part (except those `substitute(part, i)` maps to `(j, r)`: the value part j's
    body yields as result r) and the outputs and yields of the results `keep[part]` marks (default:
    all; a dropped output's block argument must be unread). Returns the new op; `parts` are left for
    the caller. Each body is walked once."""
    keep = [list(k) for k in keep] if keep is not None else [[True] * len(p.results) for p in parts]
    ins: list[tuple[ir.Value, ir.AffineMap]] = []
    outs: list[tuple[ir.Value, ir.AffineMap]] = []
    for k, p in enumerate(parts):
        n_in, maps = _n_inputs(p), indexing_maps(p)
        ins += [(v, maps[i]) for i, v in enumerate(list(p.operands)[:n_in]) if substitute(k, i) is None]
        outs += [(v, maps[n_in + j]) for j, v in enumerate(list(p.operands)[n_in:]) if keep[k][j]]
    result_types = [r.type for k, p in enumerate(parts) for j, r in enumerate(p.results) if keep[k][j]]
    with ir.InsertionPoint(anchor), anchor.location:
        new = linalg.GenericOp(result_types, [v for v, _ in ins], [v for v, _ in outs],
                               ir.ArrayAttr.get([ir.AffineMapAttr.get(m) for _, m in ins + outs]),
                               parts[-1].attributes["iterator_types"]).operation
    # The first part's block becomes the new op's (its ops stay where they are: a chain fused step
    # by step moves each step's few ops once, not the whole fused body again at every step); new
    # arguments are appended, the old ones replaced, then erased.
    block = parts[0].regions[0].blocks[0]
    block.append_to(new.regions[0])
    n_old = len(block.arguments)
    args = [block.add_argument(ir.RankedTensorType(v.type).element_type, anchor.location) for v, _ in ins + outs]
    terminator = block.operations[len(block.operations) - 1]
    next_in, next_out = 0, len(ins)
    yields: list[ir.Value] = []
    part_yields: list[list[ir.Value]] = []
    for k, p in enumerate(parts):
        body = block if k == 0 else p.regions[0].blocks[0]
        n_in = _n_inputs(p)
        for i, a in enumerate(list(body.arguments)[: n_old if k == 0 else None]):
            if i < n_in:
                src = substitute(k, i)
                if src is None:
                    sub, next_in = args[next_in], next_in + 1
                else:
                    sub = part_yields[src[0]][src[1]]
            elif keep[k][i - n_in]:
                sub, next_out = args[next_out], next_out + 1
            else:
                continue  # a dropped output: the body does not read it
            a.replace_all_uses_with(sub)
        if k == 0:
            part_yields.append(list(terminator.operands))
        else:
            ops = list(body.operations)
            part_yields.append(list(ops[-1].operands))
            for o in ops[:-1]:
                o.move_before(terminator)
        yields += [v for j, v in enumerate(part_yields[-1]) if keep[k][j]]
    with ir.InsertionPoint(terminator), anchor.location:
        linalg.YieldOp(yields)
    terminator.erase()
    for _ in range(n_old):
        block.erase_argument(0)
    return new


def _replace(parts: Sequence[ir.Operation], new: ir.Operation, keep: Sequence[Sequence[bool]] | None = None) -> None:
    k = 0
    for j, p in enumerate(parts):
        for i, r in enumerate(p.results):
            if keep is None or keep[j][i]:
                r.replace_all_uses_with(new.results[k])
                k += 1
    for p in reversed(parts):
        p.erase()


def _generics(block: ir.Block) -> list[ir.Operation]:
    return [op.operation for op in block.operations
            if op.operation.name == "linalg.generic" and static_shapes(op.operation)]


def _merge_reductions(block: ir.Block) -> int:
    """Merge sibling full reductions over the same loops, in one scan; returns the merges done."""
    reds: list[ir.Operation | None] = [op for op in _generics(block) if _full_reduction(op)]
    merged = 0
    for i in range(len(reds)):
        a = reds[i]
        users = _users(a) if a is not None else None
        if users is None:
            continue
        for j in range(i + 1, len(reds)):
            b = reds[j]
            if b is None or iterator_types(a) != iterator_types(b) or _loop_ranges(a) is None \
                    or _loop_ranges(a) != _loop_ranges(b):
                continue
            if not all(b.is_before_in_block(u) for u in users):
                continue  # a's results are used before b: b would no longer dominate them
            new = _build([a, b], b, lambda k, i: None)
            _replace([a, b], new)
            reds[i], reds[j] = None, new  # the merged op may take in a later sibling
            merged += 1
            break
    return merged


def _fuse_into_first_users(block: ir.Block) -> int:
    """Fuse multi-use parallel producers into their first parallel users, in one scan of the block
    in program order (a fused op is looked at again as a producer where its user was, so a chain
    of N steps fuses in one scan, not N); returns the fusions done.

    No dict is keyed by ops here: an ir.Operation's hash changes when its operands do."""
    ops: list[ir.Operation | None] = [o.operation for o in block.operations]
    fused = 0
    for slot in range(len(ops)):
        while (p := ops[slot]) is not None and (target := _fusion_target(p)) is not None:
            c = target[0]
            c_slot = next(k for k in range(slot + 1, len(ops)) if ops[k] is not None and ops[k] == c)
            ops[slot], ops[c_slot] = None, _fuse(p, *target)  # the new op sits where its user was
            fused += 1
    return fused


Target = tuple[ir.Operation, list[ir.Operation], dict[int, int], bool]  # C, P's users before C, C's inputs from P, only


def _fusion_target(p: ir.Operation) -> Target | None:
    """The first parallel user of producer `p` that `p` can fuse into, if any."""
    if p.name != "linalg.generic" or not static_shapes(p) or not _parallel(p) or _loop_ranges(p) is None:
        return None
    if len(p.results) >= MAX_FUSED_RESULTS:
        return None
    users = _users(p)
    if users is None or sum(len(list(r.uses)) for r in p.results) < 2:
        return None  # one use: upstream fusion's case
    users.sort(key=cmp_to_key(lambda a, b: 0 if a == b else -1 if a.is_before_in_block(b) else 1))
    p_results = list(p.results)
    only = len(users) == 1  # one user reading several results (or one twice): P goes into it whole
    for c in users:
        if c.name != "linalg.generic" or not static_shapes(c) or not (only or _parallel(c)):
            continue
        if _loop_ranges(c) != _loop_ranges(p):
            continue
        n_in, c_maps = _n_inputs(c), indexing_maps(c)
        from_p = {i: p_results.index(v) for i, v in enumerate(list(c.operands)[:n_in]) if v in p_results}
        if all(_identity(c_maps[i]) for i in from_p):
            break
    else:
        return None
    # P's users before C move after the fused op: they must not feed anything up to C
    early = users[: users.index(c)]
    if not all((us := _users(u)) is not None and all(c.is_before_in_block(w) for w in us) for u in early):
        return None
    if only and any(len(list(a.uses)) for a in list(p.regions[0].blocks[0].arguments)[_n_inputs(p):]):
        return None  # P reads its outputs: they cannot be dropped
    if only:  # P's outputs are dropped: some remaining operand must still give every loop its range
        p_n, p_maps, c_n, c_maps = _n_inputs(p), indexing_maps(p), _n_inputs(c), indexing_maps(c)
        operands = [(v, p_maps[i]) for i, v in enumerate(list(p.operands)[:p_n])]
        operands += [(v, c_maps[i]) for i, v in enumerate(c.operands) if i >= c_n or i not in from_p]
        if loop_sizes([m for _, m in operands], [v.type for v, _ in operands], c_maps[0].n_dims) is None:
            return None
    return c, early, from_p, only


def _fuse(p: ir.Operation, c: ir.Operation, early: list[ir.Operation], from_p: dict[int, int],
          only: bool) -> ir.Operation:
    """One generic computing P's body, then C's with P's values, where C was; of P's results it
    yields only those something besides C reads (so a chain's fused op does not grow with every
    step: it carries the live values only); P's `early` users move before it."""
    def substitute(k: int, i: int) -> tuple[int, int] | None:
        return (0, from_p[i]) if k == 1 and i in from_p else None  # C's input i is P's result from_p[i]

    body_reads = [len(list(a.uses)) > 0 for a in list(p.regions[0].blocks[0].arguments)[_n_inputs(p):]]
    keep = [[reads or any(u.owner.operation != c for u in r.uses) for r, reads in zip(p.results, body_reads,
                                                                                      strict=True)],
            [True] * len(c.results)]
    new = _build([p, c], c, substitute, keep)
    for u in early:
        u.move_before(c)
    _replace([p, c], new, keep)
    return new


def fuse_multi_use(module: ir.Module) -> int:
    """Run the rewrites above and upstream fusion to a fixed point; returns the rewrites applied.
    Each round is one scan of each function (linear in its ops)."""
    applied = 0
    for _ in range(MAX_ROUNDS):
        changed = 0
        for f in funcs(module, defined=True):
            block = f.regions[0].blocks[0]
            changed += _merge_reductions(block)
            changed += _fuse_into_first_users(block)
        if not changed:
            break
        applied += changed
        run_passes(module, _CLEANUP)
    return applied


def generalize(module: ir.Module) -> None:
    """Named elementwise linalg ops -> linalg.generic (the transform op, on the names present)."""
    names = sorted({op.name for op in walk(module, GENERALIZED_OPS)})
    if names:
        apply_transform(module, lambda root: structured.GeneralizeOp(
            structured.MatchOp.match_op_names(root, names).result))


def fuse(module: ir.Module) -> None:
    """Named elementwise ops to generics, upstream elementwise fusion, then multi-use fusion: the
    tensor-level fusion of the CPU pipeline (pass `lean-fuse-linalg`)."""
    generalize(module)
    run_passes(module, UPSTREAM_FUSION)
    fuse_multi_use(module)
