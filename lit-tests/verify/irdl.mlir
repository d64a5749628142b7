// What the IRDL definition itself rejects (mlir-opt with the dialect file, no lean_mlir involved).
// RUN: mlir-opt --irdl-file=%irdl --split-input-file --verify-diagnostics %s

func.func @operand_count(%a: tensor<4xf32>) -> tensor<4xf32> {
  // expected-error @+1 {{expects exactly 2 operands, but got 1}}
  %0 = "lean.add"(%a) : (tensor<4xf32>) -> tensor<4xf32>
  return %0 : tensor<4xf32>
}

// -----

func.func @same_type(%a: tensor<4xf32>, %b: tensor<8xf32>) -> tensor<4xf32> {
  // expected-error @+1 {{expected 'tensor<4xf32>' but got 'tensor<8xf32>'}}
  %0 = "lean.add"(%a, %b) : (tensor<4xf32>, tensor<8xf32>) -> tensor<4xf32>
  return %0 : tensor<4xf32>
}

// -----

func.func @not_a_tensor(%a: f32) -> f32 {
  // expected-error @+1 {{expected base type 'builtin.tensor' but got 'builtin.f32'}}
  %0 = "lean.exp"(%a) : (f32) -> f32
  return %0 : f32
}

// -----

func.func @missing_attribute(%a: tensor<2x3xf32>) -> tensor<3xf32> {
  // expected-error @+1 {{attribute "keepdims" is expected but not provided}}
  %0 = "lean.sum"(%a) {axes = array<i64: 0>} : (tensor<2x3xf32>) -> tensor<3xf32>
  return %0 : tensor<3xf32>
}

// -----

func.func @attribute_kind(%a: tensor<2x3xf32>) -> tensor<3x2xf32> {
  // expected-error @+1 {{expected base attribute 'builtin.dense_array' but got 'builtin.array'}}
  %0 = "lean.transpose"(%a) {permutation = [1, 0]} : (tensor<2x3xf32>) -> tensor<3x2xf32>
  return %0 : tensor<3x2xf32>
}

// -----

func.func @result_count(%a: tensor<4xf32>) {
  // expected-error @+1 {{expects exactly 1 results, but got 0}}
  "lean.neg"(%a) : (tensor<4xf32>) -> ()
  return
}

// -----

func.func @unknown_op(%a: tensor<4xf32>) -> tensor<4xf32> {
  // expected-error @+1 {{unregistered operation 'lean.nosuch' found in dialect ('lean') that does not allow unknown operations}}
  %0 = "lean.nosuch"(%a) : (tensor<4xf32>) -> tensor<4xf32>
  return %0 : tensor<4xf32>
}
