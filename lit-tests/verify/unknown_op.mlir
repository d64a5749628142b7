// An op the dialect does not define is rejected at parse time, with its location.
// RUN: not lean-mlir-opt %s 2>&1 | FileCheck %s

func.func @f(%a: tensor<4xf32>) -> tensor<4xf32> {
  // CHECK: unknown_op.mlir:[[@LINE+1]]:8: error: unregistered operation 'lean.frobnicate' found in dialect ('lean') that does not allow unknown operations
  %0 = "lean.frobnicate"(%a) : (tensor<4xf32>) -> tensor<4xf32>
  return %0 : tensor<4xf32>
}
