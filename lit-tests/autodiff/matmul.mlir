// VJP of matmul: dA = dY @ B^T, dB = A^T @ dY (two matmuls, two transposes, no primal recomputation).
// RUN: lean-mlir-opt %s --pass-pipeline='builtin.module(lean-derive-vjp)' | FileCheck %s
// RUN: lean-mlir-opt %s --pass-pipeline='builtin.module(lean-derive-vjp{func=f wrt=1})' | FileCheck %s --check-prefix=WRT

func.func @f(%a: tensor<2x3xf32>, %b: tensor<3x4xf32>) -> tensor<2x4xf32> {
  %0 = "lean.matmul"(%a, %b) : (tensor<2x3xf32>, tensor<3x4xf32>) -> tensor<2x4xf32>
  return %0 : tensor<2x4xf32>
}

// CHECK-LABEL: func.func @f(
// CHECK-LABEL: func.func @f_vjp(%arg0: tensor<2x3xf32>, %arg1: tensor<3x4xf32>, %arg2: tensor<2x4xf32>) -> (tensor<2x3xf32>, tensor<3x4xf32>)
// CHECK-NEXT:    %[[BT:.*]] = "lean.transpose"(%arg1) {permutation = array<i64: 1, 0>} : (tensor<3x4xf32>) -> tensor<4x3xf32>
// CHECK-NEXT:    %[[DA:.*]] = "lean.matmul"(%arg2, %[[BT]]) : (tensor<2x4xf32>, tensor<4x3xf32>) -> tensor<2x3xf32>
// CHECK-NEXT:    %[[AT:.*]] = "lean.transpose"(%arg0) {permutation = array<i64: 1, 0>} : (tensor<2x3xf32>) -> tensor<3x2xf32>
// CHECK-NEXT:    %[[DB:.*]] = "lean.matmul"(%[[AT]], %arg2) : (tensor<3x2xf32>, tensor<2x4xf32>) -> tensor<3x4xf32>
// CHECK-NEXT:    return %[[DA]], %[[DB]] : tensor<2x3xf32>, tensor<3x4xf32>

// Only the cotangent of %b: one transpose, one matmul.
// WRT-LABEL: func.func @f_vjp(%arg0: tensor<2x3xf32>, %arg1: tensor<3x4xf32>, %arg2: tensor<2x4xf32>) -> tensor<3x4xf32>
// WRT-NEXT:    %[[AT:.*]] = "lean.transpose"(%arg0)
// WRT-NEXT:    %[[DB:.*]] = "lean.matmul"(%[[AT]], %arg2)
// WRT-NEXT:    return %[[DB]] : tensor<3x4xf32>
