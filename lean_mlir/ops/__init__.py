"""The op table: the rule table (`OPS`), traced values (`Tensor`, `emit`) and the front-end function
of every lean op."""

from .contract import conv2d, matmul
from .core import OPS, OpDef, ShapeError, Spec, f32, f64, lookup
from .elementwise import (
    abs,
    add,
    clamp,
    cos,
    div,
    equal,
    exp,
    greater,
    log,
    maximum,
    minimum,
    mul,
    neg,
    pow,
    relu,
    sigmoid,
    sign,
    sin,
    softplus,
    sqrt,
    square,
    stop_gradient,
    sub,
    tanh,
)
from .nn import log_softmax, logsumexp, softmax
from .reduce import max, mean, sum
from .shape import broadcast_to, concatenate, getitem, pad, reshape, reverse, slice, swapaxes, transpose
from .tensor import API, Tensor, TraceError, constant, emit, user_code

__all__ = [
    "API", "OPS", "OpDef", "ShapeError", "Spec", "Tensor", "TraceError", "constant", "emit", "f32", "f64", "lookup",
    "user_code",
    # the front-end functions (lm.abs, ...), which Tensor's operators and methods call through API
    "abs", "add", "broadcast_to", "clamp", "concatenate", "conv2d", "cos", "div", "equal", "exp", "getitem",
    "greater", "log", "log_softmax", "logsumexp", "matmul", "max", "maximum", "mean", "minimum", "mul", "neg",
    "pad", "pow", "relu", "reshape", "reverse", "sigmoid", "sign", "sin", "slice", "softmax", "softplus", "sqrt",
    "square", "stop_gradient", "sub", "sum", "swapaxes", "tanh", "transpose",
]
FUNCTIONS = __all__[__all__.index("abs"):]
API.update({name: globals()[name] for name in FUNCTIONS})
