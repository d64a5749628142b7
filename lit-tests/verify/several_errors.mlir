// The lean verifier reports every ill-typed op of a module, in order, then exits with 1.
// RUN: not lean-mlir-opt %s 2>&1 | FileCheck %s
// The same checks as a pass (the input check skipped), and --verify-only:
// RUN: not lean-mlir-opt --no-verify %s --pass-pipeline='builtin.module(lean-verify)' 2>&1 | FileCheck %s
// RUN: not lean-mlir-opt --verify-only %s 2>&1 | FileCheck %s
// Without any verification the module prints unchanged:
// RUN: lean-mlir-opt --no-verify %s | FileCheck %s --check-prefix=NOVERIFY
// NOVERIFY: "lean.softmax"(%0) {axis = 2 : i64}

func.func @f(%a: tensor<2x3xf32>, %b: tensor<2x3xf32>) -> tensor<2x3xf32> {
  // CHECK: several_errors.mlir:[[@LINE+1]]:8: error: 'lean.matmul' op contraction dimensions differ: 3 and 2
  %0 = "lean.matmul"(%a, %b) : (tensor<2x3xf32>, tensor<2x3xf32>) -> tensor<2x3xf32>
  // CHECK-NEXT: several_errors.mlir:[[@LINE+1]]:8: error: 'lean.softmax' op axis 2 is out of range for rank 2
  %1 = "lean.softmax"(%0) {axis = 2 : i64} : (tensor<2x3xf32>) -> tensor<2x3xf32>
  return %1 : tensor<2x3xf32>
}
