// The result type must be the one the op's shape rule infers.
// RUN: not lean-mlir-opt %s 2>&1 | FileCheck %s

func.func @f(%a: tensor<2x3xf32>) -> tensor<2xf32> {
  // CHECK: result_type.mlir:[[@LINE+1]]:8: error: 'lean.sum' op result type should be tensor<3xf32>, got tensor<2xf32>
  %0 = "lean.sum"(%a) {axes = array<i64: 0>, keepdims = false} : (tensor<2x3xf32>) -> tensor<2xf32>
  return %0 : tensor<2xf32>
}

func.func @g(%a: tensor<2x3xf32>, %b: tensor<3x4xf32>) -> tensor<2x4xf64> {
  // CHECK: result_type.mlir:[[@LINE+1]]:8: error: 'lean.matmul' op result type should be tensor<2x4xf32>, got tensor<2x4xf64>
  %0 = "lean.matmul"(%a, %b) : (tensor<2x3xf32>, tensor<3x4xf32>) -> tensor<2x4xf64>
  return %0 : tensor<2x4xf64>
}
