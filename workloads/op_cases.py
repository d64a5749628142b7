"""Op cases: one call of one lean op, with its inputs and a NumPy reference (`Case`).

CASES holds one example call per lean op (several for ops with attributes), shared by the rule,
back-end and GPU tests; there `ref` is an independent NumPy reference (not the op's own `numpy`).
`Case.single` builds a case of the op alone with explicit attributes, checked against the op's own
`numpy` semantics (the lowering tests' table)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

import lean_mlir as lm
from lean_mlir.ops import OPS, emit

DOMAINS = ("normal", "positive", "ties", "neginf", "nan", "large")


@dataclass
class Case:
    op: str  # the lean op the case is about
    fn: Callable[..., lm.Tensor]
    shapes: list[tuple[int, ...]]
    ref: Callable[..., np.ndarray] | None
    positive: tuple[int, ...] = ()  # inputs drawn from [0.5, 2]
    smooth: bool = True  # check_grads applies (random points avoid kinks)
    id: str = field(default="")
    dtype: str = "f64"  # the element type where the caller names none
    # what inputs() does to the standard-normal draws: "positive" |x| + 0.1 for every input; "ties": the
    # second input shares every other entry with the first; "neginf": -inf entries, a whole -inf row and
    # column; "nan": NaN entries; "large": x * 100 + 1000 (softmax overflow)
    domain: str = "normal"

    @classmethod
    def single(cls, op: str, specs: Sequence[lm.Spec], attrs: dict[str, Any] | None = None,
               shape: tuple[int, ...] | None = None, domain: str = "normal") -> Case:
        """The op alone (`emit`) with explicit attributes and, for ops that take one, result shape;
        `ref` is the op's own NumPy semantics. All inputs share one element type."""
        attrs = dict(attrs or {})
        extra = {} if shape is None else {"shape": shape}
        dtypes = {s.dtype for s in specs}
        assert len(dtypes) <= 1 and domain in DOMAINS, (op, dtypes, domain)
        s = ",".join(f"{p.dtype}{list(p.shape)}" for p in specs)
        a = ",".join(f"{k}={v}" for k, v in attrs.items() if k != "value")
        name = f"{op}({s}{';' + a if a else ''}{f'->{list(shape)}' if shape else ''}){domain[:3]}"
        return cls(op, lambda *xs: emit(op, list(xs), **extra, **attrs), [p.shape for p in specs],
                   lambda *xs: OPS[op].numpy(*xs, **extra, **attrs), smooth=False, id=name,
                   dtype=dtypes.pop() if dtypes else "f64", domain=domain)

    def inputs(self, dtype: str | None = None, seed: int = 0) -> list[np.ndarray]:
        rng = np.random.default_rng(seed)
        np_dtype = lm.Spec((), dtype or self.dtype).np_dtype
        xs = [(rng.uniform(0.5, 2.0, s) if i in self.positive else rng.standard_normal(s)).astype(np_dtype)
              for i, s in enumerate(self.shapes)]
        if self.domain == "positive":
            xs = [np.abs(x) + np.asarray(0.1, x.dtype) for x in xs]
        elif self.domain == "ties" and xs[0].size:
            xs[1].flat[::2] = xs[0].flat[::2]
        elif self.domain == "neginf":
            x = xs[0]
            x[rng.random(x.shape) < 0.3] = -np.inf
            x[1] = -np.inf  # a whole -inf row (softmax over axis 1: NaN, like NumPy)
            x[:, 2] = -np.inf
        elif self.domain == "nan":
            for x in xs:
                x[rng.random(x.shape) < 0.2] = np.nan
            xs[0][0, 0] = np.nan
        elif self.domain == "large":
            xs[0] = (xs[0] * 100 + 1000).astype(xs[0].dtype)
        # ufuncs turn 0-d arrays into NumPy scalars, which the JIT fast path must not see
        return [np.array(x, dtype=np_dtype) for x in xs]

    def directions(self, out_spec: lm.Spec, dtype: str | None = None) -> tuple[list[np.ndarray], np.ndarray]:
        """Random tangents (one per input) and an output seed, for comparing two back ends."""
        rng = np.random.default_rng(1)
        dxs = [rng.standard_normal(s.shape).astype(s.np_dtype) for s in self.specs(dtype)]
        return dxs, rng.standard_normal(out_spec.shape).astype(out_spec.np_dtype)

    def specs(self, dtype: str | None = None) -> list[lm.Spec]:
        return [lm.Spec(s, dtype or self.dtype) for s in self.shapes]


