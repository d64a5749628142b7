// The `lean` dialect: tensor computations (scalars are rank-0 tensors) with f32 or f64 elements.
// IRDL checks operand/result counts, base types, attribute kinds and "same variable => same type".
// Shapes, element types and attribute values are checked by the Python verifier (lean_mlir.verify).
// One constraint variable binds every use to one value, so each attribute has its own variable.
// Constraints used: irdl.base and irdl.is only (irdl.all_of and irdl.any_of over irdl.base abort
// the MLIR 22 IRDL loader). A variadic operand binds every element to one type, so concatenate
// is binary.
irdl.dialect @lean {
  // ---- elementwise unary: result type == operand type
  irdl.operation @neg { %t = irdl.base "!builtin.tensor" irdl.operands(x: %t) irdl.results(res: %t) }
  irdl.operation @square { %t = irdl.base "!builtin.tensor" irdl.operands(x: %t) irdl.results(res: %t) }
  irdl.operation @sqrt { %t = irdl.base "!builtin.tensor" irdl.operands(x: %t) irdl.results(res: %t) }
  irdl.operation @abs { %t = irdl.base "!builtin.tensor" irdl.operands(x: %t) irdl.results(res: %t) }
  irdl.operation @sign { %t = irdl.base "!builtin.tensor" irdl.operands(x: %t) irdl.results(res: %t) }
  irdl.operation @exp { %t = irdl.base "!builtin.tensor" irdl.operands(x: %t) irdl.results(res: %t) }
  irdl.operation @log { %t = irdl.base "!builtin.tensor" irdl.operands(x: %t) irdl.results(res: %t) }
  irdl.operation @sin { %t = irdl.base "!builtin.tensor" irdl.operands(x: %t) irdl.results(res: %t) }
  irdl.operation @cos { %t = irdl.base "!builtin.tensor" irdl.operands(x: %t) irdl.results(res: %t) }
  irdl.operation @tanh { %t = irdl.base "!builtin.tensor" irdl.operands(x: %t) irdl.results(res: %t) }
  irdl.operation @erf { %t = irdl.base "!builtin.tensor" irdl.operands(x: %t) irdl.results(res: %t) }
  irdl.operation @log1p { %t = irdl.base "!builtin.tensor" irdl.operands(x: %t) irdl.results(res: %t) }
  irdl.operation @expm1 { %t = irdl.base "!builtin.tensor" irdl.operands(x: %t) irdl.results(res: %t) }
  irdl.operation @sigmoid { %t = irdl.base "!builtin.tensor" irdl.operands(x: %t) irdl.results(res: %t) }
  irdl.operation @relu { %t = irdl.base "!builtin.tensor" irdl.operands(x: %t) irdl.results(res: %t) }
  irdl.operation @softplus { %t = irdl.base "!builtin.tensor" irdl.operands(x: %t) irdl.results(res: %t) }
  irdl.operation @stop_gradient { %t = irdl.base "!builtin.tensor" irdl.operands(x: %t) irdl.results(res: %t) }
  irdl.operation @clamp {
    %t = irdl.base "!builtin.tensor" %lo = irdl.base "#builtin.float" %hi = irdl.base "#builtin.float"
    irdl.operands(x: %t) irdl.attributes { "lo" = %lo, "hi" = %hi } irdl.results(res: %t)
  }
  // ---- elementwise binary: both operands and the result share one type (broadcasts are explicit)
  irdl.operation @add { %t = irdl.base "!builtin.tensor" irdl.operands(lhs: %t, rhs: %t) irdl.results(res: %t) }
  irdl.operation @sub { %t = irdl.base "!builtin.tensor" irdl.operands(lhs: %t, rhs: %t) irdl.results(res: %t) }
  irdl.operation @mul { %t = irdl.base "!builtin.tensor" irdl.operands(lhs: %t, rhs: %t) irdl.results(res: %t) }
  irdl.operation @div { %t = irdl.base "!builtin.tensor" irdl.operands(lhs: %t, rhs: %t) irdl.results(res: %t) }
  irdl.operation @pow { %t = irdl.base "!builtin.tensor" irdl.operands(lhs: %t, rhs: %t) irdl.results(res: %t) }
  irdl.operation @maximum { %t = irdl.base "!builtin.tensor" irdl.operands(lhs: %t, rhs: %t) irdl.results(res: %t) }
  irdl.operation @minimum { %t = irdl.base "!builtin.tensor" irdl.operands(lhs: %t, rhs: %t) irdl.results(res: %t) }
  // comparisons give 1.0 where true and 0.0 where false, in the operands' element type
  irdl.operation @greater { %t = irdl.base "!builtin.tensor" irdl.operands(lhs: %t, rhs: %t) irdl.results(res: %t) }
  irdl.operation @equal { %t = irdl.base "!builtin.tensor" irdl.operands(lhs: %t, rhs: %t) irdl.results(res: %t) }
  irdl.operation @greater_equal {
    %t = irdl.base "!builtin.tensor" irdl.operands(lhs: %t, rhs: %t) irdl.results(res: %t)
  }
  irdl.operation @not_equal { %t = irdl.base "!builtin.tensor" irdl.operands(lhs: %t, rhs: %t) irdl.results(res: %t) }
  irdl.operation @where {
    %t = irdl.base "!builtin.tensor" irdl.operands(cond: %t, lhs: %t, rhs: %t) irdl.results(res: %t)
  }
  // ---- constants
  irdl.operation @constant {
    %t = irdl.base "!builtin.tensor" %v = irdl.base "#builtin.dense_int_or_fp_elements"
    irdl.attributes { "value" = %v } irdl.results(res: %t)
  }
  // ---- shape ops: the result type carries the target shape
  irdl.operation @broadcast_to {
    %a = irdl.base "!builtin.tensor" %r = irdl.base "!builtin.tensor"
    irdl.operands(x: %a) irdl.results(res: %r)
  }
  irdl.operation @reshape {
    %a = irdl.base "!builtin.tensor" %r = irdl.base "!builtin.tensor"
    irdl.operands(x: %a) irdl.results(res: %r)
  }
  irdl.operation @transpose {
    %a = irdl.base "!builtin.tensor" %r = irdl.base "!builtin.tensor" %p = irdl.base "#builtin.dense_array"
    irdl.operands(x: %a) irdl.attributes { "permutation" = %p } irdl.results(res: %r)
  }
  irdl.operation @reverse {
    %a = irdl.base "!builtin.tensor" %r = irdl.base "!builtin.tensor" %d = irdl.base "#builtin.dense_array"
    irdl.operands(x: %a) irdl.attributes { "axes" = %d } irdl.results(res: %r)
  }
  irdl.operation @concatenate {
    %a = irdl.base "!builtin.tensor" %b = irdl.base "!builtin.tensor" %r = irdl.base "!builtin.tensor"
    %i = irdl.base "#builtin.integer"
    irdl.operands(lhs: %a, rhs: %b) irdl.attributes { "axis" = %i } irdl.results(res: %r)
  }
  irdl.operation @slice {
    %a = irdl.base "!builtin.tensor" %r = irdl.base "!builtin.tensor" %d = irdl.base "#builtin.dense_array"
    irdl.operands(x: %a) irdl.attributes { "start" = %d } irdl.results(res: %r)
  }
  irdl.operation @pad {
    %a = irdl.base "!builtin.tensor" %r = irdl.base "!builtin.tensor" %d = irdl.base "#builtin.dense_array"
    irdl.operands(x: %a) irdl.attributes { "low" = %d } irdl.results(res: %r)
  }
  // ---- reductions over `axes`
  irdl.operation @sum {
    %a = irdl.base "!builtin.tensor" %r = irdl.base "!builtin.tensor"
    %d = irdl.base "#builtin.dense_array" %k = irdl.base "#builtin.integer"
    irdl.operands(x: %a) irdl.attributes { "axes" = %d, "keepdims" = %k } irdl.results(res: %r)
  }
  irdl.operation @mean {
    %a = irdl.base "!builtin.tensor" %r = irdl.base "!builtin.tensor"
    %d = irdl.base "#builtin.dense_array" %k = irdl.base "#builtin.integer"
    irdl.operands(x: %a) irdl.attributes { "axes" = %d, "keepdims" = %k } irdl.results(res: %r)
  }
  irdl.operation @max {
    %a = irdl.base "!builtin.tensor" %r = irdl.base "!builtin.tensor"
    %d = irdl.base "#builtin.dense_array" %k = irdl.base "#builtin.integer"
    irdl.operands(x: %a) irdl.attributes { "axes" = %d, "keepdims" = %k } irdl.results(res: %r)
  }
  // ---- normalizations along one `axis`; logsumexp drops that axis
  irdl.operation @softmax {
    %t = irdl.base "!builtin.tensor" %i = irdl.base "#builtin.integer"
    irdl.operands(x: %t) irdl.attributes { "axis" = %i } irdl.results(res: %t)
  }
  irdl.operation @log_softmax {
    %t = irdl.base "!builtin.tensor" %i = irdl.base "#builtin.integer"
    irdl.operands(x: %t) irdl.attributes { "axis" = %i } irdl.results(res: %t)
  }
  irdl.operation @logsumexp {
    %a = irdl.base "!builtin.tensor" %r = irdl.base "!builtin.tensor" %i = irdl.base "#builtin.integer"
    irdl.operands(x: %a) irdl.attributes { "axis" = %i } irdl.results(res: %r)
  }
  // ---- contractions: matmul is 2-D or batched (equal batch dims)
  irdl.operation @matmul {
    %a = irdl.base "!builtin.tensor" %b = irdl.base "!builtin.tensor" %r = irdl.base "!builtin.tensor"
    irdl.operands(lhs: %a, rhs: %b) irdl.results(res: %r)
  }
  // conv2d: NCHW input, OIHW filter; stride and padding are [h, w] pairs
  irdl.operation @conv2d {
    %a = irdl.base "!builtin.tensor" %b = irdl.base "!builtin.tensor" %r = irdl.base "!builtin.tensor"
    %s = irdl.base "#builtin.dense_array" %p = irdl.base "#builtin.dense_array"
    irdl.operands(input: %a, filter: %b) irdl.attributes { "stride" = %s, "padding" = %p } irdl.results(res: %r)
  }
  // the two linear maps of conv2d's VJP; the result type carries the input / filter shape
  irdl.operation @conv2d_input_grad {
    %a = irdl.base "!builtin.tensor" %b = irdl.base "!builtin.tensor" %r = irdl.base "!builtin.tensor"
    %s = irdl.base "#builtin.dense_array" %p = irdl.base "#builtin.dense_array"
    irdl.operands(output_grad: %a, filter: %b) irdl.attributes { "stride" = %s, "padding" = %p } irdl.results(res: %r)
  }
  irdl.operation @conv2d_filter_grad {
    %a = irdl.base "!builtin.tensor" %b = irdl.base "!builtin.tensor" %r = irdl.base "!builtin.tensor"
    %s = irdl.base "#builtin.dense_array" %p = irdl.base "#builtin.dense_array"
    irdl.operands(input: %a, output_grad: %b) irdl.attributes { "stride" = %s, "padding" = %p } irdl.results(res: %r)
  }
}
