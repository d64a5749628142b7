"""The op table: the rule table (`OPS`), traced values (`Tensor`, `emit`) and the front-end function
of every lean op."""

from .contract import conv2d, conv_transpose2d, matmul
from .core import OPS, OpDef, ShapeError, Spec, f32, f64, lookup
from .elementwise import (
    abs,
    add,
    clamp,
    cos,
    div,
    equal,
    erf,
    exp,
    expm1,
    greater,
    greater_equal,
    less,
    less_equal,
    log,
    log1p,
    maximum,
    minimum,
    mul,
    neg,
    not_equal,
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
    where,
)
from .layers import avg_pool2d, batch_norm, layer_norm, max_pool2d, scaled_dot_product_attention
from .nn import cross_entropy, gelu, log_softmax, logaddexp, logsumexp, mse_loss, rsqrt, silu, softmax
from .reduce import max, mean, min, std, sum, var
from .shape import (
    broadcast_to,
    concatenate,
    cumsum,
    expand_dims,
    getitem,
    pad,
    reshape,
    reverse,
    slice,
    split,
    squeeze,
    stack,
    swapaxes,
    transpose,
)
from .tensor import API, Tensor, TraceError, constant, emit, user_code

__all__ = [
    "API", "OPS", "OpDef", "ShapeError", "Spec", "Tensor", "TraceError", "constant", "emit", "f32", "f64", "lookup",
    "user_code",
    # the front-end functions (lm.abs, ...), which Tensor's operators and methods call through API
    "abs", "add", "avg_pool2d", "batch_norm", "broadcast_to", "clamp", "concatenate", "conv2d", "conv_transpose2d",
    "cos", "cross_entropy", "cumsum", "div", "equal", "erf", "exp", "expand_dims", "expm1", "gelu", "getitem",
    "greater", "greater_equal", "layer_norm", "less", "less_equal", "log", "log1p", "log_softmax", "logaddexp",
    "logsumexp", "matmul", "max", "max_pool2d", "maximum", "mean", "min", "minimum", "mse_loss", "mul", "neg",
    "not_equal", "pad", "pow", "relu", "reshape", "reverse", "rsqrt", "scaled_dot_product_attention", "sigmoid",
    "sign", "silu", "sin", "slice", "softmax", "softplus", "split", "sqrt", "square", "squeeze", "stack", "std",
    "stop_gradient", "sub", "sum", "swapaxes", "tanh", "transpose", "var", "where",
]
FUNCTIONS = __all__[__all__.index("abs"):]
API.update({name: globals()[name] for name in FUNCTIONS})