def _conv_ref(x: np.ndarray, w: np.ndarray, s: int, p: int) -> np.ndarray:
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    n, c, h, wd = xp.shape
    o, _, kh, kw = w.shape
    oh, ow = (h - kh) // s + 1, (wd - kw) // s + 1
    y = np.zeros((n, o, oh, ow), x.dtype)
    for i in range(oh):
        for j in range(ow):
            y[:, :, i, j] = np.einsum("ncpq,ocpq->no", xp[:, :, i * s:i * s + kh, j * s:j * s + kw], w)
    return y


def _softmax(x: np.ndarray, axis: int) -> np.ndarray:
    e = np.exp(x - x.max(axis, keepdims=True))
    return e / e.sum(axis, keepdims=True)


def _lse(x: np.ndarray, axis: int) -> np.ndarray:
    m = x.max(axis, keepdims=True)
    return np.squeeze(np.log(np.exp(x - m).sum(axis, keepdims=True)) + m, axis)


def _unary(op: str, ref: Callable, positive: bool = False, smooth: bool = True) -> list[Case]:
    f = getattr(lm, op)
    return [Case(op, f, [(3, 4)], ref, (0,) if positive else (), smooth, f"{op}"),
            Case(op, f, [()], ref, (0,) if positive else (), smooth, f"{op}-rank0")]


def _binary(op: str, ref: Callable, positive: tuple[int, ...] = (), smooth: bool = True) -> list[Case]:
    f = getattr(lm, op)
    return [Case(op, f, [(2, 3), (2, 3)], ref, positive, smooth, f"{op}"),
            Case(op, f, [(3, 1, 4), (2, 4)], ref, positive, smooth, f"{op}-broadcast"),
            Case(op, f, [(), (2, 3)], ref, positive, smooth, f"{op}-scalar")]


