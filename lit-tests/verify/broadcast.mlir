// broadcast_to follows NumPy's rules: size-1 or equal trailing dims only.
// RUN: not lean-mlir-opt %s 2>&1 | FileCheck %s

func.func @f(%a: tensor<3xf32>) -> tensor<2x4xf32> {
  // CHECK: broadcast.mlir:[[@LINE+1]]:8: error: 'lean.broadcast_to' op cannot broadcast shape (3,) to (2, 4)
  %0 = "lean.broadcast_to"(%a) : (tensor<3xf32>) -> tensor<2x4xf32>
  return %0 : tensor<2x4xf32>
}
