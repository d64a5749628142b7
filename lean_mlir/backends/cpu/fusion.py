"""Fusion of linalg generics on tensors, multi-use included: upstream's `linalg-fuse-elementwise-ops`
fuses a producer only into its single user. A derivative reuses its primal values (sin(x) feeds both
exp(sin(x) * x) and the tangent cos(x) * dx * x + sin(x) * dx), so without this every such value is
a full array written and read again.

Two rewrites, each a plain move of the ops of linalg bodies into one new generic:
- sibling full reductions over the same loops (`sum(f(x))` and `sum(g(x))` of a JVP) become one
  multi-result reduction; the inputs they share then have a single user, and fuse in;
- an all-parallel producer P is fused into its first user C over the same loops (identity maps; C
  all-parallel too unless it is P's only user): the new op computes P's body, then C's with P's
  values, and yields C's results and those of P that others read (P's other users must come after
  C or be movable there).

`fuse` first fuses the single-use producers (upstream's case) in one linear scan, in upstream's
order: upstream's pass clones the fused body at every step, quadratic on a long chain (800 steps:
14.6 s), while the scan moves each step's ops once. Upstream's pass then fuses what is left
(consumers over other loops or maps, splat constants, fills, reshapes), cheaply, and
`fuse_multi_use` runs the multi-use rewrites with upstream fusion and canonicalization to a fixed
point.
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

# Before fusion (after generalization). `linalg-fold-unit-extent-dims` turns broadcasts from
# `tensor<1xf32>` (map `(d0) -> (0)`, which the vectorizer rejects) into rank-0 operands (`(d0) -> ()`).
PREPARE = ("canonicalize", "linalg-fold-unit-extent-dims", "canonicalize")
# After our single-use scan: upstream fusion of what is left (consumers over other loops or maps),
# cheap once the long chains are fused.
UPSTREAM_FUSION = ("linalg-fuse-elementwise-ops", "canonicalize", "cse")
# Functions with fewer generics leave the single-use fusions to upstream, faster there (C++) while
# its quadratic term is small: 200-step chain, 1.0 s in upstream's pass against 1.4 s in the scan.
SCAN_MIN_GENERICS = 1024
MAX_ROUNDS = 16
# A fused op yields every value later code reads (a long chain's derivative keeps each step's primal
# for the backward pass): past this many results the fusion stops growing it. Fusing a whole
# 800-step chain into one generic with hundreds of results made every later fusion and pass
# quadratic (800 steps: 28 s in fusion); a loop writing 16 arrays gains nothing from more.
MAX_FUSED_RESULTS = 16
# Likewise for inputs: a chain's backward pass reads every step's primal, and rebuilding the op at
# each step costs its operands (800 steps, no cap: 800 inputs, quadratic). Past this many inputs the
# chain is cut into ops passing one intermediate array, which upstream fusion may join again.
MAX_FUSED_INPUTS = 32
# And for the body: LLVM's time grows faster than linearly in a loop body's size (a chain's JVP fused
# into one loop of 4000 ops took 16 s to compile).
MAX_FUSED_OPS = 512


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
           keep: Sequence[Sequence[bool]] | None = None,
           terminator: ir.Operation | None = None,
           order: Sequence[tuple[int, int]] | None = None) -> tuple[ir.Operation, ir.Operation]:
    """One generic before `anchor` holding the bodies of `parts` in order, over the last part's loops:
    the inputs of each part (except those `substitute(part, i)` maps to `(j, r)`: the value part j's
    body yields as result r) and the outputs and yields of the results `keep[part]` marks (default:
    all; a dropped output's block argument must be unread). Returns the new op and its yield;
    `parts` are left for the caller. The bodies of all parts but the first are walked once, the
    first's only if its `terminator` is not given (so a chain fused step by step is linear). `order`:
    the (part, input) pairs in the order the new op takes them (default: part by part)."""
    keep = [list(k) for k in keep] if keep is not None else [[True] * len(p.results) for p in parts]
    # An input read by several parts under one map (a chain's shared constant) is one argument: the
    # fused op of a chain keeps the inputs of one step, not of all.
    in_slot: dict[tuple[ir.Value, ir.AffineMap], int] = {}
    part_ins: list[list[int | None]] = [[None] * _n_inputs(p) for p in parts]  # input -> argument (None: substituted)
    operands = [list(p.operands) for p in parts]
    maps = [indexing_maps(p) for p in parts]
    for k, i in order or [(k, i) for k, p in enumerate(parts) for i in range(_n_inputs(p))]:
        if substitute(k, i) is None:
            part_ins[k][i] = in_slot.setdefault((operands[k][i], maps[k][i]), len(in_slot))
    outs: list[tuple[ir.Value, ir.AffineMap]] = []
    for k, p in enumerate(parts):
        n_in = _n_inputs(p)
        outs += [(v, maps[k][n_in + j]) for j, v in enumerate(operands[k][n_in:]) if keep[k][j]]
    ins = list(in_slot)
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
    if terminator is None:
        *_, terminator = block.operations
    next_out = len(ins)
    yields: list[ir.Value] = []
    part_yields: list[list[ir.Value]] = []
    for k, p in enumerate(parts):
        body = block if k == 0 else p.regions[0].blocks[0]
        n_in = _n_inputs(p)
        for i, a in enumerate(list(body.arguments)[: n_old if k == 0 else None]):
            if i < n_in:
                arg = part_ins[k][i]
                if arg is None:
                    src = substitute(k, i)
                    sub = part_yields[src[0]][src[1]]
                else:
                    sub = args[arg]
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
        new_terminator = linalg.YieldOp(yields).operation
    terminator.erase()
    for _ in range(n_old):
        block.erase_argument(0)
    return new, new_terminator


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
            new, _ = _build([a, b], b, lambda k, i: None)
            _replace([a, b], new)
            reds[i], reds[j] = None, new  # the merged op may take in a later sibling
            merged += 1
            break
    return merged


def _fuse_into_first_users(block: ir.Block, single_use: bool = False) -> int:
    """Fuse parallel producers into their first users, in one scan of the block in program order
    (a fused op is looked at again as a producer where its user was, so a chain
    of N steps fuses in one scan, not N); returns the fusions done. `single_use`: only producers
    with one use (upstream fusion's case), in upstream's order, which gives the ops it gave: each
    consumer in program order takes in its operands' producers in operand order, their inputs where
    the operand was.

    No dict is keyed by ops here (an ir.Operation's hash changes when its operands do): a slot is
    found by its op's first result, a Value, whose hash is its address."""
    ops: list[ir.Operation | None] = [o.operation for o in block.operations]
    slot_of = {o.results[0]: k for k, o in enumerate(ops) if len(o.results)}
    # per slot, what the scan knows of its op's body without walking it: (terminator, op count)
    bodies: list[tuple[ir.Operation, int] | None] = [None] * len(ops)

    def body(slot: int) -> tuple[ir.Operation, int]:
        if bodies[slot] is None:
            body_ops = list(ops[slot].regions[0].blocks[0].operations)
            bodies[slot] = body_ops[-1], len(body_ops)
        return bodies[slot]

    def producer_of(c: ir.Operation) -> tuple[int, Target] | None:
        """The slot and target of the first single-use producer of c's inputs that fuses into c."""
        for v in list(c.operands)[:_n_inputs(c)]:
            owner = v.owner
            if not isinstance(owner, ir.OpView | ir.Operation) or (k := slot_of.get(owner.results[0])) is None:
                continue
            if (p := ops[k]) is not None and p == owner.operation and _one_use(p) \
                    and (target := _fusion_target(p)) is not None and target[0] == c:
                return k, target
        return None

    fused = 0
    for slot in range(len(ops)):
        while ops[slot] is not None:
            if single_use:
                hit = producer_of(ops[slot])
            else:  # single-use producers are the other scan's and upstream's
                p = ops[slot]
                hit = None if _one_use(p) or (target := _fusion_target(p)) is None else (slot, target)
            if hit is None:
                break
            p_slot, target = hit
            c_slot = slot_of[target[0].results[0]]
            (p_yield, p_size), (_, c_size) = body(p_slot), body(c_slot)
            if p_size + c_size > MAX_FUSED_OPS:
                break
            new, new_yield = _fuse(ops[p_slot], *target, p_yield, splice=single_use)
            ops[p_slot], ops[c_slot] = None, new  # the new op sits where its user was
            slot_of[new.results[0]] = c_slot
            bodies[c_slot] = new_yield, p_size + c_size - 1
            fused += 1
    return fused


def _one_use(op: ir.Operation) -> bool:
    """Whether op's results have one use in all (without counting a value's many uses)."""
    uses = (u for r in op.results for u in r.uses)
    return next(uses, None) is not None and next(uses, None) is None


Target = tuple[ir.Operation, list[ir.Operation], dict[int, int], bool]  # C, P's users before C, C's inputs from P, only


def _fusion_target(p: ir.Operation) -> Target | None:
    """The first user of producer `p` that `p` can fuse into, if any."""
    if p.name != "linalg.generic" or _n_inputs(p) >= MAX_FUSED_INPUTS or not static_shapes(p) or not _parallel(p):
        return None
    if (ranges := _loop_ranges(p)) is None:
        return None
    users = _users(p)
    if not users:
        return None
    users.sort(key=cmp_to_key(lambda a, b: 0 if a == b else -1 if a.is_before_in_block(b) else 1))
    p_results = list(p.results)
    only = len(users) == 1  # one user reading several results (or one twice): P goes into it whole
    for c in users:
        if c.name != "linalg.generic" or not c.results or not static_shapes(c) or not (only or _parallel(c)):
            continue
        if _loop_ranges(c) != ranges:
            continue
        n_in, c_maps = _n_inputs(c), indexing_maps(c)
        from_p = {i: p_results.index(v) for i, v in enumerate(list(c.operands)[:n_in]) if v in p_results}
        if all(_identity(c_maps[i]) for i in from_p):
            break
    else:
        return None
    if sum(_kept(p, c)) + len(c.results) > MAX_FUSED_RESULTS:
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


def _kept(p: ir.Operation, c: ir.Operation) -> list[bool]:
    """Which of P's results its fusion into C yields: those something besides C reads (so a chain's
    fused op does not grow with every step: it carries the live values only), and those whose output
    P's body reads."""
    body_reads = [len(list(a.uses)) > 0 for a in list(p.regions[0].blocks[0].arguments)[_n_inputs(p):]]
    return [reads or any(u.owner.operation != c for u in r.uses)
            for r, reads in zip(p.results, body_reads, strict=True)]


def _fuse(p: ir.Operation, c: ir.Operation, early: list[ir.Operation], from_p: dict[int, int],
          only: bool, p_yield: ir.Operation, splice: bool = False) -> tuple[ir.Operation, ir.Operation]:
    """One generic computing P's body, then C's with P's values, where C was, yielding C's results
    and P's `_kept` ones; P's `early` users move before it. Its inputs: P's then C's, or with
    `splice`, C's with P's in place of the first one from P (upstream fusion's order)."""
    def substitute(k: int, i: int) -> tuple[int, int] | None:
        return (0, from_p[i]) if k == 1 and i in from_p else None  # C's input i is P's result from_p[i]

    keep = [_kept(p, c), [True] * len(c.results)]
    order = None
    if splice:
        first = min(from_p)
        order = [(1, i) for i in range(first)] + [(0, i) for i in range(_n_inputs(p))] \
            + [(1, i) for i in range(first, _n_inputs(c))]
    new, new_yield = _build([p, c], c, substitute, keep, p_yield, order)
    for u in early:
        u.move_before(c)
    _replace([p, c], new, keep)
    return new, new_yield


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
    """Named elementwise ops to generics, then the fusion above: the tensor-level fusion of the CPU
    pipeline (pass `lean-fuse-linalg`)."""
    generalize(module)
    run_passes(module, PREPARE)
    for f in funcs(module, defined=True):
        block = f.regions[0].blocks[0]
        if sum(op.operation.name == "linalg.generic" for op in block.operations) >= SCAN_MIN_GENERICS:
            _fuse_into_first_users(block, single_use=True)
    run_passes(module, UPSTREAM_FUSION)
    fuse_multi_use(module)