CASES: list[Case] = [
    *_unary("neg", np.negative), *_unary("square", np.square), *_unary("sqrt", np.sqrt, positive=True),
    *_unary("abs", np.abs), *_unary("sign", np.sign), *_unary("exp", np.exp),
    *_unary("log", np.log, positive=True), *_unary("sin", np.sin), *_unary("cos", np.cos),
    *_unary("tanh", np.tanh), *_unary("sigmoid", lambda x: 1 / (1 + np.exp(-x))),
    *_unary("erf", lambda x: np.vectorize(math.erf)(x)), *_unary("log1p", np.log1p, positive=True),
    *_unary("expm1", np.expm1),
    *_unary("relu", lambda x: np.where(x > 0, x, 0)), *_unary("softplus", lambda x: np.log(1 + np.exp(x))),
    Case("stop_gradient", lambda x: lm.stop_gradient(x) * x, [(3,)], lambda x: x * x, smooth=False),
    Case("clamp", lambda x: lm.clamp(x, -0.5, 0.7), [(4, 5)], lambda x: np.minimum(np.maximum(x, -0.5), 0.7)),
    *_binary("add", np.add), *_binary("sub", np.subtract), *_binary("mul", np.multiply),
    *_binary("div", np.divide, positive=(1,)), *_binary("pow", np.power, positive=(0,)),
    *_binary("maximum", np.maximum), *_binary("minimum", np.minimum),
    *_binary("greater", lambda a, b: (a > b) * 1.0), *_binary("equal", lambda a, b: (a == b) * 1.0),
    *_binary("greater_equal", lambda a, b: (a >= b) * 1.0), *_binary("not_equal", lambda a, b: (a != b) * 1.0),
    Case("where", lambda c, a, b: lm.where(lm.greater(c, 0.0), a, b), [(2, 3), (2, 3), (3,)],
         lambda c, a, b: np.where(c > 0, a, b)),
    Case("where", lambda a, b: lm.where(np.array([True, False, True]), a * b, 2.0), [(2, 3), (2, 3)],
         lambda a, b: np.where(np.array([True, False, True]), a * b, 2.0), id="where-constant-mask"),
    Case("constant", lambda x: x * np.arange(6.0).reshape(2, 3) + 2.5, [(2, 3)],
         lambda x: x * np.arange(6.0).reshape(2, 3) + 2.5),
    Case("broadcast_to", lambda x: lm.broadcast_to(x, (2, 3, 4)), [(3, 1)], lambda x: np.broadcast_to(x, (2, 3, 4))),
    Case("broadcast_to", lambda x: lm.broadcast_to(x, (2, 3)), [()], lambda x: np.broadcast_to(x, (2, 3)),
         id="broadcast_to-rank0"),
    Case("reshape", lambda x: lm.reshape(x, (3, 4)), [(2, 6)], lambda x: x.reshape(3, 4)),
    Case("reshape", lambda x: lm.reshape(x, (1, 1)), [()], lambda x: x.reshape(1, 1), id="reshape-rank0"),
    Case("transpose", lambda x: lm.transpose(x, (2, 0, 1)), [(2, 3, 4)], lambda x: x.transpose(2, 0, 1)),
    Case("transpose", lambda x: x.T, [(3, 5)], lambda x: x.T, id="transpose-T"),
    Case("concatenate", lambda a, b, c: lm.concatenate([a, b, c], axis=1), [(2, 1, 3), (2, 4, 3), (2, 2, 3)],
         lambda a, b, c: np.concatenate([a, b, c], 1)),
    Case("reverse", lambda x: lm.reverse(x, (0, 2)), [(2, 3, 4)], lambda x: x[::-1, :, ::-1]),
    Case("reverse", lambda x: x[::-2, 3:0:-1] * 2, [(5, 6)], lambda x: x[::-2, 3:0:-1] * 2, id="reverse-steps"),
    Case("slice", lambda x: lm.slice(x, (1, 2), (2, 3)), [(4, 6)], lambda x: x[1:3, 2:5]),
    Case("pad", lambda x: lm.pad(x, (1, 0), (4, 5)), [(2, 3)], lambda x: np.pad(x, ((1, 1), (0, 2)))),
    Case("sum", lambda x: lm.sum(x), [(3, 4)], lambda x: np.sum(x)),
    Case("sum", lambda x: lm.sum(x, axis=(0, 2), keepdims=True), [(2, 3, 4)],
         lambda x: np.sum(x, (0, 2), keepdims=True), id="sum-axes-keepdims"),
    Case("sum", lambda x: lm.sum(x), [()], lambda x: np.sum(x), id="sum-rank0"),
    Case("mean", lambda x: lm.mean(x, axis=-1), [(3, 4)], lambda x: np.mean(x, -1)),
    Case("mean", lambda x: lm.mean(x, axis=(0, 1), keepdims=True), [(2, 3, 4)],
         lambda x: np.mean(x, (0, 1), keepdims=True), id="mean-keepdims"),
    Case("max", lambda x: lm.max(x, axis=1), [(3, 5)], lambda x: np.max(x, 1)),
    Case("max", lambda x: lm.max(x), [(2, 3, 4)], lambda x: np.max(x), id="max-all"),
    Case("softmax", lambda x: lm.softmax(x), [(3, 5)], lambda x: _softmax(x, -1)),
    Case("softmax", lambda x: lm.softmax(x, axis=0), [(3, 5)], lambda x: _softmax(x, 0), id="softmax-axis0"),
    Case("log_softmax", lambda x: lm.log_softmax(x, axis=1), [(2, 4, 3)], lambda x: np.log(_softmax(x, 1))),
    Case("logsumexp", lambda x: lm.logsumexp(x), [(3, 5)], lambda x: _lse(x, -1)),
    Case("logsumexp", lambda x: lm.logsumexp(x, axis=0), [(4,)], lambda x: _lse(x, 0), id="logsumexp-1d"),
    Case("matmul", lambda a, b: a @ b, [(3, 4), (4, 5)], np.matmul),
    Case("matmul", lambda a, b: a @ b, [(2, 3, 4), (4, 5)], np.matmul, id="matmul-batch-broadcast"),
    Case("matmul", lambda a, b: a @ b, [(2, 2, 3, 4), (2, 2, 4, 2)], np.matmul, id="matmul-batch-rank4"),
    Case("matmul", lambda a, b: lm.matmul(a, b), [(4,), (4, 3)], np.matmul, id="matmul-vector"),
    Case("conv2d", lambda x, w: lm.conv2d(x, w), [(2, 3, 5, 6), (4, 3, 3, 2)], lambda x, w: _conv_ref(x, w, 1, 0)),
    Case("conv2d", lambda x, w: lm.conv2d(x, w, stride=2, padding=1), [(1, 2, 7, 6), (3, 2, 3, 3)],
         lambda x, w: _conv_ref(x, w, 2, 1), id="conv2d-stride2-pad1"),
    Case("conv2d_input_grad", lambda g, w: emit("conv2d_input_grad", [g, w], shape=(1, 2, 7, 6), stride=(2, 2),
                                                 padding=(1, 1)), [(1, 3, 4, 3), (3, 2, 3, 3)], None),
    Case("conv2d_filter_grad", lambda x, g: emit("conv2d_filter_grad", [x, g], shape=(3, 2, 3, 3), stride=(2, 2),
                                                  padding=(1, 1)), [(1, 2, 7, 6), (1, 3, 4, 3)], None),
]
for _c in CASES:
    _c.id = _c.id or _c.op
