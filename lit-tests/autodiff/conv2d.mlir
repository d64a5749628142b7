// conv2d: the VJP is the pair of adjoint maps, conv2d_input_grad and conv2d_filter_grad,
// carrying the stride and padding; the primal convolution is not recomputed.
// RUN: lean-mlir-opt %s --pass-pipeline='builtin.module(lean-derive-vjp)' | FileCheck %s

func.func @f(%x: tensor<2x3x7x7xf32>, %w: tensor<4x3x3x3xf32>) -> tensor<2x4x4x4xf32> {
  %0 = "lean.conv2d"(%x, %w) {padding = array<i64: 1, 1>, stride = array<i64: 2, 2>} : (tensor<2x3x7x7xf32>, tensor<4x3x3x3xf32>) -> tensor<2x4x4x4xf32>
  return %0 : tensor<2x4x4x4xf32>
}

// CHECK-LABEL: func.func @f_vjp(%arg0: tensor<2x3x7x7xf32>, %arg1: tensor<4x3x3x3xf32>, %arg2: tensor<2x4x4x4xf32>) -> (tensor<2x3x7x7xf32>, tensor<4x3x3x3xf32>)
// CHECK-NOT:     "lean.conv2d"(
// CHECK:         %[[DX:.*]] = "lean.conv2d_input_grad"(%arg2, %arg1) {padding = array<i64: 1, 1>, stride = array<i64: 2, 2>} : (tensor<2x4x4x4xf32>, tensor<4x3x3x3xf32>) -> tensor<2x3x7x7xf32>
// CHECK-NEXT:    %[[DW:.*]] = "lean.conv2d_filter_grad"(%arg0, %arg2) {padding = array<i64: 1, 1>, stride = array<i64: 2, 2>} : (tensor<2x3x7x7xf32>, tensor<2x4x4x4xf32>) -> tensor<4x3x3x3xf32>
// CHECK-NEXT:    return %[[DX]], %[[DW]]
