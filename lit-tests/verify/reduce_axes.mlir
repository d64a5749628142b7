// Reduction axes must be sorted, distinct and within the rank.
// RUN: not lean-mlir-opt %s 2>&1 | FileCheck %s

func.func @f(%a: tensor<2x3xf32>) -> tensor<2x3xf32> {
  // CHECK: reduce_axes.mlir:[[@LINE+1]]:8: error: 'lean.sum' op axes (2,) must be sorted, distinct and within rank 2
  %0 = "lean.sum"(%a) {axes = array<i64: 2>, keepdims = true} : (tensor<2x3xf32>) -> tensor<2x3xf32>
  return %0 : tensor<2x3xf32>
}

func.func @g(%a: tensor<2x3xf32>) -> tensor<f32> {
  // CHECK: reduce_axes.mlir:[[@LINE+1]]:8: error: 'lean.max' op axes (1, 0) must be sorted
  %0 = "lean.max"(%a) {axes = array<i64: 1, 0>, keepdims = false} : (tensor<2x3xf32>) -> tensor<f32>
  return %0 : tensor<f32>
}
