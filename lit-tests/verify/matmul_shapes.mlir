// The lean verifier (not IRDL) checks matmul's contraction dimensions.
// RUN: not lean-mlir-opt %s 2>&1 | FileCheck %s

func.func @f(%a: tensor<2x3xf32>, %b: tensor<4x5xf32>) -> tensor<2x5xf32> {
  // CHECK: matmul_shapes.mlir:[[@LINE+1]]:8: error: 'lean.matmul' op contraction dimensions differ: 3 and 4
  %0 = "lean.matmul"(%a, %b) : (tensor<2x3xf32>, tensor<4x5xf32>) -> tensor<2x5xf32>
  return %0 : tensor<2x5xf32>
}
// CHECK-NOT: Traceback
