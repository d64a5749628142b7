// concatenate: shapes must agree outside the axis.
// RUN: not lean-mlir-opt %s 2>&1 | FileCheck %s

func.func @f(%a: tensor<2x3xf32>, %b: tensor<4x3xf32>) -> tensor<2x6xf32> {
  // CHECK: concatenate.mlir:[[@LINE+1]]:8: error: 'lean.concatenate' op shapes (2, 3) and (4, 3) differ outside axis 1
  %0 = "lean.concatenate"(%a, %b) {axis = 1 : i64} : (tensor<2x3xf32>, tensor<4x3xf32>) -> tensor<2x6xf32>
  return %0 : tensor<2x6xf32>
}
