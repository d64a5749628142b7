// A transpose permutation must be a permutation of the operand's axes.
// RUN: not lean-mlir-opt %s 2>&1 | FileCheck %s

func.func @f(%a: tensor<2x3xf32>) -> tensor<3x3xf32> {
  // CHECK: permutation.mlir:[[@LINE+1]]:8: error: 'lean.transpose' op permutation (1, 1) is not one of rank 2
  %0 = "lean.transpose"(%a) {permutation = array<i64: 1, 1>} : (tensor<2x3xf32>) -> tensor<3x3xf32>
  return %0 : tensor<3x3xf32>
}
